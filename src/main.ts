import { createApp } from './app.js';
import { adminKeySource, firstStart, resolveSessionSecret } from './bootstrap.js';
import { ConfigError, loadProcessConfig, type Config } from './config.js';
import { openDatabase } from './db/client.js';
import { createLogger } from './logger.js';
import { createHttpServer } from './server.js';
import { startServices } from './services.js';
import { startSweeper } from './sweeper.js';

/** How long shutdown waits for requests in flight before closing their connections. */
const SHUTDOWN_GRACE_MS = 10_000;

function readConfig(): Config {
  try {
    return loadProcessConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  const logger = createLogger(config.logLevel);
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  await database.migrate();
  const { secret, generated } = resolveSessionSecret(config);
  if (generated)
    logger.warn('generated a session secret in DATA_DIR; set SESSION_SECRET in production');
  const services = await startServices(database, {
    sessionSecret: secret,
    tokenKeyIds: config.tokenKeyIds,
    rateLimits: config.rateLimits,
    adminKeys: adminKeySource(config),
    refreshGraceSeconds: config.refreshGraceSeconds,
    logger,
    subscriptionLimits: config.subscriptions,
  });
  const created = await firstStart(database.db, config);
  const sweeper =
    config.sweepIntervalSeconds > 0
      ? startSweeper(database.db, logger, {
          intervalMs: config.sweepIntervalSeconds * 1000,
          retentionSeconds: config.sessionRetentionDays * 86_400,
          eventRetentionSeconds: config.eventRetentionDays * 86_400,
          activityRetentionSeconds: config.activityRetentionDays * 86_400,
          rollupRetentionSeconds: config.metricsRetentionDays * 86_400,
          batchSize: 500,
        })
      : undefined;
  const app = createApp(services, {
    graphiql: config.graphiql,
    introspection: config.introspection,
    fieldSuggestions: config.fieldSuggestions,
    bodyLimitBytes: config.bodyLimitBytes,
    trustProxyHops: config.trustProxyHops,
    // The demo key is known in plaintext on the first start only; GraphiQL's tabs then send it.
    graphiqlSetup: {
      demoKey: created.demoSecretKey,
      production: config.nodeEnv === 'production',
    },
  });
  const { server, shutdown } = createHttpServer(app, services, {
    bodyLimitBytes: config.bodyLimitBytes,
    trustProxyHops: config.trustProxyHops,
    websocket: config.websocket,
  });
  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://localhost:${port}/graphql`;
  logger.info({ port, database: database.kind }, 'listening');

  // Shown once, on the terminal only (not through the logger): the operator needs them to begin.
  const lines = [
    `\n  Session service ready: ${config.graphiql ? 'GraphiQL' : 'GraphQL'} at ${url}\n`,
  ];
  if (created.adminKey) lines.push(`  Admin key (shown once, store it now): ${created.adminKey}`);
  if (created.demoSecretKey) {
    lines.push(
      `  Demo product "demo", env "dev", secret key (shown once): ${created.demoSecretKey}`,
    );
    lines.push(
      `  In GraphiQL, set the header {"Authorization": "Bearer ${created.demoSecretKey}"}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void Promise.all([shutdown(SHUTDOWN_GRACE_MS), sweeper?.stop()])
      .then(() => services.activity.flush())
      .then(() => database.close())
      .then(() => {
        logger.info('stopped');
        process.exit(0);
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(
    `failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});

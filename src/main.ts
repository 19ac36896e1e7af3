import { createApp } from './app.js';
import {
  adminKeySource,
  checkSecretFingerprint,
  firstStart,
  resolveSessionSecret,
  SecretMismatchError,
} from './bootstrap.js';
import { ConfigError, loadProcessConfig, type Config } from './config.js';
import { openDatabase, type DatabaseHandle } from './db/client.js';
import { NotificationsNotDeliveredError } from './db/listener.js';
import { checkListenable, ListenError, listenOn, type ListenTarget } from './http/listen.js';
import { createLogger, processOutput } from './logger.js';
import { createMetricsServer } from './http/metrics-endpoint.js';
import { PGLITE_TEMPLATE_DIR } from './paths.js';
import { createHttpServer } from './server.js';
import { startServices } from './services.js';
import { openRateLimitStore } from './limits/rate-limit-store.js';
import { startSweeper } from './workers/sweeper.js';

/**
 * After the grace period, what is left (closing the database, the last log lines) gets this
 * long; then the process exits whatever is pending.
 */
const SHUTDOWN_LAST_RESORT_MS = 5_000;
/** How long the last log lines may take to reach a slow reader before exit. */
const LOG_DRAIN_MS = 1_000;

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

/**
 * Exits with a message naming the cause when a NOTIFY sent through DATABASE_URL does not reach a
 * LISTEN on the direct connection: a transaction-mode pooler without DATABASE_DIRECT_URL, or a
 * DATABASE_DIRECT_URL that reaches another server than DATABASE_URL.
 */
async function refuseUndeliveredNotifications(
  database: DatabaseHandle,
  config: Config,
): Promise<void> {
  try {
    await database.checkNotifications();
  } catch (error) {
    if (!(error instanceof NotificationsNotDeliveredError)) throw error;
    const message = config.database.directUrl
      ? `DATABASE_DIRECT_URL does not hear what is sent through DATABASE_URL: a NOTIFY sent ` +
        `through DATABASE_URL did not reach a LISTEN on DATABASE_DIRECT_URL within ` +
        `${error.waitedMs} ms. Both must reach the same primary database (DATABASE_URL may go ` +
        `through a pooler, DATABASE_DIRECT_URL must not). See docs/guides/production-postgres.md.`
      : `DATABASE_URL looks like a transaction-mode pooler (PgBouncer, Supavisor, RDS Proxy, ` +
        `Neon's pooled endpoint): a NOTIFY sent through it did not reach a LISTEN on it within ` +
        `${error.waitedMs} ms, so revocations would not reach other instances. Set ` +
        `DATABASE_DIRECT_URL to a direct connection to the primary (not through the pooler), ` +
        `or point DATABASE_URL at the database itself. See docs/guides/production-postgres.md.`;
    process.stderr.write(`${message}\n`);
    await database.close();
    process.exit(1);
  }
}

/** Writes a refusal to listen as one line on stderr and exits 1; rethrows anything else. */
function exitOnListenError(error: unknown): never {
  if (!(error instanceof ListenError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}

/**
 * What a production start on a database with no product says: the two requests that make a
 * product and a secret key for it, with the admin key in the shell's `$ADMIN` (never printed here).
 */
function productCommands(url: string, adminKeyShown: boolean): string {
  const post = (query: string) =>
    `  curl -s ${url} -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \\\n` +
    `    -d '{"query":"${query.replaceAll('"', '\\"')}"}'`;
  return [
    '  No product yet. Make one, then a secret key for it (shown once, in the answer), with',
    `  ADMIN set to ${adminKeyShown ? 'the admin key above' : 'your ADMIN_KEY'}:`,
    post('mutation { createProduct(input: {tag: "my-app", name: "My app"}) { tag envs } }'),
    post(
      'mutation { createApiKey(input: {product: "my-app", env: "prd", kind: SECRET, name: "backend"}) { key } }',
    ),
  ].join('\n');
}

type Logger = ReturnType<typeof createLogger>;
type Services = Awaited<ReturnType<typeof startServices>>;
type FirstStart = Awaited<ReturnType<typeof firstStart>>;

/** Where GraphQL listens, and the metrics listener's own port when it has one. */
function listenTargets(config: Config): { main: ListenTarget; metrics: ListenTarget | undefined } {
  return {
    main: {
      label: 'port',
      port: config.port,
      host: config.host,
      portVariable: 'PORT',
      hostVariable: 'HOST',
    },
    metrics:
      config.metrics.port === null
        ? undefined
        : {
            label: 'metrics port',
            port: config.metrics.port,
            host: config.metrics.host,
            portVariable: 'METRICS_PORT',
            hostVariable: 'METRICS_HOST',
          },
  };
}

/**
 * Opens and migrates the database, then settles the session secret: exits 1 when notifications
 * do not get through or another instance holds a different secret.
 */
async function openCheckedDatabase(
  config: Config,
  logger: Logger,
): Promise<{ database: DatabaseHandle; secret: string }> {
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    templateDir: PGLITE_TEMPLATE_DIR,
    directUrl: config.database.directUrl,
    maxConnections: config.database.poolSize,
    connectTimeoutMs: config.database.connectTimeoutMs,
    statementTimeoutMs: config.database.statementTimeoutMs,
    keepAliveSeconds: config.database.keepAliveSeconds,
    logger,
  });
  // Before anything holds a session lock or listens: behind a transaction-mode pooler neither
  // works, and the service would run silently wrong (docs/guides/production-postgres.md).
  await refuseUndeliveredNotifications(database, config);
  await database.migrate();
  const { secret, generated } = resolveSessionSecret(config);
  if (generated)
    logger.warn('generated a session secret in DATA_DIR; set SESSION_SECRET in production');
  // Every instance on one database must hold the same secret: refuse to start otherwise.
  try {
    await checkSecretFingerprint(database.db, secret, {
      generated: !config.sessionSecret,
      dataDir: config.dataDir,
    });
  } catch (error) {
    if (!(error instanceof SecretMismatchError)) throw error;
    process.stderr.write(`${error.message}\n`);
    await database.close();
    process.exit(1);
  }
  return { database, secret };
}

async function startRateLimitStore(config: Config, database: DatabaseHandle, logger: Logger) {
  const rateLimitStore = await openRateLimitStore(config.rateLimits.store, {
    redisUrl: config.rateLimits.redisUrl,
    syncMs: config.rateLimits.syncMs,
    database,
    logger,
  });
  // Redis away at start delays it 2 s at most: limits count per instance until it is back.
  await rateLimitStore.ready(2_000);
  return rateLimitStore;
}

function startConfiguredServices(
  config: Config,
  database: DatabaseHandle,
  secret: string,
  rateLimitStore: Awaited<ReturnType<typeof startRateLimitStore>>,
  logger: Logger,
): Promise<Services> {
  return startServices(database, {
    sessionSecret: secret,
    tokenKeyIds: config.tokenKeyIds,
    rateLimits: config.rateLimits,
    rateLimitStore: rateLimitStore.store,
    adminKeys: adminKeySource(config),
    refreshGraceSeconds: config.refreshGraceSeconds,
    maxConfigsPerProduct: config.maxConfigsPerProduct,
    impersonationMaxSeconds: config.impersonationMaxSeconds,
    logger,
    subscriptionLimits: config.subscriptions,
    maxVerifierFeedsPerKey: config.subscriptions.maxVerifierFeedsPerKey,
    insightConcurrency: config.database.insightConcurrency,
    verifierHorizons: {
      sessionRetentionSeconds: config.sessionRetentionDays * 86_400,
      eventRetentionSeconds: config.eventRetentionDays * 86_400,
    },
    webhooks: config.webhooks,
  });
}

/** The retention sweeper, unless SWEEP_INTERVAL_SECONDS is 0. */
function startConfiguredSweeper(config: Config, database: DatabaseHandle, logger: Logger) {
  return config.sweepIntervalSeconds > 0
    ? startSweeper(database.db, logger, {
        intervalMs: config.sweepIntervalSeconds * 1000,
        retentionSeconds: config.sessionRetentionDays * 86_400,
        eventRetentionSeconds: config.eventRetentionDays * 86_400,
        activityRetentionSeconds: config.activityRetentionDays * 86_400,
        rollupRetentionSeconds: config.metricsRetentionDays * 86_400,
        batchSize: 500,
      })
    : undefined;
}

function configuredApp(
  services: Services,
  config: Config,
  listening: Promise<void>,
  created: FirstStart,
) {
  return createApp(services, {
    graphiql: config.graphiql,
    console: config.console,
    precompressAfter: listening,
    introspection: config.introspection,
    fieldSuggestions: config.fieldSuggestions,
    trustedDocuments: config.trustedDocuments,
    bodyLimitBytes: config.bodyLimitBytes,
    maxResponseBytes: config.maxResponseBytes,
    trustProxyHops: config.trustProxyHops,
    metrics: { onMainPort: config.metrics.port === null, token: config.metrics.token },
    // The demo key is known in plaintext on the first start only; GraphiQL's tabs then send it.
    graphiqlSetup: {
      demoKey: created.demoSecretKey,
      production: config.nodeEnv === 'production',
    },
  });
}

/** What a stop closes, in order after the HTTP servers: everything the start opened. */
interface Running {
  config: Config;
  logger: Logger;
  output: ReturnType<typeof processOutput>;
  metricsServer: ReturnType<typeof createMetricsServer> | undefined;
  shutdown: ReturnType<typeof createHttpServer>['shutdown'];
  sweeper: ReturnType<typeof startSweeper> | undefined;
  services: Services;
  rateLimitStore: Awaited<ReturnType<typeof startRateLimitStore>>;
  database: DatabaseHandle;
}

/** Stops on SIGTERM and SIGINT: drains within the grace period, then exits (bounded). */
function stopOnSignals(running: Running): void {
  const { config, logger, output, metricsServer, shutdown, sweeper, services } = running;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    const graceMs = config.shutdownGraceSeconds * 1000;
    // The hard bound: whatever is still pending then (a database that does not answer, a log
    // reader that does not read), the process exits. Deliberately not unref'd.
    setTimeout(() => {
      process.stderr.write(
        `shutdown did not finish within ${(graceMs + SHUTDOWN_LAST_RESORT_MS) / 1000} s; exiting\n`,
      );
      process.exit(1);
    }, graceMs + SHUTDOWN_LAST_RESORT_MS);
    logger.info({ signal }, 'shutting down');
    metricsServer?.close();
    void Promise.all([shutdown(graceMs), sweeper?.stop(), services.webhookWorker?.stop()])
      .then(() => services.activity.flush())
      .then(() => running.rateLimitStore.close())
      .then(() => running.database.close())
      .then(async () => {
        logger.info('stopped');
        await output.drain(LOG_DRAIN_MS);
        process.exit(0);
      })
      .catch(async (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        await output.drain(LOG_DRAIN_MS);
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** The ready banner, with a first start's keys (shown once, never through the logger). */
function readyBanner(config: Config, port: number, created: FirstStart): string {
  const url = `http://localhost:${port}/graphql`;
  const consoleUrl = `http://localhost:${port}/console`;
  const lines = [
    `\n  Session service ready: ${config.graphiql ? 'GraphiQL' : 'GraphQL'} at ${url}\n`,
  ];
  if (config.console) lines.push(`  Web console at ${consoleUrl}\n`);
  if (created.adminKey) lines.push(`  Admin key (shown once, store it now): ${created.adminKey}`);
  if (created.demoSecretKey) {
    lines.push(
      `  Demo product "demo", env "dev", secret key (shown once): ${created.demoSecretKey}`,
    );
    lines.push(
      `  In GraphiQL, set the header {"Authorization": "Bearer ${created.demoSecretKey}"}`,
    );
  }
  if (created.showProductCommands) lines.push(productCommands(url, Boolean(created.adminKey)));
  return `${lines.join('\n')}\n\n`;
}

async function main(): Promise<void> {
  const config = readConfig();
  const targets = listenTargets(config);
  // Before the database is opened or a first start's keys are made (they are shown once): a
  // port in use is said in one line and costs nothing. The listens below can still fail (the
  // port taken meanwhile): they say it the same way.
  await checkListenable(targets.metrics ? [targets.main, targets.metrics] : [targets.main]).catch(
    exitOnListenError,
  );
  // Never blocks on its reader: a stuck or vanished stdout drops lines instead (src/logger.ts).
  const output = processOutput(config.logBufferBytes);
  const logger = createLogger(config.logLevel, output);
  const { database, secret } = await openCheckedDatabase(config, logger);
  const rateLimitStore = await startRateLimitStore(config, database, logger);
  const services = await startConfiguredServices(config, database, secret, rateLimitStore, logger);
  // One instance at a time on a database: each first-start key is made, and shown, once.
  const created = await database.exclusive(() => firstStart(database.db, config));
  const sweeper = startConfiguredSweeper(config, database, logger);
  let listened!: () => void;
  const listening = new Promise<void>((resolve) => (listened = resolve));
  const app = configuredApp(services, config, listening, created);
  const { server, shutdown } = createHttpServer(app, services, {
    bodyLimitBytes: config.bodyLimitBytes,
    trustProxyHops: config.trustProxyHops,
    websocket: config.websocket,
  });
  await listenOn(server, targets.main).catch(exitOnListenError);
  listened();
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ port, database: database.kind, rateLimits: config.rateLimits.store }, 'listening');
  const metricsServer =
    config.metrics.port === null
      ? undefined
      : createMetricsServer(services.metrics.registry, config.metrics.token);
  if (metricsServer && targets.metrics) {
    await listenOn(metricsServer, targets.metrics).catch(exitOnListenError);
    logger.info({ port: targets.metrics.port, host: targets.metrics.host }, 'metrics listening');
  }
  // Before the banner: whoever reads it may signal at once (a signal with no handler yet kills
  // the process instead of stopping it).
  stopOnSignals({
    config,
    logger,
    output,
    metricsServer,
    shutdown,
    sweeper,
    services,
    rateLimitStore,
    database,
  });
  // Shown once, on the terminal only (not through the logger): the operator needs them to begin.
  output.write(readyBanner(config, port, created));
}

main().catch((error: unknown) => {
  process.stderr.write(
    `failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});

import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { inject } from 'vitest';
import { createApp, type App, type AppOptions } from '../../src/app.js';
import { openDatabase, type DatabaseHandle } from '../../src/db/client.js';
import { generateAdminKey } from '../../src/domain/keys.js';
import { createLogger } from '../../src/logger.js';
import type { SubscriptionLimits } from '../../src/workers/event-bus.js';
import type { RateLimitOptions, RateLimitStore } from '../../src/limits/rate-limits.js';
import {
  DEFAULT_WEBHOOK_SETTINGS,
  type WebhookSettings,
} from '../../src/domain/webhooks/settings.js';
import { startServices, type Services } from '../../src/services.js';
import { hashSecret, randomSecret } from '../../src/tokens/secrets.js';

/** The test database: Postgres when DATABASE_URL is set, else a fresh in-memory PGlite. */
export const TEST_DATABASE_URL = process.env.DATABASE_URL || undefined;

let template: Blob | undefined;
/**
 * The migrated PGlite data directory of test/support/global-setup.ts, read once per file, or
 * undefined (Postgres, or a run without the global setup).
 */
function pgliteTemplate(): Blob | undefined {
  const file = inject('pgliteTemplate');
  if (!file) return undefined;
  template ??= new Blob([readFileSync(file)], { type: 'application/x-tar' });
  return template;
}

export interface TestApp {
  readonly app: App;
  readonly database: DatabaseHandle;
  readonly services: Services;
  readonly adminKey: string;
  /** Every log line the server wrote, as text. */
  readonly logs: string[];
  /** SQL statements sent since the last reset (text only). */
  readonly statements: string[];
  close(): Promise<void>;
}

/** How {@link createTestApp} builds a test app. */
export interface TestAppOptions {
  refreshGraceSeconds?: number;
  graphiql?: boolean;
  sessionSecret?: string;
  /** Token key ids, newest first (default: the services' default, `k1`). */
  tokenKeyIds?: readonly string[];
  /** Most live configs per product (default: the server's, 100). */
  maxConfigsPerProduct?: number;
  /** Longest an impersonation session lives (default: the server's, 3600 s). */
  impersonationMaxSeconds?: number;
  /** Rate limits (default: none that ordinary tests could meet). */
  rateLimits?: RateLimitOptions;
  /** Where rate limits count (default: this app's memory). */
  rateLimitStore?: RateLimitStore;
  /** Subscriptions per key and the slow-consumer timeout (default: no cap, 30 s). */
  subscriptionLimits?: SubscriptionLimits;
  /** Webhook settings (default: the server's defaults, with no delivery worker). */
  webhooks?: WebhookSettings;
  /** Open verifier feeds per key (default: the server's, 64). */
  maxVerifierFeedsPerKey?: number;
  /** More options for createApp (introspection, field suggestions, body limit...). */
  appOptions?: Partial<AppOptions>;
  /** Another database URL than TEST_DATABASE_URL (a proxied one, for fault tests). */
  databaseUrl?: string;
  /**
   * Another app's database (e.g. `other.database`), to run several instances on one database,
   * PGlite included. Such an app's `close()` leaves the database open: its owner closes it.
   * Its `statements` stay empty.
   */
  database?: DatabaseHandle;
  /**
   * The database handle's per-statement deadline in ms (default: the server's, 5 s); for files
   * whose set-up writes or reads 100,000 rows in one statement.
   */
  statementTimeoutMs?: number;
}

/**
 * Statements that run on timers, never for a request: the event sequencer's sweep, the fleet
 * rate-limit sync, and the activity recorder's flush (its timer can fire while a test's request
 * runs, on a busy machine).
 */
const BACKGROUND_STATEMENT =
  /session_events_sequence_pending|rate_limit_counters|insert into "activity_(log|log_counters|rollups)"/;

/**
 * A server on its own database handle, as `main.ts` would build it, with an admin key of its
 * own. Tests isolate by creating their own product, never by cleaning tables.
 */
export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const statements: string[] = [];
  const shared = options.database;
  const databaseUrl = options.databaseUrl ?? TEST_DATABASE_URL;
  const database =
    shared ??
    (await openDatabase({
      databaseUrl,
      dataDir: 'memory://',
      loadDataDir: databaseUrl ? undefined : pgliteTemplate(),
      // Background statements (the event sequencer's sweep, the fleet rate-limit sync) run on
      // timers, not for a request: leave them out of the count tests make of a request's SQL.
      onQuery: (text) => {
        if (!BACKGROUND_STATEMENT.test(text)) statements.push(text);
      },
      // Files run in parallel forks, several apps each, on one Postgres (max_connections 100):
      // a smaller pool per app keeps the run clear of "too many clients".
      maxConnections: 10,
      statementTimeoutMs: options.statementTimeoutMs,
    }));
  // A no-op on a copy of the template, as on a Postgres database other files migrated already.
  if (!shared) await database.migrate();
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  const adminKey = generateAdminKey();
  const services = await startServices(database, {
    sessionSecret: options.sessionSecret ?? randomSecret(48),
    tokenKeyIds: options.tokenKeyIds,
    rateLimits: options.rateLimits,
    rateLimitStore: options.rateLimitStore,
    adminKeys: { configuredHash: hashSecret(adminKey) },
    refreshGraceSeconds: options.refreshGraceSeconds ?? 10,
    maxConfigsPerProduct: options.maxConfigsPerProduct,
    impersonationMaxSeconds: options.impersonationMaxSeconds,
    logger: createLogger('debug', sink),
    subscriptionLimits: options.subscriptionLimits,
    maxVerifierFeedsPerKey: options.maxVerifierFeedsPerKey,
    // No delivery worker unless the test asks for webhooks: its background queries would
    // show in tests that count the SQL statements of a request.
    webhooks: options.webhooks ?? { ...DEFAULT_WEBHOOK_SETTINGS, deliver: false },
  });
  const app = createApp(services, { graphiql: options.graphiql ?? true, ...options.appOptions });
  return {
    app,
    database,
    services,
    adminKey,
    logs,
    statements,
    close: async () => {
      services.events.stop();
      await services.webhookWorker?.stop();
      await services.activity.flush().catch(() => {});
      if (!shared) await database.close();
    },
  };
}

import { z } from 'zod';
import {
  DEFAULT_IMPERSONATION_MAX_SECONDS,
  DEFAULT_MAX_CONFIGS_PER_PRODUCT,
} from './domain/validation.js';
import type { WebhookSettings } from './domain/webhooks/settings.js';
import { TRUSTED_DOCUMENTS_MODES, type TrustedDocumentsMode } from './graphql/trusted-documents.js';
import { RATE_CLASSES, type RateClass } from './limits/rate-limits.js';

/**
 * The server's configuration, read once from the environment at the edge of the process.
 * Nothing else in the code reads `process.env`.
 */
export interface Config {
  readonly nodeEnv: 'development' | 'production' | 'test';
  /** Postgres connection string; undefined means the embedded PGlite database in `dataDir`. */
  readonly databaseUrl: string | undefined;
  /** How the server reaches Postgres (with `databaseUrl`); docs/guides/production-postgres.md. */
  readonly database: DatabaseSettings;
  readonly dataDir: string;
  readonly port: number;
  readonly host: string;
  /** The admin key given by the operator; undefined means one is generated on first start. */
  readonly adminKey: string | undefined;
  /** Master secret the token keys derive from; undefined means generated and kept in `dataDir`. */
  readonly sessionSecret: string | undefined;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** How long a rotated refresh token still returns the same new pair (racing refreshes). */
  readonly refreshGraceSeconds: number;
  /** Revoked and expired sessions are deleted this many days after they ended. */
  readonly sessionRetentionDays: number;
  /** Session events are deleted this many days after they happened. */
  readonly eventRetentionDays: number;
  /** Seconds between cleanup sweeps; 0 turns the sweep off on this instance. */
  readonly sweepIntervalSeconds: number;
  /** Activity log rows are deleted this many days after they were written. */
  readonly activityRetentionDays: number;
  /** Hourly metrics rollups are deleted this many days after their hour. */
  readonly metricsRetentionDays: number;
  /** Most live session configs one product may have. */
  readonly maxConfigsPerProduct: number;
  /** Longest an impersonation session (started with an `actor`) may live, in seconds. */
  readonly impersonationMaxSeconds: number;
  /** Log output waiting for a slow or stuck reader, in bytes; lines beyond are dropped. */
  readonly logBufferBytes: number;
  /** How long shutdown lets requests in flight finish; the process exits 5 s after at most. */
  readonly shutdownGraceSeconds: number;
  /** Largest request body accepted, in bytes (413 beyond). */
  readonly bodyLimitBytes: number;
  /** Largest response sent, in bytes; a larger result is replaced by a LIMIT_EXCEEDED error. */
  readonly maxResponseBytes: number;
  /** Serve GraphiQL (default: on, except in production). */
  readonly graphiql: boolean;
  /** Serve the web console at /console (default: on, except in production). */
  readonly console: boolean;
  /** Answer introspection queries (default: on, except in production). */
  readonly introspection: boolean;
  /** Suggest field names in validation errors (default: on, except in production). */
  readonly fieldSuggestions: boolean;
  /**
   * Trusted documents (persisted operations): `off` ignores document ids, `allow` (default) runs
   * a known `documentId` from the server's own text and any other document too, `require` runs
   * only the trusted documents (src/graphql/trusted-documents.ts).
   */
  readonly trustedDocuments: TrustedDocumentsMode;
  /**
   * Reverse proxies in front of the server whose `X-Forwarded-For` is trusted: the client IP
   * (for rate limits and device records) is the address that many hops from the right.
   */
  readonly trustProxyHops: number;
  /**
   * Where `/metrics` is served: `port` null means on the GraphQL port, else a listener of its
   * own on `host:port`; with `token`, only `Authorization: Bearer <token>` is answered.
   */
  readonly metrics: {
    readonly port: number | null;
    readonly host: string;
    readonly token: string | undefined;
  };
  /** GraphQL over WebSocket: connection limits, counted per instance. */
  readonly websocket: WebSocketLimits;
  /** Subscriptions over every transport (WebSocket and SSE), counted per instance. */
  readonly subscriptions: {
    /** Open subscriptions per key. */
    readonly maxPerKey: number;
    /** Open `verifierFeed` subscriptions per key (a part of `maxPerKey`). */
    readonly maxVerifierFeedsPerKey: number;
    /** A subscription that leaves events unread this long is ended (WebSocket: closed 4431). */
    readonly slowConsumerMs: number;
  };
  /** Webhooks: which URLs are accepted, and how events are delivered (docs/guides/webhooks.md). */
  readonly webhooks: WebhookSettings;
  /** Token key ids: the first mints new tokens, all of them open tokens. See docs/operations/security.md, key rotation. */
  readonly tokenKeyIds: readonly string[];
  readonly rateLimits: {
    readonly windowSeconds: number;
    /** Calls per window and per key, for each rate class. */
    readonly perKey: Readonly<Record<RateClass, number>>;
    /** Calls per window from one client IP in one product and env, for each rate class. */
    readonly perIp: Readonly<Record<RateClass, number>>;
    readonly refreshesPerSession: number;
    /**
     * Where calls are counted: `redis` (REDIS_URL), `postgres` (the service's database, shared
     * by its instances, counted in memory and synced in batches) or `memory` (each instance
     * alone). Default: redis with REDIS_URL, else postgres with DATABASE_URL, else memory.
     */
    readonly store: 'redis' | 'postgres' | 'memory';
    /** postgres: time between two syncs of an instance's counts with the database, in ms. */
    readonly syncMs: number;
    /** Redis for the rate limit counters (`redis://` or `rediss://`). */
    readonly redisUrl: string | undefined;
  };
}

/**
 * Default calls per window (60 s) for each rate class, per key and per (product, env, client
 * IP). Each lets a busy product through and stops one key or address from taking a large share
 * of an instance (about 4,000 verifies, 700 starts and 450 refreshes a second on the benchmark
 * machine). See docs/operations/security.md.
 */
export const RATE_LIMIT_DEFAULTS: Readonly<Record<RateClass, number>> = {
  verify: 60_000,
  start: 6_000,
  refresh: 6_000,
  write: 6_000,
  read: 3_000,
  config: 120,
  insight: 300,
  admin: 600,
  subscribe: 300,
};

/** `RATE_LIMIT_<CLASS>` (per key, and per IP unless set apart) and `RATE_LIMIT_<CLASS>_PER_IP`. */
const rateVariable = (rateClass: RateClass, perIp = false) =>
  `RATE_LIMIT_${rateClass.toUpperCase()}${perIp ? '_PER_IP' : ''}`;
/** Connections to Postgres: where they go, how many, and the deadline of every wait. */
export interface DatabaseSettings {
  /**
   * A direct connection (not through a transaction-mode pooler) for what needs a database
   * session of its own: LISTEN and the migration lock. Undefined: `databaseUrl` is used.
   */
  readonly directUrl: string | undefined;
  /** Connections in this instance's pool (DATABASE_POOL_SIZE). */
  readonly poolSize: number;
  /** Longest wait for a new connection, in ms (DATABASE_CONNECT_TIMEOUT_MS). */
  readonly connectTimeoutMs: number;
  /**
   * Longest wait for one statement or transaction, queueing for a connection included, in ms
   * (DATABASE_STATEMENT_TIMEOUT_MS): past it the wait ends with SERVICE_UNAVAILABLE.
   */
  readonly statementTimeoutMs: number;
  /** Idle seconds before TCP keepalive probes a connection (DATABASE_KEEPALIVE_SECONDS). */
  readonly keepAliveSeconds: number;
  /**
   * Dashboards (each a scan of a tag's sessions) running at once per instance
   * (INSIGHT_CONCURRENCY): the rest of the pool stays free for verify, start, refresh, revoke.
   */
  readonly insightConcurrency: number;
}

/** Limits on GraphQL over WebSocket (frames are capped at `bodyLimitBytes`). */
export interface WebSocketLimits {
  /** Open sockets per key (checked at connection_init). */
  readonly maxConnectionsPerKey: number;
  /** Open sockets per client IP, authenticated or not. */
  readonly maxConnectionsPerIp: number;
  /** Sockets per client IP that have not yet authenticated with connection_init. */
  readonly maxUnauthenticatedPerIp: number;
  /** A socket that sends no connection_init within this is closed (4408). */
  readonly connectionInitTimeoutMs: number;
  /** Replay pages are read only while the socket holds fewer unsent bytes than this. */
  readonly maxBufferedBytes: number;
  /** Subscriptions open at once on one socket. */
  readonly maxSubscriptionsPerConnection: number;
  /**
   * graphql-ws pings each socket this often and terminates one that has not answered the previous
   * ping (a dead peer, or one that stopped reading): after one to two intervals.
   */
  readonly keepAliveMs: number;
}

/** Thrown by {@link loadConfig} with every problem found, one line each. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** The metrics listener's port in production when METRICS_PORT is unset. */
export const DEFAULT_METRICS_PORT = 9464;

const emptyToUndefined = (value: unknown) => (value === '' ? undefined : value);

/** A whole number from `min` to `max`, with one message for any bad value. */
function integerIn(min: number, max: number, error: string) {
  return z.coerce.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

/** The message of a whole number of `unit` out of bounds. */
const wholeNumberError = (unit: string, min: number, max: number) =>
  `expected a whole number of ${unit} from ${min} to ${max}`;

/** A whole number within bounds, with a default, and one message for any bad value. */
function wholeNumber(unit: string, min: number, max: number, fallback: number) {
  return z.preprocess(
    emptyToUndefined,
    integerIn(min, max, wholeNumberError(unit, min, max)).default(fallback),
  );
}

/** A whole number within bounds, or unset; one message for any bad value. */
function optionalWholeNumber(unit: string, min: number, max: number) {
  return z.preprocess(
    emptyToUndefined,
    integerIn(min, max, wholeNumberError(unit, min, max)).optional(),
  );
}

/** An optional Postgres connection URL. */
function postgresUrl() {
  return z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^postgres(ql)?:\/\/\S+$/, {
        error: 'expected a postgres:// or postgresql:// connection URL',
      })
      .optional(),
  );
}

/** An optional true/false switch; unset leaves the decision to the environment (NODE_ENV). */
function flag() {
  return z.preprocess(
    emptyToUndefined,
    z.enum(['true', 'false'], { error: 'expected true or false' }).optional(),
  );
}

const rateLimitVariables = Object.fromEntries(
  RATE_CLASSES.flatMap((c) => [
    [rateVariable(c), wholeNumber('calls', 1, 100_000_000, RATE_LIMIT_DEFAULTS[c])],
    [rateVariable(c, true), optionalWholeNumber('calls', 1, 100_000_000)],
  ]),
) as Record<string, z.ZodType<number | undefined>>;

const envSchema = z.object({
  ...rateLimitVariables,
  NODE_ENV: z.preprocess(
    emptyToUndefined,
    z
      .enum(['development', 'production', 'test'], {
        error: 'expected one of development, production, test',
      })
      .default('development'),
  ),
  DATABASE_URL: postgresUrl(),
  DATABASE_DIRECT_URL: postgresUrl(),
  DATABASE_POOL_SIZE: wholeNumber('connections', 1, 1_000, 10),
  DATABASE_CONNECT_TIMEOUT_MS: wholeNumber('milliseconds', 250, 120_000, 5_000),
  DATABASE_STATEMENT_TIMEOUT_MS: wholeNumber('milliseconds', 100, 600_000, 5_000),
  DATABASE_KEEPALIVE_SECONDS: wholeNumber('seconds', 1, 7_200, 10),
  INSIGHT_CONCURRENCY: optionalWholeNumber('dashboards', 1, 100),
  DATA_DIR: z.preprocess(emptyToUndefined, z.string().default('.data')),
  REDIS_URL: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^rediss?:\/\/\S+$/, { error: 'expected a redis:// or rediss:// URL' })
      .optional(),
  ),
  RATE_LIMIT_STORE: z.preprocess(
    emptyToUndefined,
    z
      .enum(['redis', 'postgres', 'memory'], { error: 'expected one of redis, postgres, memory' })
      .optional(),
  ),
  PORT: z.preprocess(
    emptyToUndefined,
    integerIn(0, 65535, 'expected a port number from 0 to 65535').default(4000),
  ),
  // Unset: loopback outside production (see loadConfig).
  HOST: z.preprocess(emptyToUndefined, z.string().optional()),
  ADMIN_KEY: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^ak_[A-Za-z0-9_-]{29,}$/, {
        error: 'expected "ak_" followed by URL-safe characters, at least 32 characters in all',
      })
      .optional(),
  ),
  SESSION_SECRET: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .refine((s) => Buffer.byteLength(s, 'utf8') >= 32, {
        error: 'expected at least 32 bytes (for example `openssl rand -base64 48`)',
      })
      .optional(),
  ),
  LOG_LEVEL: z.preprocess(
    emptyToUndefined,
    z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
        error: 'expected one of fatal, error, warn, info, debug, trace, silent',
      })
      .default('info'),
  ),
  REFRESH_GRACE_SECONDS: wholeNumber('seconds', 0, 300, 10),
  SESSION_RETENTION_DAYS: wholeNumber('days', 0, 3650, 7),
  EVENT_RETENTION_DAYS: wholeNumber('days', 0, 3650, 30),
  SWEEP_INTERVAL_SECONDS: wholeNumber('seconds', 0, 86_400, 60),
  BODY_LIMIT_BYTES: wholeNumber('bytes', 1024, 10_485_760, 131_072),
  MAX_RESPONSE_BYTES: wholeNumber('bytes', 65_536, 268_435_456, 8_388_608),
  LOG_BUFFER_BYTES: wholeNumber('bytes', 16_384, 67_108_864, 1_048_576),
  SHUTDOWN_GRACE_SECONDS: wholeNumber('seconds', 1, 300, 10),
  TRUST_PROXY_HOPS: wholeNumber('proxies', 0, 10, 0),
  GRAPHIQL: flag(),
  CONSOLE: flag(),
  GRAPHQL_INTROSPECTION: flag(),
  GRAPHQL_FIELD_SUGGESTIONS: flag(),
  TRUSTED_DOCUMENTS: z.preprocess(
    emptyToUndefined,
    z
      .enum(TRUSTED_DOCUMENTS_MODES, { error: 'expected one of off, allow, require' })
      .default('allow'),
  ),
  TOKEN_KEY_IDS: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}(,[A-Za-z0-9_-]{1,32}){0,9}$/, {
        error: 'expected 1 to 10 comma-separated key ids (letters, digits, _ or -), newest first',
      })
      .default('k1'),
  ),
  RATE_LIMIT_WINDOW_SECONDS: wholeNumber('seconds', 1, 3600, 60),
  RATE_LIMIT_REFRESHES_PER_SESSION: wholeNumber('calls', 1, 100_000, 20),
  RATE_LIMIT_SYNC_MS: wholeNumber('milliseconds', 20, 5_000, 200),
  WS_MAX_CONNECTIONS_PER_KEY: wholeNumber('connections', 1, 100_000, 20),
  WS_MAX_CONNECTIONS_PER_IP: wholeNumber('connections', 1, 100_000, 100),
  WS_MAX_UNAUTHENTICATED_PER_IP: wholeNumber('connections', 1, 100_000, 10),
  WS_CONNECTION_INIT_TIMEOUT_MS: wholeNumber('milliseconds', 100, 60_000, 3_000),
  WS_MAX_BUFFERED_BYTES: wholeNumber('bytes', 16_384, 67_108_864, 1_048_576),
  WS_KEEP_ALIVE_MS: wholeNumber('milliseconds', 1_000, 600_000, 12_000),
  MAX_SUBSCRIPTIONS_PER_CONNECTION: wholeNumber('subscriptions', 1, 10_000, 100),
  MAX_SUBSCRIPTIONS_PER_KEY: wholeNumber('subscriptions', 1, 1_000_000, 500),
  MAX_VERIFIER_FEEDS_PER_KEY: wholeNumber('feeds', 1, 10_000, 64),
  SLOW_CONSUMER_SECONDS: wholeNumber('seconds', 1, 3600, 30),
  ACTIVITY_RETENTION_DAYS: wholeNumber('days', 0, 3650, 30),
  METRICS_PORT: z.preprocess(
    emptyToUndefined,
    z
      .union([z.literal('main'), z.coerce.number().int().min(1).max(65535)], {
        error: 'expected "main" or a port number from 1 to 65535',
      })
      .optional(),
  ),
  METRICS_HOST: z.preprocess(emptyToUndefined, z.string().default('127.0.0.1')),
  METRICS_TOKEN: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^[\x21-\x7e]{32,256}$/, {
        error: 'expected 32 to 256 printable characters without spaces',
      })
      .optional(),
  ),
  METRICS_RETENTION_DAYS: wholeNumber('days', 0, 3650, 400),
  MAX_CONFIGS_PER_PRODUCT: wholeNumber('configs', 1, 100_000, DEFAULT_MAX_CONFIGS_PER_PRODUCT),
  WEBHOOK_ALLOW_PRIVATE_URLS: flag(),
  WEBHOOK_ALLOW_HTTP: flag(),
  WEBHOOK_DELIVERY: flag(),
  WEBHOOK_TIMEOUT_MS: wholeNumber('milliseconds', 100, 60_000, 10_000),
  WEBHOOK_CONCURRENCY: wholeNumber('endpoints', 1, 1_000, 8),
  WEBHOOK_MAX_ATTEMPTS: wholeNumber('attempts', 1, 100, 15),
  WEBHOOK_RETRY_BASE_MS: wholeNumber('milliseconds', 10, 3_600_000, 5_000),
  WEBHOOK_DISABLE_AFTER_FAILURES: wholeNumber('attempts', 1, 100_000, 30),
  WEBHOOK_MAX_ENDPOINTS_PER_ENV: wholeNumber('endpoints', 1, 1_000, 20),
  WEBHOOK_POLL_INTERVAL_MS: wholeNumber('milliseconds', 10, 600_000, 5_000),
  IMPERSONATION_MAX_SECONDS: wholeNumber('seconds', 60, 86_400, DEFAULT_IMPERSONATION_MAX_SECONDS),
});

type Env = z.infer<typeof envSchema>;

/** Rules that tie one variable to another, which the schema checks one at a time cannot see. */
function crossVariableProblems(env: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  if (env.NODE_ENV === 'production' && !env.SESSION_SECRET) {
    problems.push('SESSION_SECRET: required when NODE_ENV=production (at least 32 bytes)');
  }
  if (env.NODE_ENV === 'production' && env.METRICS_PORT === 'main' && !env.METRICS_TOKEN) {
    problems.push(
      'METRICS_PORT: "main" needs METRICS_TOKEN when NODE_ENV=production (metrics are not public)',
    );
  }
  if (env.RATE_LIMIT_STORE === 'redis' && !env.REDIS_URL)
    problems.push('RATE_LIMIT_STORE: "redis" needs REDIS_URL');
  if (env.RATE_LIMIT_STORE === 'postgres' && !env.DATABASE_URL)
    problems.push(
      'RATE_LIMIT_STORE: "postgres" needs DATABASE_URL (the embedded database is one process)',
    );
  if (env.DATABASE_DIRECT_URL && !env.DATABASE_URL)
    problems.push('DATABASE_DIRECT_URL: needs DATABASE_URL (the pooled connection)');
  return problems;
}

/** A 'true'/'false' switch whose default depends on production (off there, on elsewhere). */
const onOutsideProduction = (value: string | undefined, production: boolean) =>
  (value ?? (production ? 'false' : 'true')) === 'true';

function databaseSettings(e: Env): DatabaseSettings {
  return {
    directUrl: e.DATABASE_DIRECT_URL,
    poolSize: e.DATABASE_POOL_SIZE,
    connectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
    keepAliveSeconds: e.DATABASE_KEEPALIVE_SECONDS,
    // A tenth of the pool by default, at least one.
    insightConcurrency: e.INSIGHT_CONCURRENCY ?? Math.max(1, Math.floor(e.DATABASE_POOL_SIZE / 10)),
  };
}

function websocketLimits(e: Env): WebSocketLimits {
  return {
    maxConnectionsPerKey: e.WS_MAX_CONNECTIONS_PER_KEY,
    maxConnectionsPerIp: e.WS_MAX_CONNECTIONS_PER_IP,
    maxUnauthenticatedPerIp: e.WS_MAX_UNAUTHENTICATED_PER_IP,
    connectionInitTimeoutMs: e.WS_CONNECTION_INIT_TIMEOUT_MS,
    maxBufferedBytes: e.WS_MAX_BUFFERED_BYTES,
    maxSubscriptionsPerConnection: e.MAX_SUBSCRIPTIONS_PER_CONNECTION,
    keepAliveMs: e.WS_KEEP_ALIVE_MS,
  };
}

function rateLimitSettings(e: Env): Config['rateLimits'] {
  const rates = e as unknown as Record<string, number | undefined>;
  return {
    windowSeconds: e.RATE_LIMIT_WINDOW_SECONDS,
    perKey: Object.freeze(
      Object.fromEntries(RATE_CLASSES.map((c) => [c, rates[rateVariable(c)]!])) as Record<
        RateClass,
        number
      >,
    ),
    perIp: Object.freeze(
      Object.fromEntries(
        RATE_CLASSES.map((c) => [c, rates[rateVariable(c, true)] ?? rates[rateVariable(c)]!]),
      ) as Record<RateClass, number>,
    ),
    refreshesPerSession: e.RATE_LIMIT_REFRESHES_PER_SESSION,
    // The embedded database is one process: its instance counts alone, in memory.
    store: e.RATE_LIMIT_STORE ?? (e.REDIS_URL ? 'redis' : e.DATABASE_URL ? 'postgres' : 'memory'),
    syncMs: e.RATE_LIMIT_SYNC_MS,
    redisUrl: e.REDIS_URL,
  };
}

function webhookSettings(e: Env, production: boolean): WebhookSettings {
  return {
    allowPrivateUrls: e.WEBHOOK_ALLOW_PRIVATE_URLS === 'true',
    // Production sends to https URLs only unless told otherwise.
    allowHttp: onOutsideProduction(e.WEBHOOK_ALLOW_HTTP, production),
    deliver: (e.WEBHOOK_DELIVERY ?? 'true') === 'true',
    timeoutMs: e.WEBHOOK_TIMEOUT_MS,
    concurrency: e.WEBHOOK_CONCURRENCY,
    maxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
    retryBaseMs: e.WEBHOOK_RETRY_BASE_MS,
    disableAfterFailures: e.WEBHOOK_DISABLE_AFTER_FAILURES,
    maxEndpointsPerEnv: e.WEBHOOK_MAX_ENDPOINTS_PER_ENV,
    pollIntervalMs: e.WEBHOOK_POLL_INTERVAL_MS,
    // Deliveries are kept as long as the events they carry.
    retentionSeconds: e.EVENT_RETENTION_DAYS * 86_400,
  };
}

function metricsSettings(e: Env, production: boolean): Config['metrics'] {
  return {
    // Development serves /metrics next to GraphQL; production on a loopback port of its own.
    port:
      e.METRICS_PORT === 'main'
        ? null
        : (e.METRICS_PORT ?? (production ? DEFAULT_METRICS_PORT : null)),
    host: e.METRICS_HOST,
    token: e.METRICS_TOKEN,
  };
}

/** Builds the configuration from variables the schema and the cross-variable rules accepted. */
function configFrom(e: Env): Config {
  const production = e.NODE_ENV === 'production';
  return Object.freeze({
    nodeEnv: e.NODE_ENV,
    databaseUrl: e.DATABASE_URL,
    database: databaseSettings(e),
    dataDir: e.DATA_DIR,
    port: e.PORT,
    // Outside production the first start prints (and GraphiQL shows) a demo key: listen on
    // loopback unless told otherwise. Production listens on every interface by default.
    host: e.HOST ?? (production ? '0.0.0.0' : '127.0.0.1'),
    adminKey: e.ADMIN_KEY,
    sessionSecret: e.SESSION_SECRET,
    logLevel: e.LOG_LEVEL,
    refreshGraceSeconds: e.REFRESH_GRACE_SECONDS,
    sessionRetentionDays: e.SESSION_RETENTION_DAYS,
    eventRetentionDays: e.EVENT_RETENTION_DAYS,
    sweepIntervalSeconds: e.SWEEP_INTERVAL_SECONDS,
    activityRetentionDays: e.ACTIVITY_RETENTION_DAYS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    maxResponseBytes: e.MAX_RESPONSE_BYTES,
    logBufferBytes: e.LOG_BUFFER_BYTES,
    shutdownGraceSeconds: e.SHUTDOWN_GRACE_SECONDS,
    trustProxyHops: e.TRUST_PROXY_HOPS,
    graphiql: onOutsideProduction(e.GRAPHIQL, production),
    console: onOutsideProduction(e.CONSOLE, production),
    introspection: onOutsideProduction(e.GRAPHQL_INTROSPECTION, production),
    fieldSuggestions: onOutsideProduction(e.GRAPHQL_FIELD_SUGGESTIONS, production),
    trustedDocuments: e.TRUSTED_DOCUMENTS,
    tokenKeyIds: Object.freeze(e.TOKEN_KEY_IDS.split(',')),
    websocket: websocketLimits(e),
    subscriptions: {
      maxPerKey: e.MAX_SUBSCRIPTIONS_PER_KEY,
      maxVerifierFeedsPerKey: e.MAX_VERIFIER_FEEDS_PER_KEY,
      slowConsumerMs: e.SLOW_CONSUMER_SECONDS * 1000,
    },
    rateLimits: rateLimitSettings(e),
    metricsRetentionDays: e.METRICS_RETENTION_DAYS,
    maxConfigsPerProduct: e.MAX_CONFIGS_PER_PRODUCT,
    webhooks: webhookSettings(e, production),
    impersonationMaxSeconds: e.IMPERSONATION_MAX_SECONDS,
    metrics: metricsSettings(e, production),
  });
}

/**
 * Reads the configuration from an environment map. Pure: it never touches the process.
 * Every bad variable is reported at once in a {@link ConfigError}, never one at a time.
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = envSchema.safeParse(env);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      // Never echo the value: it may be a secret.
      problems.push(`${issue.path.join('.')}: ${issue.message}`);
    }
  }
  problems.push(...crossVariableProblems(env));
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  if (new Set(e.TOKEN_KEY_IDS.split(',')).size !== e.TOKEN_KEY_IDS.split(',').length) {
    throw new ConfigError(['TOKEN_KEY_IDS: names a key id twice']);
  }
  return configFrom(e);
}

/** The process's configuration: the one place that reads `process.env`. */
export function loadProcessConfig(): Config {
  return loadConfig(process.env);
}

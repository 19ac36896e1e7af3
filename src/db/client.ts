import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { PGlite as PGliteClient } from '@electric-sql/pglite';
import type { Logger } from 'pino';
import type { Logger as DrizzleLogger } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { hasErrorCode, isTransactionConflict } from './errors.js';
import { NotificationListener } from './listener.js';
import { MIGRATIONS_DIR } from '../paths.js';
import { copyPgliteTemplate } from './pglite-template.js';
import * as schema from './schema.js';

/** The one database type the rest of the code uses, whichever driver is underneath. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

/** Rows of `db.execute(...)`: postgres.js returns an array, PGlite `{ rows }`. */
export function rowsOf<T>(result: unknown): T[] {
  return Array.isArray(result) ? (result as T[]) : ((result as { rows?: T[] }).rows ?? []);
}

/** A transaction handle: the same query API as {@link Database}. */
export type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];

/** An open database with what the process needs around it. */
export interface DatabaseHandle {
  readonly db: Database;
  readonly kind: 'postgres' | 'pglite';
  /** Resolves when the database answers a trivial query; rejects otherwise. */
  ping(): Promise<void>;
  /** Runs the committed migrations, serialised across instances by an advisory lock. */
  migrate(): Promise<void>;
  /**
   * Runs `fn` holding the same lock as the migrations (on Postgres a session advisory lock, on
   * a connection of its own to the direct URL): instances starting together on one database
   * run it one after the other, so that a first start's setup is made once. `fn` itself queries
   * through the pool as usual.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Listens to a NOTIFY channel. `onListen` runs each time the listening connection is
   * (re)established: whatever was notified while it was down must be caught up from tables.
   */
  listen(channel: string, onNotify: (payload: string) => void, onListen: () => void): Promise<void>;
  /**
   * Calls `listener` each time code of this process says it wrote session events
   * ({@link signalEventsWritten}; in a transaction, once it committed): the event sequencer's
   * cue to sweep now. Returns an unsubscribe.
   */
  onEventsWritten(listener: () => void): () => void;
  /**
   * Sends a NOTIFY through the pool and waits for it on the listening connection. Rejects with
   * {@link NotificationsNotDeliveredError} when it does not arrive (the pool is a
   * transaction-mode pooler, or the listener reaches another server than the pool).
   */
  checkNotifications(): Promise<void>;
  /**
   * Statements this process has sent (each Drizzle query, plus BEGIN and COMMIT of each
   * top-level transaction): round trips to the database when not pipelined.
   */
  readonly statementsSent: () => number;
  close(): Promise<void>;
}

/**
 * How {@link openDatabase} opens the database: Postgres (postgres.js) when `databaseUrl` is given,
 * else PGlite in `dataDir`. An absent option takes the default it names; one marked PGlite only is
 * ignored on Postgres.
 */
export interface OpenDatabaseOptions {
  /** Postgres URL; when absent, PGlite is used. */
  readonly databaseUrl?: string | undefined;
  /** Where PGlite keeps its files; `memory://` keeps them in memory (tests). */
  readonly dataDir?: string | undefined;
  /** Called with the SQL text of each statement Drizzle sends (never its parameters). */
  readonly onQuery?: ((sqlText: string) => void) | undefined;
  /** Pool size for postgres.js. */
  readonly maxConnections?: number | undefined;
  /**
   * A direct connection (no transaction-mode pooler) for LISTEN and the migration lock;
   * `databaseUrl` when absent.
   */
  readonly directUrl?: string | undefined;
  /** Longest wait for a new connection, in ms (default 5 s). */
  readonly connectTimeoutMs?: number | undefined;
  /**
   * Longest wait for one statement or one transaction, queueing for a connection included, in
   * ms (default 5 s): past it the wait is cancelled and fails with {@link DatabaseDeadlineError}.
   */
  readonly statementTimeoutMs?: number | undefined;
  /** Idle seconds before TCP keepalive probes a connection (default 10). */
  readonly keepAliveSeconds?: number | undefined;
  /** Where the listener says it lost its connection and got it back. */
  readonly logger?: Pick<Logger, 'warn' | 'info'> | undefined;
  /** How often the listener proves that notifications still reach it, in ms (default 10 s). */
  readonly listenerHeartbeatMs?: number | undefined;
  /**
   * PGlite only: starts from this dump of a data directory (`dumpDataDir`) instead of an empty
   * one. The tests start each database from one migrated template this way.
   */
  readonly loadDataDir?: Blob | undefined;
  /**
   * PGlite only: a migrated database the build made (src/db/pglite-template.ts); a data
   * directory with no database yet starts as a copy of it. Ignored when absent.
   */
  readonly templateDir?: string | undefined;
}

/** Arbitrary constant naming this service's migration lock. */
const MIGRATION_LOCK_KEY = 7_453_201_998;

/**
 * What each open database, and each transaction of it while it runs, does when told that session
 * events were written ({@link signalEventsWritten}).
 */
const eventSignals = new WeakMap<object, () => void>();

/**
 * Says that `db` (a database from {@link openDatabase}, or one of its transactions) has just
 * written session events: every code path that inserts into `session_events` calls it, so that
 * the instance's sequencer numbers them at once rather than at its next poll. In a transaction
 * the signal waits for the commit (the events are not visible before it) and a rollback drops it.
 */
export function signalEventsWritten(db: Database | Transaction): void {
  eventSignals.get(db)?.();
}

/** Statements sent, counted by {@link queryLogger} and {@link retryingTransactions}. */
interface StatementCount {
  n: number;
}

/** Counts statements, and gives their text to `onQuery`. */
function queryLogger(
  onQuery: OpenDatabaseOptions['onQuery'],
  count: StatementCount,
): DrizzleLogger {
  return {
    logQuery: (query) => {
      count.n++;
      onQuery?.(query);
    },
  };
}

/** How many times a transaction is run at most, when Postgres keeps aborting it for a conflict. */
export const TRANSACTION_ATTEMPTS = 4;
/** The wait before the second attempt; it doubles for each further one, and is jittered. */
const FIRST_RETRY_DELAY_MS = 5;

/** A random wait in [base/2, base): concurrent losers of one deadlock do not meet again. */
const jittered = (base: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, base / 2 + Math.random() * (base / 2)));

/**
 * Wraps `db.transaction`: counts BEGIN and COMMIT (or ROLLBACK) of each top-level transaction,
 * which Drizzle does not log; and runs a transaction again (at most {@link TRANSACTION_ATTEMPTS}
 * times, after a short jittered wait) when it failed in a way that left nothing behind:
 * - Postgres aborted it for a deadlock (40P01) or a serialization failure (40001): it was
 *   rolled back whole, whatever the callback had done, so running it again is correct;
 * - it never began: the server refused the connection for it at its start (no free slot,
 *   or not accepting connections yet), so the callback never ran.
 * Anything else (or the last attempt's failure) is thrown as it is. A callback must therefore
 * keep its effects inside the transaction, as every callback here does.
 */
function retryingTransactions(db: Database, count: StatementCount): Database {
  const transaction = db.transaction.bind(db);
  db.transaction = (async (...args: Parameters<Database['transaction']>) => {
    const [callback, config] = args;
    for (let attempt = 1; ; attempt++) {
      let began = false;
      let wroteEvents = false;
      count.n += 2;
      try {
        const result = await transaction((tx) => {
          began = true;
          eventSignals.set(tx, () => (wroteEvents = true));
          return callback(tx);
        }, config);
        if (wroteEvents) signalEventsWritten(db);
        return result;
      } catch (error) {
        // Only a refusal at connect is retried before BEGIN: it comes at once, where a connect
        // timeout already took its whole wait, and waiting it again would only multiply it.
        const refused = hasErrorCode(error, (code) => REFUSED_AT_CONNECT.has(code));
        const retriable = isTransactionConflict(error) || (!began && refused);
        if (!retriable || attempt >= TRANSACTION_ATTEMPTS) throw error;
        await jittered(FIRST_RETRY_DELAY_MS * 2 ** (attempt - 1));
      }
    }
  }) as Database['transaction'];
  return db;
}

/**
 * Codes with which Postgres refuses a new connection at its start, before any query is sent on
 * it: too_many_connections (every slot of a shared server taken) and cannot_connect_now.
 */
const REFUSED_AT_CONNECT = new Set(['53300', '57P03']);
/** How many times a statement refused that way is sent at most. */
const STATEMENT_ATTEMPTS = 5;
/** The wait before the second attempt; it doubles for each further one, and is jittered. */
const FIRST_CONNECT_RETRY_MS = 20;

type Cancellable = PromiseLike<unknown> & { cancel(): unknown };
type PendingRows = Cancellable & { values(): Cancellable };

/**
 * Thrown when a statement or transaction outlived its deadline (queueing for a connection, a
 * connection that never comes, a server that does not answer): what it waited on is cancelled,
 * and the caller answers SERVICE_UNAVAILABLE instead of hanging.
 */
export class DatabaseDeadlineError extends Error {
  readonly code = 'DATABASE_DEADLINE';
  constructor(readonly timeoutMs: number) {
    super(`the database did not answer within ${timeoutMs} ms`);
    this.name = 'DatabaseDeadlineError';
  }
}

/**
 * `pending`, or a {@link DatabaseDeadlineError} once `ms` have passed, whichever comes first; on
 * the deadline `onExpired` runs (it cancels what is still waiting).
 */
function withDeadline<T>(
  pending: PromiseLike<T>,
  ms: number,
  timeoutMs: number,
  onExpired: () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => {
        onExpired();
        reject(new DatabaseDeadlineError(timeoutMs));
      },
      Math.max(0, ms),
    );
    pending.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * A statement, with a deadline when `deadline` is given (a `performance.now()` instant; the
 * statement is cancelled there), and sent again when the pool's new connection for it was
 * refused at its start (see {@link REFUSED_AT_CONNECT}; `retryRefused`, outside transactions
 * only): nothing of it reached the server, so sending it again is always correct. Only what
 * Drizzle uses: awaiting it, and `values()`.
 */
function guardedStatement(
  send: () => PendingRows,
  deadline: () => number | undefined,
  timeoutMs: number,
  retryRefused: boolean,
  asValues = false,
): PendingRows {
  let result: Promise<unknown> | undefined;
  const run = async () => {
    const until = deadline();
    for (let attempt = 1; ; attempt++) {
      const pending = send();
      const rows = asValues ? pending.values() : pending;
      try {
        if (until === undefined) return await rows;
        return await withDeadline(rows, until - performance.now(), timeoutMs, () => {
          void pending.cancel();
        });
      } catch (error) {
        const refused = hasErrorCode(error, (code) => REFUSED_AT_CONNECT.has(code));
        if (!retryRefused || !refused || attempt >= STATEMENT_ATTEMPTS) throw error;
        await jittered(FIRST_CONNECT_RETRY_MS * 2 ** (attempt - 1));
        if (until !== undefined && performance.now() >= until)
          throw new DatabaseDeadlineError(timeoutMs);
      }
    }
  };
  return {
    values: () => guardedStatement(send, deadline, timeoutMs, retryRefused, true),
    cancel: () => {},
    then: (onFulfilled, onRejected) => (result ??= run()).then(onFulfilled, onRejected),
  };
}

type Begin = (callback: (sql: postgres.TransactionSql) => unknown) => Promise<unknown>;

/**
 * The pool as Drizzle sees it. Each statement outside a transaction has a deadline of its own
 * and is retried when refused at connect ({@link guardedStatement}). Each transaction has one
 * deadline for the whole of it, waiting for its connection included: its statements are
 * cancelled there, and a transaction whose BEGIN comes after it runs nothing.
 */
function guardedPool(client: postgres.Sql, timeoutMs: number | undefined): postgres.Sql {
  const statementDeadline = () =>
    timeoutMs === undefined ? undefined : performance.now() + timeoutMs;
  const unsafe = (...args: Parameters<postgres.Sql['unsafe']>) =>
    guardedStatement(() => client.unsafe(...args), statementDeadline, timeoutMs ?? 0, true);
  const begin: Begin = (callback) => {
    if (timeoutMs === undefined) return (client.begin as Begin)(callback);
    const until = performance.now() + timeoutMs;
    let expired = false;
    const inFlight = new Set<PendingRows>();
    const transaction = (client.begin as Begin)((tx) => {
      if (expired) throw new DatabaseDeadlineError(timeoutMs);
      const txUnsafe = (...args: Parameters<postgres.Sql['unsafe']>) => {
        const send = () => {
          // Past the deadline the caller was answered: nothing more of it is sent.
          if (expired) throw new DatabaseDeadlineError(timeoutMs);
          const pending = tx.unsafe(...args) as unknown as PendingRows;
          inFlight.add(pending);
          const forget = () => inFlight.delete(pending);
          pending.then(forget, forget);
          return pending;
        };
        return guardedStatement(send, () => until, timeoutMs, false);
      };
      const guarded = new Proxy(tx, {
        get: (target, property, receiver) =>
          property === 'unsafe' ? txUnsafe : Reflect.get(target, property, receiver),
      });
      return Promise.resolve(callback(guarded)).then((result) => {
        // Finished after its deadline: rolled back, not committed behind the caller's back.
        if (expired) throw new DatabaseDeadlineError(timeoutMs);
        return result;
      });
    });
    return withDeadline(transaction, until - performance.now(), timeoutMs, () => {
      expired = true;
      for (const pending of inFlight) void pending.cancel();
      // Settled later by its cancelled statement or its rollback: nobody waits for it now.
      transaction.catch(() => {});
    });
  };
  return new Proxy(client, {
    get: (target, property, receiver) =>
      property === 'unsafe'
        ? unsafe
        : property === 'begin'
          ? begin
          : Reflect.get(target, property, receiver),
  });
}

/** postgres.js's reconnect wait, in seconds: from 50 ms, doubling, at most 1 s, jittered. */
export function reconnectBackoff(retries: number): number {
  return Math.min(0.05 * 2 ** retries, 1) * (0.5 + Math.random() / 2);
}

/** The postgres.js options every client of the service uses. */
function clientOptions(
  options: OpenDatabaseOptions,
  applicationName: string,
): postgres.Options<Record<string, never>> {
  return {
    onnotice: () => {},
    connect_timeout: (options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS) / 1000,
    keep_alive: options.keepAliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS,
    // Reconnects wait at most about a second, however many tries failed (postgres.js's own
    // backoff grows to 20 s: a failover then took half a minute to be noticed).
    backoff: reconnectBackoff,
    // No array-type lookup on connect: drizzle reads and writes arrays itself, and postgres.js
    // runs that lookup as a promise nobody awaits, so a connection lost during it (a failover,
    // a cut network) became an unhandled rejection that ends the process.
    fetch_types: false,
    // No named prepared statements: a transaction-mode pooler runs each transaction on another
    // server connection, where a statement prepared on the last one does not exist (PgBouncer
    // 1.18; a failed COMMIT retried there was answered ROLLBACK and taken for a commit).
    prepare: false,
    connection: { application_name: applicationName },
  };
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_STATEMENT_TIMEOUT_MS = 5_000;
const DEFAULT_KEEPALIVE_SECONDS = 10;
const DEFAULT_LISTENER_HEARTBEAT_MS = 10_000;

function listenerSet(): {
  set: Set<() => void>;
  add: (listener: () => void) => () => void;
} {
  const set = new Set<() => void>();
  return {
    set,
    add: (listener) => {
      set.add(listener);
      return () => set.delete(listener);
    },
  };
}

/** What both kinds of database share: the statement count and the event-write listeners. */
interface HandleParts {
  count: StatementCount;
  logger: ReturnType<typeof queryLogger>;
  eventWrites: ReturnType<typeof listenerSet>;
  eventsWritten: () => void;
  statementsSent: () => number;
}

function handleParts(options: OpenDatabaseOptions): HandleParts {
  const eventWrites = listenerSet();
  const count: StatementCount = { n: 0 };
  return {
    count,
    logger: queryLogger(options.onQuery, count),
    eventWrites,
    eventsWritten: () => {
      for (const listener of eventWrites.set) listener();
    },
    statementsSent: () => count.n,
  };
}

/**
 * Runs `fn` while one dedicated connection holds the start lock: a session lock, so on the
 * direct URL (a transaction-mode pooler would not keep it), with no statement deadline (an
 * instance waits for another's migrations however long they take).
 */
function startLockOn(directUrl: string, options: OpenDatabaseOptions) {
  return async <T>(fn: (lockClient: postgres.Sql) => Promise<T>): Promise<T> => {
    const lockClient = postgres(directUrl, {
      ...clientOptions(options, 'session-service-migrate'),
      max: 1,
    });
    try {
      await lockClient`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
      try {
        return await fn(lockClient);
      } finally {
        await lockClient`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
      }
    } finally {
      await lockClient.end();
    }
  };
}

/** LISTEN holds a connection of its own, on the direct URL (a pooler cannot keep one). */
function notificationListenerOn(
  directUrl: string,
  pool: postgres.Sql,
  statementTimeoutMs: number,
  options: OpenDatabaseOptions,
): NotificationListener {
  return new NotificationListener({
    url: directUrl,
    clientOptions: clientOptions(options, 'session-service-listener'),
    // Through the pool, uncounted: it is no statement of a request.
    notify: async (channel, payload) => {
      await pool.unsafe('select pg_notify($1, $2)', [channel, payload]);
    },
    probeTimeoutMs: Math.max(statementTimeoutMs, 1_000),
    onState: (state, detail) =>
      state === 'lost'
        ? options.logger?.warn({ detail }, 'notification listener lost; listening again')
        : options.logger?.info('notification listener back'),
  });
}

function openPostgres(
  url: string,
  options: OpenDatabaseOptions,
  parts: HandleParts,
): DatabaseHandle {
  const directUrl = options.directUrl ?? url;
  const statementTimeoutMs = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const client = postgres(url, {
    ...clientOptions(options, 'session-service'),
    max: options.maxConnections ?? 10,
  });
  const pool = guardedPool(client, statementTimeoutMs);
  const db = retryingTransactions(
    drizzlePostgres(pool, {
      schema,
      logger: parts.logger,
    }) as unknown as Database,
    parts.count,
  );
  eventSignals.set(db, parts.eventsWritten);
  const withStartLock = startLockOn(directUrl, options);
  let listener: NotificationListener | undefined;
  const notifications = () =>
    (listener ??= notificationListenerOn(directUrl, pool, statementTimeoutMs, options));
  return {
    db,
    kind: 'postgres',
    async ping() {
      await pool.unsafe('select 1');
    },
    async migrate() {
      const { migrate } = await import('drizzle-orm/postgres-js/migrator');
      // Instances starting together apply each migration exactly once.
      await withStartLock((lockClient) =>
        migrate(drizzlePostgres(lockClient), { migrationsFolder: MIGRATIONS_DIR }),
      );
    },
    exclusive: (fn) => withStartLock(() => fn()),
    async listen(channel, onNotify, onListen) {
      await notifications().listen(channel, onNotify, onListen);
      // Once: later calls find it running.
      notifications().startHeartbeat(options.listenerHeartbeatMs ?? DEFAULT_LISTENER_HEARTBEAT_MS);
    },
    checkNotifications: () => notifications().probe(),
    onEventsWritten: parts.eventWrites.add,
    statementsSent: parts.statementsSent,
    async close() {
      await Promise.all([client.end({ timeout: 5 }), listener?.close()]);
    },
  };
}

/** Where PGlite keeps its files: made (from the template when given) unless in memory. */
function pgliteLocation(options: OpenDatabaseOptions): string {
  const dataDir = options.dataDir ?? '.data';
  if (dataDir.startsWith('memory://')) return dataDir;
  const location = path.join(dataDir, 'pgdata');
  mkdirSync(dataDir, { recursive: true });
  if (options.templateDir && !options.loadDataDir)
    copyPgliteTemplate(options.templateDir, location);
  mkdirSync(location, { recursive: true });
  return location;
}

async function openPglite(
  options: OpenDatabaseOptions,
  parts: HandleParts,
): Promise<DatabaseHandle> {
  const location = pgliteLocation(options);
  // Loaded here, not at the top: a server on Postgres never loads PGlite (a start's cost).
  const [{ PGlite }, { drizzle: drizzlePglite }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('drizzle-orm/pglite'),
  ]);
  const client: PGliteClient = await PGlite.create(location, { loadDataDir: options.loadDataDir });
  const db = retryingTransactions(
    drizzlePglite(client, { schema, logger: parts.logger }) as unknown as Database,
    parts.count,
  );
  eventSignals.set(db, parts.eventsWritten);
  // An advisory lock is re-entrant within one session, and PGlite is one session: calls to
  // migrate() in this process queue here instead.
  let migrating: Promise<unknown> = Promise.resolve();
  const serialised = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = migrating.then(fn);
    migrating = run.catch(() => {});
    return run;
  };
  return {
    db,
    kind: 'pglite',
    async ping() {
      if (client.closed) throw new Error('database closed');
      await client.query('select 1');
    },
    migrate() {
      return serialised(async () => {
        const { migrate } = await import('drizzle-orm/pglite/migrator');
        await migrate(drizzlePglite(client), { migrationsFolder: MIGRATIONS_DIR });
      });
    },
    // One process per data directory: queued after any migration of this process.
    exclusive: (fn) => serialised(fn),
    async listen(channel, onNotify, onListen) {
      // One process, one database: notifications never drop, so onListen runs once.
      await client.listen(channel, onNotify);
      onListen();
    },
    // One process, one database: a NOTIFY always reaches its listeners.
    checkNotifications: async () => {},
    onEventsWritten: parts.eventWrites.add,
    statementsSent: parts.statementsSent,
    async close() {
      if (!client.closed) await client.close();
    },
  };
}

/** Opens Postgres (postgres.js) when a URL is given, otherwise PGlite in `dataDir`. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  const parts = handleParts(options);
  if (options.databaseUrl) return openPostgres(options.databaseUrl, options, parts);
  return openPglite(options, parts);
}

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { Logger as DrizzleLogger } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
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
   * Listens to a NOTIFY channel. `onListen` runs each time the listening connection is
   * (re)established: whatever was notified while it was down must be caught up from tables.
   */
  listen(channel: string, onNotify: (payload: string) => void, onListen: () => void): Promise<void>;
  close(): Promise<void>;
}

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
   * PGlite only: starts from this dump of a data directory (`dumpDataDir`) instead of an empty
   * one. The tests start each database from one migrated template this way.
   */
  readonly loadDataDir?: Blob | undefined;
}

const MIGRATIONS_FOLDER = path.resolve(import.meta.dirname, '../../drizzle');
/** Arbitrary constant naming this service's migration lock. */
const MIGRATION_LOCK_KEY = 7_453_201_998;

function queryLogger(onQuery: OpenDatabaseOptions['onQuery']): DrizzleLogger | undefined {
  if (!onQuery) return undefined;
  return { logQuery: (query) => onQuery(query) };
}

/** Opens Postgres (postgres.js) when a URL is given, otherwise PGlite in `dataDir`. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  const logger = queryLogger(options.onQuery);
  if (options.databaseUrl) {
    const url = options.databaseUrl;
    const client = postgres(url, {
      max: options.maxConnections ?? 10,
      onnotice: () => {},
      connect_timeout: 5,
    });
    const db = drizzlePostgres(client, { schema, logger }) as unknown as Database;
    // LISTEN holds a connection of its own; postgres.js re-establishes it after a drop.
    let listener: postgres.Sql | undefined;
    return {
      db,
      kind: 'postgres',
      async ping() {
        await client`select 1`;
      },
      async migrate() {
        const { migrate } = await import('drizzle-orm/postgres-js/migrator');
        // One dedicated connection holds the lock while it migrates, so that instances starting
        // together apply each migration exactly once.
        const lockClient = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
        try {
          await lockClient`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
          try {
            await migrate(drizzlePostgres(lockClient), { migrationsFolder: MIGRATIONS_FOLDER });
          } finally {
            await lockClient`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
          }
        } finally {
          await lockClient.end();
        }
      },
      async listen(channel, onNotify, onListen) {
        listener ??= postgres(url, {
          max: 1,
          onnotice: () => {},
          connect_timeout: 5,
          connection: { application_name: 'session-service-listener' },
        });
        await listener.listen(channel, onNotify, onListen);
      },
      async close() {
        await Promise.all([client.end({ timeout: 5 }), listener?.end({ timeout: 1 })]);
      },
    };
  }

  const dataDir = options.dataDir ?? '.data';
  let location = dataDir;
  if (!dataDir.startsWith('memory://')) {
    location = path.join(dataDir, 'pgdata');
    mkdirSync(location, { recursive: true });
  }
  const client = await PGlite.create(location, { loadDataDir: options.loadDataDir });
  const db = drizzlePglite(client, { schema, logger }) as unknown as Database;
  // An advisory lock is re-entrant within one session, and PGlite is one session: calls to
  // migrate() in this process queue here instead.
  let migrating: Promise<void> = Promise.resolve();
  return {
    db,
    kind: 'pglite',
    async ping() {
      if (client.closed) throw new Error('database closed');
      await client.query('select 1');
    },
    migrate() {
      const run = migrating.then(async () => {
        const { migrate } = await import('drizzle-orm/pglite/migrator');
        await migrate(drizzlePglite(client), { migrationsFolder: MIGRATIONS_FOLDER });
      });
      migrating = run.catch(() => {});
      return run;
    },
    async listen(channel, onNotify, onListen) {
      // One process, one database: notifications never drop, so onListen runs once.
      await client.listen(channel, onNotify);
      onListen();
    },
    async close() {
      if (!client.closed) await client.close();
    },
  };
}

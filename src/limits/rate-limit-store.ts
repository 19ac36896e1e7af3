import type { Logger } from 'pino';
import type { DatabaseHandle } from '../db/client.js';
import { FleetCounters } from '../workers/fleet-counters.js';
import type { RateLimitStore } from './rate-limits.js';

/**
 * A rate limit store opened by {@link openRateLimitStore}, with what main.ts needs to wait for it
 * at start and close it at shutdown.
 */
export interface OpenedRateLimitStore {
  readonly store: RateLimitStore;
  /**
   * Resolves true once the store can count (Redis connected), false after `timeoutMs` if not:
   * a start waits that long at most, then serves with per-instance counts until Redis is back.
   */
  ready(timeoutMs: number): Promise<boolean>;
  /**
   * Closes what the store opened (the Redis connection; the Postgres counters' sync, after
   * sending what is left); never the database.
   */
  close(): Promise<void>;
}

/**
 * The store the rate limits count in. Redis: one connection, which fails fast while Redis is
 * away (no offline queue; the limits fall back to each instance's memory meanwhile) and
 * reconnects in the background; its errors are logged once per outage, without the URL.
 * Postgres: {@link FleetCounters} on the service's database, syncing every `syncMs`.
 */
export async function openRateLimitStore(
  kind: 'redis' | 'postgres' | 'memory',
  options: {
    redisUrl?: string | undefined;
    database: DatabaseHandle;
    logger: Logger;
    /** Postgres: time between two syncs of the counters, in ms (default 200). */
    syncMs?: number | undefined;
  },
): Promise<OpenedRateLimitStore> {
  const always = async () => true;
  if (kind === 'memory') return { store: { kind: 'memory' }, ready: always, close: async () => {} };
  if (kind === 'postgres') {
    if (options.database.kind !== 'postgres')
      throw new Error('the postgres rate limit store needs DATABASE_URL');
    const counters = new FleetCounters(options.database.db, {
      syncMs: options.syncMs ?? 200,
      logger: options.logger,
    });
    return {
      store: { kind: 'postgres', counters },
      ready: always,
      close: () => counters.close(),
    };
  }
  if (!options.redisUrl) throw new Error('the redis rate limit store needs REDIS_URL');
  // Loaded only for this store: a server counting elsewhere never loads the Redis client.
  const { Redis } = await import('ioredis');
  const client = new Redis(options.redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 500,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  let down = false;
  client.on('error', (error: Error) => {
    if (down) return;
    down = true;
    options.logger.warn(
      { err: { name: error.name, message: error.message } },
      'redis unavailable: rate limits count per instance until it is back',
    );
  });
  client.on('ready', () => {
    if (down) options.logger.info('redis is back: rate limits count across instances again');
    down = false;
  });
  return {
    store: { kind: 'redis', client },
    ready: (timeoutMs) =>
      client.status === 'ready'
        ? Promise.resolve(true)
        : new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => {
              client.off('ready', onReady);
              resolve(false);
            }, timeoutMs);
            const onReady = () => {
              clearTimeout(timer);
              resolve(true);
            };
            client.once('ready', onReady);
          }),
    close: async () => {
      client.disconnect();
    },
  };
}

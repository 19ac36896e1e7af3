import { lt } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import {
  RateLimiterDrizzle,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import type { Database } from '../db/client.js';
import { rateLimitCounters } from '../db/schema.js';
import { ServiceError } from '../domain/errors.js';

/**
 * The rate classes: every API operation belongs to exactly one, and each class has its own
 * limit per key and per (product, env, client IP).
 */
export const RATE_CLASSES = [
  'verify',
  'start',
  'refresh',
  'write',
  'read',
  'config',
  'insight',
  'admin',
  'subscribe',
] as const;
export type RateClass = (typeof RATE_CLASSES)[number];

export interface RateLimitOptions {
  /** Length of the window every limit counts in, in seconds. */
  readonly windowSeconds: number;
  /** Calls allowed per window and per key, for each class. */
  readonly perKey: Readonly<Record<RateClass, number>>;
  /** Calls allowed per window from one client IP in one product and env, for each class. */
  readonly perIp: Readonly<Record<RateClass, number>>;
  /** Rotations allowed per session per window: a client stuck refreshing in a loop is stopped. */
  readonly refreshesPerSession: number;
}

/**
 * Who a call is counted against. `key` is the API key's id (or `admin`), absent for callers
 * without a known key; `scope` names the product and env the key belongs to (or `admin`, or
 * `none`): the per-IP buckets are kept per scope, so one product's traffic from an address
 * never limits another product's calls from that address.
 */
export interface RateSubject {
  readonly key: string | null;
  readonly scope: string;
  readonly ip: string | null;
}

/**
 * Where the counts live. `memory`: this process only (each instance counts its own traffic).
 * `redis` and `postgres`: shared by every instance using the same store, so a fleet lets a key
 * through at its limit, not N times it; while the store fails or is unreachable, each instance
 * falls back to counting in its own memory (rate-limiter-flexible's insurance limiter), so an
 * outage of the store never refuses or fails a call.
 */
export type RateLimitStore =
  | { readonly kind: 'memory' }
  | {
      readonly kind: 'redis';
      readonly client: Redis;
      /** Prepended to every Redis key (several deployments, or tests, sharing one Redis). */
      readonly prefix?: string;
    }
  | { readonly kind: 'postgres'; readonly db: Database };

const MEMORY: RateLimitStore = { kind: 'memory' };

/** Postgres counters whose window ended this long ago are deleted. */
const POSTGRES_COUNTER_KEEP_MS = 60 * 60 * 1000;
const POSTGRES_CLEANUP_MS = 5 * 60 * 1000;

/**
 * Request limits per API key and per (product, env, client IP) for every rate class, and per
 * session on refresh, counted in the given store (see {@link RateLimitStore}).
 */
export class RateLimits {
  readonly #byKey: Record<RateClass, RateLimiterAbstract>;
  readonly #byIp: Record<RateClass, RateLimiterAbstract>;
  readonly #perSession: RateLimiterAbstract;
  readonly #cleanup: NodeJS.Timeout | undefined;

  constructor(options: RateLimitOptions, store: RateLimitStore = MEMORY) {
    const limiter = (points: number, name: string): RateLimiterAbstract => {
      const base = { points, duration: options.windowSeconds };
      if (store.kind === 'memory') return new RateLimiterMemory(base);
      // Names keep the limiters apart in the shared store.
      const shared = {
        ...base,
        keyPrefix: `${store.kind === 'redis' ? (store.prefix ?? '') : ''}rl:${name}`,
        insuranceLimiter: new RateLimiterMemory(base),
      };
      if (store.kind === 'redis')
        return new RateLimiterRedis({
          ...shared,
          storeClient: store.client,
          rejectIfRedisNotReady: true,
        });
      return new RateLimiterDrizzle({
        ...shared,
        storeClient: store.db,
        schema: rateLimitCounters,
        clearExpiredByTimeout: false,
      });
    };
    const set = (limits: Readonly<Record<RateClass, number>>, by: string) =>
      Object.fromEntries(RATE_CLASSES.map((c) => [c, limiter(limits[c], `${c}:${by}`)])) as Record<
        RateClass,
        RateLimiterAbstract
      >;
    this.#byKey = set(options.perKey, 'key');
    this.#byIp = set(options.perIp, 'ip');
    this.#perSession = limiter(options.refreshesPerSession, 'refresh:session');
    if (store.kind === 'postgres') {
      this.#cleanup = setInterval(() => {
        const before = new Date(Date.now() - POSTGRES_COUNTER_KEEP_MS);
        store.db
          .delete(rateLimitCounters)
          .where(lt(rateLimitCounters.expire, before))
          .catch(() => {}); // tried again at the next interval
      }, POSTGRES_CLEANUP_MS);
      this.#cleanup.unref();
    }
  }

  /** Stops the store's cleanup timer (the store itself belongs to the caller). */
  close(): void {
    clearInterval(this.#cleanup);
  }

  /** Counts one call; throws RATE_LIMITED, with the seconds to wait, once a limit is reached. */
  async consume(rateClass: RateClass, subject: RateSubject): Promise<void> {
    await Promise.all([
      subject.key === null
        ? undefined
        : take(this.#byKey[rateClass], subject.key, `Too many ${rateClass} calls for this key`),
      subject.ip === null
        ? undefined
        : take(
            this.#byIp[rateClass],
            `${subject.scope}|${subject.ip}`,
            `Too many ${rateClass} calls from this address`,
          ),
    ]);
  }

  /** Counts one rotation of a session's refresh token. */
  async consumeSessionRefresh(sessionId: string): Promise<void> {
    await take(this.#perSession, sessionId, 'This session is refreshing too often');
  }
}

async function take(limiter: RateLimiterAbstract, key: string, message: string): Promise<void> {
  try {
    await limiter.consume(key, 1);
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) {
      const retryAfterSeconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      throw new ServiceError(
        'RATE_LIMITED',
        `${message}; retry in ${retryAfterSeconds} s.`,
        undefined,
        { retryAfterSeconds },
      );
    }
    throw rejection;
  }
}

import type { Redis } from 'ioredis';
import {
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import { ServiceError } from '../domain/errors.js';
import type { FleetCounters } from '../workers/fleet-counters.js';

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
/** One of {@link RATE_CLASSES}: the limit an operation counts against. */
export type RateClass = (typeof RATE_CLASSES)[number];

/**
 * The limits, from the configuration (`RATE_LIMIT_*`): one window for every limit; per class, the
 * calls allowed in it per key and per client IP; and the rotations one session may make in it.
 */
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
 * `redis`: shared by every instance using the same Redis, exactly (one round trip per call);
 * while Redis is unreachable, each instance falls back to counting in its own memory
 * (rate-limiter-flexible's insurance limiter). `postgres`: shared by every instance on the same
 * database through {@link FleetCounters}, which count in memory and sync in batches (no round
 * trip per call; the fleet may pass a limit by one sync interval's calls); while the database is
 * unreachable each instance goes on with its own counts. An outage of either never refuses or
 * fails a call.
 */
export type RateLimitStore =
  | { readonly kind: 'memory' }
  | {
      readonly kind: 'redis';
      readonly client: Redis;
      /** Prepended to every Redis key (several deployments, or tests, sharing one Redis). */
      readonly prefix?: string;
    }
  | { readonly kind: 'postgres'; readonly counters: FleetCounters };

const MEMORY: RateLimitStore = { kind: 'memory' };

/** One limit: counts a call of `key`; undefined within the limit, else the ms until a retry. */
type Limiter = (key: string) => Promise<number | undefined> | number | undefined;

/**
 * Request limits per API key and per (product, env, client IP) for every rate class, and per
 * session on refresh, counted in the given store (see {@link RateLimitStore}).
 */
export class RateLimits {
  readonly #byKey: Record<RateClass, Limiter>;
  readonly #byIp: Record<RateClass, Limiter>;
  readonly #perSession: Limiter;

  constructor(options: RateLimitOptions, store: RateLimitStore = MEMORY) {
    const windowMs = options.windowSeconds * 1000;
    const limiter = (points: number, name: string): Limiter => {
      if (store.kind === 'postgres') {
        const counters = store.counters;
        return (key) => counters.consume(name, key, points, windowMs);
      }
      const base = { points, duration: options.windowSeconds };
      const flexible: RateLimiterAbstract =
        store.kind === 'memory'
          ? new RateLimiterMemory(base)
          : new RateLimiterRedis({
              ...base,
              // Names keep the limiters apart in the shared store.
              keyPrefix: `${store.prefix ?? ''}rl:${name}`,
              insuranceLimiter: new RateLimiterMemory(base),
              storeClient: store.client,
              rejectIfRedisNotReady: true,
            });
      return async (key) => {
        try {
          await flexible.consume(key, 1);
          return undefined;
        } catch (rejection) {
          if (rejection instanceof RateLimiterRes) return rejection.msBeforeNext;
          throw rejection;
        }
      };
    };
    const set = (limits: Readonly<Record<RateClass, number>>, by: string) =>
      Object.fromEntries(RATE_CLASSES.map((c) => [c, limiter(limits[c], `${c}:${by}`)])) as Record<
        RateClass,
        Limiter
      >;
    this.#byKey = set(options.perKey, 'key');
    this.#byIp = set(options.perIp, 'ip');
    this.#perSession = limiter(options.refreshesPerSession, 'refresh:session');
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

async function take(limiter: Limiter, key: string, message: string): Promise<void> {
  const msBeforeNext = await limiter(key);
  if (msBeforeNext === undefined) return;
  const retryAfterSeconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  throw new ServiceError(
    'RATE_LIMITED',
    `${message}; retry in ${retryAfterSeconds} s.`,
    undefined,
    {
      retryAfterSeconds,
    },
  );
}

import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
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
 * Request limits per API key and per (product, env, client IP) for every rate class, and per
 * session on refresh. Counted in this process's memory (each instance counts its own traffic).
 */
export class RateLimits {
  readonly #byKey: Record<RateClass, RateLimiterMemory>;
  readonly #byIp: Record<RateClass, RateLimiterMemory>;
  readonly #perSession: RateLimiterMemory;

  constructor(options: RateLimitOptions) {
    const limiter = (points: number) =>
      new RateLimiterMemory({ points, duration: options.windowSeconds });
    const set = (limits: Readonly<Record<RateClass, number>>) =>
      Object.fromEntries(RATE_CLASSES.map((c) => [c, limiter(limits[c])])) as Record<
        RateClass,
        RateLimiterMemory
      >;
    this.#byKey = set(options.perKey);
    this.#byIp = set(options.perIp);
    this.#perSession = limiter(options.refreshesPerSession);
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

async function take(limiter: RateLimiterMemory, key: string, message: string): Promise<void> {
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

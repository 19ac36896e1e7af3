import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { ServiceError } from '../domain/errors.js';

/** The operations with their own limits. */
export type LimitedOperation = 'start' | 'verify' | 'refresh';

export interface RateLimitOptions {
  /** Length of the window every limit counts in, in seconds. */
  readonly windowSeconds: number;
  /** Calls allowed per window, per key and per client IP, for each operation. */
  readonly perWindow: Readonly<Record<LimitedOperation, number>>;
  /** Rotations allowed per session per window: a client stuck refreshing in a loop is stopped. */
  readonly refreshesPerSession: number;
}

/**
 * Request limits per API key and per client IP on start, verify and refresh, and per session
 * on refresh. Counted in this process's memory (each instance counts its own traffic).
 */
export class RateLimits {
  readonly #byKey: Record<LimitedOperation, RateLimiterMemory>;
  readonly #byIp: Record<LimitedOperation, RateLimiterMemory>;
  readonly #perSession: RateLimiterMemory;

  constructor(options: RateLimitOptions) {
    const limiter = (points: number) =>
      new RateLimiterMemory({ points, duration: options.windowSeconds });
    const set = () => ({
      start: limiter(options.perWindow.start),
      verify: limiter(options.perWindow.verify),
      refresh: limiter(options.perWindow.refresh),
    });
    this.#byKey = set();
    this.#byIp = set();
    this.#perSession = limiter(options.refreshesPerSession);
  }

  /** Counts one call; throws RATE_LIMITED, with the seconds to wait, once a limit is reached. */
  async consume(operation: LimitedOperation, keyId: string, ip: string | null): Promise<void> {
    await Promise.all([
      take(this.#byKey[operation], keyId, `Too many ${operation} calls for this key`),
      ip === null
        ? undefined
        : take(this.#byIp[operation], ip, `Too many ${operation} calls from this address`),
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

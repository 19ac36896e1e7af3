import { ServiceError } from '../domain/errors.js';

/**
 * At most `limit` runs at once; the others wait their turn, in order, at most `maxWaitMs` and at
 * most `maxQueue` of them, and are refused with the retriable SERVICE_UNAVAILABLE past either.
 * Heavy reads (the dashboard's scan of a tag's sessions) go through one, so that they never hold
 * every connection of the pool: verify, start, refresh and revoke always find one.
 */
export class ConcurrencyGate {
  readonly #limit: number;
  readonly #maxQueue: number;
  readonly #maxWaitMs: number;
  readonly #what: string;
  readonly #waiting: (() => void)[] = [];
  #running = 0;
  /** The most runs seen at once (tests and metrics). */
  highWater = 0;

  constructor(options: { limit: number; maxQueue: number; maxWaitMs: number; what: string }) {
    this.#limit = Math.max(1, options.limit);
    this.#maxQueue = options.maxQueue;
    this.#maxWaitMs = options.maxWaitMs;
    this.#what = options.what;
  }

  get running(): number {
    return this.#running;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit) await this.#turn();
    else this.#running++;
    this.highWater = Math.max(this.highWater, this.#running);
    try {
      return await work();
    } finally {
      const next = this.#waiting.shift();
      // The place passes to the next in line, or is freed.
      if (next) next();
      else this.#running--;
    }
  }

  #busy(): ServiceError {
    return new ServiceError(
      'SERVICE_UNAVAILABLE',
      `Too many ${this.#what} run at once on this instance; retry shortly.`,
    );
  }

  #turn(): Promise<void> {
    if (this.#waiting.length >= this.#maxQueue) return Promise.reject(this.#busy());
    return new Promise<void>((resolve, reject) => {
      const go = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const at = this.#waiting.indexOf(go);
        if (at >= 0) this.#waiting.splice(at, 1);
        reject(this.#busy());
      }, this.#maxWaitMs);
      timer.unref();
      this.#waiting.push(go);
    });
  }
}

/**
 * A push-based async iterator: producers push, one consumer pulls. Unlike an async generator,
 * `return()` ends it at once even while the consumer waits, which is what a subscription needs
 * when its client goes away.
 */
export class EventQueue<T> implements AsyncIterableIterator<T> {
  readonly #items: T[] = [];
  readonly #waiting: ((result: IteratorResult<T>) => void)[] = [];
  readonly #rejecters: ((error: unknown) => void)[] = [];
  /** Waiting for the consumer to take every queued item (see `drained`). */
  readonly #drainWaiters: (() => void)[] = [];
  #error: unknown = undefined;
  #closed = false;
  readonly #onClose: () => void;

  constructor(onClose: () => void) {
    this.#onClose = onClose;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Items pushed and not yet taken by the consumer. */
  get length(): number {
    return this.#items.length;
  }

  /** Resolves once the consumer has taken every queued item, or the queue is closed. */
  drained(): Promise<void> {
    if (this.#items.length === 0 || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  push(item: T): void {
    if (this.#closed) return;
    const resolve = this.#waiting.shift();
    if (resolve) {
      this.#rejecters.shift();
      resolve({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
  }

  /** Ends the iteration after the items already queued. */
  end(): void {
    this.#close();
    for (const resolve of this.#waiting.splice(0)) resolve({ value: undefined, done: true });
    this.#rejecters.length = 0;
  }

  /** Ends the iteration with an error, after the items already queued. */
  fail(error: unknown): void {
    if (this.#closed) return;
    this.#error = error;
    this.#close();
    const rejecters = this.#rejecters.splice(0);
    this.#waiting.length = 0;
    for (const reject of rejecters) reject(error);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#items.length > 0) {
      const value = this.#items.shift()!;
      if (this.#items.length === 0) this.#releaseDrainWaiters();
      return Promise.resolve({ value, done: false });
    }
    if (this.#closed) {
      if (this.#error !== undefined) {
        const error = this.#error;
        this.#error = undefined;
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiting.push(resolve);
      this.#rejecters.push(reject);
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.#items.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#releaseDrainWaiters();
    this.#onClose();
  }

  #releaseDrainWaiters(): void {
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }
}

import type { Logger } from 'pino';
import type { Database } from '../db/client.js';
import { SEQUENCE_BATCH, sequencePendingEvents } from '../domain/events.js';

/** How an {@link EventSequencer} times its sweeps, in ms. */
export interface SequencerOptions {
  /** Sweep this often even when nothing was written here (another instance may have died). */
  readonly pollMs: number;
  /**
   * After this process writes events, how long sweeps go on looking for them: the writer's
   * commit lands some time after its insert was sent (a transaction's later statements, a busy
   * event loop), and each sweep sees only what has committed.
   */
  readonly settleMs: number;
}

/**
 * The timing every instance runs with (no configuration sets another): a sweep every half second at
 * least, and sweeps for a quarter of a second after each write of this process.
 */
export const DEFAULT_SEQUENCER_OPTIONS: SequencerOptions = { pollMs: 500, settleMs: 250 };

/** First wait before looking again for a commit that has not landed; doubles each empty sweep. */
const FIRST_RETRY_MS = 1;

/**
 * Gives committed session events their ids, after the writers' commits, so that writers never
 * wait for each other (migration 0009). Every instance runs one: it sweeps as soon as this
 * process sends an event insert, again (backing off) until that write has committed, and on a
 * timer. Sweeps of the whole database run one at a time, whichever instance runs them, so ids
 * stay in commit order; the NOTIFY that wakes subscribers is sent by the sweep.
 */
export class EventSequencer {
  readonly #db: Database;
  readonly #logger: Logger;
  readonly #options: SequencerOptions;
  #running: Promise<void> | undefined;
  #again = false;
  #lastPokeAt = 0;
  #retryMs = FIRST_RETRY_MS;
  #retry: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #stopped = true;
  #failing = false;

  constructor(db: Database, logger: Logger, options: SequencerOptions = DEFAULT_SEQUENCER_OPTIONS) {
    this.#db = db;
    this.#logger = logger;
    this.#options = options;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#poll = setInterval(() => this.#sweep(), this.#options.pollMs);
    this.#poll.unref();
    this.#sweep();
  }

  /** This process sent an event insert: sweep now, and until it has committed. */
  poke(): void {
    if (this.#stopped) return;
    this.#lastPokeAt = performance.now();
    this.#retryMs = FIRST_RETRY_MS;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#sweep();
  }

  /** Stops sweeping; resolves once a sweep in flight has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#poll);
    clearTimeout(this.#retry);
    await this.#running;
  }

  #sweep(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#run().finally(() => {
      this.#running = undefined;
    });
  }

  async #run(): Promise<void> {
    let numbered = 0;
    let startedAt = 0;
    try {
      do {
        this.#again = false;
        startedAt = performance.now();
        const n = await sequencePendingEvents(this.#db, SEQUENCE_BATCH);
        numbered += n;
        if (n === SEQUENCE_BATCH) this.#again = true;
      } while (this.#again && !this.#stopped);
      if (this.#failing) this.#logger.info('event sequencing resumed');
      this.#failing = false;
    } catch (error) {
      // The database may be briefly away: the poll tries again. Said once per outage.
      if (!this.#failing)
        this.#logger.warn({ err: errorSummary(error) }, 'event sequencing failed; retrying');
      this.#failing = true;
      return;
    }
    if (this.#stopped) return;
    // A write of this process may still be committing: look again, backing off, until the last
    // poke is older than the settle time.
    if (startedAt - this.#lastPokeAt < this.#options.settleMs) {
      this.#retryMs = numbered > 0 ? FIRST_RETRY_MS : Math.min(this.#retryMs * 2, 64);
      clearTimeout(this.#retry);
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        this.#sweep();
      }, this.#retryMs);
      this.#retry.unref();
    }
  }
}

function errorSummary(error: unknown): { name?: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message.replace(/\nparams: .*$/s, '') }
    : { message: String(error) };
}

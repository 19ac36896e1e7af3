import type { Logger } from 'pino';
import type { Database } from '../db/client.js';
import { SEQUENCE_BATCH, sequencePendingEvents } from '../domain/events.js';

/** How an {@link EventSequencer} times its sweeps, in ms. */
export interface SequencerOptions {
  /** Sweep this often even when nothing was written here (another instance may have died). */
  readonly pollMs: number;
}

/**
 * The timing every instance runs with (no configuration sets another): a sweep every half second at
 * least, and one after each write of this process.
 */
export const DEFAULT_SEQUENCER_OPTIONS: SequencerOptions = { pollMs: 500 };

/**
 * Gives committed session events their ids, after the writers' commits, so that writers never
 * wait for each other (migration 0009). Every instance runs one: it sweeps when this process has
 * written events, and on a timer. The writers signal once their write has committed (a statement
 * answered, a transaction's COMMIT; test/event-signal.test.ts), and a sweep waits for the one in
 * flight (the advisory lock) and then reads what has committed: the one sweep that starts after
 * the signal numbers those events. (Sweeps went on for a quarter of a second after each write, from
 * when the signal came with the insert: about two statements more per start at one client.)
 * Sweeps of the whole database run one at a time, whichever instance runs them, so ids stay in
 * commit order; the NOTIFY that wakes subscribers is sent by the sweep.
 */
export class EventSequencer {
  readonly #db: Database;
  readonly #logger: Logger;
  readonly #options: SequencerOptions;
  #running: Promise<void> | undefined;
  #again = false;
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

  /**
   * This process's events have committed: sweep now (or, if a sweep is running, once more after
   * it: that one's snapshot may predate the commit).
   */
  poke(): void {
    if (this.#stopped) return;
    this.#sweep();
  }

  /** Stops sweeping; resolves once a sweep in flight has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#poll);
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
    try {
      do {
        this.#again = false;
        const n = await sequencePendingEvents(this.#db, SEQUENCE_BATCH);
        if (n === SEQUENCE_BATCH) this.#again = true;
      } while (this.#again && !this.#stopped);
      if (this.#failing) this.#logger.info('event sequencing resumed');
      this.#failing = false;
    } catch (error) {
      // The database may be briefly away: the poll tries again. Said once per outage.
      if (!this.#failing)
        this.#logger.warn({ err: errorSummary(error) }, 'event sequencing failed; retrying');
      this.#failing = true;
    }
  }
}

function errorSummary(error: unknown): { name?: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message.replace(/\nparams: .*$/s, '') }
    : { message: String(error) };
}

import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { rowsOf, type Database, type Transaction } from '../db/client.js';

/** How {@link FleetCounters} syncs with the database. */
export interface FleetCounterOptions {
  /** Time between two syncs, in ms (RATE_LIMIT_SYNC_MS). */
  readonly syncMs: number;
  /** A sync statement running longer than this is cancelled by Postgres, in ms. */
  readonly statementTimeoutMs?: number;
  /** Most counters one sync statement carries; more are sent in further statements. */
  readonly maxKeysPerStatement?: number;
  /** Ended windows' rows deleted per cleanup statement. */
  readonly cleanupBatch?: number;
  /** Time between two cleanups while there is nothing left to delete, in ms. */
  readonly cleanupEveryMs?: number;
  /** Where an outage of the table is reported (once per outage, without keys or values). */
  readonly logger?: Logger | undefined;
}

/** One counter: one limiter's key in one window, on this instance. */
interface Counter {
  /** The row's key in `rate_limit_counters`: limiter, window start and key. */
  readonly row: string;
  /** When the window ends, in ms since the epoch. */
  readonly end: number;
  /** The fleet's total (this instance included) as the last sync read it. */
  known: number;
  /** Counted here since the last sync started. */
  unsynced: number;
  /** Counted here and sent in the sync running now. */
  inFlight: number;
}

/** One window of one length: its counters by limiter and key. */
interface Window {
  readonly end: number;
  readonly counters: Map<string, Counter>;
}

/** Rows of ended windows are kept this long after their end (clocks of instances may differ). */
const CLEANUP_GRACE_SECONDS = 30;

/**
 * Counters shared by every instance on one Postgres database, at almost no cost per call.
 *
 * Each instance counts calls in its own memory, per limiter, key and fixed window (windows start
 * at multiples of their length since the epoch, so every instance agrees on them), and every
 * `syncMs` sends what it counted since the previous sync, for all its keys at once, in one
 * statement that adds it to the fleet's rows of `rate_limit_counters` and returns their new
 * totals. A call is refused when the fleet's last known total plus what this instance counted
 * since exceeds the limit. Calls never wait on the database: the fleet can go past a limit by
 * what the other instances let through in one sync interval (the slack, docs/operations/performance.md, fleet counters),
 * and while the database is slow or away each instance goes on counting in its own memory.
 */
export class FleetCounters {
  readonly #db: Database;
  readonly #syncMs: number;
  readonly #statementTimeoutMs: number;
  readonly #maxKeys: number;
  readonly #cleanupBatch: number;
  readonly #cleanupEveryMs: number;
  readonly #logger: Logger | undefined;
  /** Windows by `length:start`. */
  readonly #windows = new Map<string, Window>();
  /** Counters with calls not yet sent. */
  #dirty = new Set<Counter>();
  #timer: NodeJS.Timeout | undefined;
  #syncing: Promise<void> | undefined;
  #closed = false;
  #down = false;
  #nextCleanup = 0;
  #syncWaiters: (() => void)[] = [];

  constructor(db: Database, options: FleetCounterOptions) {
    this.#db = db;
    this.#syncMs = options.syncMs;
    this.#statementTimeoutMs = options.statementTimeoutMs ?? Math.max(1_000, 5 * options.syncMs);
    this.#maxKeys = options.maxKeysPerStatement ?? 5_000;
    this.#cleanupBatch = options.cleanupBatch ?? 1_000;
    this.#cleanupEveryMs = options.cleanupEveryMs ?? 10_000;
    this.#logger = options.logger;
    this.#schedule();
  }

  /**
   * Counts one call of `key` against `limiter`'s `limit` per window of `windowMs`: undefined when
   * within the limit, else the ms left until the window ends.
   */
  consume(limiter: string, key: string, limit: number, windowMs: number): number | undefined {
    const now = Date.now();
    const start = now - (now % windowMs);
    const end = start + windowMs;
    const windowId = `${windowMs}:${start}`;
    let window = this.#windows.get(windowId);
    if (!window) {
      window = { end, counters: new Map() };
      this.#windows.set(windowId, window);
    }
    const id = `${limiter}:${key}`;
    let counter = window.counters.get(id);
    if (!counter) {
      counter = { row: `fc:${limiter}:${start}:${key}`, end, known: 0, unsynced: 0, inFlight: 0 };
      window.counters.set(id, counter);
    }
    counter.unsynced++;
    this.#dirty.add(counter);
    return counter.known + counter.inFlight + counter.unsynced > limit ? end - now : undefined;
  }

  /** Resolves once the next sync has finished (whether or not the database took it). */
  synced(): Promise<void> {
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  /** Stops syncing after sending what is left (once, without retrying). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#syncing;
    await this.#sync().catch(() => {});
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#syncing = this.#sync().finally(() => {
        this.#syncing = undefined;
        this.#schedule();
      });
    }, this.#syncMs);
    this.#timer.unref();
  }

  /** Sends every counter with calls not yet sent, then deletes a batch of ended windows if due. */
  async #sync(): Promise<void> {
    const now = Date.now();
    for (const [id, window] of this.#windows) if (window.end <= now) this.#windows.delete(id);
    // What was counted until now; calls counted during this sync wait for the next one.
    const pending = [...this.#dirty].filter((c) => c.end > now);
    this.#dirty = new Set();
    let sent = 0;
    try {
      for (; sent < pending.length; sent += this.#maxKeys) {
        await this.#send(pending.slice(sent, sent + this.#maxKeys));
      }
      if (now >= this.#nextCleanup) await this.#cleanup(now);
      if (this.#down) this.#logger?.info('rate limit counters are back: counting as a fleet');
      this.#down = false;
    } catch (error) {
      // The batch that failed is put back by #send; the ones after it were not tried.
      for (const counter of pending.slice(sent + this.#maxKeys)) this.#dirty.add(counter);
      if (!this.#down)
        this.#logger?.warn(
          { code: (error as { code?: unknown }).code, name: (error as Error).name },
          'rate limit counters unavailable: each instance counts alone until they are back',
        );
      this.#down = true;
    } finally {
      for (const resolve of this.#syncWaiters.splice(0)) resolve();
    }
  }

  /** Adds a batch's calls to the fleet's rows and reads back their totals, in one statement. */
  async #send(batch: Counter[]): Promise<void> {
    // One order for every instance, so that concurrent syncs never deadlock on their rows.
    batch.sort((a, b) => (a.row < b.row ? -1 : a.row > b.row ? 1 : 0));
    const sent = batch.map((c) => c.unsynced);
    for (const c of batch) {
      c.inFlight += c.unsynced;
      c.unsynced = 0;
    }
    const rows = JSON.stringify(batch.map((c, i) => ({ k: c.row, d: sent[i], e: c.end })));
    try {
      const result = await this.#bounded((tx) =>
        tx.execute(sql`
          insert into rate_limit_counters as c (key, points, expire)
          select t.k, t.d, to_timestamp(t.e / 1000.0)
            from json_to_recordset(${rows}::json) as t(k text, d integer, e bigint)
            order by t.k
          on conflict (key) do update set points = c.points + excluded.points
          returning c.key, c.points`),
      );
      const totals = new Map(
        rowsOf<{ key: string; points: number }>(result).map((r) => [r.key, Number(r.points)]),
      );
      batch.forEach((c, i) => {
        c.inFlight -= sent[i]!;
        c.known = Math.max(c.known, totals.get(c.row) ?? c.known + sent[i]!);
      });
    } catch (error) {
      // Not taken (the statement is one transaction): count them again at the next sync.
      batch.forEach((c, i) => {
        c.inFlight -= sent[i]!;
        c.unsynced += sent[i]!;
        if (c.end > Date.now()) this.#dirty.add(c);
      });
      throw error;
    }
  }

  /** Runs `work` in a transaction whose statements Postgres cancels past the statement timeout. */
  #bounded<T>(work: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.#db.transaction(async (tx) => {
      await tx.execute(
        sql`select set_config('statement_timeout', ${String(this.#statementTimeoutMs)}, true)`,
      );
      return work(tx);
    });
  }

  /** Deletes one batch of rows whose window ended; the next one soon if the batch was full. */
  async #cleanup(now: number): Promise<void> {
    const result = await this.#bounded((tx) =>
      tx.execute(sql`
      delete from rate_limit_counters where key in (
        select key from rate_limit_counters
         where expire < now() - make_interval(secs => ${CLEANUP_GRACE_SECONDS})
         limit ${this.#cleanupBatch}
         for update skip locked)`),
    );
    const deleted = (result as { count?: number; affectedRows?: number }).count ?? 0;
    this.#nextCleanup = deleted >= this.#cleanupBatch ? 0 : now + this.#cleanupEveryMs;
  }
}

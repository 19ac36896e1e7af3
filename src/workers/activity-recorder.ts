import type { Logger } from 'pino';
import type { Database } from '../db/client.js';
import { hasErrorCode } from '../db/errors.js';
import {
  hourOf,
  writeActivity,
  type ActivityRecord,
  type RollupIncrement,
} from '../domain/activity/index.js';
import { redactedMessage } from '../observability/errors.js';

/** Flush at least this often, and as soon as this many log rows are waiting. */
const FLUSH_INTERVAL_MS = 1_000;
const FLUSH_ROWS = 500;
/** If the database is away, keep at most this many rows waiting; beyond, count them as dropped. */
const MAX_PENDING_ROWS = 50_000;

/**
 * Whether an operation gets a log row. Verifies (succeeded or failed, isSessionValid included)
 * and failed refreshes are only counted in the rollups: they are the calls anyone holding a
 * key can make by the thousand with made-up tokens, and a row each would let them fill the log.
 * A refresh token replayed after its grace window (REFRESH_TOKEN_REUSED) is still logged: it
 * revokes a real session, at most once per session.
 */
export function isLogged(record: ActivityRecord): boolean {
  if (record.operation === 'verify') return false;
  if (record.operation === 'refresh' && record.status === 'FAILURE') {
    return record.errorCode === 'REFRESH_TOKEN_REUSED';
  }
  return true;
}

/**
 * Collects finished operations off the request path and writes them in batches: log rows for
 * the operations {@link isLogged} keeps, and hourly rollup increments for all of them (a
 * verify costs a counter increment in memory, never a row). Whatever is waiting
 * is written on `flush()`, which shutdown and readers of the log call first.
 */
export class ActivityRecorder {
  readonly #db: Database;
  readonly #logger: Logger;
  #rows: ActivityRecord[] = [];
  #rollups = new Map<string, RollupIncrement>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #dropped = 0;

  constructor(db: Database, logger: Logger) {
    this.#db = db;
    this.#logger = logger;
  }

  record(record: ActivityRecord): void {
    if (isLogged(record)) {
      if (this.#rows.length < MAX_PENDING_ROWS) this.#rows.push(record);
      else this.#dropped++;
    }
    const hour = hourOf(record.at);
    const key = `${record.productId}|${record.env}|${record.tag}|${hour.getTime()}|${record.operation}`;
    const current = this.#rollups.get(key);
    const ok = record.status === 'SUCCESS' ? 1 : 0;
    this.#rollups.set(key, {
      productId: record.productId,
      env: record.env,
      tag: record.tag,
      hour,
      operation: record.operation,
      successes: (current?.successes ?? 0) + ok,
      failures: (current?.failures ?? 0) + (1 - ok),
      durationMsTotal: (current?.durationMsTotal ?? 0) + record.durationMs,
    });
    if (this.#rows.length >= FLUSH_ROWS) void this.flush();
    else if (!this.#timer) {
      this.#timer = setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS);
      this.#timer.unref();
    }
  }

  /** Writes everything recorded so far; resolves when it is stored. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const rows = this.#rows;
    const rollups = [...this.#rollups.values()];
    this.#rows = [];
    this.#rollups = new Map();
    const previous = this.#flushing;
    this.#flushing = previous.then(async () => {
      if (rows.length === 0 && rollups.length === 0) return;
      try {
        await writeActivity(this.#db, rows, rollups);
      } catch (error) {
        if (isDataError(error)) {
          // The batch itself cannot be stored (a value the database refuses): retrying would
          // block every later batch, so it is dropped, and said.
          this.#logger.error(
            { rows: rows.length, rollups: rollups.length, err: redactedMessage(error) },
            'activity batch refused by the database; dropped',
          );
          return;
        }
        // The database is away: put them back for the next flush rather than lose them.
        this.#rows = [...rows, ...this.#rows].slice(0, MAX_PENDING_ROWS);
        for (const inc of rollups) this.#merge(inc);
        this.#logger.warn({ err: redactedMessage(error) }, 'writing activity failed; will retry');
        if (!this.#timer) {
          this.#timer = setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS * 5);
          this.#timer.unref();
        }
      }
      if (this.#dropped > 0) {
        this.#logger.warn(
          { dropped: this.#dropped },
          'activity rows dropped while the database was away',
        );
        this.#dropped = 0;
      }
    });
    return this.#flushing;
  }

  #merge(inc: RollupIncrement): void {
    const key = `${inc.productId}|${inc.env}|${inc.tag}|${inc.hour.getTime()}|${inc.operation}`;
    const current = this.#rollups.get(key);
    this.#rollups.set(key, {
      ...inc,
      successes: inc.successes + (current?.successes ?? 0),
      failures: inc.failures + (current?.failures ?? 0),
      durationMsTotal: inc.durationMsTotal + (current?.durationMsTotal ?? 0),
    });
  }
}

/** SQLSTATE class 22 (data exception) or 23 (constraint): the rows, not the connection, are at fault. */
const isDataError = (error: unknown): boolean => hasErrorCode(error, (code) => /^2[23]/.test(code));

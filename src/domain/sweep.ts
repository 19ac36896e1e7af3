import { sql } from 'drizzle-orm';
import { type Database, rowsOf } from '../db/client.js';
import { sessionEvents, sessions } from '../db/schema.js';
import {
  EXPIRE_OPERATION,
  addToRollups,
  hourOf,
  pruneActivity,
  type RollupIncrement,
} from './activity/index.js';
import { deleteInBatches, inBatches } from './batches.js';
import { eventsFor, recordEvents, type EventSubject } from './events.js';
import { idleRanOutAt, notEnded, refreshRanOutAt } from './liveness.js';

/**
 * How {@link sweepOnce} works: the retention periods, in seconds, and the batch size. The sweeper
 * (src/workers/sweeper.ts) passes it, from the configuration.
 */
export interface SweepOptions {
  /** Ended (revoked or expired) sessions are deleted this long after they ended. */
  readonly retentionSeconds: number;
  /** Events are deleted this long after they happened. */
  readonly eventRetentionSeconds: number;
  /** Rows per transaction: small, so no sweep ever holds many locks or blocks a request. */
  readonly batchSize: number;
  /** Activity log rows are deleted this long after they were written (unset: kept). */
  readonly activityRetentionSeconds?: number;
  /** Hourly metrics rollups are deleted this long after their hour (unset: kept). */
  readonly rollupRetentionSeconds?: number;
}

/** What one pass of {@link sweepOnce} did, in rows. */
export interface SweepResult {
  /** Sessions found over (refresh token expired, or idle too long), with an EXPIRED event each. */
  expired: number;
  /** Ended sessions deleted after the retention period. */
  deleted: number;
  /** Events deleted after their retention period. */
  eventsPruned: number;
  /** Activity log rows deleted after their retention period. */
  activityPruned: number;
}

type Returned = EventSubject;

/**
 * One pass of the cleanup, batch by batch until nothing is due. Each batch is its own short
 * transaction and takes its rows with `FOR UPDATE SKIP LOCKED`: it never waits for a request
 * that holds a session, and several instances can sweep at once without doing the same work.
 * A live session is never touched: only sessions that are revoked, or over by the database
 * clock (the condition is checked again under the lock).
 */
export async function sweepOnce(db: Database, options: SweepOptions): Promise<SweepResult> {
  const result: SweepResult = { expired: 0, deleted: 0, eventsPruned: 0, activityPruned: 0 };
  const n = options.batchSize;

  // 1. Sessions that ran out get their EXPIRED event and are marked, so it is written once.
  // Two passes, one per way to run out, so each uses its own partial index (db/schema.ts).
  const overConditions = [refreshRanOutAt(), idleRanOutAt()];
  for (const over of overConditions) {
    result.expired += await inBatches(n, () =>
      db.transaction(async (tx) => {
        const rows = rowsOf<Returned>(
          await tx.execute(sql`
            with due as (
              select id from sessions
              where ${notEnded} and ${over}
              limit ${n}
              for update skip locked
            )
            update sessions s set expired_at = now()
            from due where s.id = due.id
            returning s.id, s.product_id as "productId", s.env, s.tag, s.identifier, s.actor`),
        );
        await recordEvents(tx, eventsFor(rows, 'EXPIRED', 'ran out'));
        // The dashboards' "sessions expired" per period.
        const byTag = new Map<string, RollupIncrement>();
        const hour = hourOf(new Date());
        for (const r of rows) {
          const key = `${r.productId}|${r.env}|${r.tag}`;
          const inc = byTag.get(key);
          byTag.set(key, {
            productId: r.productId,
            env: r.env,
            tag: r.tag,
            hour,
            operation: EXPIRE_OPERATION,
            successes: (inc?.successes ?? 0) + 1,
            failures: 0,
            durationMsTotal: 0,
          });
        }
        await addToRollups(tx, [...byTag.values()]);
        return rows.length;
      }),
    );
  }

  // 2. Ended sessions past the retention period are deleted (their refresh tokens with them).
  const endedConditions = [
    sql`revoked_at is not null and revoked_at < now() - make_interval(secs => ${options.retentionSeconds})`,
    sql`expired_at is not null and expired_at < now() - make_interval(secs => ${options.retentionSeconds})`,
  ];
  for (const ended of endedConditions) {
    result.deleted += await deleteInBatches(db, sessions, ended, n);
  }

  // 3. Old events.
  result.eventsPruned = await deleteInBatches(
    db,
    sessionEvents,
    sql`at < now() - make_interval(secs => ${options.eventRetentionSeconds})`,
    n,
  );

  // 4. The activity log and the metrics rollups, after theirs.
  if (options.activityRetentionSeconds !== undefined) {
    result.activityPruned = await pruneActivity(db, {
      logRetentionSeconds: options.activityRetentionSeconds,
      rollupRetentionSeconds: options.rollupRetentionSeconds ?? Number.MAX_SAFE_INTEGER,
      batchSize: n,
    });
  }
  return result;
}

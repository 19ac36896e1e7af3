import { setImmediate as yieldToRequests } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { type Database, rowsOf } from '../db/client.js';
import {
  EXPIRE_OPERATION,
  addToRollups,
  hourOf,
  pruneActivity,
  type RollupIncrement,
} from './activity/index.js';
import { recordEvents } from './events.js';
import { idleRanOutAt, notEnded, refreshRanOutAt } from './liveness.js';

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

type Returned = {
  id: string;
  product_id: string;
  env: string;
  tag: string;
  identifier: string;
  actor: string | null;
};

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
    for (;;) {
      const marked = await db.transaction(async (tx) => {
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
            returning s.id, s.product_id, s.env, s.tag, s.identifier, s.actor`),
        );
        await recordEvents(
          tx,
          rows.map((r) => ({
            productId: r.product_id,
            env: r.env,
            sessionId: r.id,
            tag: r.tag,
            identifier: r.identifier,
            type: 'EXPIRED' as const,
            reason: 'ran out',
            actor: r.actor,
          })),
        );
        // The dashboards' "sessions expired" per period.
        const byTag = new Map<string, RollupIncrement>();
        const hour = hourOf(new Date());
        for (const r of rows) {
          const key = `${r.product_id}|${r.env}|${r.tag}`;
          const inc = byTag.get(key);
          byTag.set(key, {
            productId: r.product_id,
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
      });
      result.expired += marked;
      // Let requests run between batches: on PGlite, queries alone never yield the event loop.
      await yieldToRequests();
      if (marked < n) break;
    }
  }

  // 2. Ended sessions past the retention period are deleted (their refresh tokens with them).
  const endedConditions = [
    sql`revoked_at is not null and revoked_at < now() - make_interval(secs => ${options.retentionSeconds})`,
    sql`expired_at is not null and expired_at < now() - make_interval(secs => ${options.retentionSeconds})`,
  ];
  for (const ended of endedConditions) {
    for (;;) {
      const deleted = rowsOf<{ id: string }>(
        await db.execute(sql`
          delete from sessions where id in (
            select id from sessions where ${ended}
            limit ${n}
            for update skip locked
          )
          returning id`),
      ).length;
      result.deleted += deleted;
      // Let requests run between batches: on PGlite, queries alone never yield the event loop.
      await yieldToRequests();
      if (deleted < n) break;
    }
  }

  // 3. Old events.
  for (;;) {
    const pruned = rowsOf<{ id: number }>(
      await db.execute(sql`
        delete from session_events where id in (
          select id from session_events
          where at < now() - make_interval(secs => ${options.eventRetentionSeconds})
          limit ${n}
          for update skip locked
        )
        returning id`),
    ).length;
    result.eventsPruned += pruned;
    // Let requests run between batches: on PGlite, queries alone never yield the event loop.
    await yieldToRequests();
    if (pruned < n) break;
  }

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

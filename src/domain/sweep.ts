import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { recordEvents } from './events.js';

export interface SweepOptions {
  /** Ended (revoked or expired) sessions are deleted this long after they ended. */
  readonly retentionSeconds: number;
  /** Events are deleted this long after they happened. */
  readonly eventRetentionSeconds: number;
  /** Rows per transaction: small, so no sweep ever holds many locks or blocks a request. */
  readonly batchSize: number;
}

export interface SweepResult {
  /** Sessions found over (refresh token expired, or idle too long), with an EXPIRED event each. */
  expired: number;
  /** Ended sessions deleted after the retention period. */
  deleted: number;
  /** Events deleted after their retention period. */
  eventsPruned: number;
}

type Returned = { id: string; product_id: string; env: string; tag: string; identifier: string };

function rowsOf<T>(result: unknown): T[] {
  return Array.isArray(result) ? (result as T[]) : ((result as { rows: T[] }).rows ?? []);
}

/**
 * One pass of the cleanup, batch by batch until nothing is due. Each batch is its own short
 * transaction and takes its rows with `FOR UPDATE SKIP LOCKED`: it never waits for a request
 * that holds a session, and several instances can sweep at once without doing the same work.
 * A live session is never touched: only sessions that are revoked, or over by the database
 * clock (the condition is checked again under the lock).
 */
export async function sweepOnce(db: Database, options: SweepOptions): Promise<SweepResult> {
  const result: SweepResult = { expired: 0, deleted: 0, eventsPruned: 0 };
  const n = options.batchSize;

  // 1. Sessions that ran out get their EXPIRED event and are marked, so it is written once.
  const overConditions = [
    sql`refresh_expires_at <= now()`,
    sql`idle_timeout_seconds is not null and last_active_at + make_interval(secs => idle_timeout_seconds) <= now()`,
  ];
  for (const over of overConditions) {
    for (;;) {
      const marked = await db.transaction(async (tx) => {
        const rows = rowsOf<Returned>(
          await tx.execute(sql`
            with due as (
              select id from sessions
              where revoked_at is null and expired_at is null and (${over})
              limit ${n}
              for update skip locked
            )
            update sessions s set expired_at = now()
            from due where s.id = due.id
            returning s.id, s.product_id, s.env, s.tag, s.identifier`),
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
          })),
        );
        return rows.length;
      });
      result.expired += marked;
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
    if (pruned < n) break;
  }
  return result;
}

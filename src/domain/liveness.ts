import { and, count, gt, inArray, isNull, sql, type SQL } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { sessions, type SessionRow } from '../db/schema.js';
import { notEndedOf } from '../db/session-rules.js';

/**
 * "Is this session over?", written once: as SQL fragments over the `sessions` table (for lists,
 * counts, caps, revoke-all, refresh, the state operations and the sweep) and as their TypeScript
 * twin over a row read with the database clock (verify, `sessionStatus`). test/liveness.test.ts
 * evaluates both on the same rows and checks they agree.
 *
 * A session is
 * - revoked once `revoked_at` is set;
 * - over (for good: nothing revives it) once swept (`expired_at`), once its refresh token has run
 *   out (`refresh_expires_at`), or once idle past its idle timeout (`last_active_at` plus
 *   `idle_timeout_seconds`);
 * - live while neither.
 */

/** The database clock: the instant every fragment below is evaluated at unless told otherwise. */
const dbNow = sql`now()`;

/** When an idle session runs out, in SQL (null: no idle timeout). */
const idleDeadline = sql`${sessions.lastActiveAt} + make_interval(secs => ${sessions.idleTimeoutSeconds})`;

/** The refresh token has run out at `now`. */
export const refreshRanOutAt = (now: SQL = dbNow): SQL =>
  sql`${sessions.refreshExpiresAt} <= ${now}`;

/** Idle past its idle timeout at `now` (false without an idle timeout). */
export const idleRanOutAt = (now: SQL = dbNow): SQL =>
  sql`(${sessions.idleTimeoutSeconds} is not null and ${idleDeadline} <= ${now})`;

/** Not over at `now` (whether revoked or not): not swept, refreshable, not idle too long. */
const notOverAt = (now: SQL): SQL =>
  and(
    isNull(sessions.expiredAt),
    gt(sessions.refreshExpiresAt, now),
    sql`(${sessions.idleTimeoutSeconds} is null or ${idleDeadline} > ${now})`,
  )!;

/** Over at `now`, whether revoked or not: swept, refresh token run out, or idle too long. */
export const overAt = (now: SQL = dbNow): SQL => sql`(not ${notOverAt(now)})`;

/** Live at `now`: not revoked and not over. */
export const liveAt = (now: SQL = dbNow): SQL => and(isNull(sessions.revokedAt), notOverAt(now))!;

/** A live session, by the database clock. Lists, counts, caps and revoke-all all use it. */
export const isLive = liveAt();

/** An over session (revoked or not), by the database clock. */
export const isOver = overAt();

/**
 * Until when a session is live: the first of its revocation, its sweep mark, its refresh token
 * running out and its idle deadline. For a live session that is when it will run out unless it
 * is refreshed or used again; for an ended one, when it ended. Nothing revives a session, and
 * refreshes and activity move these only while it is live, so a session is live over exactly
 * [created_at, liveUntil): at `now` exactly when liveUntil > now (revoked_at and expired_at are
 * never ahead of the clock), and at a past instant `t` when created_at <= t < liveUntil. What
 * the dashboard's "active sessions" per period count (src/domain/activity/active.ts).
 */
export const liveUntil = sql`least(${sessions.revokedAt}, ${sessions.expiredAt}, ${sessions.refreshExpiresAt}, ${idleDeadline})`;

/** Not ended: neither revoked nor marked over by the sweep (what the sweep and its indexes look at). */
export const notEnded = sql`(${notEndedOf(sessions)})`;

/** The columns the rule reads. */
export type LivenessRow = Pick<
  SessionRow,
  'revokedAt' | 'expiredAt' | 'refreshExpiresAt' | 'lastActiveAt' | 'idleTimeoutSeconds'
>;

/** When an idle session runs out: last activity plus the idle timeout (null: no idle timeout). */
export function idleExpiresAt(row: LivenessRow): Date | null {
  return row.idleTimeoutSeconds === null
    ? null
    : new Date(row.lastActiveAt.getTime() + row.idleTimeoutSeconds * 1000);
}

/** The twin of {@link liveUntil}. */
export function liveUntilOf(row: LivenessRow): Date {
  const ends = [row.revokedAt, row.expiredAt, row.refreshExpiresAt, idleExpiresAt(row)];
  return new Date(Math.min(...ends.filter((d): d is Date => d !== null).map((d) => d.getTime())));
}

/** The twin of {@link overAt}: over at `now`, whether revoked or not. */
export function isOverAt(row: LivenessRow, now: Date): boolean {
  const idleEnd = idleExpiresAt(row);
  return (
    row.expiredAt !== null || row.refreshExpiresAt <= now || (idleEnd !== null && idleEnd <= now)
  );
}

/** The twin of {@link liveAt}. */
export function isLiveAt(row: LivenessRow, now: Date): boolean {
  return row.revokedAt === null && !isOverAt(row, now);
}

/** Why a session row no longer accepts tokens at `now`; null while it is live. */
export function deadReason(row: LivenessRow, now: Date): 'revoked' | 'expired' | null {
  if (row.revokedAt !== null) return 'revoked';
  return isOverAt(row, now) ? 'expired' : null;
}

/**
 * How many live sessions each of many keys (values of `by`) has among the sessions `where`
 * selects, in one query (the batched counts of a page); keys without one are left out.
 */
export async function liveSessionCounts(
  db: Database,
  by: typeof sessions.identifier | typeof sessions.configId,
  keys: readonly string[],
  where: SQL | undefined,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (keys.length === 0) return counts;
  const rows = await db
    .select({ key: by, n: count() })
    .from(sessions)
    .where(and(where, inArray(by, [...keys]), isLive))
    .groupBy(by);
  for (const row of rows) counts.set(row.key, Number(row.n));
  return counts;
}

import { sql, type SQL } from 'drizzle-orm';
import { type Database, rowsOf } from '../../db/client.js';
import { sessions } from '../../db/schema.js';
import { ownedBy, type Scope } from '../callers.js';
import { isLive, liveUntil } from '../liveness.js';

/** A period's session figures read from the sessions themselves. */
export interface LivePeriod {
  /** Sessions live at the period's end (or at `to`, or now, when sooner). */
  readonly activeSessions: number;
  /** Sessions revoked in the period while they were live. */
  readonly sessionsRevoked: number;
}

/** A dashboard period's length. */
export type Grouping = 'HOUR' | 'DAY' | 'WEEK' | 'MONTH';

const UNIT = { HOUR: 'hour', DAY: 'day', WEEK: 'week', MONTH: 'month' } as const;

/** The start of the period after the one starting at `start` (UTC, as date_trunc counts them). */
export function nextPeriod(start: Date, groupBy: Grouping): Date {
  const next = new Date(start);
  if (groupBy === 'HOUR') next.setUTCHours(next.getUTCHours() + 1);
  else if (groupBy === 'DAY') next.setUTCDate(next.getUTCDate() + 1);
  else if (groupBy === 'WEEK') next.setUTCDate(next.getUTCDate() + 7);
  else next.setUTCMonth(next.getUTCMonth() + 1);
  return next;
}

/** What one pass over a tag's sessions gives the dashboard. */
export interface SessionFigures {
  /** Stored sessions now. */
  readonly total: number;
  /** Live now. */
  readonly active: number;
  /** Stored sessions that were revoked. */
  readonly revoked: number;
  /** By the period's start (ms): see {@link sessionFigures}. */
  readonly periods: Map<number, LivePeriod>;
}

/**
 * The tag's session counts now, and the sessions live at the end of each period of [from, to)
 * and revoked in each, for the periods that start before `to` and before now (the database
 * clock), keyed by the period's start (ms). One pass over the tag's stored sessions, whatever the
 * number of periods: each session counts +1 in the period it started and -1 in the period it
 * stopped being live ({@link liveUntil}), and a running sum from the sessions live when the first
 * period starts gives each period's end. What the database returns is bounded by the range's
 * hours (three counts an hour at most), what this adds up by its periods. Sessions deleted after
 * their retention are no longer there to count.
 */
export async function sessionFigures(
  db: Database,
  scope: Scope,
  args: { tag: string; from: Date; to: Date; groupBy: Grouping },
): Promise<SessionFigures> {
  const unit = UNIT[args.groupBy];
  const from = sql`${args.from.toISOString()}::timestamptz`;
  // Each session's start, end and revocation to the hour: plain arithmetic on every row, then
  // the calendar (date_trunc, time zones) once per distinct hour.
  const hourOf = (at: SQL) => sql`floor(date_part('epoch', ${at}) / 3600)`;
  const rows = rowsOf<{
    kind: string;
    period: number | null;
    first: number;
    stop: number;
    n: number;
    anchor: number;
    active: number;
    revoked: number;
  }>(
    await db.execute(sql`
      with bounds as (
        select date_trunc(${unit}, ${from} at time zone 'UTC') at time zone 'UTC' as first,
               least(${args.to.toISOString()}::timestamptz, now()) as stop
      ),
      -- Materialized: each session's liveUntil is worked out once, not once per use below.
      spans as materialized (
        select ${sessions.createdAt} as started, ${liveUntil} as until,
               ${sessions.revokedAt} as revoked, ${isLive} as live
        from ${sessions}
        where ${ownedBy(sessions, scope, args.tag)}
      ),
      hours as (
        -- The hours of what happened from the first period to the stop. Every session is in
        -- one group of started (null: before the first period or after the stop), so those
        -- groups also add up to the counts now and to the sessions live when the first period
        -- starts.
        select grouping(started, ended, revoked) as sets, started, ended, revoked,
               count(*) as n,
               count(*) filter (where live) as active,
               count(*) filter (where is_revoked) as revoked_now,
               count(*) filter (where anchor) as anchor
        from (
          select s.live, s.revoked is not null as is_revoked,
                 s.started < b.first and s.until >= b.first as anchor,
                 case when s.started >= b.first and s.started < b.stop
                      then ${hourOf(sql`s.started`)} end as started,
                 case when s.until >= b.first and s.until < b.stop
                      then ${hourOf(sql`s.until`)} end as ended,
                 -- Revoked while live (the revocation ended it), within the range.
                 case when s.revoked = s.until and s.revoked >= ${from} and s.revoked < b.stop
                      then ${hourOf(sql`s.revoked`)} end as revoked
          from spans s cross join bounds b
        ) as events
        group by grouping sets ((started), (ended), (revoked))
      )
      select case h.sets when 3 then 'start' when 5 then 'end' else 'revoked' end as kind,
             date_part('epoch', date_trunc(${unit},
               to_timestamp(coalesce(h.started, h.ended, h.revoked) * 3600) at time zone 'UTC')
               at time zone 'UTC') * 1000 as period,
             date_part('epoch', b.first) * 1000 as first,
             date_part('epoch', b.stop) * 1000 as stop,
             sum(h.n)::int as n,
             sum(h.anchor)::int as anchor,
             sum(h.active)::int as active,
             sum(h.revoked_now)::int as revoked
      from hours h cross join bounds b
      where h.sets = 3 or coalesce(h.started, h.ended, h.revoked) is not null
      group by 1, 2, 3, 4`),
  );
  const totals = { total: 0, active: 0, revoked: 0, anchor: 0 };
  const byKind: Record<string, Map<number, number>> = {
    start: new Map(),
    end: new Map(),
    revoked: new Map(),
  };
  for (const row of rows) {
    if (row.kind === 'start') {
      totals.total += Number(row.n);
      totals.active += Number(row.active);
      totals.revoked += Number(row.revoked);
      totals.anchor += Number(row.anchor);
    }
    if (row.period === null) continue;
    byKind[row.kind]!.set(Number(row.period), Number(row.n));
  }
  const first = Number(rows[0]?.first ?? 0);
  // A range that starts after now has no period whose end (or now) falls in it.
  const stop = Number(rows[0]?.stop ?? 0) > args.from.getTime() ? Number(rows[0]!.stop) : first;
  const periods = new Map<number, LivePeriod>();
  let active = totals.anchor;
  for (
    let start = new Date(first);
    start.getTime() < stop;
    start = nextPeriod(start, args.groupBy)
  ) {
    const key = start.getTime();
    active += (byKind.start!.get(key) ?? 0) - (byKind.end!.get(key) ?? 0);
    periods.set(key, { activeSessions: active, sessionsRevoked: byKind.revoked!.get(key) ?? 0 });
  }
  return {
    total: totals.total,
    active: totals.active,
    revoked: totals.revoked,
    periods,
  };
}

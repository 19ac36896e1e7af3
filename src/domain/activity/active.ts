import { sql, type SQL } from 'drizzle-orm';
import { type Database, rowsOf } from '../../db/client.js';
import { sessions } from '../../db/schema.js';
import { ownedBy, type Scope } from '../callers.js';
import { liveUntil } from '../liveness.js';
import type { Grouping } from './dashboard.js';

/** A period's session figures read from the sessions themselves. */
export interface LivePeriod {
  /** Sessions live at the period's end (or at `to`, or now, when sooner). */
  readonly activeSessions: number;
  /** Sessions revoked in the period while they were live. */
  readonly sessionsRevoked: number;
}

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

/**
 * Sessions live at the end of each period of [from, to) and sessions revoked in each, keyed by
 * the period's start (ms), for the periods that start before `to` and before now (the database
 * clock). One pass over the tag's stored sessions, whatever the number of periods: each session
 * counts +1 in the period it started and -1 in the period it stopped being live ({@link liveUntil}),
 * and a running sum from the sessions live when the first period starts gives each period's end.
 * Sessions deleted after their retention are no longer there to count.
 */
export async function livePeriods(
  db: Database,
  scope: Scope,
  args: { tag: string; from: Date; to: Date; groupBy: Grouping },
): Promise<Map<number, LivePeriod>> {
  const unit = UNIT[args.groupBy];
  const trunc = (at: SQL) =>
    sql`extract(epoch from date_trunc(${unit}, ${at} at time zone 'UTC') at time zone 'UTC')::float8 * 1000`;
  const from = sql`${args.from.toISOString()}::timestamptz`;
  const rows = rowsOf<{
    kind: string;
    period: number | null;
    first: number;
    stop: number;
    n: number;
  }>(
    await db.execute(sql`
      with bounds as (
        select date_trunc(${unit}, ${from} at time zone 'UTC') at time zone 'UTC' as first,
               least(${args.to.toISOString()}::timestamptz, now()) as stop
      ),
      spans as (
        select ${sessions.createdAt} as started, ${liveUntil} as until, ${sessions.revokedAt} as revoked
        from ${sessions}
        where ${ownedBy(sessions, scope, args.tag)}
          and ${sessions.createdAt} < (select stop from bounds)
          and ${liveUntil} >= (select first from bounds)
      )
      select e.kind, e.period,
             extract(epoch from b.first)::float8 * 1000 as first,
             extract(epoch from b.stop)::float8 * 1000 as stop,
             count(*)::int as n
      from spans s
      cross join bounds b
      cross join lateral (values
        -- Started before the first period: live when it starts (the sum's anchor, no period).
        ('start', case when s.started >= b.first then ${trunc(sql`s.started`)} end),
        ('end', case when s.until < b.stop then ${trunc(sql`s.until`)} end),
        -- Revoked while live (a revocation that ended it), within the range.
        ('revoked', case when s.revoked = s.until and s.revoked >= ${from} and s.revoked < b.stop
                         then ${trunc(sql`s.revoked`)} end)
      ) as e(kind, period)
      where e.kind = 'start' or e.period is not null
      group by 1, 2, 3, 4`),
  );
  const result = new Map<number, LivePeriod>();
  if (rows.length === 0) return result;
  const first = Number(rows[0]!.first);
  const stop = Number(rows[0]!.stop);
  const count = (kind: string) => {
    const byPeriod = new Map<number | null, number>();
    for (const row of rows) {
      if (row.kind === kind) {
        byPeriod.set(row.period === null ? null : Number(row.period), Number(row.n));
      }
    }
    return byPeriod;
  };
  const starts = count('start');
  const ends = count('end');
  const revoked = count('revoked');
  let active = starts.get(null) ?? 0;
  for (
    let start = new Date(first);
    start.getTime() < stop;
    start = nextPeriod(start, args.groupBy)
  ) {
    const key = start.getTime();
    active += (starts.get(key) ?? 0) - (ends.get(key) ?? 0);
    result.set(key, { activeSessions: active, sessionsRevoked: revoked.get(key) ?? 0 });
  }
  return result;
}

import { count, sql } from 'drizzle-orm';
import { type Database, rowsOf } from '../../db/client.js';
import { sessionUsers } from '../../db/schema.js';
import { ownedBy, type Scope } from '../callers.js';
import { badInput } from '../errors.js';
import { sessionFigures, type Grouping } from './active.js';
import { EXPIRE_OPERATION } from './operations.js';

export type { Grouping };

/**
 * One period of a dashboard (an hour, day, week or month in UTC, by `groupBy`), from `start`: its
 * counts summed from the hourly rollups, its sessions from active.ts. A period with neither
 * operations nor live or revoked sessions is left out.
 */
export interface DashboardPeriod {
  readonly start: Date;
  readonly sessionsCreated: number;
  readonly sessionsExpired: number;
  /** Sessions live at the period's end (at `to` or now when sooner); see active.ts. */
  readonly activeSessions: number;
  /** Sessions revoked in the period while live, whatever the call. */
  readonly sessionsRevoked: number;
  readonly starts: number;
  readonly verifies: number;
  readonly refreshes: number;
  readonly revokes: number;
  readonly successes: number;
  readonly failures: number;
  readonly averageDurationMs: number | null;
}

/**
 * What {@link sessionDashboard} answers for a tag over [from, to): the totals, then the periods,
 * oldest first. The user counts are as of now, whatever the range (active: seen in the last 24
 * hours); the rates and the average duration are null when no operation was counted.
 */
export interface Dashboard {
  readonly from: Date;
  readonly to: Date;
  readonly groupBy: Grouping;
  readonly totalUsers: number;
  readonly activeUsers: number;
  readonly totalSessions: number;
  readonly activeSessions: number;
  readonly expiredSessions: number;
  readonly revokedSessions: number;
  readonly successes: number;
  readonly failures: number;
  readonly successRate: number | null;
  readonly errorRate: number | null;
  readonly averageDurationMs: number | null;
  readonly periods: DashboardPeriod[];
}

/**
 * The longest range a dashboard covers, in days: a longer one is BAD_USER_INPUT on `to`. The cost
 * model weighs a dashboard by it (graphql/cost.ts).
 */
export const MAX_DASHBOARD_RANGE_DAYS = 800;

/**
 * Dashboard figures for a tag over [from, to): users from indexed counts, sessions now and per
 * period (active, revoked) from one pass over the tag's sessions (active.ts), and the other per
 * period figures summed from the hourly rollups (never from the log).
 */
export async function sessionDashboard(
  db: Database,
  scope: Scope,
  args: { tag: string; from: Date; to: Date; groupBy: Grouping },
): Promise<Dashboard> {
  const { from, to, groupBy, tag } = args;
  if (Number.isNaN(from.getTime())) throw badInput('from', 'expected an instant');
  if (Number.isNaN(to.getTime())) throw badInput('to', 'expected an instant');
  if (to <= from) throw badInput('to', 'must be after `from`');
  if (to.getTime() - from.getTime() > MAX_DASHBOARD_RANGE_DAYS * 86_400_000) {
    throw badInput('to', `the range may span at most ${MAX_DASHBOARD_RANGE_DAYS} days`);
  }
  const unit = { HOUR: 'hour', DAY: 'day', WEEK: 'week', MONTH: 'month' }[groupBy];

  const [users, figures, periodRows] = await Promise.all([
    db
      .select({
        total: count(),
        active: sql<number>`count(*) filter (where ${sessionUsers.lastSeenAt} > now() - interval '24 hours')`,
      })
      .from(sessionUsers)
      .where(ownedBy(sessionUsers, scope, tag)),
    sessionFigures(db, scope, args),
    db.execute(sql`
      select date_trunc(${unit}, hour at time zone 'UTC') at time zone 'UTC' as period,
             operation,
             sum(successes)::bigint as successes,
             sum(failures)::bigint as failures,
             sum(duration_ms_total)::float8 as duration
      from activity_rollups
      where product_id = ${scope.productId} and env = ${scope.env} and tag = ${tag}
        and hour >= ${from.toISOString()}::timestamptz and hour < ${to.toISOString()}::timestamptz
      group by 1, 2
      order by 1`),
  ]);
  const live = figures.periods;

  const byPeriod = new Map<number, DashboardPeriodAccumulator>();
  let successes = 0;
  let failures = 0;
  let duration = 0;
  for (const row of rowsOf<{
    period: string | Date;
    operation: string;
    successes: string | number;
    failures: string | number;
    duration: number | string;
  }>(periodRows)) {
    const start = new Date(row.period);
    const key = start.getTime();
    let p = byPeriod.get(key);
    if (!p) {
      p = newAccumulator(start);
      byPeriod.set(key, p);
    }
    const ok = Number(row.successes);
    const failed = Number(row.failures);
    if (row.operation === EXPIRE_OPERATION) {
      p.sessionsExpired += ok;
      continue;
    }
    p.successes += ok;
    p.failures += failed;
    p.duration += Number(row.duration);
    if (row.operation === 'start') {
      p.starts += ok + failed;
      p.sessionsCreated += ok;
    } else if (row.operation === 'verify') p.verifies += ok + failed;
    else if (row.operation === 'refresh') p.refreshes += ok + failed;
    else if (row.operation === 'revoke' || row.operation === 'revoke_all') p.revokes += ok + failed;
    successes += ok;
    failures += failed;
    duration += Number(row.duration);
  }
  // Active and revoked sessions: a period with either is listed even without operations. A
  // period of operations after the database clock's now (another instance's clock a little
  // ahead) has the sessions live now.
  let latest: { key: number; active: number } | null = null;
  for (const [key, period] of live) {
    latest = { key, active: period.activeSessions };
    if (period.activeSessions === 0 && period.sessionsRevoked === 0) continue;
    let p = byPeriod.get(key);
    if (!p) {
      p = newAccumulator(new Date(key));
      byPeriod.set(key, p);
    }
    p.activeSessions = period.activeSessions;
    p.sessionsRevoked = period.sessionsRevoked;
  }
  for (const [key, p] of byPeriod) {
    if (latest !== null && key > latest.key && !live.has(key)) p.activeSessions = latest.active;
  }
  const operations = successes + failures;
  const { total, active, revoked } = figures;
  return {
    from,
    to,
    groupBy,
    totalUsers: Number(users[0]?.total ?? 0),
    activeUsers: Number(users[0]?.active ?? 0),
    totalSessions: total,
    activeSessions: active,
    revokedSessions: revoked,
    expiredSessions: total - active - revoked,
    successes,
    failures,
    successRate: operations === 0 ? null : successes / operations,
    errorRate: operations === 0 ? null : failures / operations,
    averageDurationMs: operations === 0 ? null : duration / operations,
    periods: [...byPeriod.values()]
      .sort((a, b) => a.start.getTime() - b.start.getTime())
      .map(({ duration: d, ...p }) => ({
        ...p,
        averageDurationMs: p.successes + p.failures === 0 ? null : d / (p.successes + p.failures),
      })),
  };
}

type DashboardPeriodAccumulator = Omit<DashboardPeriod, 'averageDurationMs'> & {
  -readonly [K in keyof Omit<DashboardPeriod, 'averageDurationMs' | 'start'>]: number;
} & { duration: number };

function newAccumulator(start: Date): DashboardPeriodAccumulator {
  return {
    start,
    sessionsCreated: 0,
    sessionsExpired: 0,
    activeSessions: 0,
    sessionsRevoked: 0,
    starts: 0,
    verifies: 0,
    refreshes: 0,
    revokes: 0,
    successes: 0,
    failures: 0,
    duration: 0,
  };
}

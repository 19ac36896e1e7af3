import { and, asc, count, desc, eq, gte, inArray, lt, lte, or, sql, type SQL } from 'drizzle-orm';
import { type Database, type Transaction, rowsOf } from '../db/client.js';
import {
  activityLog,
  activityLogCounters,
  activityRollups,
  sessionUsers,
  sessions,
  type ActivityRow,
  type SessionRow,
  type SessionUserRow,
} from '../db/schema.js';
import type { Scope } from './callers.js';
import { badInput } from './errors.js';
import { isLive } from './liveness.js';
import { checkLength, cursorInstant, UUID_PATTERN } from './validation.js';

/** The operations the activity log and the metrics know. */
export const OPERATIONS = [
  'start',
  'verify',
  'refresh',
  'revoke',
  'revoke_all',
  'update_data',
  'merge_data',
  'set_value',
  'remove_value',
  'clear_data',
  'touch',
  'extend',
  'set_expiration',
] as const;
export type Operation = (typeof OPERATIONS)[number];

/** What the sweep counts: sessions that ran out (not an API operation, so not in the log). */
export const EXPIRE_OPERATION = 'expire';

/** One finished operation, as the recorder receives it. */
export interface ActivityRecord {
  readonly productId: string;
  readonly env: string;
  readonly tag: string;
  readonly operation: Operation;
  readonly status: 'SUCCESS' | 'FAILURE';
  readonly errorCode: string | null;
  readonly durationMs: number;
  readonly sessionId: string | null;
  readonly identifier: string | null;
  readonly at: Date;
}

/** Counts for one (scope, tag, hour, operation), added to what is stored. */
export interface RollupIncrement {
  readonly productId: string;
  readonly env: string;
  readonly tag: string;
  readonly hour: Date;
  readonly operation: string;
  readonly successes: number;
  readonly failures: number;
  readonly durationMsTotal: number;
}

/** The hour an instant falls in (UTC), the rollups' granularity. */
export function hourOf(at: Date): Date {
  const hour = new Date(at);
  hour.setUTCMinutes(0, 0, 0);
  return hour;
}

/** Writes a batch of log rows and rollup increments in one transaction. */
export async function writeActivity(
  db: Database,
  rows: readonly ActivityRecord[],
  increments: readonly RollupIncrement[],
): Promise<void> {
  if (rows.length === 0 && increments.length === 0) return;
  await db.transaction(async (tx) => {
    if (rows.length > 0) await tx.insert(activityLog).values(await numbered(tx, rows));
    await addToRollups(tx, increments);
  });
}

/**
 * Numbers log rows within their product and env, from each scope's counter (advanced once per
 * batch, scopes in a fixed order so concurrent writers never deadlock): the ids a product sees
 * count its own rows only.
 */
async function numbered(
  tx: Transaction,
  rows: readonly ActivityRecord[],
): Promise<(ActivityRecord & { seq: number })[]> {
  const scopeOf = (r: ActivityRecord) => `${r.productId}|${r.env}`;
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(scopeOf(row), (counts.get(scopeOf(row)) ?? 0) + 1);
  const next = new Map<string, number>();
  for (const scope of [...counts.keys()].sort()) {
    const [productId, env] = scope.split('|') as [string, string];
    const n = counts.get(scope)!;
    const [counter] = await tx
      .insert(activityLogCounters)
      .values({ productId, env, lastSeq: n })
      .onConflictDoUpdate({
        target: [activityLogCounters.productId, activityLogCounters.env],
        set: { lastSeq: sql`${activityLogCounters.lastSeq} + excluded.last_seq` },
      })
      .returning({ lastSeq: activityLogCounters.lastSeq });
    next.set(scope, Number(counter!.lastSeq) - n + 1);
  }
  return rows.map((row) => {
    const seq = next.get(scopeOf(row))!;
    next.set(scopeOf(row), seq + 1);
    return { ...row, seq };
  });
}

/** Adds increments to the hourly rollups (insert or add). */
export async function addToRollups(
  tx: Transaction | Database,
  increments: readonly RollupIncrement[],
): Promise<void> {
  if (increments.length === 0) return;
  // Sorted, so that concurrent writers lock rollup rows in the same order.
  const sorted = [...increments].sort((a, b) =>
    `${a.productId}${a.env}${a.tag}${a.hour.toISOString()}${a.operation}` <
    `${b.productId}${b.env}${b.tag}${b.hour.toISOString()}${b.operation}`
      ? -1
      : 1,
  );
  await tx
    .insert(activityRollups)
    .values(sorted)
    .onConflictDoUpdate({
      target: [
        activityRollups.productId,
        activityRollups.env,
        activityRollups.tag,
        activityRollups.hour,
        activityRollups.operation,
      ],
      set: {
        successes: sql`${activityRollups.successes} + excluded.successes`,
        failures: sql`${activityRollups.failures} + excluded.failures`,
        durationMsTotal: sql`${activityRollups.durationMsTotal} + excluded.duration_ms_total`,
      },
    });
}

/** `now()` at the precision cursors carry (milliseconds), so keyset paging is exact. */
const nowMs = sql`date_trunc('milliseconds', now())`;

/** Records that a session's user was seen now (refresh, touch, verify once a minute). */
export async function recordUserSeen(
  tx: Transaction | Database,
  session: Pick<SessionRow, 'productId' | 'env' | 'tag' | 'identifier'>,
): Promise<void> {
  await tx
    .update(sessionUsers)
    .set({ lastSeenAt: nowMs })
    .where(
      and(
        eq(sessionUsers.productId, session.productId),
        eq(sessionUsers.env, session.env),
        eq(sessionUsers.tag, session.tag),
        eq(sessionUsers.identifier, session.identifier),
      ),
    );
}

/** An instant as text with microseconds, in UTC: what keyset cursors carry. */
const exactInstant = (column: typeof sessionUsers.lastSeenAt) =>
  sql<string>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
const EXACT_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

const MAX_PAGE = 100;
const DEFAULT_PAGE = 20;

function pageSize(first: number | null | undefined): number {
  const n = first ?? DEFAULT_PAGE;
  if (!Number.isInteger(n) || n < 0 || n > MAX_PAGE) {
    throw badInput('first', `expected a whole number from 0 to ${MAX_PAGE}`);
  }
  return n;
}

function encode(parts: readonly string[]): string {
  return Buffer.from(JSON.stringify(parts), 'utf8').toString('base64url');
}

function decode(cursor: string, arity: number): string[] {
  try {
    const parts = JSON.parse(Buffer.from(cursor.slice(0, 1000), 'base64url').toString('utf8'));
    if (
      Array.isArray(parts) &&
      parts.length === arity &&
      parts.every((p) => typeof p === 'string')
    ) {
      return parts as string[];
    }
  } catch {
    // fall through
  }
  throw badInput('after', 'is not a cursor this API returned');
}

function instant(text: string): Date {
  const at = cursorInstant(text);
  if (at === undefined) throw badInput('after', 'is not a cursor this API returned');
  return at;
}

export interface Page<T> {
  readonly rows: T[];
  readonly hasNextPage: boolean;
  readonly cursorOf: (row: T) => string;
  readonly totalCount: () => Promise<number>;
}

export type UserOrder = 'LAST_SEEN_DESC' | 'LAST_SEEN_ASC';

/** Everyone who has had a session of a tag, by last seen (keyset pagination). */
export async function listSessionUsers(
  db: Database,
  scope: Scope,
  args: { tag: string; first?: number | null; after?: string | null; orderBy?: UserOrder | null },
): Promise<Page<SessionUserRow>> {
  const first = pageSize(args.first);
  const ascending = args.orderBy === 'LAST_SEEN_ASC';
  const owner = and(
    eq(sessionUsers.productId, scope.productId),
    eq(sessionUsers.env, scope.env),
    eq(sessionUsers.tag, args.tag),
  );
  let where: SQL | undefined = owner;
  if (args.after != null) {
    const [at, identifier] = decode(args.after, 2) as [string, string];
    // The cursor keeps the database's microseconds: users seen within one millisecond are
    // still told apart.
    if (!EXACT_INSTANT.test(at)) throw badInput('after', 'is not a cursor this API returned');
    const seen = sql`${at}::timestamptz`;
    const beyond = ascending ? sql`>` : sql`<`;
    where = and(
      owner,
      sql`(${sessionUsers.lastSeenAt} ${beyond} ${seen} or (${sessionUsers.lastSeenAt} = ${seen} and ${sessionUsers.identifier} ${beyond} ${identifier}))`,
    );
  }
  const order = ascending
    ? [asc(sessionUsers.lastSeenAt), asc(sessionUsers.identifier)]
    : [desc(sessionUsers.lastSeenAt), desc(sessionUsers.identifier)];
  const found = await db
    .select({ user: sessionUsers, seenKey: exactInstant(sessionUsers.lastSeenAt) })
    .from(sessionUsers)
    .where(where)
    .orderBy(...order)
    .limit(first + 1);
  const keys = new WeakMap<SessionUserRow, string>();
  const rows = found.map((r) => {
    keys.set(r.user, r.seenKey);
    return r.user;
  });
  return {
    rows: rows.slice(0, first),
    hasNextPage: rows.length > first,
    cursorOf: (row) => encode([keys.get(row) ?? row.lastSeenAt.toISOString(), row.identifier]),
    totalCount: async () =>
      Number((await db.select({ n: count() }).from(sessionUsers).where(owner))[0]?.n ?? 0),
  };
}

/** One user of a tag, or undefined. */
export async function findSessionUser(
  db: Database,
  scope: Scope,
  tag: string,
  identifier: string,
): Promise<SessionUserRow | undefined> {
  checkLength('identifier', identifier, 256);
  const rows = await db
    .select()
    .from(sessionUsers)
    .where(
      and(
        eq(sessionUsers.productId, scope.productId),
        eq(sessionUsers.env, scope.env),
        eq(sessionUsers.tag, tag),
        eq(sessionUsers.identifier, identifier),
      ),
    );
  return rows[0];
}

/** Live sessions of many identifiers of one tag, in one query (for a page of users). */
export async function activeSessionsByIdentifier(
  db: Database,
  scope: Scope,
  tag: string,
  identifiers: readonly string[],
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (identifiers.length === 0) return counts;
  const rows = await db
    .select({ identifier: sessions.identifier, n: count() })
    .from(sessions)
    .where(
      and(
        eq(sessions.productId, scope.productId),
        eq(sessions.env, scope.env),
        eq(sessions.tag, tag),
        inArray(sessions.identifier, [...identifiers]),
        isLive,
      ),
    )
    .groupBy(sessions.identifier);
  for (const row of rows) counts.set(row.identifier, Number(row.n));
  return counts;
}

/** Every stored session of one user under a tag, whatever its status, newest first. */
export async function sessionHistory(
  db: Database,
  scope: Scope,
  args: { tag: string; identifier: string; first?: number | null; after?: string | null },
): Promise<Page<SessionRow>> {
  const first = pageSize(args.first);
  const owner = and(
    eq(sessions.productId, scope.productId),
    eq(sessions.env, scope.env),
    eq(sessions.tag, args.tag),
    eq(sessions.identifier, args.identifier),
  );
  let where: SQL | undefined = owner;
  if (args.after != null) {
    const [at, id] = decode(args.after, 2) as [string, string];
    const createdAt = instant(at);
    if (!UUID_PATTERN.test(id)) throw badInput('after', 'is not a cursor this API returned');
    where = and(
      owner,
      or(
        lt(sessions.createdAt, createdAt),
        and(eq(sessions.createdAt, createdAt), lt(sessions.id, id)),
      ),
    );
  }
  const rows = await db
    .select()
    .from(sessions)
    .where(where)
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
    .limit(first + 1);
  return {
    rows: rows.slice(0, first),
    hasNextPage: rows.length > first,
    cursorOf: (row) => encode([row.createdAt.toISOString(), row.id]),
    totalCount: async () =>
      Number((await db.select({ n: count() }).from(sessions).where(owner))[0]?.n ?? 0),
  };
}

export interface ActivityFilter {
  readonly tag?: string | null;
  readonly operation?: Operation | null;
  readonly status?: 'SUCCESS' | 'FAILURE' | null;
  readonly since?: Date | null;
  readonly until?: Date | null;
  readonly first?: number | null;
  readonly after?: string | null;
}

/** The activity log, newest first, filtered (keyset pagination on time and the scope's number). */
export async function listActivity(
  db: Database,
  scope: Scope,
  filter: ActivityFilter,
): Promise<Page<ActivityRow>> {
  const first = pageSize(filter.first);
  const matching = and(
    eq(activityLog.productId, scope.productId),
    eq(activityLog.env, scope.env),
    filter.tag != null ? eq(activityLog.tag, filter.tag) : undefined,
    filter.operation != null ? eq(activityLog.operation, filter.operation) : undefined,
    filter.status != null ? eq(activityLog.status, filter.status) : undefined,
    filter.since != null ? gte(activityLog.at, filter.since) : undefined,
    filter.until != null ? lte(activityLog.at, filter.until) : undefined,
  );
  let where: SQL | undefined = matching;
  if (filter.after != null) {
    const [at, id] = decode(filter.after, 2) as [string, string];
    const when = instant(at);
    if (!/^\d{1,15}$/.test(id)) throw badInput('after', 'is not a cursor this API returned');
    where = and(
      matching,
      or(lt(activityLog.at, when), and(eq(activityLog.at, when), lt(activityLog.seq, Number(id)))),
    );
  }
  const rows = await db
    .select()
    .from(activityLog)
    .where(where)
    .orderBy(desc(activityLog.at), desc(activityLog.seq))
    .limit(first + 1);
  return {
    rows: rows.slice(0, first),
    hasNextPage: rows.length > first,
    cursorOf: (row) => encode([row.at.toISOString(), String(row.seq)]),
    totalCount: async () =>
      Number((await db.select({ n: count() }).from(activityLog).where(matching))[0]?.n ?? 0),
  };
}

export type Grouping = 'HOUR' | 'DAY' | 'WEEK' | 'MONTH';

export interface DashboardPeriod {
  readonly start: Date;
  readonly sessionsCreated: number;
  readonly sessionsExpired: number;
  readonly starts: number;
  readonly verifies: number;
  readonly refreshes: number;
  readonly revokes: number;
  readonly successes: number;
  readonly failures: number;
  readonly averageDurationMs: number | null;
}

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

const MAX_DASHBOARD_RANGE_DAYS = 800;

/**
 * Dashboard figures for a tag over [from, to): current totals from indexed counts, and per
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

  const [users, sessionCounts, periodRows] = await Promise.all([
    db
      .select({
        total: count(),
        active: sql<number>`count(*) filter (where ${sessionUsers.lastSeenAt} > now() - interval '24 hours')`,
      })
      .from(sessionUsers)
      .where(
        and(
          eq(sessionUsers.productId, scope.productId),
          eq(sessionUsers.env, scope.env),
          eq(sessionUsers.tag, tag),
        ),
      ),
    db
      .select({
        total: count(),
        active: sql<number>`count(*) filter (where ${isLive})`,
        revoked: sql<number>`count(*) filter (where ${sessions.revokedAt} is not null)`,
      })
      .from(sessions)
      .where(
        and(
          eq(sessions.productId, scope.productId),
          eq(sessions.env, scope.env),
          eq(sessions.tag, tag),
        ),
      ),
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
  const operations = successes + failures;
  const total = Number(sessionCounts[0]?.total ?? 0);
  const active = Number(sessionCounts[0]?.active ?? 0);
  const revoked = Number(sessionCounts[0]?.revoked ?? 0);
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
    starts: 0,
    verifies: 0,
    refreshes: 0,
    revokes: 0,
    successes: 0,
    failures: 0,
    duration: 0,
  };
}

/** Deletes log rows and rollups older than their retention, in batches. */
export async function pruneActivity(
  db: Database,
  options: { logRetentionSeconds: number; rollupRetentionSeconds: number; batchSize: number },
): Promise<number> {
  let pruned = 0;
  for (;;) {
    const n = rowsOf<{ id: number }>(
      await db.execute(sql`
        delete from activity_log where id in (
          select id from activity_log
          where at < now() - make_interval(secs => ${options.logRetentionSeconds})
          limit ${options.batchSize})
        returning id`),
    ).length;
    pruned += n;
    if (n < options.batchSize) break;
  }
  await db.execute(
    sql`delete from activity_rollups where hour < now() - make_interval(secs => ${options.rollupRetentionSeconds})`,
  );
  return pruned;
}

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { sweepOnce, type SweepOptions } from '../../src/domain/sweep.js';
import type { TestApp } from './app.js';
import { ok } from './graphql.js';
import { VERIFY, configIdsOf, type Started, type TestProduct } from './fixtures.js';

/**
 * What the insight test files share (test/insight-*.test.ts): queries, their result types and
 * helpers on the file's app.
 */

let t: TestApp;
/** Binds the helpers below to the test file's app (from its `beforeAll`). */
export function bindInsightApp(app: TestApp): void {
  t = app;
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
export const DAY = 86_400;
export const YEAR = 365 * DAY;

/*
 * On Postgres the other test files share the database while they run, and a sweep works on all
 * of it: so no sweep here prunes events or ended sessions that another file may still look at
 * (events only past a year, ended sessions past a day), and the activity retention below only
 * removes rows older than two days, which no test writes except by backdating its own.
 */
export const sweep = (options: Partial<SweepOptions> = {}) =>
  sweepOnce(t.database.db, {
    retentionSeconds: DAY,
    eventRetentionSeconds: YEAR,
    batchSize: 500,
    ...options,
  });

export const execute = (query: ReturnType<typeof sql>) => t.database.db.execute(query);

// ---------------------------------------------------------------------------------------------
// Queries

export const USER_FIELDS = `identifier tag firstSeenAt lastSeenAt totalSessions activeSessions`;
export const USERS = `query($tag: String!, $first: Int, $after: String, $orderBy: SessionUserOrder) {
  sessionUsers(tag: $tag, first: $first, after: $after, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { ${USER_FIELDS} } }
  }
}`;
export const USER = `query($tag: String!, $identifier: String!, $first: Int, $after: String) {
  sessionUser(tag: $tag, identifier: $identifier) {
    ${USER_FIELDS}
    sessions(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id identifier status createdAt expiresAt device { userAgent } } }
    }
  }
}`;
export const LOG = `query($tag: String, $operation: SessionOperation, $status: OperationStatus,
                  $since: DateTime, $until: DateTime, $first: Int, $after: String) {
  activityLog(tag: $tag, operation: $operation, status: $status, since: $since, until: $until,
              first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id operation status errorCode tag sessionId identifier durationMs at } }
  }
}`;
export const PERIOD_FIELDS = `start sessionsCreated sessionsExpired activeSessions sessionsRevoked starts verifies refreshes revokes successes failures averageDurationMs`;
export const DASHBOARD = `query($tag: String!, $from: DateTime!, $to: DateTime!, $groupBy: DashboardGrouping!) {
  sessionDashboard(tag: $tag, from: $from, to: $to, groupBy: $groupBy) {
    from to groupBy
    totalUsers activeUsers totalSessions activeSessions expiredSessions revokedSessions
    successes failures successRate errorRate averageDurationMs
    periods { ${PERIOD_FIELDS} }
  }
}`;
export const IS_VALID = `query($tag: String!, $token: String!) { isSessionValid(tag: $tag, token: $token) }`;
export const REVOKE_ALL = `mutation($tag: String!, $identifier: String!) {
  revokeAllSessions(tag: $tag, identifier: $identifier) { count }
}`;
export const SET_VALUE = `mutation($tag: String!, $sessionId: ID!, $key: String!, $value: JSON!, $expectedVersion: Int) {
  setSessionValue(tag: $tag, sessionId: $sessionId, key: $key, value: $value, expectedVersion: $expectedVersion) { id version }
}`;
export const EXTEND = `mutation($tag: String!, $sessionId: ID!, $seconds: Int!) {
  extendSession(tag: $tag, sessionId: $sessionId, seconds: $seconds) { id expiresAt }
}`;

// ---------------------------------------------------------------------------------------------
// Shapes and helpers

export interface UserNode {
  identifier: string;
  tag: string;
  firstSeenAt: string;
  lastSeenAt: string;
  totalSessions: number;
  activeSessions: number;
}
export interface Connection<N> {
  totalCount: number;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  edges: { cursor: string; node: N }[];
}
export interface HistoryNode {
  id: string;
  identifier: string;
  status: string;
  createdAt: string;
  expiresAt: string;
  device: { userAgent: string | null };
}
export interface LogNode {
  id: string;
  operation: string;
  status: 'SUCCESS' | 'FAILURE';
  errorCode: string | null;
  tag: string | null;
  sessionId: string | null;
  identifier: string | null;
  durationMs: number;
  at: string;
}
export interface Period {
  start: string;
  sessionsCreated: number;
  sessionsExpired: number;
  activeSessions: number;
  sessionsRevoked: number;
  starts: number;
  verifies: number;
  refreshes: number;
  revokes: number;
  successes: number;
  failures: number;
  averageDurationMs: number | null;
}
export interface Dashboard {
  from: string;
  to: string;
  groupBy: string;
  totalUsers: number;
  activeUsers: number;
  totalSessions: number;
  activeSessions: number;
  expiredSessions: number;
  revokedSessions: number;
  successes: number;
  failures: number;
  successRate: number | null;
  errorRate: number | null;
  averageDurationMs: number | null;
  periods: Period[];
}
export type Grouping = 'HOUR' | 'DAY' | 'WEEK' | 'MONTH';

export async function users(
  key: string,
  tag: string,
  args: { first?: number; after?: string; orderBy?: string } = {},
): Promise<Connection<UserNode>> {
  return (await ok(t.app, { key, query: USERS, variables: { tag, ...args } })).sessionUsers;
}

export async function user(
  key: string,
  tag: string,
  identifier: string,
  args: { first?: number; after?: string } = {},
): Promise<(UserNode & { sessions: Connection<HistoryNode> }) | null> {
  return (await ok(t.app, { key, query: USER, variables: { tag, identifier, ...args } }))
    .sessionUser;
}

export async function log(
  key: string,
  filter: {
    tag?: string;
    operation?: string;
    status?: string;
    since?: string;
    until?: string;
    first?: number;
    after?: string;
  } = {},
): Promise<Connection<LogNode>> {
  return (await ok(t.app, { key, query: LOG, variables: { first: 100, ...filter } })).activityLog;
}

export async function dashboard(
  key: string,
  tag: string,
  groupBy: Grouping,
  from: Date,
  to: Date,
): Promise<Dashboard> {
  return (
    await ok(t.app, {
      key,
      query: DASHBOARD,
      variables: { tag, groupBy, from: from.toISOString(), to: to.toISOString() },
    })
  ).sessionDashboard;
}

/** A day back and an hour ahead: a range that contains now. */
export const aroundNow = () => ({
  from: new Date(Date.now() - DAY_MS),
  to: new Date(Date.now() + HOUR_MS),
});

/** Where a UTC period of the dashboard starts, for the instant `at`. */
export function periodStart(groupBy: Grouping, at: Date): string {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  const d = at.getUTCDate();
  switch (groupBy) {
    case 'HOUR':
      return new Date(Date.UTC(y, m, d, at.getUTCHours())).toISOString();
    case 'DAY':
      return new Date(Date.UTC(y, m, d)).toISOString();
    case 'WEEK':
      // ISO weeks start on Monday.
      return new Date(Date.UTC(y, m, d - ((at.getUTCDay() + 6) % 7))).toISOString();
    case 'MONTH':
      return new Date(Date.UTC(y, m, 1)).toISOString();
  }
}

/** Room for a test that may first wait for the next hour (see clearOfHourBoundary). */
export const BOUNDARY_TIMEOUT = 240_000;

/**
 * Waits, if need be, until the next UTC hour has begun, so that what a test does in the next
 * `seconds` falls in one hour (and so in one day, week and month) of the dashboard.
 */
export async function clearOfHourBoundary(seconds: number): Promise<void> {
  if (seconds * 1000 > BOUNDARY_TIMEOUT / 2) throw new Error('wait longer than tests may take');
  const toNextHour = HOUR_MS - (Date.now() % HOUR_MS);
  if (toNextHour < seconds * 1000) await sleep(toNextHour + 1_000);
}

/** Every page of a connection, `first` at a time, each item once. */
export async function allPages<N>(
  fetchPage: (after: string | undefined) => Promise<Connection<N>>,
): Promise<{ nodes: N[]; pages: Connection<N>[] }> {
  const pages: Connection<N>[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await fetchPage(after);
    pages.push(page);
    if (!page.pageInfo.hasNextPage) break;
    after = page.pageInfo.endCursor ?? undefined;
    // A cursor that does not move on would page forever: stop, and let the caller's
    // assertions show what came back.
    if (pages.length >= 20) break;
  }
  return { nodes: pages.flatMap((p) => p.edges.map((e) => e.node)), pages };
}

export const userAgentOf = (label: string) => `InsightTest/1.0 (${label})`;

/**
 * Starts a session for `identifier` (by the $Session{userId} selector) from a named client: the
 * backend passes the client's User-Agent as the session's device.
 */
export async function startFrom(key: string, tag: string, identifier: string, label: string) {
  const result = await ok<{ startSession: Started }>(t.app, {
    key,
    query: `mutation($input: StartSessionInput!) { startSession(input: $input) { token refreshToken sessionId expiresAt } }`,
    variables: {
      input: {
        tag,
        data: {
          userId: identifier,
          details: { username: identifier, email: `${identifier}@x.io` },
        },
        device: { userAgent: userAgentOf(label) },
      },
    },
  });
  return result.startSession;
}

export const verify = async (key: string, tag: string, token: string) =>
  (await ok(t.app, { key, query: VERIFY, variables: { tag, token } })).verifySession;

/** A refresh token of the right shape that the server never issued. */
export const forgedRefreshToken = () => `rt_${randomBytes(32).toString('base64url')}`;

export async function productIdOf(product: TestProduct, tag: string): Promise<string> {
  return (await configIdsOf(t, product.tag, tag)).productId;
}

/** A pause that puts a clean millisecond between two activity timestamps. */
export const tick = () => sleep(5);

// ---------------------------------------------------------------------------------------------

/** What one logged operation of the scenario must look like; `undefined` fields are not checked. */
export interface Expected {
  operation: string;
  status: 'SUCCESS' | 'FAILURE';
  errorCode: string | null;
  sessionId?: string | null;
  identifier?: string | null;
}

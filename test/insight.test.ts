import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import { sweepOnce, type SweepOptions } from '../src/domain/sweep.js';
import { createTestApp, type TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { failure, gql, ok, type Call } from './support/graphql.js';
import {
  REFRESH,
  REVOKE,
  VERIFY,
  configIdsOf,
  newConfig,
  newSharedConfig,
  newProduct,
  rowsOf,
  start,
  type Started,
  type TestProduct,
} from './support/fixtures.js';

/** The file's app (the `t` fixture), for the helpers below. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
});

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const DAY = 86_400;
const YEAR = 365 * DAY;

/*
 * On Postgres the other test files share the database while they run, and a sweep works on all
 * of it: so no sweep here prunes events or ended sessions that another file may still look at
 * (events only past a year, ended sessions past a day), and the activity retention below only
 * removes rows older than two days, which no test writes except by backdating its own.
 */
const sweep = (options: Partial<SweepOptions> = {}) =>
  sweepOnce(t.database.db, {
    retentionSeconds: DAY,
    eventRetentionSeconds: YEAR,
    batchSize: 500,
    ...options,
  });

const execute = (query: ReturnType<typeof sql>) => t.database.db.execute(query);

// ---------------------------------------------------------------------------------------------
// Queries

const USER_FIELDS = `identifier tag firstSeenAt lastSeenAt totalSessions activeSessions`;
const USERS = `query($tag: String!, $first: Int, $after: String, $orderBy: SessionUserOrder) {
  sessionUsers(tag: $tag, first: $first, after: $after, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { ${USER_FIELDS} } }
  }
}`;
const USER = `query($tag: String!, $identifier: String!, $first: Int, $after: String) {
  sessionUser(tag: $tag, identifier: $identifier) {
    ${USER_FIELDS}
    sessions(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id identifier status createdAt expiresAt device { userAgent } } }
    }
  }
}`;
const LOG = `query($tag: String, $operation: SessionOperation, $status: OperationStatus,
                  $since: DateTime, $until: DateTime, $first: Int, $after: String) {
  activityLog(tag: $tag, operation: $operation, status: $status, since: $since, until: $until,
              first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id operation status errorCode tag sessionId identifier durationMs at } }
  }
}`;
const PERIOD_FIELDS = `start sessionsCreated sessionsExpired starts verifies refreshes revokes successes failures averageDurationMs`;
const DASHBOARD = `query($tag: String!, $from: DateTime!, $to: DateTime!, $groupBy: DashboardGrouping!) {
  sessionDashboard(tag: $tag, from: $from, to: $to, groupBy: $groupBy) {
    from to groupBy
    totalUsers activeUsers totalSessions activeSessions expiredSessions revokedSessions
    successes failures successRate errorRate averageDurationMs
    periods { ${PERIOD_FIELDS} }
  }
}`;
const IS_VALID = `query($tag: String!, $token: String!) { isSessionValid(tag: $tag, token: $token) }`;
const REVOKE_ALL = `mutation($tag: String!, $identifier: String!) {
  revokeAllSessions(tag: $tag, identifier: $identifier) { count }
}`;
const SET_VALUE = `mutation($tag: String!, $sessionId: ID!, $key: String!, $value: JSON!, $expectedVersion: Int) {
  setSessionValue(tag: $tag, sessionId: $sessionId, key: $key, value: $value, expectedVersion: $expectedVersion) { id version }
}`;
const EXTEND = `mutation($tag: String!, $sessionId: ID!, $seconds: Int!) {
  extendSession(tag: $tag, sessionId: $sessionId, seconds: $seconds) { id expiresAt }
}`;

// ---------------------------------------------------------------------------------------------
// Shapes and helpers

interface UserNode {
  identifier: string;
  tag: string;
  firstSeenAt: string;
  lastSeenAt: string;
  totalSessions: number;
  activeSessions: number;
}
interface Connection<N> {
  totalCount: number;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  edges: { cursor: string; node: N }[];
}
interface HistoryNode {
  id: string;
  identifier: string;
  status: string;
  createdAt: string;
  expiresAt: string;
  device: { userAgent: string | null };
}
interface LogNode {
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
interface Period {
  start: string;
  sessionsCreated: number;
  sessionsExpired: number;
  starts: number;
  verifies: number;
  refreshes: number;
  revokes: number;
  successes: number;
  failures: number;
  averageDurationMs: number | null;
}
interface Dashboard {
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
type Grouping = 'HOUR' | 'DAY' | 'WEEK' | 'MONTH';

async function users(
  key: string,
  tag: string,
  args: { first?: number; after?: string; orderBy?: string } = {},
): Promise<Connection<UserNode>> {
  return (await ok(t.app, { key, query: USERS, variables: { tag, ...args } })).sessionUsers;
}

async function user(
  key: string,
  tag: string,
  identifier: string,
  args: { first?: number; after?: string } = {},
): Promise<(UserNode & { sessions: Connection<HistoryNode> }) | null> {
  return (await ok(t.app, { key, query: USER, variables: { tag, identifier, ...args } }))
    .sessionUser;
}

async function log(
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

async function dashboard(
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
const aroundNow = () => ({
  from: new Date(Date.now() - DAY_MS),
  to: new Date(Date.now() + HOUR_MS),
});

/** Where a UTC period of the dashboard starts, for the instant `at`. */
function periodStart(groupBy: Grouping, at: Date): string {
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
const BOUNDARY_TIMEOUT = 240_000;

/**
 * Waits, if need be, until the next UTC hour has begun, so that what a test does in the next
 * `seconds` falls in one hour (and so in one day, week and month) of the dashboard.
 */
async function clearOfHourBoundary(seconds: number): Promise<void> {
  if (seconds * 1000 > BOUNDARY_TIMEOUT / 2) throw new Error('wait longer than tests may take');
  const toNextHour = HOUR_MS - (Date.now() % HOUR_MS);
  if (toNextHour < seconds * 1000) await sleep(toNextHour + 1_000);
}

/** Every page of a connection, `first` at a time, each item once. */
async function allPages<N>(
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

const userAgentOf = (label: string) => `InsightTest/1.0 (${label})`;

/** Starts a session for `identifier` (by the $Session{userId} selector) from a named client. */
async function startFrom(key: string, tag: string, identifier: string, label: string) {
  const result = await ok<{ startSession: Started }>(t.app, {
    key,
    headers: { 'user-agent': userAgentOf(label) },
    query: `mutation($input: StartSessionInput!) { startSession(input: $input) { token refreshToken sessionId expiresAt } }`,
    variables: {
      input: {
        tag,
        data: {
          userId: identifier,
          details: { username: identifier, email: `${identifier}@x.io` },
        },
      },
    },
  });
  return result.startSession;
}

const verify = async (key: string, tag: string, token: string) =>
  (await ok(t.app, { key, query: VERIFY, variables: { tag, token } })).verifySession;

/** A refresh token of the right shape that the server never issued. */
const forgedRefreshToken = () => `rt_${randomBytes(32).toString('base64url')}`;

async function productIdOf(product: TestProduct, tag: string): Promise<string> {
  return (await configIdsOf(t, product.tag, tag)).productId;
}

/** A pause that puts a clean millisecond between two activity timestamps. */
const tick = () => sleep(5);

// ---------------------------------------------------------------------------------------------

/** What one logged operation of the scenario must look like; `undefined` fields are not checked. */
interface Expected {
  operation: string;
  status: 'SUCCESS' | 'FAILURE';
  errorCode: string | null;
  sessionId?: string | null;
  identifier?: string | null;
}

describe('a scripted scenario: 3 users, 5 starts, 16 verifies, 3 refreshes, 3 revokes, 3 state operations', () => {
  let product: TestProduct;
  let key: string;
  let tag: string;
  const s: Record<'a1' | 'a2' | 'b1' | 'b2' | 'c1', Started> = {} as never;
  /** Oldest first: exactly what the activity log must hold. */
  const expected: Expected[] = [];
  const marks = {} as Record<'began' | 'afterStarts' | 'afterBadVerifies' | 'ended', Date>;

  beforeAll(async () => {
    // The scenario's operations must land in one hour for the HOUR figures to be one period.
    await clearOfHourBoundary(120);
    product = await newProduct(t);
    key = product.secret.dev;
    tag = await newConfig(t, key);
    await tick();
    marks.began = new Date();

    // 5 starts: alice ×2, bob ×2, carol ×1, each from its own client.
    const starts: [keyof typeof s, string][] = [
      ['a1', 'alice'],
      ['b1', 'bob'],
      ['a2', 'alice'],
      ['c1', 'carol'],
      ['b2', 'bob'],
    ];
    for (const [label, identifier] of starts) {
      s[label] = await startFrom(key, tag, identifier, label);
      expected.push({
        operation: 'START',
        status: 'SUCCESS',
        errorCode: null,
        sessionId: s[label].sessionId,
        identifier,
      });
    }
    await tick();
    marks.afterStarts = new Date();
    await tick();

    // 12 successful verifies (10 verifySession, 2 isSessionValid): counted, never logged.
    const verifies: [keyof typeof s, number][] = [
      ['a1', 3],
      ['b1', 2],
      ['a2', 2],
      ['c1', 2],
      ['b2', 1],
    ];
    for (const [label, times] of verifies) {
      for (let i = 0; i < times; i++) {
        expect((await verify(key, tag, s[label].token)).sessionId).toBe(s[label].sessionId);
      }
    }
    for (const label of ['a1', 'c1'] as const) {
      const valid = await ok(t.app, {
        key,
        query: IS_VALID,
        variables: { tag, token: s[label].token },
      });
      expect(valid.isSessionValid).toBe(true);
    }

    // 3 failed verifies: garbage tokens. Counted in the dashboard, never a log row.
    for (const token of ['garbage', 'not.a.session.token.at-all', `${s.a1.token}x`]) {
      const error = await failure(t.app, { key, query: VERIFY, variables: { tag, token } });
      expect(error.code).toBe('TOKEN_INVALID');
    }
    await tick();
    marks.afterBadVerifies = new Date();
    await tick();

    // 2 refreshes (alice's first session, then carol's) and a forged one.
    for (const [label, identifier] of [
      ['a1', 'alice'],
      ['c1', 'carol'],
    ] as const) {
      const refreshed = (
        await ok(t.app, {
          key,
          query: REFRESH,
          variables: { tag, refreshToken: s[label].refreshToken },
        })
      ).refreshSession as Started;
      expect(refreshed.sessionId).toBe(s[label].sessionId);
      s[label] = refreshed;
      expected.push({
        operation: 'REFRESH',
        status: 'SUCCESS',
        errorCode: null,
        sessionId: refreshed.sessionId,
        identifier,
      });
    }
    const forged = await failure(t.app, {
      key,
      query: REFRESH,
      variables: { tag, refreshToken: forgedRefreshToken() },
    });
    expect(forged.code).toBe('TOKEN_INVALID');
    // A failed refresh is counted, not logged, like a failed verify.

    // 2 revokes, then a verify of a revoked session.
    for (const [label, identifier] of [
      ['b1', 'bob'],
      ['a2', 'alice'],
    ] as const) {
      await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: s[label].sessionId } });
      expected.push({
        operation: 'REVOKE',
        status: 'SUCCESS',
        errorCode: null,
        sessionId: s[label].sessionId,
        identifier,
      });
    }
    const revoked = await failure(t.app, {
      key,
      query: VERIFY,
      variables: { tag, token: s.b1.token },
    });
    expect(revoked.code).toBe('SESSION_REVOKED');

    // Revoke all of bob's sessions: only b2 is still live.
    const all = await ok(t.app, { key, query: REVOKE_ALL, variables: { tag, identifier: 'bob' } });
    expect(all.revokeAllSessions.count).toBe(1);
    expected.push({
      operation: 'REVOKE_ALL',
      status: 'SUCCESS',
      errorCode: null,
      sessionId: null,
      identifier: 'bob',
    });

    // State operations: two that succeed, one that conflicts.
    const set = await ok(t.app, {
      key,
      query: SET_VALUE,
      variables: { tag, sessionId: s.a1.sessionId, key: 'theme', value: 'dark' },
    });
    expect(set.setSessionValue.version).toBe(2);
    expected.push({
      operation: 'SET_VALUE',
      status: 'SUCCESS',
      errorCode: null,
      sessionId: s.a1.sessionId,
      identifier: 'alice',
    });
    await ok(t.app, {
      key,
      query: EXTEND,
      variables: { tag, sessionId: s.c1.sessionId, seconds: 600 },
    });
    expected.push({
      operation: 'EXTEND',
      status: 'SUCCESS',
      errorCode: null,
      sessionId: s.c1.sessionId,
      identifier: 'carol',
    });
    const conflict = await failure(t.app, {
      key,
      query: SET_VALUE,
      variables: {
        tag,
        sessionId: s.a1.sessionId,
        key: 'theme',
        value: 'light',
        expectedVersion: 1,
      },
    });
    expect(conflict.code).toBe('CONFLICT');
    // Its session id is checked on its own below: the call named it, so the log knows it.
    expected.push({ operation: 'SET_VALUE', status: 'FAILURE', errorCode: 'CONFLICT' });
    await tick();
    marks.ended = new Date();
  }, BOUNDARY_TIMEOUT);

  describe('session users', () => {
    it('sessionUsers lists the three users with their total and active sessions, most recently seen first', async () => {
      const page = await users(key, tag);
      expect(page.totalCount).toBe(3);
      expect(page.pageInfo.hasNextPage).toBe(false);
      expect(page.edges.map((e) => e.node)).toEqual([
        expect.objectContaining({ identifier: 'carol', tag, totalSessions: 1, activeSessions: 1 }),
        expect.objectContaining({ identifier: 'alice', tag, totalSessions: 2, activeSessions: 1 }),
        expect.objectContaining({ identifier: 'bob', tag, totalSessions: 2, activeSessions: 0 }),
      ]);
      for (const { node } of page.edges) {
        expect(Date.parse(node.firstSeenAt)).toBeGreaterThanOrEqual(marks.began.getTime() - 1_000);
        expect(Date.parse(node.lastSeenAt)).toBeGreaterThan(Date.parse(node.firstSeenAt));
        expect(Date.parse(node.lastSeenAt)).toBeLessThanOrEqual(marks.ended.getTime() + 1_000);
      }
    });

    it('sessionUsers sorted by LAST_SEEN_ASC lists the least recently seen first', async () => {
      const page = await users(key, tag, { orderBy: 'LAST_SEEN_ASC' });
      expect(page.totalCount).toBe(3);
      expect(page.edges.map((e) => e.node.identifier)).toEqual(['bob', 'alice', 'carol']);
    });

    for (const [orderBy, order] of [
      ['LAST_SEEN_DESC', ['carol', 'alice', 'bob']],
      ['LAST_SEEN_ASC', ['bob', 'alice', 'carol']],
    ] as const) {
      it(`sessionUsers ordered ${orderBy} with first: 1 visits every user exactly once, in order`, async () => {
        const { nodes, pages } = await allPages((after) =>
          users(key, tag, { first: 1, after, orderBy }),
        );
        expect(nodes.map((n) => n.identifier)).toEqual(order);
        expect(pages.map((p) => p.edges.length)).toEqual([1, 1, 1]);
        expect(pages.map((p) => p.pageInfo.hasNextPage)).toEqual([true, true, false]);
        expect(pages.map((p) => p.totalCount)).toEqual([3, 3, 3]);
        for (const p of pages) expect(p.pageInfo.endCursor).toBe(p.edges[0]!.cursor);
      });
    }

    it('sessionUsers with first: 0 returns only the count', async () => {
      const page = await users(key, tag, { first: 0 });
      expect(page).toEqual({
        totalCount: 3,
        pageInfo: { hasNextPage: true, endCursor: null },
        edges: [],
      });
    });

    it('sessionUser shows one user with their session history, newest first, with the client it started from', async () => {
      const alice = await user(key, tag, 'alice');
      expect(alice).toMatchObject({
        identifier: 'alice',
        tag,
        totalSessions: 2,
        activeSessions: 1,
        sessions: { totalCount: 2, pageInfo: { hasNextPage: false } },
      });
      expect(alice!.sessions.edges.map((e) => e.node)).toEqual([
        expect.objectContaining({
          id: s.a2.sessionId,
          identifier: 'alice',
          status: 'REVOKED',
          device: { userAgent: userAgentOf('a2') },
        }),
        expect.objectContaining({
          id: s.a1.sessionId,
          identifier: 'alice',
          status: 'ACTIVE',
          // Refreshed: the history shows the session's current expiry.
          expiresAt: s.a1.expiresAt,
          device: { userAgent: userAgentOf('a1') },
        }),
      ]);
      const [newer, older] = alice!.sessions.edges.map((e) => Date.parse(e.node.createdAt));
      expect(newer).toBeGreaterThan(older!);

      const bob = await user(key, tag, 'bob');
      expect(bob).toMatchObject({ totalSessions: 2, activeSessions: 0 });
      expect(bob!.sessions.edges.map((e) => [e.node.id, e.node.status])).toEqual([
        [s.b2.sessionId, 'REVOKED'],
        [s.b1.sessionId, 'REVOKED'],
      ]);

      const carol = await user(key, tag, 'carol');
      expect(carol).toMatchObject({ totalSessions: 1, activeSessions: 1 });
      expect(carol!.sessions.edges.map((e) => e.node)).toEqual([
        expect.objectContaining({
          id: s.c1.sessionId,
          status: 'ACTIVE',
          device: { userAgent: userAgentOf('c1') },
        }),
      ]);
    });

    it('sessionUser pages through the history one session at a time', async () => {
      const { nodes, pages } = await allPages(async (after) => {
        const alice = await user(key, tag, 'alice', { first: 1, after });
        return alice!.sessions;
      });
      expect(nodes.map((n) => n.id)).toEqual([s.a2.sessionId, s.a1.sessionId]);
      expect(pages.map((p) => [p.edges.length, p.pageInfo.hasNextPage, p.totalCount])).toEqual([
        [1, true, 2],
        [1, false, 2],
      ]);
    });

    it('sessionUser is null for an identifier that never had a session of the tag', async () => {
      expect(await user(key, tag, 'dave')).toBeNull();
    });
  });

  describe('the activity log', () => {
    it('holds exactly the operations other than verifies and failed refreshes, newest first', async () => {
      const page = await log(key);
      expect(page.totalCount).toBe(expected.length);
      expect(page.totalCount).toBe(13);
      expect(page.pageInfo.hasNextPage).toBe(false);
      const nodes = page.edges.map((e) => e.node);
      const wanted = [...expected].reverse();
      expect(nodes.map((n) => [n.operation, n.status, n.errorCode])).toEqual(
        wanted.map((w) => [w.operation, w.status, w.errorCode]),
      );
      nodes.forEach((node, i) => {
        const w = wanted[i]!;
        expect(node.tag).toBe(tag);
        if (w.sessionId !== undefined)
          expect(node.sessionId, `row ${i} sessionId`).toBe(w.sessionId);
        if (w.identifier !== undefined) {
          expect(node.identifier, `row ${i} identifier`).toBe(w.identifier);
        }
        expect(node.durationMs).toBeGreaterThan(0);
        expect(Date.parse(node.at)).toBeGreaterThanOrEqual(marks.began.getTime());
        expect(Date.parse(node.at)).toBeLessThanOrEqual(marks.ended.getTime());
      });
      // Newest first, by time.
      const times = nodes.map((n) => Date.parse(n.at));
      expect([...times].sort((x, y) => y - x)).toEqual(times);
    });

    it('logs a failed operation on a named session with that session’s id', async () => {
      const conflicts = await log(key, { operation: 'SET_VALUE', status: 'FAILURE' });
      expect(conflicts.edges.map((e) => [e.node.errorCode, e.node.sessionId])).toEqual([
        ['CONFLICT', s.a1.sessionId],
      ]);
    });

    it('has no row for a successful verify: they are counted, not logged', async () => {
      const successfulVerifies = await log(key, { tag, operation: 'VERIFY', status: 'SUCCESS' });
      expect(successfulVerifies.totalCount).toBe(0);
      expect(successfulVerifies.edges).toEqual([]);
    });

    it('filters by operation', async () => {
      const startRows = await log(key, { operation: 'START' });
      expect(startRows.totalCount).toBe(5);
      expect(startRows.edges.map((e) => [e.node.sessionId, e.node.identifier])).toEqual([
        [s.b2.sessionId, 'bob'],
        [s.c1.sessionId, 'carol'],
        [s.a2.sessionId, 'alice'],
        [s.b1.sessionId, 'bob'],
        [s.a1.sessionId, 'alice'],
      ]);

      // Verifies, failed ones included, are counted in the dashboard, never logged.
      const verifyRows = await log(key, { operation: 'VERIFY' });
      expect(verifyRows.totalCount).toBe(0);

      const counts: Record<string, number> = {};
      for (const op of ['REFRESH', 'REVOKE', 'REVOKE_ALL', 'SET_VALUE', 'EXTEND', 'TOUCH']) {
        counts[op] = (await log(key, { operation: op })).totalCount;
      }
      expect(counts).toEqual({
        REFRESH: 2,
        REVOKE: 2,
        REVOKE_ALL: 1,
        SET_VALUE: 2,
        EXTEND: 1,
        TOUCH: 0,
      });
    });

    it('filters by status, with the error code of every failure', async () => {
      const failures = await log(key, { status: 'FAILURE' });
      expect(failures.totalCount).toBe(1);
      expect(failures.edges.map((e) => [e.node.operation, e.node.errorCode])).toEqual([
        ['SET_VALUE', 'CONFLICT'],
      ]);

      const successes = await log(key, { status: 'SUCCESS' });
      expect(successes.totalCount).toBe(12);
      expect(successes.edges.every((e) => e.node.errorCode === null)).toBe(true);
      expect(successes.edges.filter((e) => e.node.operation === 'VERIFY')).toEqual([]);
    });

    it('filters by tag', async () => {
      expect((await log(key, { tag })).totalCount).toBe(13);
      expect((await log(key, { tag: `${tag}-other` })).totalCount).toBe(0);
    });

    it('filters by since and until, both inclusive bounds on the time of the operation', async () => {
      const since = await log(key, { since: marks.afterStarts.toISOString() });
      expect(since.totalCount).toBe(8);
      expect(since.edges.some((e) => e.node.operation === 'START')).toBe(false);

      const until = await log(key, { until: marks.afterStarts.toISOString() });
      expect(until.totalCount).toBe(5);
      expect(until.edges.every((e) => e.node.operation === 'START')).toBe(true);

      const between = await log(key, {
        since: marks.afterStarts.toISOString(),
        until: marks.afterBadVerifies.toISOString(),
      });
      // Only failed verifies happened in between: no row.
      expect(between.edges).toEqual([]);

      // The exact instant of an entry is inside both bounds.
      const newestStart = until.edges[0]!.node;
      const atStart = await log(key, {
        operation: 'START',
        since: newestStart.at,
        until: newestStart.at,
      });
      expect(atStart.edges.map((e) => e.node.id)).toEqual([newestStart.id]);

      expect((await log(key, { until: marks.began.toISOString() })).totalCount).toBe(0);
      expect((await log(key, { since: marks.ended.toISOString() })).totalCount).toBe(0);
    });

    it('combines filters', async () => {
      const page = await log(key, {
        tag,
        operation: 'SET_VALUE',
        status: 'FAILURE',
        since: marks.afterStarts.toISOString(),
        until: marks.ended.toISOString(),
      });
      expect(page.totalCount).toBe(1);
      expect(page.edges[0]!.node).toMatchObject({
        operation: 'SET_VALUE',
        status: 'FAILURE',
        errorCode: 'CONFLICT',
        sessionId: s.a1.sessionId,
      });
    });

    it('pages newest first, each entry once, with the total on every page', async () => {
      const whole = (await log(key)).edges.map((e) => e.node.id);
      const { nodes, pages } = await allPages((after) => log(key, { first: 7, after }));
      expect(nodes.map((n) => n.id)).toEqual(whole);
      expect(pages.map((p) => p.edges.length)).toEqual([7, 6]);
      expect(pages.map((p) => p.totalCount)).toEqual([13, 13]);
      expect(pages.map((p) => p.pageInfo.hasNextPage)).toEqual([true, false]);

      // Filters hold across pages too.
      const successes = await allPages((after) => log(key, { status: 'SUCCESS', first: 4, after }));
      expect(successes.nodes).toHaveLength(12);
      expect(successes.nodes.every((n) => n.status === 'SUCCESS')).toBe(true);
    });
  });

  describe('the dashboard', () => {
    /** The scenario's figures per period: every operation in one period. */
    const scenarioPeriod = {
      sessionsCreated: 5,
      sessionsExpired: 0,
      starts: 5,
      // 12 successful + 3 garbage + 1 revoked.
      verifies: 16,
      // 2 successful + 1 forged.
      refreshes: 3,
      // revokeSession ×2 and revokeAllSessions ×1.
      revokes: 3,
      // start 5 + verify 12 + refresh 2 + revoke 2 + revoke_all 1 + set_value 1 + extend 1.
      successes: 24,
      // verify 4 + refresh 1 + set_value 1.
      failures: 6,
    };
    const scenarioTotals = {
      totalUsers: 3,
      activeUsers: 3,
      totalSessions: 5,
      activeSessions: 2,
      revokedSessions: 3,
      expiredSessions: 0,
      successes: 24,
      failures: 6,
      successRate: 24 / 30,
      errorRate: 6 / 30,
    };

    for (const groupBy of ['HOUR', 'DAY', 'WEEK', 'MONTH'] as const) {
      it(`grouped by ${groupBy}, the range containing now shows the scenario’s exact figures in one period`, async () => {
        const { from, to } = aroundNow();
        const d = await dashboard(key, tag, groupBy, from, to);
        expect(d).toMatchObject({
          from: from.toISOString(),
          to: to.toISOString(),
          groupBy,
          ...scenarioTotals,
        });
        expect(d.averageDurationMs).toBeGreaterThan(0);
        expect(d.periods).toHaveLength(1);
        const period = d.periods[0]!;
        expect(period).toMatchObject({
          start: periodStart(groupBy, marks.began),
          ...scenarioPeriod,
        });
        expect(period.averageDurationMs).toBeGreaterThan(0);
        expect(period.averageDurationMs).toBeCloseTo(d.averageDurationMs!, 9);
      });
    }

    it('grouped by HOUR, the one period starts at the current UTC hour', async () => {
      const { from, to } = aroundNow();
      const d = await dashboard(key, tag, 'HOUR', from, to);
      const hour = new Date();
      hour.setUTCMinutes(0, 0, 0);
      expect(d.periods.map((p) => p.start)).toEqual([hour.toISOString()]);
    });

    it('over a range that excludes now it shows no operations and no periods, but the same totals', async () => {
      for (const [from, to] of [
        [new Date(Date.now() - 10 * DAY_MS), new Date(Date.now() - 2 * DAY_MS)],
        [new Date(Date.now() + 2 * HOUR_MS), new Date(Date.now() + 3 * DAY_MS)],
      ] as const) {
        const d = await dashboard(key, tag, 'DAY', from, to);
        expect(d).toMatchObject({
          totalUsers: 3,
          activeUsers: 3,
          totalSessions: 5,
          activeSessions: 2,
          revokedSessions: 3,
          expiredSessions: 0,
          successes: 0,
          failures: 0,
          successRate: null,
          errorRate: null,
          averageDurationMs: null,
          periods: [],
        });
      }
    });

    it('a verify, successful or not, costs no log row but is counted: the dashboard has all 16, the log none', async () => {
      const { from, to } = aroundNow();
      const d = await dashboard(key, tag, 'HOUR', from, to);
      const logged = await log(key, { tag, operation: 'VERIFY' });
      expect(logged.totalCount).toBe(0);
      expect(d.periods[0]!.verifies).toBe(16);
    });
  });
});

describe('keyset pagination of users', () => {
  it('users seen within the same millisecond are each visited once, in both orders', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    for (const name of ['u1', 'u2', 'u3', 'u4']) await startFrom(key, tag, name, name);
    const productId = await productIdOf(product, tag);
    // Postgres keeps microseconds: u1..u3 in one millisecond, u4 a millisecond later.
    const seen: [string, string][] = [
      ['u1', '2026-01-05 10:00:00.123100+00'],
      ['u2', '2026-01-05 10:00:00.123400+00'],
      ['u3', '2026-01-05 10:00:00.123700+00'],
      ['u4', '2026-01-05 10:00:00.124200+00'],
    ];
    for (const [identifier, at] of seen) {
      await execute(
        sql`update session_users set last_seen_at = ${at}::timestamptz where product_id = ${productId} and tag = ${tag} and identifier = ${identifier}`,
      );
    }
    for (const [orderBy, order] of [
      ['LAST_SEEN_DESC', ['u4', 'u3', 'u2', 'u1']],
      ['LAST_SEEN_ASC', ['u1', 'u2', 'u3', 'u4']],
    ] as const) {
      expect((await users(key, tag, { orderBy })).edges.map((e) => e.node.identifier)).toEqual(
        order,
      );
      for (const first of [1, 2]) {
        const { nodes } = await allPages((after) => users(key, tag, { first, after, orderBy }));
        expect(
          nodes.map((n) => n.identifier),
          `${orderBy}, first: ${first}`,
        ).toEqual(order);
      }
    }
  });
});

describe('resilience of the recorder', () => {
  it('an operation whose tag the database cannot store does not stop the activity log and metrics', async () => {
    // Its own server: should the recorder jam, the other tests of this file must not share it.
    const own = await createTestApp();
    try {
      const product = await newProduct(own);
      const key = product.secret.dev;
      const tag = await newConfig(own, key);
      // Postgres text cannot hold a NUL character: the verify is refused before it runs.
      const bad = await failure(own.app, {
        key,
        query: VERIFY,
        variables: { tag: 'bad\u0000tag', token: 'garbage' },
      });
      expect(bad.code).toBe('BAD_USER_INPUT');
      const started = await start(own, key, tag);

      const entries = (await ok(own.app, { key, query: LOG, variables: { tag } })).activityLog;
      expect(
        entries.edges.map((e: { node: LogNode }) => [e.node.operation, e.node.sessionId]),
      ).toEqual([['START', started.sessionId]]);
      const { from, to } = aroundNow();
      const board = (
        await ok(own.app, {
          key,
          query: DASHBOARD,
          variables: { tag, groupBy: 'DAY', from: from.toISOString(), to: to.toISOString() },
        })
      ).sessionDashboard as Dashboard;
      expect(board.successes).toBe(1);
    } finally {
      await own.close();
    }
  });
});

describe('high-volume failures', () => {
  it('failed verifies, isSessionValid and failed refreshes, from parallel clients, are counted in the dashboard with no log row each', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const session = await start(t, key, tag);
    // Many clients at once, as an attacker trying tokens would: garbage, tampered and other
    // products' tokens, over verifySession and isSessionValid, and forged refresh tokens.
    const verifies = Array.from({ length: 120 }, (_, i) =>
      gql(t.app, {
        key,
        query: i % 2 ? VERIFY : IS_VALID,
        variables: { tag, token: i % 3 ? `garbage-${i}` : `${session.token}${i}` },
      }),
    );
    const refreshes = Array.from({ length: 40 }, () =>
      gql(t.app, { key, query: REFRESH, variables: { tag, refreshToken: forgedRefreshToken() } }),
    );
    const answers = await Promise.all([...verifies, ...refreshes]);
    answers.forEach((answer, i) => {
      // isSessionValid answers false for a token that does not verify.
      if (i < 120 && i % 2 === 0) expect(answer.data).toEqual({ isSessionValid: false });
      else
        expect(answer.errors?.[0]?.extensions?.code, JSON.stringify(answer)).toBe('TOKEN_INVALID');
    });
    // One successful verify too.
    await ok(t.app, { key, query: VERIFY, variables: { tag, token: session.token } });

    // The log (read after what is pending is written) has the start only.
    const entries = await log(key);
    expect(entries.edges.map((e) => e.node.operation)).toEqual(['START']);
    const rows = rowsOf<{ n: number }>(
      await t.database.db.execute(
        sql`select count(*)::int as n from activity_log a join products p on p.id = a.product_id where p.tag = ${product.tag}`,
      ),
    )[0]!.n;
    expect(rows).toBe(1);

    // The dashboard counts every one of them.
    const { from, to } = aroundNow();
    const board = await dashboard(key, tag, 'DAY', from, to);
    expect(board).toMatchObject({ successes: 2, failures: 160 });
    expect(board.periods).toEqual([
      expect.objectContaining({ starts: 1, verifies: 121, refreshes: 40 }),
    ]);
  });
});

describe('isolation', () => {
  it(
    'another product’s activity, and the same product’s other env’s, never shows up',
    async () => {
      await clearOfHourBoundary(90);
      const mine = await newProduct(t);
      const theirs = await newProduct(t);
      // Product-wide, so both envs of the product use it; the same tag in the other product.
      const tag = await newSharedConfig(t, mine.tag);
      await newConfig(t, theirs.secret.dev, { tag });
      const otherTag = await newConfig(t, mine.secret.dev);

      const dev = mine.secret.dev;
      const prd = mine.secret.prd;
      const other = theirs.secret.dev;

      // Mine, dev: alice once, a verify, a failed verify.
      const devAlice = await startFrom(dev, tag, 'alice', 'dev-alice');
      await verify(dev, tag, devAlice.token);
      expect(
        (await failure(t.app, { key: dev, query: VERIFY, variables: { tag, token: 'x' } })).code,
      ).toBe('TOKEN_INVALID');
      // Mine, dev, another tag: one start of someone else.
      await startFrom(dev, otherTag, 'zed', 'dev-zed');
      // Mine, prd: alice and bob; bob revoked.
      const prdAlice = await startFrom(prd, tag, 'alice', 'prd-alice');
      const prdBob = await startFrom(prd, tag, 'bob', 'prd-bob');
      await ok(t.app, { key: prd, query: REVOKE, variables: { tag, sessionId: prdBob.sessionId } });
      // Theirs, dev: alice three times, a refresh, a forged refresh.
      const theirAlice: Started[] = [];
      for (let i = 0; i < 3; i++)
        theirAlice.push(await startFrom(other, tag, 'alice', `their-${i}`));
      await ok(t.app, {
        key: other,
        query: REFRESH,
        variables: { tag, refreshToken: theirAlice[0]!.refreshToken },
      });
      await failure(t.app, {
        key: other,
        query: REFRESH,
        variables: { tag, refreshToken: forgedRefreshToken() },
      });

      // Users.
      const devUsers = await users(dev, tag);
      expect(devUsers.totalCount).toBe(1);
      expect(
        devUsers.edges.map((e) => [e.node.identifier, e.node.totalSessions, e.node.activeSessions]),
      ).toEqual([['alice', 1, 1]]);
      const prdUsers = await users(prd, tag);
      expect(
        prdUsers.edges.map((e) => [e.node.identifier, e.node.totalSessions, e.node.activeSessions]),
      ).toEqual([
        ['bob', 1, 0],
        ['alice', 1, 1],
      ]);
      const theirUsers = await users(other, tag);
      expect(
        theirUsers.edges.map((e) => [
          e.node.identifier,
          e.node.totalSessions,
          e.node.activeSessions,
        ]),
      ).toEqual([['alice', 3, 3]]);
      expect((await users(dev, otherTag)).edges.map((e) => e.node.identifier)).toEqual(['zed']);
      expect((await users(other, otherTag)).totalCount).toBe(0);

      // One user's history.
      expect((await user(dev, tag, 'alice'))!.sessions.edges.map((e) => e.node.id)).toEqual([
        devAlice.sessionId,
      ]);
      expect((await user(prd, tag, 'alice'))!.sessions.edges.map((e) => e.node.id)).toEqual([
        prdAlice.sessionId,
      ]);
      expect((await user(other, tag, 'alice'))!.sessions.totalCount).toBe(3);
      expect(await user(dev, tag, 'bob')).toBeNull();
      expect(await user(other, tag, 'bob')).toBeNull();

      // The log: every product and env its own.
      const devLog = await log(dev);
      expect(devLog.edges.map((e) => [e.node.operation, e.node.status, e.node.tag])).toEqual([
        ['START', 'SUCCESS', otherTag],
        ['START', 'SUCCESS', tag],
      ]);
      expect((await log(dev, { tag })).totalCount).toBe(1);
      const prdLog = await log(prd);
      expect(prdLog.edges.map((e) => [e.node.operation, e.node.sessionId])).toEqual([
        ['REVOKE', prdBob.sessionId],
        ['START', prdBob.sessionId],
        ['START', prdAlice.sessionId],
      ]);
      const theirLog = await log(other);
      expect(theirLog.totalCount).toBe(4);
      expect(theirLog.edges.map((e) => e.node.operation)).toEqual([
        'REFRESH',
        'START',
        'START',
        'START',
      ]);

      // The dashboard.
      const { from, to } = aroundNow();
      const devBoard = await dashboard(dev, tag, 'DAY', from, to);
      expect(devBoard).toMatchObject({
        totalUsers: 1,
        totalSessions: 1,
        activeSessions: 1,
        revokedSessions: 0,
        successes: 2,
        failures: 1,
      });
      expect(devBoard.periods).toEqual([
        expect.objectContaining({
          sessionsCreated: 1,
          starts: 1,
          verifies: 2,
          refreshes: 0,
          revokes: 0,
        }),
      ]);
      const prdBoard = await dashboard(prd, tag, 'DAY', from, to);
      expect(prdBoard).toMatchObject({
        totalUsers: 2,
        totalSessions: 2,
        activeSessions: 1,
        revokedSessions: 1,
        successes: 3,
        failures: 0,
      });
      expect(prdBoard.periods).toEqual([
        expect.objectContaining({ sessionsCreated: 2, starts: 2, verifies: 0, revokes: 1 }),
      ]);
      const theirBoard = await dashboard(other, tag, 'DAY', from, to);
      expect(theirBoard).toMatchObject({
        totalUsers: 1,
        totalSessions: 3,
        activeSessions: 3,
        successes: 4,
        failures: 1,
      });
      expect(theirBoard.periods).toEqual([
        expect.objectContaining({ sessionsCreated: 3, starts: 3, verifies: 0, refreshes: 2 }),
      ]);
      const otherTagBoard = await dashboard(dev, otherTag, 'DAY', from, to);
      expect(otherTagBoard).toMatchObject({ totalUsers: 1, totalSessions: 1, successes: 1 });
    },
    BOUNDARY_TIMEOUT,
  );

  it('the admin key reads any product and env it names, and sees only that one', async () => {
    const mine = await newProduct(t);
    const tag = await newSharedConfig(t, mine.tag);
    await startFrom(mine.secret.dev, tag, 'alice', 'dev');
    await startFrom(mine.secret.prd, tag, 'bob', 'prd');
    await startFrom(mine.secret.prd, tag, 'carol', 'prd');

    const asAdmin = async (env: string) =>
      (await ok(t.app, {
        key: t.adminKey,
        query: `query($product: String, $env: String, $tag: String!) {
            sessionUsers(product: $product, env: $env, tag: $tag) { totalCount edges { node { identifier } } }
            activityLog(product: $product, env: $env) { totalCount }
          }`,
        variables: { product: mine.tag, env, tag },
      })) as {
        sessionUsers: { totalCount: number; edges: { node: { identifier: string } }[] };
        activityLog: { totalCount: number };
      };
    const dev = await asAdmin('dev');
    expect(dev.sessionUsers.edges.map((e) => e.node.identifier)).toEqual(['alice']);
    expect(dev.activityLog.totalCount).toBe(1);
    const prd = await asAdmin('prd');
    expect(prd.sessionUsers.edges.map((e) => e.node.identifier)).toEqual(['carol', 'bob']);
    expect(prd.activityLog.totalCount).toBe(2);
  });
});

describe('sessions that run out', () => {
  it(
    'the sweep’s expiry shows in the period’s sessionsExpired and in expiredSessions',
    async () => {
      await clearOfHourBoundary(90);
      const product = await newProduct(t);
      const key = product.secret.dev;
      const tag = await newConfig(t, key);
      const goner = await startFrom(key, tag, 'alice', 'goner');
      await startFrom(key, tag, 'bob', 'stayer');

      const { from, to } = aroundNow();
      const before = await dashboard(key, tag, 'HOUR', from, to);
      expect(before).toMatchObject({ totalSessions: 2, activeSessions: 2, expiredSessions: 0 });
      expect(before.periods).toEqual([
        expect.objectContaining({ sessionsCreated: 2, sessionsExpired: 0 }),
      ]);

      await execute(
        sql`update sessions set refresh_expires_at = now() - interval '1 second' where id = ${goner.sessionId}`,
      );
      const result = await sweep();
      expect(result.expired).toBeGreaterThanOrEqual(1);

      const after = await dashboard(key, tag, 'HOUR', from, to);
      expect(after).toMatchObject({
        totalSessions: 2,
        activeSessions: 1,
        revokedSessions: 0,
        expiredSessions: 1,
        // Running out is not an operation: the rates are unchanged.
        successes: 2,
        failures: 0,
      });
      expect(after.periods).toEqual([
        expect.objectContaining({
          start: periodStart('HOUR', new Date()),
          sessionsCreated: 2,
          sessionsExpired: 1,
          starts: 2,
          successes: 2,
          failures: 0,
        }),
      ]);
      // Nor is it a log entry.
      expect((await log(key)).edges.map((e) => e.node.operation)).toEqual(['START', 'START']);
      expect((await user(key, tag, 'alice'))!.sessions.edges[0]!.node.status).toBe('EXPIRED');

      // A second sweep counts it no more.
      await sweep();
      expect((await dashboard(key, tag, 'HOUR', from, to)).periods[0]!.sessionsExpired).toBe(1);
    },
    BOUNDARY_TIMEOUT,
  );
});

describe('retention', () => {
  it(
    'the sweep prunes activity rows and rollups older than their retention and keeps newer ones',
    async () => {
      await clearOfHourBoundary(90);
      const product = await newProduct(t);
      const key = product.secret.dev;
      const tag = await newConfig(t, key);
      const old = await startFrom(key, tag, 'alice', 'old');
      const recent = await startFrom(key, tag, 'bob', 'recent');
      await verify(key, tag, recent.token);
      await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: old.sessionId } });
      // Reading the log writes what was recorded.
      expect((await log(key)).totalCount).toBe(3);
      const productId = await productIdOf(product, tag);

      // Log rows: one start three days old, the other one day old; the revoke stays now.
      await execute(
        sql`update activity_log set at = now() - interval '3 days' where product_id = ${productId} and session_id = ${old.sessionId} and operation = 'start'`,
      );
      await execute(
        sql`update activity_log set at = now() - interval '1 day' where product_id = ${productId} and session_id = ${recent.sessionId} and operation = 'start'`,
      );
      // Rollups: starts forty days old, verifies ten days old; the revoke stays in this hour.
      await execute(
        sql`update activity_rollups set hour = date_trunc('hour', now() - interval '40 days') where product_id = ${productId} and operation = 'start'`,
      );
      await execute(
        sql`update activity_rollups set hour = date_trunc('hour', now() - interval '10 days') where product_id = ${productId} and operation = 'verify'`,
      );

      const result = await sweep({
        activityRetentionSeconds: 2 * DAY,
        rollupRetentionSeconds: 30 * DAY,
      });
      expect(result.activityPruned).toBeGreaterThanOrEqual(1);

      const left = await log(key);
      expect(left.edges.map((e) => [e.node.operation, e.node.sessionId])).toEqual([
        ['REVOKE', old.sessionId],
        ['START', recent.sessionId],
      ]);
      const rollups = rowsOf<{ operation: string }>(
        await execute(
          sql`select operation from activity_rollups where product_id = ${productId} order by operation`,
        ),
      ).map((r) => r.operation);
      expect(rollups).toEqual(['revoke', 'verify']);

      const d = await dashboard(
        key,
        tag,
        'DAY',
        new Date(Date.now() - 90 * DAY_MS),
        new Date(Date.now() + HOUR_MS),
      );
      expect(d).toMatchObject({
        // The sessions themselves are not activity: still counted.
        totalUsers: 2,
        totalSessions: 2,
        revokedSessions: 1,
        successes: 2,
        failures: 0,
      });
      expect(d.periods.map((p) => [p.start, p.starts, p.verifies, p.revokes])).toEqual([
        [periodStart('DAY', new Date(Date.now() - 10 * DAY_MS)), 0, 1, 0],
        [periodStart('DAY', new Date()), 0, 0, 1],
      ]);
    },
    BOUNDARY_TIMEOUT,
  );

  it('without an activity retention the sweep keeps every activity row and rollup', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const s = await startFrom(key, tag, 'alice', 'kept');
    expect((await log(key)).totalCount).toBe(1);
    const productId = await productIdOf(product, tag);
    await execute(
      sql`update activity_log set at = now() - interval '400 days' where product_id = ${productId} and session_id = ${s.sessionId}`,
    );
    await execute(
      sql`update activity_rollups set hour = date_trunc('hour', now() - interval '400 days') where product_id = ${productId}`,
    );
    const result = await sweep();
    expect(result.activityPruned).toBe(0);
    expect((await log(key)).totalCount).toBe(1);
    const rollups = rowsOf<{ n: number | string }>(
      await execute(
        sql`select count(*) as n from activity_rollups where product_id = ${productId}`,
      ),
    );
    expect(Number(rollups[0]!.n)).toBe(1);
  });
});

describe('validation and access', () => {
  let product: TestProduct;
  let key: string;
  let tag: string;
  beforeAll(async () => {
    product = await newProduct(t);
    key = product.secret.dev;
    tag = await newConfig(t, key);
    await start(t, key, tag);
  });

  const dashboardCall = (k: string | undefined, from: Date, to: Date, groupBy = 'DAY') => ({
    key: k,
    query: DASHBOARD,
    variables: { tag, from: from.toISOString(), to: to.toISOString(), groupBy },
  });

  it('a dashboard whose `to` is not after `from` is BAD_USER_INPUT on to', async () => {
    const now = Date.now();
    for (const [from, to] of [
      [now, now - HOUR_MS],
      [now, now],
    ]) {
      const error = await failure(t.app, dashboardCall(key, new Date(from!), new Date(to!)));
      expect(error).toMatchObject({ code: 'BAD_USER_INPUT', field: 'to' });
      expect(error.message).toMatch(/from/);
    }
  });

  it('a dashboard range over 800 days is BAD_USER_INPUT, and exactly 800 days is fine', async () => {
    const to = new Date();
    const tooLong = await failure(
      t.app,
      dashboardCall(key, new Date(to.getTime() - 801 * DAY_MS), to),
    );
    expect(tooLong).toMatchObject({ code: 'BAD_USER_INPUT', field: 'to' });
    expect(tooLong.message).toMatch(/800 days/);
    const longest = await ok(
      t.app,
      dashboardCall(key, new Date(to.getTime() - 800 * DAY_MS), to, 'MONTH'),
    );
    expect(longest.sessionDashboard.totalSessions).toBe(1);
  });

  it('a dashboard with a groupBy that is not a period is refused before it runs', async () => {
    const { from, to } = aroundNow();
    const response = await gql(t.app, dashboardCall(key, from, to, 'YEAR'));
    expect(response.data ?? null).toBeNull();
    expect(response.errors).toHaveLength(1);
    expect(response.errors![0]!.message).toMatch(/YEAR/);
    expect(response.errors![0]!.message).toMatch(/DashboardGrouping/);
  });

  it('a cursor this API did not return is BAD_USER_INPUT on after, for every list', async () => {
    const cursor = (parts: unknown) => Buffer.from(JSON.stringify(parts)).toString('base64url');
    const now = new Date().toISOString();
    const malformed = ['garbage', cursor(['not-a-date', 'x']), cursor([1, 2]), cursor([now])];
    const cases: [string, Call, string[]][] = [
      ['sessionUsers', { key, query: USERS, variables: { tag } }, malformed],
      [
        'activityLog',
        { key, query: LOG, variables: {} },
        [...malformed, cursor([now, 'not-a-number'])],
      ],
      [
        'sessionUser.sessions',
        { key, query: USER, variables: { tag, identifier: 'user-123', first: 1 } },
        [...malformed, cursor([now, 'not-a-uuid'])],
      ],
    ];
    for (const [name, call, cursors] of cases) {
      for (const after of cursors) {
        const error = await failure(t.app, { ...call, variables: { ...call.variables, after } });
        expect(error, `${name} after=${after}`).toMatchObject({
          code: 'BAD_USER_INPUT',
          field: 'after',
        });
      }
    }
  });

  it('a page size over 100 or under 0 is BAD_USER_INPUT on first, and 100 is fine', async () => {
    for (const first of [101, -1]) {
      expect(await failure(t.app, { key, query: USERS, variables: { tag, first } })).toMatchObject({
        code: 'BAD_USER_INPUT',
        field: 'first',
      });
      expect(await failure(t.app, { key, query: LOG, variables: { first } })).toMatchObject({
        code: 'BAD_USER_INPUT',
        field: 'first',
      });
      expect(
        await failure(t.app, {
          key,
          query: USER,
          variables: { tag, identifier: 'user-123', first },
        }),
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
    }
    expect((await users(key, tag, { first: 100 })).totalCount).toBe(1);
    expect((await log(key, { first: 100 })).totalCount).toBe(1);
  });

  const calls = (k: string | undefined) => {
    const { from, to } = aroundNow();
    return [
      { key: k, query: USERS, variables: { tag } },
      { key: k, query: USER, variables: { tag, identifier: 'user-123' } },
      { key: k, query: LOG, variables: {} },
      dashboardCall(k, from, to),
    ];
  };

  it('a publishable key is FORBIDDEN on every insight query', async () => {
    for (const call of calls(product.publishable)) {
      expect((await failure(t.app, call)).code, call.query).toBe('FORBIDDEN');
    }
  });

  it('a request without a key is UNAUTHENTICATED on every insight query', async () => {
    for (const call of calls(undefined)) {
      expect((await failure(t.app, call)).code, call.query).toBe('UNAUTHENTICATED');
    }
  });

  it('another product’s secret key sees nothing of this product', async () => {
    const stranger = await newProduct(t);
    expect((await users(stranger.secret.dev, tag)).totalCount).toBe(0);
    expect((await log(stranger.secret.dev)).totalCount).toBe(0);
    expect(await user(stranger.secret.dev, tag, 'user-123')).toBeNull();
  });
});

describe('batching', () => {
  const PAGE = `query($tag: String!) {
    sessionUsers(tag: $tag, first: 50) { edges { node { identifier activeSessions } } }
  }`;

  async function productWithUsers(n: number) {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    for (let i = 0; i < n; i++) await startFrom(key, tag, `user-${i}`, `u${i}`);
    return { key, tag };
  }

  /** The SQL statements one request sends, with nothing else running. */
  async function statementsOf(key: string, tag: string) {
    // Write what the recorder holds now, so that no timed flush runs during the request.
    await t.services.activity.flush();
    // A first request warms whatever the key's lookup caches.
    await ok(t.app, { key, query: PAGE, variables: { tag } });
    await t.services.activity.flush();
    t.statements.length = 0;
    const data = await ok(t.app, { key, query: PAGE, variables: { tag } });
    const sent = [...t.statements];
    return { sent, nodes: data.sessionUsers.edges.map((e: { node: UserNode }) => e.node) };
  }

  it('sessionUsers costs as many SQL statements for 50 users’ activeSessions as for 5', async () => {
    const few = await productWithUsers(5);
    const many = await productWithUsers(50);
    const small = await statementsOf(few.key, few.tag);
    const large = await statementsOf(many.key, many.tag);
    expect(small.nodes).toHaveLength(5);
    expect(large.nodes).toHaveLength(50);
    expect(large.nodes.every((n: UserNode) => n.activeSessions === 1)).toBe(true);
    expect(large.sent.length, large.sent.join('\n')).toBe(small.sent.length);
    // One query for the page and one for all the active counts, besides the caller's lookup.
    expect(large.sent.filter((q) => /from "sessions"/.test(q))).toHaveLength(1);
  });
});

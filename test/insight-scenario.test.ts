import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { failure, ok } from './support/graphql.js';
import {
  REFRESH,
  REVOKE,
  VERIFY,
  newConfig,
  newProduct,
  type Started,
  type TestProduct,
} from './support/fixtures.js';
import {
  bindInsightApp,
  LOG,
  HOUR_MS,
  DAY_MS,
  execute,
  IS_VALID,
  REVOKE_ALL,
  SET_VALUE,
  EXTEND,
  users,
  user,
  log,
  dashboard,
  aroundNow,
  periodStart,
  BOUNDARY_TIMEOUT,
  clearOfHourBoundary,
  allPages,
  userAgentOf,
  startFrom,
  verify,
  forgedRefreshToken,
  productIdOf,
  tick,
  type Expected,
} from './support/insight.js';

/** The file's app (the `t` fixture), for the tests and the shared helpers. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
  bindInsightApp(app);
});

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
      // Another config of the product, with no activity yet: nothing.
      expect((await log(key, { tag: await newConfig(t, key) })).totalCount).toBe(0);
      // A tag that names no config is NOT_FOUND, not an empty log.
      expect(
        (await failure(t.app, { key, query: LOG, variables: { tag: `${tag}-other` } })).code,
      ).toBe('NOT_FOUND');
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

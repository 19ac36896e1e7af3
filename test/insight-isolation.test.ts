import { expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { failure, ok } from './support/graphql.js';
import {
  REFRESH,
  REVOKE,
  VERIFY,
  newConfig,
  newSharedConfig,
  newProduct,
  type Started,
} from './support/fixtures.js';
import {
  bindInsightApp,
  USERS,
  users,
  user,
  log,
  dashboard,
  aroundNow,
  BOUNDARY_TIMEOUT,
  clearOfHourBoundary,
  startFrom,
  verify,
  forgedRefreshToken,
} from './support/insight.js';

/** The file's app (the `t` fixture), for the tests and the shared helpers. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
  bindInsightApp(app);
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
      // A tag only this product has names nothing in the other: NOT_FOUND, not an empty list.
      expect(
        (await failure(t.app, { key: other, query: USERS, variables: { tag: otherTag } })).code,
      ).toBe('NOT_FOUND');

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

import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { failure, gql, ok } from './support/graphql.js';
import { REFRESH, VERIFY, newConfig, newProduct, rowsOf, start } from './support/fixtures.js';
import {
  bindInsightApp,
  LOG,
  DASHBOARD,
  IS_VALID,
  type UserNode,
  type LogNode,
  type Dashboard,
  log,
  dashboard,
  aroundNow,
  startFrom,
  forgedRefreshToken,
} from './support/insight.js';

/** The file's app (the `t` fixture), for the tests and the shared helpers. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
  bindInsightApp(app);
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

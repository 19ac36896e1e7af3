import { expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { failure, gql, ok, type Call } from './support/graphql.js';
import { newConfig, newProduct, start, type TestProduct } from './support/fixtures.js';
import {
  bindInsightApp,
  HOUR_MS,
  DAY_MS,
  USERS,
  USER,
  LOG,
  DASHBOARD,
  users,
  log,
  aroundNow,
} from './support/insight.js';

/** The file's app (the `t` fixture), for the tests and the shared helpers. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
  bindInsightApp(app);
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
    // The tag names no config of the stranger's product: NOT_FOUND, as for any unknown tag.
    for (const call of [
      { query: USERS, variables: { tag } },
      { query: USER, variables: { tag, identifier: 'user-123' } },
      { query: LOG, variables: { tag } },
    ]) {
      const answer = await gql(t.app, { key: stranger.secret.dev, ...call });
      expect(answer.errors?.[0]?.extensions, call.query).toMatchObject({ code: 'NOT_FOUND', tag });
    }
    expect((await log(stranger.secret.dev)).totalCount).toBe(0);
  });
});

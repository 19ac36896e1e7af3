import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { ok } from './support/graphql.js';
import { REVOKE, newConfig, newProduct, rowsOf } from './support/fixtures.js';
import {
  bindInsightApp,
  HOUR_MS,
  DAY_MS,
  DAY,
  sweep,
  execute,
  user,
  log,
  dashboard,
  aroundNow,
  periodStart,
  BOUNDARY_TIMEOUT,
  clearOfHourBoundary,
  startFrom,
  verify,
  productIdOf,
} from './support/insight.js';

/** The file's app (the `t` fixture), for the tests and the shared helpers. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
  bindInsightApp(app);
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

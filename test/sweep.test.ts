import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import { openDatabase } from '../src/db/client.js';
import { sweepOnce, type SweepOptions, type SweepResult } from '../src/domain/sweep.js';
import { TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { describe, it, test } from './support/test.js';
import { failure, gql, ok } from './support/graphql.js';
import {
  REFRESH,
  REVOKE,
  VERIFY,
  configIdsOf,
  eventTypesOf,
  newConfig,
  newProduct,
  rowsOf,
  sessionRowOf,
  start,
  type Started,
} from './support/fixtures.js';

/*
 * Every sweep works on the whole database, and on Postgres the other test files share it while
 * they run. So these tests never sweep with a retention of 0 (that would delete the sessions
 * other files have just revoked): an ended session is made old enough with SQL instead, and the
 * retention is an hour. Likewise events are pruned only past a month.
 */
const HOUR = 3_600;
const MONTH = 30 * 86_400;

const sweep = (
  t: TestApp,
  options: Partial<SweepOptions> = {},
  db = t.database.db,
): Promise<SweepResult> =>
  sweepOnce(db, {
    retentionSeconds: HOUR,
    eventRetentionSeconds: MONTH,
    batchSize: 1_000,
    ...options,
  });

const execute = (t: TestApp, query: ReturnType<typeof sql>) => t.database.db.execute(query);

const SESSION = `query($id: ID!) { session(id: $id) { id status expiresAt lastActiveAt revokedAt revokeReason } }`;

async function sessionById(t: TestApp, key: string, id: string) {
  return (await ok(t.app, { key, query: SESSION, variables: { id } })).session;
}

async function setup(t: TestApp, configOverrides: Record<string, unknown> = {}) {
  const product = await newProduct(t);
  const key = product.secret.dev;
  const tag = await newConfig(t, key, configOverrides);
  return { product, key, tag };
}

/** Past its refresh token's expiry: nothing can revive it, and the sweep should find it. */
const runOut = (t: TestApp, sessionId: string) =>
  execute(
    t,
    sql`update sessions set expires_at = now() - interval '2 minutes', refresh_expires_at = now() - interval '1 minute' where id = ${sessionId}`,
  );

/** Moves a session's end (revocation and sweep mark) back past the one-hour retention. */
const endedLongAgo = (t: TestApp, where: ReturnType<typeof sql>) =>
  execute(
    t,
    sql`update sessions set revoked_at = case when revoked_at is null then null else now() - interval '2 hours' end,
               expired_at = case when expired_at is null then null else now() - interval '2 hours' end
        where ${where}`,
  );

async function expiredAtOf(t: TestApp, sessionId: string): Promise<string | null | undefined> {
  const row = await sessionRowOf(t, sessionId);
  return row ? (row.expired_at as string | null) : undefined;
}

async function refreshTokenCount(t: TestApp, sessionId: string): Promise<number> {
  const rows = rowsOf<{ n: number | string }>(
    await execute(t, sql`select count(*) as n from refresh_tokens where session_id = ${sessionId}`),
  );
  return Number(rows[0]!.n);
}

/** Inserts `count` sessions of a config that ran out a day ago, straight into the table. */
const INSERT_CHUNK = 10_000;

async function insertRunOutSessions(
  t: TestApp,
  productTag: string,
  tag: string,
  count: number,
): Promise<{ productId: string; configId: string }> {
  const ids = await configIdsOf(t, productTag, tag);
  // In statements of at most 10,000 rows: each stays well within the database handle's
  // per-statement deadline (5 s) on a busy machine, where 100,000 in one did not.
  for (let from = 1; from <= count; from += INSERT_CHUNK) {
    const to = Math.min(count, from + INSERT_CHUNK - 1);
    await execute(
      t,
      sql`
      insert into sessions (id, product_id, env, config_id, tag, identifier, data_enc,
                            token_lifetime_seconds, created_at, last_active_at, expires_at, refresh_expires_at)
      select gen_random_uuid(), ${ids.productId}::uuid, 'dev', ${ids.configId}::uuid, ${tag},
             'ghost-' || g, 'never-decrypted', 3600,
             now() - interval '3 days', now() - interval '2 days',
             now() - interval '2 days', now() - interval '1 day'
      from generate_series(${from}::int, ${to}::int) as g`,
    );
  }
  return ids;
}

/** Per product: how many sessions are left, and how their EXPIRED events are spread. */
async function expiryCensus(t: TestApp, productId: string) {
  const rows = rowsOf<Record<string, number | string>>(
    await execute(
      t,
      sql`
      select count(*) as sessions,
             count(*) filter (where c.expired_at is not null) as marked,
             count(*) filter (where c.n = 1) as once,
             count(*) filter (where c.n > 1) as more
      from (
        -- Counted in one pass over the product's events (no index leads with session_id).
        select s.id, s.expired_at, coalesce(e.n, 0) as n
        from sessions s
        left join (
          select session_id, count(*) as n from session_events
          where product_id = ${productId}::uuid and type = 'EXPIRED'
          group by session_id
        ) e on e.session_id = s.id
        where s.product_id = ${productId}::uuid
      ) c`,
    ),
  );
  const events = rowsOf<{ n: number | string }>(
    await execute(
      t,
      sql`select count(*) as n from session_events where product_id = ${productId}::uuid and type = 'EXPIRED'`,
    ),
  );
  const r = rows[0]!;
  return {
    sessions: Number(r.sessions),
    marked: Number(r.marked),
    once: Number(r.once),
    more: Number(r.more),
    expiredEvents: Number(events[0]!.n),
  };
}

// Set-up and checks read or write 100,000 rows in one statement: past the server's 5 s statement
// deadline on a busy machine (it failed a CI run with DATABASE_DEADLINE). The sweep's own
// statements are batches of 1,000.
test.override('appOptions', { statementTimeoutMs: 60_000 });

describe('the sweep', () => {
  it('marks a session past its refresh expiry once with an EXPIRED event, and deletes it with its refresh tokens after the retention period', async ({
    t,
  }) => {
    const { key, tag } = await setup(t);
    const gone = await start(t, key, tag);
    await runOut(t, gone.sessionId);
    expect(await refreshTokenCount(t, gone.sessionId)).toBe(1);

    const first = await sweep(t);
    expect(first.expired).toBeGreaterThanOrEqual(1);
    expect(await expiredAtOf(t, gone.sessionId)).toEqual(expect.any(String));
    expect(await eventTypesOf(t, gone.sessionId)).toEqual(['STARTED', 'EXPIRED']);
    // Within the retention period it is still there, EXPIRED.
    expect((await sessionById(t, key, gone.sessionId)).status).toBe('EXPIRED');
    const event = rowsOf<{ reason: string | null; tag: string; identifier: string }>(
      await execute(
        t,
        sql`select reason, tag, identifier from session_events where session_id = ${gone.sessionId} and type = 'EXPIRED'`,
      ),
    );
    expect(event).toEqual([{ reason: expect.any(String), tag, identifier: 'user-123' }]);

    // A second pass writes no second event.
    await sweep(t);
    expect(await eventTypesOf(t, gone.sessionId)).toEqual(['STARTED', 'EXPIRED']);
    expect(await sessionRowOf(t, gone.sessionId)).toBeDefined();

    // Past the retention period it is deleted, its refresh tokens with it; its events stay.
    await endedLongAgo(t, sql`id = ${gone.sessionId}`);
    const last = await sweep(t);
    expect(last.deleted).toBeGreaterThanOrEqual(1);
    expect(await sessionRowOf(t, gone.sessionId)).toBeUndefined();
    expect(await refreshTokenCount(t, gone.sessionId)).toBe(0);
    expect(await sessionById(t, key, gone.sessionId)).toBeNull();
    expect(await eventTypesOf(t, gone.sessionId)).toEqual(['STARTED', 'EXPIRED']);
    // Its tokens now fail as tokens of nothing.
    expect(
      await failure(t.app, { key, query: VERIFY, variables: { tag, token: gone.token } }),
    ).toMatchObject({ code: 'TOKEN_INVALID' });
    expect(
      await failure(t.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken: gone.refreshToken },
      }),
    ).toMatchObject({ code: 'TOKEN_INVALID' });
  });

  it('marks a session idle past its config’s idle timeout with one EXPIRED event', async ({
    t,
  }) => {
    const { key, tag } = await setup(t, { idleTimeout: 10 });
    const idle = await start(t, key, tag);
    const active = await start(t, key, tag);
    await execute(
      t,
      sql`update sessions set last_active_at = now() - interval '1 hour' where id = ${idle.sessionId}`,
    );
    await sweep(t);
    expect(await expiredAtOf(t, idle.sessionId)).toEqual(expect.any(String));
    expect(await eventTypesOf(t, idle.sessionId)).toEqual(['STARTED', 'EXPIRED']);
    expect(await expiredAtOf(t, active.sessionId)).toBeNull();
    expect(await eventTypesOf(t, active.sessionId)).toEqual(['STARTED']);
    await sweep(t);
    expect(await eventTypesOf(t, idle.sessionId)).toEqual(['STARTED', 'EXPIRED']);
  });

  it('deletes a revoked session once it is past the retention period, and keeps a just-revoked one', async ({
    t,
  }) => {
    const { key, tag } = await setup(t);
    const old = await start(t, key, tag);
    const recent = await start(t, key, tag);
    for (const s of [old, recent]) {
      await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: s.sessionId } });
    }
    await endedLongAgo(t, sql`id = ${old.sessionId}`);

    await sweep(t);
    expect(await sessionRowOf(t, old.sessionId)).toBeUndefined();
    expect(await refreshTokenCount(t, old.sessionId)).toBe(0);
    expect(await sessionById(t, key, recent.sessionId)).toMatchObject({
      status: 'REVOKED',
      revokeReason: 'revoked',
    });
    // A revoked session is not "expired": no EXPIRED event for either.
    expect(await eventTypesOf(t, old.sessionId)).toEqual(['STARTED', 'REVOKED']);
    expect(await eventTypesOf(t, recent.sessionId)).toEqual(['STARTED', 'REVOKED']);
    // A longer retention keeps it as well.
    await sweep(t, { retentionSeconds: 7 * 86_400 });
    expect(await sessionRowOf(t, recent.sessionId)).toBeDefined();
  });

  it('never touches a live session, however old, idle-configured or past its token expiry', async ({
    t,
  }) => {
    const { key, tag } = await setup(t);
    const idleProduct = await setup(t, { idleTimeout: 600 });
    const plain = await start(t, key, tag);
    const old = await start(t, key, tag);
    const tokenExpired = await start(t, key, tag);
    const idleConfigured = await start(t, idleProduct.key, idleProduct.tag);
    // Started a month ago, unused for a week: still refreshable, so still live.
    await execute(
      t,
      sql`update sessions set created_at = now() - interval '30 days', last_active_at = now() - interval '7 days' where id = ${old.sessionId}`,
    );
    await execute(
      t,
      sql`update sessions set expires_at = now() - interval '3 hours' where id = ${tokenExpired.sessionId}`,
    );
    await execute(
      t,
      sql`update sessions set last_active_at = now() - interval '5 minutes' where id = ${idleConfigured.sessionId}`,
    );
    const live = [plain, old, tokenExpired, idleConfigured];
    const before = await Promise.all(live.map((s) => sessionRowOf(t, s.sessionId)));
    const eventsBefore = await Promise.all(live.map((s) => eventTypesOf(t, s.sessionId)));

    await sweep(t);
    await sweep(t, { batchSize: 1 });

    expect(await Promise.all(live.map((s) => sessionRowOf(t, s.sessionId)))).toEqual(before);
    expect(await Promise.all(live.map((s) => eventTypesOf(t, s.sessionId)))).toEqual(eventsBefore);
    for (const s of [plain, old]) {
      expect(
        (await ok(t.app, { key, query: VERIFY, variables: { tag, token: s.token } })).verifySession
          .sessionId,
      ).toBe(s.sessionId);
    }
    expect(
      (
        await ok(t.app, {
          key: idleProduct.key,
          query: VERIFY,
          variables: { tag: idleProduct.tag, token: idleConfigured.token },
        })
      ).verifySession.sessionId,
    ).toBe(idleConfigured.sessionId);
    // The one whose token ran out refreshes as before.
    const refreshed = await ok(t.app, {
      key,
      query: REFRESH,
      variables: { tag, refreshToken: tokenExpired.refreshToken },
    });
    expect(refreshed.refreshSession.sessionId).toBe(tokenExpired.sessionId);
  });

  it('prunes events older than eventRetentionSeconds and keeps newer ones', async ({ t }) => {
    const { key, tag } = await setup(t);
    const s = await start(t, key, tag);
    for (let i = 0; i < 3; i++) {
      await ok(t.app, {
        key,
        query: `mutation($tag: String!, $sessionId: ID!, $value: JSON!) { setSessionValue(tag: $tag, sessionId: $sessionId, key: "step", value: $value) { version } }`,
        variables: { tag, sessionId: s.sessionId, value: i },
      });
    }
    const ids = rowsOf<{ id: number | string }>(
      await execute(
        t,
        sql`select id from session_events where session_id = ${s.sessionId} order by id`,
      ),
    ).map((r) => Number(r.id));
    expect(ids).toHaveLength(4);
    const age = (days: number, id: number) =>
      execute(
        t,
        sql`update session_events set at = now() - make_interval(days => ${days}::int) where id = ${id}`,
      );
    await age(40, ids[0]!);
    await age(31, ids[1]!);
    await age(29, ids[2]!);

    const result = await sweep(t, { eventRetentionSeconds: MONTH });
    expect(result.eventsPruned).toBeGreaterThanOrEqual(2);
    const left = rowsOf<{ id: number | string }>(
      await execute(
        t,
        sql`select id from session_events where session_id = ${s.sessionId} order by id`,
      ),
    ).map((r) => Number(r.id));
    expect(left).toEqual([ids[2], ids[3]]);
    // Pruning events leaves the session itself alone.
    expect((await sessionById(t, key, s.sessionId)).status).toBe('ACTIVE');
  });

  it('two sweeps running at once on one database handle expire each session exactly once', async ({
    t,
  }) => {
    const { product, tag } = await setup(t);
    const { productId } = await insertRunOutSessions(t, product.tag, tag, 500);

    const results = await Promise.all([sweep(t, { batchSize: 20 }), sweep(t, { batchSize: 20 })]);
    expect(results[0]!.expired + results[1]!.expired).toBeGreaterThanOrEqual(500);
    expect(await expiryCensus(t, productId)).toEqual({
      sessions: 500,
      marked: 500,
      once: 500,
      more: 0,
      expiredEvents: 500,
    });

    // Deleting at once is just as safe.
    await endedLongAgo(t, sql`product_id = ${productId}::uuid`);
    const deleting = await Promise.all([sweep(t, { batchSize: 20 }), sweep(t, { batchSize: 20 })]);
    expect(deleting[0]!.deleted + deleting[1]!.deleted).toBeGreaterThanOrEqual(500);
    expect((await expiryCensus(t, productId)).sessions).toBe(0);
  });

  it.runIf(TEST_DATABASE_URL)(
    'sweeps on two separate database handles (two instances) expire each session exactly once',
    async ({ t }) => {
      const { product, tag } = await setup(t);
      const { productId } = await insertRunOutSessions(t, product.tag, tag, 1_000);
      const handles = await Promise.all([
        openDatabase({ databaseUrl: TEST_DATABASE_URL, maxConnections: 2 }),
        openDatabase({ databaseUrl: TEST_DATABASE_URL, maxConnections: 2 }),
      ]);
      try {
        const results = await Promise.all(
          handles.flatMap((h) => [
            sweep(t, { batchSize: 25 }, h.db),
            sweep(t, { batchSize: 25 }, h.db),
          ]),
        );
        // Between them they expired every session (and the other files' due ones, if any).
        expect(results.reduce((sum, r) => sum + r.expired, 0)).toBeGreaterThanOrEqual(1_000);
        expect(await expiryCensus(t, productId)).toEqual({
          sessions: 1_000,
          marked: 1_000,
          once: 1_000,
          more: 0,
          expiredEvents: 1_000,
        });

        await endedLongAgo(t, sql`product_id = ${productId}::uuid`);
        await Promise.all(handles.map((h) => sweep(t, { batchSize: 25 }, h.db)));
        expect((await expiryCensus(t, productId)).sessions).toBe(0);
      } finally {
        await Promise.all(handles.map((h) => h.close()));
      }
    },
  );

  // A liveness bound, not a timing claim: on a busy machine the insert alone took 60 s.
  it('sweeps 100,000 expired sessions while verify traffic runs: every verify answers and no live session is touched', async ({
    t,
  }) => {
    const { product, key, tag } = await setup(t);
    const live: Started[] = [];
    for (let i = 0; i < 20; i++) {
      live.push(
        await start(t, key, tag, {
          userId: `live-${i}`,
          details: { username: `live-${i}`, email: `live-${i}@example.com` },
        }),
      );
    }
    const insertStarted = Date.now();
    const { productId } = await insertRunOutSessions(t, product.tag, tag, 100_000);
    console.log(`inserted 100,000 run-out sessions in ${Date.now() - insertStarted} ms`);
    const liveBefore = await Promise.all(live.map((s) => sessionRowOf(t, s.sessionId)));

    /**
     * Verifies the live sessions in turn, one call after another, until `work` settles (and at
     * least once each); returns what the calls saw and how long `work` took.
     */
    async function whileVerifying<T>(work: Promise<T>) {
      const began = Date.now();
      let settledAt: number | null = null;
      const settled = work.finally(() => {
        settledAt = Date.now();
      });
      const calls: { ms: number; beforeSettled: boolean }[] = [];
      const failures: unknown[] = [];
      const traffic = (async () => {
        for (let i = 0; settledAt === null || i < live.length; i++) {
          const s = live[i % live.length]!;
          const callBegan = Date.now();
          const response = await gql<{ verifySession: { sessionId: string } }>(t.app, {
            key,
            query: VERIFY,
            variables: { tag, token: s.token },
          });
          calls.push({ ms: Date.now() - callBegan, beforeSettled: settledAt === null });
          if (response.errors || response.data?.verifySession.sessionId !== s.sessionId) {
            failures.push(response.errors ?? response.data);
          }
        }
      })();
      const [result] = await Promise.all([settled, traffic]);
      return {
        result,
        workMs: settledAt! - began,
        calls: calls.length,
        answeredDuring: calls.filter((c) => c.beforeSettled).length,
        slowestMs: Math.max(...calls.map((c) => c.ms)),
        failures,
      };
    }
    const report = (pass: string, r: Awaited<ReturnType<typeof whileVerifying>>) =>
      console.log(
        `sweep ${pass}: ${r.workMs} ms; ${r.calls} verify calls, ${r.answeredDuring} answered while it ran, slowest ${r.slowestMs} ms`,
      );

    const marking = await whileVerifying(sweep(t, { batchSize: 1_000 }));
    report('pass 1 (mark 100,000 expired, with their events)', marking);
    expect(marking.failures).toEqual([]);
    expect(marking.calls).toBeGreaterThanOrEqual(live.length);
    // The sweep does not block requests: verify keeps answering while it runs, and no call
    // waits for anything like the whole sweep.
    expect.soft(marking.answeredDuring).toBeGreaterThanOrEqual(5);
    expect.soft(marking.slowestMs).toBeLessThan(Math.max(2_000, marking.workMs / 5));
    expect(marking.result.expired).toBeGreaterThanOrEqual(100_000);
    expect(await expiryCensus(t, productId)).toEqual({
      sessions: 100_020,
      marked: 100_000,
      once: 100_000,
      more: 0,
      expiredEvents: 100_000,
    });

    await endedLongAgo(t, sql`product_id = ${productId}::uuid and expired_at is not null`);
    const deleting = await whileVerifying(sweep(t, { batchSize: 1_000 }));
    report('pass 2 (delete 100,000)', deleting);
    expect(deleting.failures).toEqual([]);
    expect.soft(deleting.slowestMs).toBeLessThan(Math.max(2_000, deleting.workMs / 5));
    expect(deleting.result.deleted).toBeGreaterThanOrEqual(100_000);

    // Only the live sessions are left, exactly as they were, and still ACTIVE.
    const census = await expiryCensus(t, productId);
    expect(census).toMatchObject({ sessions: 20, marked: 0, expiredEvents: 100_000 });
    const liveAfter = await Promise.all(live.map((s) => sessionRowOf(t, s.sessionId)));
    // Verify may have recorded activity (last_active_at); nothing else may differ.
    const withoutActivity = (rows: (Record<string, unknown> | undefined)[]) =>
      rows.map((r) => ({ ...r, last_active_at: undefined }));
    expect(withoutActivity(liveAfter)).toEqual(withoutActivity(liveBefore));
    for (const s of live) {
      expect((await sessionById(t, key, s.sessionId)).status).toBe('ACTIVE');
      expect(await eventTypesOf(t, s.sessionId)).toEqual(['STARTED']);
    }

    // Not for isolation (the product is this test's own) but for volume: on Postgres the
    // database outlives the run, and 100,000 events per run need not pile up in it.
    // (Sessions, their events and users name their product without a foreign key: deleted
    // each, and the refresh tokens with their sessions.)
    for (const table of ['session_events', 'sessions', 'session_users', 'products']) {
      const column = table === 'products' ? 'id' : 'product_id';
      await execute(
        t,
        sql`delete from ${sql.identifier(table)} where ${sql.identifier(column)} = ${productId}::uuid`,
      );
    }
  }, 600_000);
});

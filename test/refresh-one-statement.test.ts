import { sql } from 'drizzle-orm';
import { expect, vi } from 'vitest';
import { hashSecret, randomSecret } from '../src/tokens/secrets.js';
import { describe, it, test } from './support/test.js';
import { TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { gql, ok } from './support/graphql.js';
import {
  REFRESH,
  configIdsOf,
  eventTypesOf,
  newConfig,
  rowsOf,
  start,
  type Started,
} from './support/fixtures.js';
import { START } from './support/documents.js';

/**
 * Refresh in one statement (issue #14): the instance that issued a pair keeps what minting the
 * next one needs, and refreshes it with one conditional statement, no read. Whenever the session,
 * its token or its config changed since (here or on another instance), that statement rotates
 * nothing and the refresh answers through the read path, exactly as without the snapshot: each
 * case below refreshes a session this instance issued (snapshot) beside one issued by another
 * instance (no snapshot here), after the same change, and expects the same answer.
 */

/** Every instance of the file holds the same secret, as a fleet's instances must. */
const sessionSecret = randomSecret(48);
test.override('appOptions', { sessionSecret });

const VERIFY = `query($tag: String!, $token: String!) {
  verifySession(tag: $tag, token: $token) { sessionId identifier data version authenticatedAt actor expiresAt }
}`;
const SESSION = `query($id: ID!) {
  session(id: $id) { id status expiresAt refreshExpiresAt authenticatedAt device { userAgent ip } deviceHistory { userAgent ip } }
}`;
const REFRESH_DEVICE = `mutation($tag: String!, $refreshToken: String!, $device: DeviceInput) {
  refreshSession(tag: $tag, refreshToken: $refreshToken, device: $device) { token refreshToken sessionId expiresAt }
}`;
const UPDATE_DATA = `mutation($tag: String!, $sessionId: ID!, $data: JSON!) {
  updateSessionData(tag: $tag, sessionId: $sessionId, data: $data) { id }
}`;
const MARK_FRESH = `mutation($tag: String!, $sessionId: ID!) { markSessionFresh(tag: $tag, sessionId: $sessionId) { id } }`;
const REVOKE = `mutation($tag: String!, $sessionId: ID!) { revokeSession(tag: $tag, sessionId: $sessionId) { id } }`;
const REVOKE_USER = `mutation($identifier: String!) { revokeUserSessions(identifier: $identifier) { count } }`;
const NOT_BEFORE = `mutation($tag: String) { revokeSessionsStartedBefore(tag: $tag) { count } }`;
const UPDATE_CONFIG = `mutation($tag: String!, $input: UpdateSessionConfigInput!) { updateSessionConfig(tag: $tag, input: $input) { tag } }`;
const DELETE_CONFIG = `mutation($tag: String!) { deleteSessionConfig(tag: $tag) }`;

const user = (userId: string) => ({
  userId,
  details: { username: userId, email: `${userId}@example.com` },
});

type Answer =
  | { ok: true; pair: Started }
  | { ok: false; code: string | undefined; reason: unknown; message: string | undefined };

async function refreshOn(
  app: TestApp,
  key: string,
  tag: string,
  refreshToken: string,
  device?: { userAgent?: string; ip?: string },
): Promise<Answer> {
  const r = await gql<{ refreshSession: Started }>(app.app, {
    key,
    query: device ? REFRESH_DEVICE : REFRESH,
    variables: { tag, refreshToken, ...(device ? { device } : {}) },
  });
  if (r.data?.refreshSession) return { ok: true, pair: r.data.refreshSession };
  const error = r.errors?.[0];
  return {
    ok: false,
    code: error?.extensions?.code as string | undefined,
    reason: error?.extensions?.reason,
    message: error?.message,
  };
}

/** What `app` sent to the database for `run` (the activity log's own writes left out). */
async function statementsOf<T>(
  app: TestApp,
  run: () => Promise<T>,
): Promise<{ result: T; statements: string[] }> {
  await app.services.activity.flush();
  app.statements.length = 0;
  const result = await run();
  const statements = app.statements.filter((s) => !/activity_(log|rollups)/.test(s));
  return { result, statements };
}

const ROTATE_FROM_SNAPSHOT = /^\s*with s as \(\s*update sessions/;

/** Refreshes on `t`, expecting the snapshot path: one statement, no read. */
async function refreshInOne(t: TestApp, key: string, tag: string, refreshToken: string) {
  const { result, statements } = await statementsOf(t, () => refreshOn(t, key, tag, refreshToken));
  expect(statements).toHaveLength(1);
  expect(statements[0]).toMatch(ROTATE_FROM_SNAPSHOT);
  expect(result.ok).toBe(true);
  return (result as { ok: true; pair: Started }).pair;
}

/** Refreshes on `t`, expecting the snapshot to be refused and the read path to answer. */
async function refreshFallingBack(t: TestApp, key: string, tag: string, refreshToken: string) {
  const { result, statements } = await statementsOf(t, () => refreshOn(t, key, tag, refreshToken));
  expect(statements[0]).toMatch(ROTATE_FROM_SNAPSHOT);
  expect(statements.length).toBeGreaterThan(1);
  return result;
}

async function verify(t: TestApp, key: string, tag: string, token: string) {
  return (await ok(t.app, { key, query: VERIFY, variables: { tag, token } })).verifySession;
}

async function sessionOf(t: TestApp, key: string, id: string) {
  return (await ok(t.app, { key, query: SESSION, variables: { id } })).session;
}

/**
 * Two sessions of the same user and config, one started on `t` (which keeps its snapshot), one on
 * another instance (so `t` refreshes it through the read path, as before the snapshot).
 */
async function pairOfSessions(
  t: TestApp,
  other: TestApp,
  key: string,
  tag: string,
  data = user('ada'),
  extra: Record<string, unknown> = {},
) {
  const mine = await start(t, key, tag, data, extra);
  const theirs = await start(other, key, tag, data, extra);
  return { mine, theirs };
}

/** The answers agree: both succeed with the same data, or both fail with the same error. */
async function expectSameAnswer(
  t: TestApp,
  key: string,
  tag: string,
  withSnapshot: Answer,
  without: Answer,
) {
  expect(withSnapshot.ok).toBe(without.ok);
  if (!withSnapshot.ok || !without.ok) {
    expect(withSnapshot).toEqual(without);
    return;
  }
  const a = await verify(t, key, tag, withSnapshot.pair.token);
  const b = await verify(t, key, tag, without.pair.token);
  expect(a.data).toEqual(b.data);
  expect(a.version).toBe(b.version);
  expect(a.actor).toBe(b.actor);
}

/** A session started on `t` (which keeps its snapshot), its pair then refreshed on `other`. */
async function refreshedElsewhere(t: TestApp, other: TestApp, key: string, config: string) {
  const started = await start(t, key, config);
  const there = await refreshOn(other, key, config, started.refreshToken);
  expect(there.ok).toBe(true);
  return { started, there };
}

describe('refresh in one statement', () => {
  it('a pair issued here refreshes in one statement, again and again, with the same effects as the read path', async ({
    t,
    key,
    config,
  }) => {
    const started = await start(t, key, config, user('ada'));
    const first = await refreshInOne(t, key, config, started.refreshToken);
    const second = await refreshInOne(t, key, config, first.refreshToken);
    const third = await refreshInOne(t, key, config, second.refreshToken);

    // Each new token is a whole token: the session's data, version and start time.
    const verified = await verify(t, key, config, third.token);
    expect(verified.sessionId).toBe(started.sessionId);
    expect(verified.data).toEqual(user('ada'));
    expect(verified.version).toBe(1);
    // The answer's expiry is the stored one, and the token's.
    const row = rowsOf<{ expires_ms: number; refresh_ms: number; token_ms: number }>(
      await t.database.db.execute(sql`
        select (extract(epoch from s.expires_at) * 1000)::float8 as expires_ms,
               (extract(epoch from s.refresh_expires_at) * 1000)::float8 as refresh_ms,
               (extract(epoch from r.expires_at) * 1000)::float8 as token_ms
        from sessions s join refresh_tokens r on r.session_id = s.id
        where s.id = ${started.sessionId} and r.token_hash = ${hashSecret(third.refreshToken)}`),
    )[0]!;
    expect(Date.parse(third.expiresAt)).toBe(Number(row.expires_ms));
    expect(Number(row.token_ms)).toBe(Number(row.refresh_ms));
    expect(Date.parse(verified.expiresAt)).toBe(Number(row.expires_ms));
    // The config's lifetime (7 hours), counted from about now.
    expect(Math.abs(Date.parse(third.expiresAt) - Date.now() - 7 * 3600_000)).toBeLessThan(10_000);

    // One REFRESHED event per rotation; each spent token yields its successor within grace.
    expect(await eventTypesOf(t, started.sessionId)).toEqual([
      'STARTED',
      'REFRESHED',
      'REFRESHED',
      'REFRESHED',
    ]);
    const replay = await refreshOn(t, key, config, second.refreshToken);
    expect(replay).toEqual({ ok: true, pair: third });
  });

  it('50 sessions refreshing at once, each its own pair: one statement per refresh, no read', async ({
    t,
    key,
    config,
  }) => {
    const sessions = await Promise.all(
      Array.from({ length: 50 }, (_, i) => start(t, key, config, user(`u${i}`))),
    );
    const ROUNDS = 3;
    const { result, statements } = await statementsOf(t, () =>
      Promise.all(
        sessions.map(async (s) => {
          let pair: Started = s;
          for (let i = 0; i < ROUNDS; i++) {
            const answer = await refreshOn(t, key, config, pair.refreshToken);
            expect(answer.ok).toBe(true);
            pair = (answer as { pair: Started }).pair;
          }
          return pair;
        }),
      ),
    );
    expect(statements).toHaveLength(50 * ROUNDS);
    for (const statement of statements) expect(statement).toMatch(ROTATE_FROM_SNAPSHOT);
    for (const [i, pair] of result.entries()) {
      expect((await verify(t, key, config, pair.token)).data).toEqual(user(`u${i}`));
    }
  });

  it('an instance clock running ahead of the database: the read path answers, with its expiry', async ({
    t,
    key,
    config,
  }) => {
    const started = await start(t, key, config);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 5_000);
      const { result: answer, statements } = await statementsOf(t, () =>
        refreshOn(t, key, config, started.refreshToken),
      );
      // PGlite's clock is this process's, moved with it: there the clocks still agree.
      expect(statements.length > 1).toBe(TEST_DATABASE_URL !== undefined);
      expect(answer.ok).toBe(true);
      const pair = (answer as { pair: Started }).pair;
      const session = await sessionOf(t, key, started.sessionId);
      expect(pair.expiresAt).toBe(session.expiresAt);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a refresh from the snapshot moves the device into the history and marks the user seen', async ({
    t,
    key,
    config,
    product,
  }) => {
    const started = await start(t, key, config, user('bea'), {
      device: { userAgent: 'phone/1', ip: '10.1.2.2' },
    });
    const { productId } = await configIdsOf(t, product.tag, config);
    const seenBefore = rowsOf<{ at: string }>(
      await t.database.db.execute(
        sql`select last_seen_at::text as at from session_users
            where product_id = ${productId} and tag = ${config} and identifier = 'bea'`,
      ),
    )[0]!.at;
    const { result, statements } = await statementsOf(t, () =>
      refreshOn(t, key, config, started.refreshToken, { userAgent: 'phone/2', ip: '10.1.2.3' }),
    );
    expect(statements).toHaveLength(1);
    expect(result.ok).toBe(true);
    const session = await sessionOf(t, key, started.sessionId);
    expect(session.device).toEqual({ userAgent: 'phone/2', ip: '10.1.2.3' });
    expect(session.deviceHistory).toEqual([{ userAgent: 'phone/1', ip: '10.1.2.2' }]);
    const seenAfter = rowsOf<{ later: boolean }>(
      await t.database.db.execute(
        sql`select last_seen_at > ${seenBefore}::timestamptz as later from session_users
            where product_id = ${productId} and tag = ${config} and identifier = 'bea'`,
      ),
    )[0]!;
    expect(seenAfter.later).toBe(true);
    expect(await eventTypesOf(t, started.sessionId)).toEqual(['STARTED', 'REFRESHED']);
  });

  it('a backend’s refresh without a device keeps the session’s device, from the snapshot and without it', async ({
    t,
    key,
    config,
    instance,
  }) => {
    const backend = { 'user-agent': 'Backend/2.0 (server)' };
    const device = { userAgent: 'Browser/1.0 (Ada’s laptop)', ip: '203.0.113.5' };
    let pair = await start(t, key, config, user('ada'), { device });
    const other = await instance({ sessionSecret });
    const refreshAs = async (app: TestApp) => {
      const r = await ok<{ refreshSession: Started }>(app.app, {
        key,
        headers: backend,
        query: REFRESH,
        variables: { tag: config, refreshToken: pair.refreshToken },
      });
      return r.refreshSession;
    };
    // This instance issued the pair: one statement from its snapshot.
    const { result, statements } = await statementsOf(t, () => refreshAs(t));
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(ROTATE_FROM_SNAPSHOT);
    pair = result;
    let session = await sessionOf(t, key, pair.sessionId);
    expect(session.device).toEqual(device);
    expect(session.deviceHistory).toEqual([]);
    // Another instance has no snapshot: it reads, then rotates in one statement.
    pair = await refreshAs(other);
    pair = await refreshAs(other);
    session = await sessionOf(t, key, pair.sessionId);
    expect(session.device).toEqual(device);
    expect(session.deviceHistory).toEqual([]);
    expect(await eventTypesOf(t, pair.sessionId)).toEqual([
      'STARTED',
      'REFRESHED',
      'REFRESHED',
      'REFRESHED',
    ]);
  });

  /** Both sessions of a stale case, after their change, with what `t` knew of the first before. */
  interface StaleCase {
    readonly t: TestApp;
    readonly other: TestApp;
    readonly key: string;
    readonly config: string;
    readonly productId: string;
    readonly configId: string;
    readonly mine: Started;
    readonly theirs: Started;
    readonly before: { authenticatedAt: string; refreshExpiresAt: string };
  }
  const bothSessions =
    (run: (c: StaleCase, id: string) => Promise<unknown>) => async (c: StaleCase) => {
      for (const s of [c.mine, c.theirs]) await run(c, s.sessionId);
    };
  const STALE: {
    readonly name: string;
    readonly config?: Record<string, unknown>;
    readonly extra?: Record<string, unknown>;
    readonly change: (c: StaleCase) => Promise<unknown>;
    readonly expected?: Record<string, unknown>;
    readonly then?: (c: StaleCase, a: Answer, b: Answer) => Promise<void>;
  }[] = [
    {
      name: 'data updated since: the read path answers, with the new data in the new token',
      change: bothSessions(({ t, key, config }, sessionId) =>
        ok(t.app, {
          key,
          query: UPDATE_DATA,
          variables: { tag: config, sessionId, data: user('ada-2') },
        }),
      ),
      expected: { ok: true },
      then: async ({ t, key, config }, a) => {
        const pair = (a as { pair: Started }).pair;
        const verified = await verify(t, key, config, pair.token);
        expect(verified.data).toEqual(user('ada-2'));
        expect(verified.version).toBe(2);
        // The read path kept the new inputs: the next refresh is one statement again.
        const next = await refreshInOne(t, key, config, pair.refreshToken);
        expect((await verify(t, key, config, next.token)).data).toEqual(user('ada-2'));
      },
    },
    {
      name: 'markSessionFresh since: the new token carries the new authenticatedAt',
      change: bothSessions(({ t, key, config }, sessionId) =>
        ok(t.app, { key, query: MARK_FRESH, variables: { tag: config, sessionId } }),
      ),
      expected: { ok: true },
      then: async ({ t, key, config, mine, before }, a) => {
        const pair = (a as { pair: Started }).pair;
        const after = (await verify(t, key, config, pair.token)).authenticatedAt;
        expect(Date.parse(after)).toBeGreaterThan(Date.parse(before.authenticatedAt));
        expect(Date.parse(after)).toBe(
          Date.parse((await sessionOf(t, key, mine.sessionId)).authenticatedAt),
        );
        // Kept at the millisecond the token carries: the next refresh needs no read.
        const next = await refreshInOne(t, key, config, pair.refreshToken);
        expect((await verify(t, key, config, next.token)).authenticatedAt).toBe(after);
      },
    },
    {
      name: 'revokeSession since (on the other instance): SESSION_REVOKED',
      change: bothSessions(({ other, key, config }, sessionId) =>
        ok(other.app, { key, query: REVOKE, variables: { tag: config, sessionId } }),
      ),
      expected: { ok: false, code: 'SESSION_REVOKED' },
    },
    {
      name: 'revokeUserSessions since: SESSION_REVOKED',
      change: ({ other, key }) =>
        ok(other.app, { key, query: REVOKE_USER, variables: { identifier: 'ada' } }),
      expected: { ok: false, code: 'SESSION_REVOKED' },
    },
    {
      name: 'revokeSessionsStartedBefore since: SESSION_REVOKED',
      change: ({ other, key, config }) =>
        ok(other.app, { key, query: NOT_BEFORE, variables: { tag: config } }),
      expected: { ok: false, code: 'SESSION_REVOKED' },
    },
    {
      // As when revokeSessionsStartedBefore has written it and its batches are still to come.
      name: 'a not-before watermark alone, the rows not revoked yet: SESSION_REVOKED',
      change: ({ t, productId, config }) =>
        t.database.db.execute(sql`
          insert into session_revocation_watermarks (product_id, env, tag, not_before)
          values (${productId}, 'dev', ${config}, now())`),
      expected: { ok: false, code: 'SESSION_REVOKED' },
    },
    {
      name: 'config deleted since (which revokes its sessions)',
      change: ({ other, key, config }) =>
        ok(other.app, { key, query: DELETE_CONFIG, variables: { tag: config } }),
      expected: { ok: false },
    },
    ...(
      [
        [
          'deleted',
          (id: string) => sql`update session_configs set deleted_at = now() where id = ${id}`,
        ],
        [
          'renamed',
          (id: string) => sql`update session_configs set tag = tag || '-r' where id = ${id}`,
        ],
        [
          'moved to another env',
          (id: string) => sql`update session_configs set env = 'prd' where id = ${id}`,
        ],
      ] as const
    ).map(([what, statement]) => ({
      name: `config ${what} in SQL, its sessions left live`,
      change: ({ t, configId }: StaleCase) => t.database.db.execute(statement(configId)),
      expected: { ok: false },
    })),
    {
      name: 'refresh lifetime changed since: the new lifetime applies at once',
      change: ({ other, key, config }) =>
        ok(other.app, {
          key,
          query: UPDATE_CONFIG,
          variables: { tag: config, input: { refreshExpiresIn: 9 * 3600 } },
        }),
      expected: { ok: true },
      then: async ({ t, key, mine, theirs, before }) => {
        for (const id of [mine.sessionId, theirs.sessionId]) {
          const after = await sessionOf(t, key, id);
          expect(after.refreshExpiresAt).not.toBe(before.refreshExpiresAt);
          expect(
            Math.abs(Date.parse(after.refreshExpiresAt) - Date.now() - 9 * 3600_000),
          ).toBeLessThan(10_000);
        }
      },
    },
    {
      name: 'an impersonation whose cap moved since: the refresh ends at the stored cap',
      extra: { actor: 'operator-1' },
      change: bothSessions(({ t }, id) =>
        t.database.db.execute(sql`
          update sessions set ends_at = date_trunc('second', now()) + interval '90 seconds',
                              refresh_expires_at = date_trunc('second', now()) + interval '90 seconds'
          where id = ${id}`),
      ),
      expected: { ok: true },
      then: async ({ t, mine, theirs }, a, b) => {
        for (const [answer, id] of [
          [a, mine.sessionId],
          [b, theirs.sessionId],
        ] as const) {
          const ends = rowsOf<{ ms: number }>(
            await t.database.db.execute(
              sql`select (extract(epoch from ends_at) * 1000)::float8 as ms from sessions where id = ${id}`,
            ),
          )[0]!;
          expect(Date.parse((answer as { pair: Started }).pair.expiresAt)).toBe(Number(ends.ms));
        }
      },
    },
    {
      name: 'idle past its timeout since: TOKEN_EXPIRED with reason idle_timeout',
      config: { idleTimeout: 600 },
      change: bothSessions(({ t }, id) =>
        t.database.db.execute(
          sql`update sessions set last_active_at = now() - interval '11 minutes' where id = ${id}`,
        ),
      ),
      expected: { ok: false, code: 'TOKEN_EXPIRED', reason: 'idle_timeout' },
    },
  ];

  for (const stale of STALE) {
    it(`${stale.name}, as without the snapshot`, async ({ t, key, product, instance }) => {
      const config = await newConfig(t, key, stale.config);
      const other = await instance({ sessionSecret });
      const { productId, configId } = await configIdsOf(t, product.tag, config);
      const { mine, theirs } = await pairOfSessions(
        t,
        other,
        key,
        config,
        user('ada'),
        stale.extra,
      );
      const before = await sessionOf(t, key, mine.sessionId);
      const c = { t, other, key, config, productId, configId, mine, theirs, before };
      await stale.change(c);
      const a = await refreshFallingBack(t, key, config, mine.refreshToken);
      const b = await refreshOn(t, key, config, theirs.refreshToken);
      if (stale.expected) expect(a).toMatchObject(stale.expected);
      await expectSameAnswer(t, key, config, a, b);
      await stale.then?.(c, a, b);
    });
  }

  it('an impersonation refreshed from the snapshot is capped as by the read path', async ({
    t,
    key,
    config,
  }) => {
    const s = await start(t, key, config, user('fay'), { actor: 'operator-1' });
    const capped = await refreshInOne(t, key, config, s.refreshToken);
    const row = await sessionOf(t, key, s.sessionId);
    expect(Date.parse(capped.expiresAt)).toBeLessThanOrEqual(Date.parse(row.refreshExpiresAt));
    expect(Date.parse(capped.expiresAt)).toBe(Date.parse(row.expiresAt));
    expect((await verify(t, key, config, capped.token)).actor).toBe('operator-1');
  });

  it('refreshed by another instance, then replayed here: the same pair within grace', async ({
    t,
    key,
    config,
    instance,
  }) => {
    const { started, there } = await refreshedElsewhere(
      t,
      await instance({ sessionSecret }),
      key,
      config,
    );
    const here = await refreshFallingBack(t, key, config, started.refreshToken);
    expect(here).toEqual(there);
    expect(await eventTypesOf(t, started.sessionId)).toEqual(['STARTED', 'REFRESHED']);
  });

  it('refreshed by another instance, then replayed here after grace: REUSE_DETECTED, revoked', async ({
    t,
    key,
    config,
    instance,
  }) => {
    const other = await instance({ sessionSecret });
    const { started, there } = await refreshedElsewhere(t, other, key, config);
    // Spent longer ago than the grace window (10 s here).
    await t.database.db.execute(sql`
      update refresh_tokens set spent_at = now() - interval '1 hour'
      where token_hash = ${hashSecret(started.refreshToken)}`);
    const here = await refreshFallingBack(t, key, config, started.refreshToken);
    expect(here).toMatchObject({ ok: false, code: 'REFRESH_TOKEN_REUSED' });
    expect(await eventTypesOf(t, started.sessionId)).toEqual([
      'STARTED',
      'REFRESHED',
      'REVOKED',
      'REUSE_DETECTED',
    ]);
    expect((await sessionOf(t, key, started.sessionId)).status).toBe('REVOKED');
    // The pair the other instance issued is dead with it.
    const next = await refreshOn(
      other,
      key,
      config,
      (there as { pair: Started }).pair.refreshToken,
    );
    expect(next).toMatchObject({ ok: false, code: 'SESSION_REVOKED' });
  });

  it('50 concurrent refreshes of one token, here and on another instance: one winner pair, all the same', async ({
    t,
    key,
    config,
    instance,
  }) => {
    const other = await instance({ sessionSecret });
    const started = await start(t, key, config);
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        refreshOn(i % 2 === 0 ? t : other, key, config, started.refreshToken),
      ),
    );
    const first = answers[0]!;
    expect(first.ok).toBe(true);
    for (const answer of answers) expect(answer).toEqual(first);
    expect(await eventTypesOf(t, started.sessionId)).toEqual(['STARTED', 'REFRESHED']);
    const count = rowsOf<{ n: number }>(
      await t.database.db.execute(
        sql`select count(*)::int as n from refresh_tokens where session_id = ${started.sessionId}`,
      ),
    )[0]!;
    expect(count.n).toBe(2);
    expect((await sessionOf(t, key, started.sessionId)).status).toBe('ACTIVE');
  });

  it('a snapshot is the caller’s only: another tag or another env’s key refreshes nothing', async ({
    t,
    key,
    config,
    product,
  }) => {
    const started = await start(t, key, config);
    const otherTag = await newConfig(t, key);
    const wrongTag = await refreshOn(t, key, otherTag, started.refreshToken);
    expect(wrongTag).toMatchObject({ ok: false, code: 'TOKEN_INVALID' });
    const wrongEnv = await gql(t.app, {
      key: product.secret.prd,
      query: REFRESH,
      variables: { tag: config, refreshToken: started.refreshToken },
    });
    expect(wrongEnv.errors?.[0]?.extensions?.code).toBeDefined();
    // Neither spent it: the session's own refresh still rotates it.
    const right = await refreshOn(t, key, config, started.refreshToken);
    expect(right.ok).toBe(true);
    expect(await eventTypesOf(t, started.sessionId)).toEqual(['STARTED', 'REFRESHED']);
  });

  it('the snapshot store stays within its bounds', async ({ t, key, config }) => {
    const { RefreshSnapshots } = await import('../src/domain/sessions/refresh/index.js');
    const started = await start(t, key, config);
    const taken = t.services.refreshSnapshots.take(hashSecret(started.refreshToken));
    expect(taken).toBeDefined();
    const store = new RefreshSnapshots(3, 3 * (taken!.dataBytes + 1024));
    for (let i = 0; i < 5; i++) store.remember(`h${i}`, taken!);
    expect(store.size).toBe(3);
    expect(store.take('h0')).toBeUndefined();
    expect(store.take('h4')).toBeDefined();
    const big = { ...taken!, dataBytes: 2 * (taken!.dataBytes + 1024) };
    store.remember('big', big);
    expect(store.bytes).toBeLessThanOrEqual(3 * (taken!.dataBytes + 1024));
    // Without its snapshot, the refresh reads (and still answers).
    const fallback = await statementsOf(t, () => refreshOn(t, key, config, started.refreshToken));
    expect(fallback.result.ok).toBe(true);
    expect(fallback.statements.length).toBeGreaterThan(1);
  });

  it('an impersonation start with an explicit expiry keeps its cap in the snapshot', async ({
    t,
    key,
    config,
  }) => {
    const s = (
      await ok(t.app, {
        key,
        query: START,
        variables: { input: { tag: config, data: user('gus'), actor: 'op-2', expiresIn: 600 } },
      })
    ).startSession as Started;
    const refreshed = await refreshInOne(t, key, config, s.refreshToken);
    const row = await sessionOf(t, key, s.sessionId);
    expect(Date.parse(refreshed.expiresAt)).toBe(Date.parse(row.expiresAt));
    expect(Date.parse(row.refreshExpiresAt)).toBeLessThanOrEqual(Date.now() + 3600_000 + 1000);
    expect(await refreshOn(t, key, config, s.refreshToken)).toEqual({ ok: true, pair: refreshed });
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import type { RateLimitOptions } from '../src/security/rate-limits.js';
import { randomSecret } from '../src/tokens/secrets.js';
import { createTestApp, TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { gql, type GraphQLResponse } from './support/graphql.js';
import {
  REFRESH,
  VERIFY,
  eventTypesOf,
  newConfig,
  newProduct,
  rowsOf,
  start,
  type Started,
} from './support/fixtures.js';
import { listen } from './support/live.js';
import { newProductOverHttp, post, startServerProcess } from './support/server-process.js';

/** The unlimited instance that sets up products and sessions; limited ones share its database. */
let base: TestApp;
const opened: TestApp[] = [];
const sessionSecret = randomSecret(48);
beforeAll(async () => {
  base = await createTestApp({ sessionSecret });
});
afterAll(async () => {
  for (const app of opened) await app.close();
  await base?.close();
});

const HIGH = 1_000_000;
async function limitedApp(limits: {
  windowSeconds?: number;
  perWindow?: Partial<RateLimitOptions['perWindow']>;
  refreshesPerSession?: number;
}): Promise<TestApp> {
  const app = await createTestApp({
    database: base.database,
    sessionSecret,
    rateLimits: {
      windowSeconds: limits.windowSeconds ?? 60,
      perWindow: { start: HIGH, verify: HIGH, refresh: HIGH, ...limits.perWindow },
      refreshesPerSession: limits.refreshesPerSession ?? HIGH,
    },
  });
  opened.push(app);
  return app;
}

/** A product with a config: its dev and prd secret keys are two separately limited keys. */
async function setup(): Promise<{ keys: [string, string]; tag: string; prdTag: string }> {
  const product = await newProduct(base);
  const tag = await newConfig(base, product.secret.dev);
  const prdTag = await newConfig(base, product.secret.prd);
  return { keys: [product.secret.dev, product.secret.prd], tag, prdTag };
}

const START = `mutation($input: StartSessionInput!) { startSession(input: $input) { sessionId token refreshToken } }`;
const IS_VALID = `query($tag: String!, $token: String!) { isSessionValid(tag: $tag, token: $token) }`;
const DATA = { userId: 'user-123', details: { username: 'ada', email: 'ada@example.com' } };

const startCall = (key: string, tag: string) => ({
  key,
  query: START,
  variables: { input: { tag, data: DATA } },
});
const verifyCall = (key: string, tag: string, token: string) => ({
  key,
  query: VERIFY,
  variables: { tag, token },
});
const refreshCall = (key: string, tag: string, refreshToken: string) => ({
  key,
  query: REFRESH,
  variables: { tag, refreshToken },
});

/** RATE_LIMITED, with a whole number of seconds to wait, and no data. */
function expectLimited(
  response: GraphQLResponse,
  maxWaitSeconds: number,
  message: RegExp = /too many|too often/i,
): number {
  expect(response.errors?.length, JSON.stringify(response)).toBe(1);
  const error = response.errors![0]!;
  expect(error.extensions?.code).toBe('RATE_LIMITED');
  expect(error.message).toMatch(message);
  expect(error.message).toMatch(/retry in \d+ s/);
  const wait = error.extensions?.retryAfterSeconds as number;
  expect(Number.isInteger(wait)).toBe(true);
  expect(wait).toBeGreaterThanOrEqual(1);
  expect(wait).toBeLessThanOrEqual(maxWaitSeconds);
  expect(response.data ?? null).toBeNull();
  return wait;
}

function expectOk(response: GraphQLResponse): void {
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
}

/** Over HTTP through a real server: the client IP is the socket's (127.0.0.1). */
async function httpGql(
  url: string,
  call: { key: string; query: string; variables: unknown },
  headers: Record<string, string> = {},
) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${call.key}`,
      ...headers,
    },
    body: JSON.stringify({ query: call.query, variables: call.variables }),
  });
  return { ...((await response.json()) as GraphQLResponse), status: response.status };
}

const refreshState = async (sessionId: string) => {
  const row = rowsOf<{ total: number; spent: number; revoked: boolean }>(
    await base.database.db.execute(
      sql`select (select count(*)::int from refresh_tokens where session_id = ${sessionId}) as total,
                 (select count(spent_at)::int from refresh_tokens where session_id = ${sessionId}) as spent,
                 (select revoked_at is not null from sessions where id = ${sessionId}) as revoked`,
    ),
  )[0]!;
  return row;
};

describe('per key', () => {
  it('start: the call over the limit is RATE_LIMITED with a retry hint; other keys and other operations go on', async () => {
    const app = await limitedApp({ perWindow: { start: 3 } });
    const { keys, tag, prdTag } = await setup();
    for (let i = 0; i < 3; i++) expectOk(await gql(app.app, startCall(keys[0], tag)));
    expectLimited(await gql(app.app, startCall(keys[0], tag)), 60, /start calls for this key/);
    // Another key is counted apart.
    expectOk(await gql(app.app, startCall(keys[1], prdTag)));
    // Other operations of the same key are counted apart.
    const session = await start(base, keys[0], tag);
    expectOk(await gql(app.app, verifyCall(keys[0], tag, session.token)));
    expectOk(await gql(app.app, refreshCall(keys[0], tag, session.refreshToken)));
  });

  it('aliases do not multiply the allowance: each aliased call counts', async () => {
    const app = await limitedApp({ perWindow: { start: 3 } });
    const { keys, tag } = await setup();
    const aliased = Array.from(
      { length: 5 },
      (_, i) => `s${i}: startSession(input: $input) { sessionId }`,
    ).join(' ');
    const response = await gql(app.app, {
      key: keys[0],
      query: `mutation($input: StartSessionInput!) { ${aliased} }`,
      variables: { input: { tag, data: DATA } },
    });
    // Mutations run in order: three start sessions, the fourth is refused (and execution stops).
    expect(response.errors?.map((e) => e.extensions?.code)).toEqual(['RATE_LIMITED']);
    expect(response.data).toBeNull();
    const started = rowsOf<{ n: number }>(
      await base.database.db.execute(
        sql`select count(*)::int as n from sessions where tag = ${tag}`,
      ),
    )[0]!.n;
    expect(started).toBe(3);
  });

  it('verify (and isSessionValid, which counts as a verify)', async () => {
    const app = await limitedApp({ perWindow: { verify: 4 } });
    const { keys, tag } = await setup();
    const session = await start(base, keys[0], tag);
    for (let i = 0; i < 3; i++)
      expectOk(await gql(app.app, verifyCall(keys[0], tag, session.token)));
    expect(
      (await gql(app.app, { ...verifyCall(keys[0], tag, session.token), query: IS_VALID })).data,
    ).toEqual({
      isSessionValid: true,
    });
    expectLimited(
      await gql(app.app, verifyCall(keys[0], tag, session.token)),
      60,
      /verify calls for this key/,
    );
    // Over the limit, isSessionValid says so: it does not answer false for a valid session.
    const valid = await gql(app.app, {
      ...verifyCall(keys[0], tag, session.token),
      query: IS_VALID,
    });
    expectLimited(valid, 60);
    // The session itself is untouched.
    expectOk(await gql(base.app, verifyCall(keys[0], tag, session.token)));
  });

  it('refresh: refused before anything rotates', async () => {
    const app = await limitedApp({ perWindow: { refresh: 2 } });
    const { keys, tag } = await setup();
    const sessions: Started[] = [];
    for (let i = 0; i < 3; i++) sessions.push(await start(base, keys[0], tag));
    expectOk(await gql(app.app, refreshCall(keys[0], tag, sessions[0]!.refreshToken)));
    expectOk(await gql(app.app, refreshCall(keys[0], tag, sessions[1]!.refreshToken)));
    expectLimited(
      await gql(app.app, refreshCall(keys[0], tag, sessions[2]!.refreshToken)),
      60,
      /refresh calls for this key/,
    );
    expect(await refreshState(sessions[2]!.sessionId)).toEqual({
      total: 1,
      spent: 0,
      revoked: false,
    });
    expect(await eventTypesOf(base, sessions[2]!.sessionId)).toEqual(['STARTED']);
    // Elsewhere (another instance, or after the window), the same refresh token still works.
    expectOk(await gql(base.app, refreshCall(keys[0], tag, sessions[2]!.refreshToken)));
  });
});

describe('per client IP', () => {
  it('start, verify and refresh count every key from one address together; X-Forwarded-For does not reset them', async () => {
    const app = await limitedApp({ perWindow: { start: 3, verify: 3, refresh: 3 } });
    const server = await listen(app);
    try {
      // Two products: four keys, none of them near its own limit.
      const one = await setup();
      const two = await setup();
      const sessions = await Promise.all([
        start(base, one.keys[0], one.tag),
        start(base, two.keys[0], two.tag),
        start(base, one.keys[0], one.tag),
        start(base, two.keys[0], two.tag),
      ]);
      const calls = {
        start: [
          startCall(one.keys[0], one.tag),
          startCall(two.keys[0], two.tag),
          startCall(one.keys[1], one.prdTag),
          startCall(two.keys[1], two.prdTag),
        ],
        verify: sessions.map((s, i) =>
          verifyCall(i % 2 ? two.keys[0] : one.keys[0], i % 2 ? two.tag : one.tag, s.token),
        ),
        refresh: sessions.map((s, i) =>
          refreshCall(i % 2 ? two.keys[0] : one.keys[0], i % 2 ? two.tag : one.tag, s.refreshToken),
        ),
      };
      for (const [operation, list] of Object.entries(calls)) {
        for (const call of list.slice(0, 3)) expectOk(await httpGql(server.url, call));
        const over = await httpGql(server.url, list[3]!, { 'x-forwarded-for': '203.0.113.7' });
        expectLimited(over, 60, new RegExp(`${operation} calls from this address`));
      }
      // The refusal spent nothing: the fourth session's refresh token is unspent.
      expect(await refreshState(sessions[3]!.sessionId)).toEqual({
        total: 1,
        spent: 0,
        revoked: false,
      });
      // Without an address (app.fetch), only the keys count: they are all under their limits.
      expectOk(await gql(app.app, calls.start[3]!));
    } finally {
      await server.close();
    }
  });
});

describe('refresh loops', () => {
  it('a session refreshing too often is RATE_LIMITED, others are not, and the refused attempt spends nothing', async () => {
    const app = await limitedApp({ windowSeconds: 2, refreshesPerSession: 3 });
    const { keys, tag } = await setup();
    const looping = await start(base, keys[0], tag);
    const other = await start(base, keys[0], tag);
    let current = looping;
    for (let i = 0; i < 3; i++) {
      const response = await gql(app.app, refreshCall(keys[0], tag, current.refreshToken));
      expectOk(response);
      current = (response.data as { refreshSession: Started }).refreshSession;
    }
    const refused = await gql(app.app, refreshCall(keys[0], tag, current.refreshToken));
    const wait = expectLimited(refused, 2, /refreshing too often/);
    // Nothing rotated or revoked; the current session token still verifies.
    expect(await refreshState(looping.sessionId)).toEqual({ total: 4, spent: 3, revoked: false });
    expect(await eventTypesOf(base, looping.sessionId)).toEqual([
      'STARTED',
      'REFRESHED',
      'REFRESHED',
      'REFRESHED',
    ]);
    expectOk(await gql(app.app, verifyCall(keys[0], tag, current.token)));
    // Another session of the same key and user refreshes as usual.
    expectOk(await gql(app.app, refreshCall(keys[0], tag, other.refreshToken)));
    // Once the window has passed, the very token that was refused works.
    await sleep(wait * 1000 + 100);
    const later = await gql(app.app, refreshCall(keys[0], tag, current.refreshToken));
    expectOk(later);
    expect(await refreshState(looping.sessionId)).toEqual({ total: 5, spent: 4, revoked: false });
  });
});

describe('configuration', () => {
  it('RATE_LIMIT_* are read into config.rateLimits, with defaults, and bad values are named', () => {
    expect(loadConfig({}).rateLimits).toEqual({
      windowSeconds: 60,
      perWindow: { start: 60_000, verify: 600_000, refresh: 60_000 },
      refreshesPerSession: 20,
    });
    expect(
      loadConfig({
        RATE_LIMIT_WINDOW_SECONDS: '10',
        RATE_LIMIT_START: '5',
        RATE_LIMIT_VERIFY: '50',
        RATE_LIMIT_REFRESH: '7',
        RATE_LIMIT_REFRESHES_PER_SESSION: '4',
      }).rateLimits,
    ).toEqual({
      windowSeconds: 10,
      perWindow: { start: 5, verify: 50, refresh: 7 },
      refreshesPerSession: 4,
    });
    let problems: readonly string[] = [];
    try {
      loadConfig({
        RATE_LIMIT_WINDOW_SECONDS: '0',
        RATE_LIMIT_START: 'many',
        RATE_LIMIT_VERIFY: '-1',
        RATE_LIMIT_REFRESH: '1.5',
        RATE_LIMIT_REFRESHES_PER_SESSION: '0',
      });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      problems = (error as ConfigError).problems;
    }
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'RATE_LIMIT_REFRESH',
      'RATE_LIMIT_REFRESHES_PER_SESSION',
      'RATE_LIMIT_START',
      'RATE_LIMIT_VERIFY',
      'RATE_LIMIT_WINDOW_SECONDS',
    ]);
  });

  it('the server process applies them (RATE_LIMIT_START=2: the third start is RATE_LIMITED)', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sessions-rl-'));
    const adminKey = `ak_${'r'.repeat(40)}`;
    const server = await startServerProcess({
      DATA_DIR: dataDir,
      ADMIN_KEY: adminKey,
      RATE_LIMIT_START: '2',
      SWEEP_INTERVAL_SECONDS: '0',
      ...(TEST_DATABASE_URL ? { DATABASE_URL: TEST_DATABASE_URL } : {}),
    });
    try {
      const { key, tag } = await newProductOverHttp(server.url, adminKey);
      const results = [];
      for (let i = 0; i < 3; i++) {
        results.push(await post(server.url, key, START, { input: { tag, data: DATA } }));
      }
      expect(results.slice(0, 2).map((r) => r.errors)).toEqual([undefined, undefined]);
      expectLimited(results[2] as GraphQLResponse, 60, /start calls/);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { schema } from '../src/graphql/index.js';
import { RATE_CLASS_OF } from '../src/graphql/rate-classes.js';
import { RATE_CLASSES, type RateClass } from '../src/limits/rate-limits.js';
import { randomSecret } from '../src/tokens/secrets.js';
import { createTestApp, TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { afterAll, describe, it, test } from './support/test.js';
import { gql, ok, type GraphQLResponse, documentText, type Document } from './support/graphql.js';
import {
  REFRESH,
  REVOKE,
  VERIFY,
  eventTypesOf,
  newConfig,
  newProduct,
  rowsOf,
  start,
  type Started,
  uniqueTag,
} from './support/fixtures.js';
import { listen, subscribeSse } from './support/live.js';
import { newProductOverHttp, post, startServerProcess } from './support/server-process.js';
import { START, IS_VALID } from './support/documents.js';

/** Limited instances on the database of the file's app `t` (unlimited, it sets up products and sessions). */
const opened: TestApp[] = [];
const sessionSecret = randomSecret(48);
test.override('appOptions', { sessionSecret });
afterAll(async () => {
  for (const app of opened) await app.close();
});

const HIGH = 1_000_000;
const classOf = (field: string): RateClass => {
  const [type, name] = field.split('.') as [string, string];
  return RATE_CLASS_OF[type]![name]!;
};
const all = (n: number) =>
  Object.fromEntries(RATE_CLASSES.map((c) => [c, n])) as Record<RateClass, number>;
async function limitedApp(
  t: TestApp,
  limits: {
    windowSeconds?: number;
    /** Per key (and per IP, unless `perIp` is given) for each class named. */
    perWindow?: Partial<Record<RateClass, number>>;
    perIp?: Partial<Record<RateClass, number>>;
    refreshesPerSession?: number;
  },
): Promise<TestApp> {
  const perKey = { ...all(HIGH), ...limits.perWindow };
  const app = await createTestApp({
    database: t.database,
    sessionSecret,
    rateLimits: {
      windowSeconds: limits.windowSeconds ?? 60,
      perKey,
      perIp: { ...perKey, ...limits.perIp },
      refreshesPerSession: limits.refreshesPerSession ?? HIGH,
    },
  });
  opened.push(app);
  return app;
}

/** A product with a config: its dev and prd secret keys are two separately limited keys. */
async function setup(t: TestApp): Promise<{ keys: [string, string]; tag: string; prdTag: string }> {
  const product = await newProduct(t);
  const tag = await newConfig(t, product.secret.dev);
  const prdTag = await newConfig(t, product.secret.prd);
  return { keys: [product.secret.dev, product.secret.prd], tag, prdTag };
}

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
  call: { key: string; query: Document; variables: unknown },
  headers: Record<string, string> = {},
) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${call.key}`,
      ...headers,
    },
    body: JSON.stringify({ query: documentText(call.query), variables: call.variables }),
  });
  return { ...((await response.json()) as GraphQLResponse), status: response.status };
}

const refreshState = async (t: TestApp, sessionId: string) => {
  const row = rowsOf<{ total: number; spent: number; revoked: boolean }>(
    await t.database.db.execute(
      sql`select (select count(*)::int from refresh_tokens where session_id = ${sessionId}) as total,
                 (select count(spent_at)::int from refresh_tokens where session_id = ${sessionId}) as spent,
                 (select revoked_at is not null from sessions where id = ${sessionId}) as revoked`,
    ),
  )[0]!;
  return row;
};

describe('per key', () => {
  it('start: the call over the limit is RATE_LIMITED with a retry hint; other keys and other operations go on', async ({
    t,
  }) => {
    const app = await limitedApp(t, { perWindow: { start: 3 } });
    const { keys, tag, prdTag } = await setup(t);
    for (let i = 0; i < 3; i++) expectOk(await gql(app.app, startCall(keys[0], tag)));
    expectLimited(await gql(app.app, startCall(keys[0], tag)), 60, /start calls for this key/);
    // Another key is counted apart.
    expectOk(await gql(app.app, startCall(keys[1], prdTag)));
    // Other operations of the same key are counted apart.
    const session = await start(t, keys[0], tag);
    expectOk(await gql(app.app, verifyCall(keys[0], tag, session.token)));
    expectOk(await gql(app.app, refreshCall(keys[0], tag, session.refreshToken)));
  });

  it('aliases do not multiply the allowance: each aliased call counts', async ({ t }) => {
    const app = await limitedApp(t, { perWindow: { start: 3 } });
    const { keys, tag } = await setup(t);
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
      await t.database.db.execute(sql`select count(*)::int as n from sessions where tag = ${tag}`),
    )[0]!.n;
    expect(started).toBe(3);
  });

  it('verify (and isSessionValid, which counts as a verify)', async ({ t }) => {
    const app = await limitedApp(t, { perWindow: { verify: 4 } });
    const { keys, tag } = await setup(t);
    const session = await start(t, keys[0], tag);
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
    expectOk(await gql(t.app, verifyCall(keys[0], tag, session.token)));
  });

  it('refresh: refused before anything rotates', async ({ t }) => {
    const app = await limitedApp(t, { perWindow: { refresh: 2 } });
    const { keys, tag } = await setup(t);
    const sessions: Started[] = [];
    for (let i = 0; i < 3; i++) sessions.push(await start(t, keys[0], tag));
    expectOk(await gql(app.app, refreshCall(keys[0], tag, sessions[0]!.refreshToken)));
    expectOk(await gql(app.app, refreshCall(keys[0], tag, sessions[1]!.refreshToken)));
    expectLimited(
      await gql(app.app, refreshCall(keys[0], tag, sessions[2]!.refreshToken)),
      60,
      /refresh calls for this key/,
    );
    expect(await refreshState(t, sessions[2]!.sessionId)).toEqual({
      total: 1,
      spent: 0,
      revoked: false,
    });
    expect(await eventTypesOf(t, sessions[2]!.sessionId)).toEqual(['STARTED']);
    // Elsewhere (another instance, or after the window), the same refresh token still works.
    expectOk(await gql(t.app, refreshCall(keys[0], tag, sessions[2]!.refreshToken)));
  });
});

/** A second secret key of the product's dev env (same product and env, another key). */
async function secondDevKey(t: TestApp, productTag: string): Promise<string> {
  const data = await ok<{ createApiKey: { key: string } }>(t.app, {
    key: t.adminKey,
    query: `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { key } }`,
    variables: { input: { product: productTag, env: 'dev', kind: 'SECRET', name: 'second' } },
  });
  return data.createApiKey.key;
}

describe('per client IP, per product and env', () => {
  it('start, verify and refresh count every key of one product and env from one address together; X-Forwarded-For does not reset them', async ({
    t,
  }) => {
    const app = await limitedApp(t, { perIp: { start: 3, verify: 3, refresh: 3 } });
    const server = await listen(app);
    try {
      // One product, two keys of its dev env: neither near its own limit.
      const product = await newProduct(t);
      const tag = await newConfig(t, product.secret.dev);
      const keys = [product.secret.dev, await secondDevKey(t, product.tag)];
      const sessions = await Promise.all([0, 1, 2, 3].map(() => start(t, keys[0]!, tag)));
      const keyOf = (i: number) => keys[i % 2]!;
      const calls = {
        start: [0, 1, 2, 3].map((i) => startCall(keyOf(i), tag)),
        verify: sessions.map((s, i) => verifyCall(keyOf(i), tag, s.token)),
        refresh: sessions.map((s, i) => refreshCall(keyOf(i), tag, s.refreshToken)),
      };
      for (const [operation, list] of Object.entries(calls)) {
        for (const call of list.slice(0, 3)) expectOk(await httpGql(server.url, call));
        const over = await httpGql(server.url, list[3]!, { 'x-forwarded-for': '203.0.113.7' });
        expectLimited(over, 60, new RegExp(`${operation} calls from this address`));
      }
      // The refusal spent nothing: the fourth session's refresh token is unspent.
      expect(await refreshState(t, sessions[3]!.sessionId)).toEqual({
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

  it('one product’s traffic from an address never makes another product (or another env) RATE_LIMITED there', async ({
    t,
  }) => {
    const app = await limitedApp(t, {
      perIp: { verify: 3, read: 2, write: 2, start: 2 },
    });
    const server = await listen(app);
    try {
      const a = await setup(t);
      const b = await setup(t);
      const sessionA = await start(t, a.keys[0], a.tag);
      const sessionB = await start(t, b.keys[0], b.tag);
      const sessionAPrd = await start(t, a.keys[1], a.prdTag);
      const LIST = `query($tag: String!, $identifier: String!) { sessions(tag: $tag, identifier: $identifier) { totalCount } }`;
      const REVOKE_ALL = `mutation($tag: String!, $identifier: String!) { revokeAllSessions(tag: $tag, identifier: $identifier) { count } }`;
      const callsOf = (key: string, tag: string, token: string) => ({
        verify: verifyCall(key, tag, token),
        read: { key, query: LIST, variables: { tag, identifier: 'nobody' } },
        write: { key, query: REVOKE_ALL, variables: { tag, identifier: 'nobody' } },
        start: startCall(key, tag),
      });
      const ofA = callsOf(a.keys[0], a.tag, sessionA.token);
      const ofB = callsOf(b.keys[0], b.tag, sessionB.token);
      const ofAPrd = callsOf(a.keys[1], a.prdTag, sessionAPrd.token);
      const limits = { verify: 3, read: 2, write: 2, start: 2 };
      for (const [rateClass, limit] of Object.entries(limits) as [keyof typeof limits, number][]) {
        // Product A uses up its allowance from this address...
        await Promise.all(
          Array.from({ length: limit }, async () =>
            expectOk(await httpGql(server.url, ofA[rateClass])),
          ),
        );
        expectLimited(
          await httpGql(server.url, ofA[rateClass]),
          60,
          new RegExp(`${rateClass} calls from this address`),
        );
        // ...and product B, from the same address, at the same time, is not touched; nor is
        // A's other environment.
        const others = await Promise.all([
          ...Array.from({ length: limit }, () => httpGql(server.url, ofB[rateClass])),
          ...Array.from({ length: limit }, () => httpGql(server.url, ofAPrd[rateClass])),
        ]);
        for (const response of others) expectOk(response);
      }
    } finally {
      await server.close();
    }
  });
});

/** One call of every operation of the API, by root type and field; none needs to succeed. */
const NO_SESSION = '00000000-0000-4000-8000-000000000000';
type Sample = (p: { key: string; admin: string; tag: string }) => {
  key: string;
  query: Document;
  variables?: Record<string, unknown>;
};
const onSession = (field: string, args: string, extra: Record<string, unknown> = {}): Sample => {
  const declared = Object.entries({ $tag: 'String!', $sessionId: 'ID!' })
    .map(([n, t]) => `${n}: ${t}`)
    .join(', ');
  return ({ key, tag }) => ({
    key,
    query: `mutation(${declared}) { ${field}(tag: $tag, sessionId: $sessionId${args}) { id } }`,
    variables: { tag, sessionId: NO_SESSION, ...extra },
  });
};
const SAMPLES: Record<string, Record<string, Sample>> = {
  Query: {
    verifySession: ({ key, tag }) => verifyCall(key, tag, 'not-a-token'),
    isSessionValid: ({ key, tag }) => ({ ...verifyCall(key, tag, 'not-a-token'), query: IS_VALID }),
    session: ({ key }) => ({ key, query: `{ session(id: "${NO_SESSION}") { id } }` }),
    sessions: ({ key, tag }) => ({
      key,
      query: `{ sessions(tag: "${tag}", identifier: "u") { totalCount } }`,
    }),
    sessionConfig: ({ key, tag }) => ({ key, query: `{ sessionConfig(tag: "${tag}") { tag } }` }),
    sessionConfigs: ({ key }) => ({ key, query: `{ sessionConfigs { tag } }` }),
    sessionUser: ({ key, tag }) => ({
      key,
      query: `{ sessionUser(tag: "${tag}", identifier: "u") { identifier } }`,
    }),
    sessionUsers: ({ key, tag }) => ({
      key,
      query: `{ sessionUsers(tag: "${tag}") { totalCount } }`,
    }),
    latestSessionEventId: ({ key }) => ({ key, query: `{ latestSessionEventId }` }),
    activityLog: ({ key }) => ({ key, query: `{ activityLog { totalCount } }` }),
    sessionDashboard: ({ key, tag }) => ({
      key,
      query: `{ sessionDashboard(tag: "${tag}", from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z", groupBy: DAY) { totalSessions } }`,
    }),
    products: ({ admin }) => ({ key: admin, query: `{ products { tag } }` }),
    userSessions: ({ key }) => ({
      key,
      query: `{ userSessions(identifier: "u") { totalCount } }`,
    }),
    notBeforeRevocations: ({ key }) => ({ key, query: `{ notBeforeRevocations { tag } }` }),
    verifierKeys: ({ key, tag }) => ({
      key,
      query: `{ verifierKeys(tags: ["${tag}"]) { issuer } }`,
    }),
    verifierSnapshot: ({ key, tag }) => ({
      key,
      query: `{ verifierSnapshot(tags: ["${tag}"], first: 1) { hasNextPage } }`,
    }),
    webhookEndpoints: ({ key }) => ({ key, query: `{ webhookEndpoints { id } }` }),
    webhookEndpoint: ({ key }) => ({
      key,
      query: `{ webhookEndpoint(id: "${NO_SESSION}") { id } }`,
    }),
  },
  Mutation: {
    startSession: ({ key, tag }) => startCall(key, tag),
    refreshSession: ({ key, tag }) => refreshCall(key, tag, 'rt_not-a-token'),
    revokeSession: onSession('revokeSession', ''),
    revokeAllSessions: ({ key, tag }) => ({
      key,
      query: `mutation { revokeAllSessions(tag: "${tag}", identifier: "u") { count } }`,
    }),
    touchSession: onSession('touchSession', ''),
    extendSession: onSession('extendSession', ', seconds: 60'),
    setSessionExpiration: onSession('setSessionExpiration', ', expiresAt: "2099-01-01T00:00:00Z"'),
    updateSessionData: onSession('updateSessionData', ', data: {}'),
    mergeSessionData: onSession('mergeSessionData', ', data: {}'),
    setSessionValue: onSession('setSessionValue', ', key: "k", value: 1'),
    removeSessionValue: onSession('removeSessionValue', ', key: "k"'),
    clearSessionData: onSession('clearSessionData', ''),
    markSessionFresh: onSession('markSessionFresh', ''),
    setSessionDeviceName: onSession('setSessionDeviceName', ', name: "n"'),
    revokeUserSessions: ({ key }) => ({
      key,
      query: `mutation { revokeUserSessions(identifier: "u") { count } }`,
    }),
    revokeSessionsStartedBefore: ({ key, tag }) => ({
      key,
      query: `mutation { revokeSessionsStartedBefore(tag: "${tag}", before: "2020-01-01T00:00:00Z") { count } }`,
    }),
    createSessionConfig: ({ key }) => ({
      key,
      query: `mutation { createSessionConfig(input: { name: "n", tag: "${uniqueTag()}", description: "d", schema: { userId: "u" }, selector: "$Session{userId}", expiry: 1, period: HOURS }) { tag } }`,
    }),
    updateSessionConfig: ({ key, tag }) => ({
      key,
      query: `mutation { updateSessionConfig(tag: "${tag}", input: { description: "d2" }) { tag } }`,
    }),
    deleteSessionConfig: ({ key }) => ({
      key,
      query: `mutation { deleteSessionConfig(tag: "no-such-config") }`,
    }),
    createProduct: ({ admin }) => ({
      key: admin,
      query: `mutation { createProduct(input: { tag: "${uniqueTag('p')}", name: "P" }) { tag } }`,
    }),
    createApiKey: ({ admin }) => ({
      key: admin,
      query: `mutation { createApiKey(input: { product: "no-such-product", env: "dev", kind: SECRET, name: "k" }) { key } }`,
    }),
    revokeApiKey: ({ admin }) => ({
      key: admin,
      query: `mutation { revokeApiKey(id: "${NO_SESSION}") { id } }`,
    }),
    createWebhookEndpoint: ({ key }) => ({
      key,
      query: `mutation { createWebhookEndpoint(input: { url: "http://127.0.0.1:9/hook" }) { secret } }`,
    }),
    updateWebhookEndpoint: ({ key }) => ({
      key,
      query: `mutation { updateWebhookEndpoint(id: "${NO_SESSION}", input: { description: "d" }) { id } }`,
    }),
    disableWebhookEndpoint: ({ key }) => ({
      key,
      query: `mutation { disableWebhookEndpoint(id: "${NO_SESSION}") { id } }`,
    }),
    deleteWebhookEndpoint: ({ key }) => ({
      key,
      query: `mutation { deleteWebhookEndpoint(id: "${NO_SESSION}") }`,
    }),
    rotateWebhookSecret: ({ key }) => ({
      key,
      query: `mutation { rotateWebhookSecret(id: "${NO_SESSION}") { secret } }`,
    }),
    redeliverWebhook: ({ key }) => ({
      key,
      query: `mutation { redeliverWebhook(deliveryId: "${NO_SESSION}") { id } }`,
    }),
  },
  Subscription: {
    sessionEvents: ({ key }) => ({
      key,
      query: `subscription { sessionEvents(after: "0") { id } }`,
    }),
    sessionRevoked: ({ key }) => ({
      key,
      query: `subscription { sessionRevoked(after: "0") { id } }`,
    }),
    verifierFeed: ({ key, tag }) => ({
      key,
      query: `subscription { verifierFeed(tags: ["${tag}"], after: "0") { position } }`,
    }),
  },
};

/** Every root field of the served schema, as `Type.field`. */
function rootFields(): string[] {
  return [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].flatMap(
    (root) => (root ? Object.keys(root.getFields()).map((f) => `${root.name}.${f}`) : []),
  );
}

describe('every operation has a rate class', () => {
  it('each root field of the schema is classed (the schema refuses to build otherwise) and has a sample here', () => {
    const classed = Object.entries(RATE_CLASS_OF).flatMap(([type, fields]) =>
      Object.keys(fields).map((f) => `${type}.${f}`),
    );
    const sampled = Object.entries(SAMPLES).flatMap(([type, fields]) =>
      Object.keys(fields).map((f) => `${type}.${f}`),
    );
    expect(classed.sort()).toEqual(rootFields().sort());
    expect(sampled.sort()).toEqual(rootFields().sort());
    // Every class is used by some operation.
    expect(new Set(classed.map((f) => classOf(f))).size).toBe(RATE_CLASSES.length);
  });

  it('every class limits per key: every operation of a class counts against it, and each is refused once it is used up', async ({
    t,
  }) => {
    const byClass = new Map<RateClass, string[]>();
    for (const field of rootFields()) {
      const rateClass = classOf(field);
      byClass.set(rateClass, [...(byClass.get(rateClass) ?? []), field]);
    }
    // Each class allows exactly as many calls as it has operations.
    const app = await limitedApp(t, {
      perWindow: Object.fromEntries([...byClass].map(([c, fields]) => [c, fields.length])),
    });
    const server = await listen(app);
    try {
      for (const [rateClass, fields] of byClass) {
        // A fresh product per class: its key's buckets are its own.
        const product = await newProduct(t);
        const tag = await newConfig(t, product.secret.dev);
        const who = { key: product.secret.dev, admin: app.adminKey, tag };
        const session = await start(t, product.secret.dev, tag);
        await ok(t.app, {
          key: product.secret.dev,
          query: REVOKE,
          variables: { tag, sessionId: session.sessionId },
        });
        const outcome = async (field: string) => {
          const [type, name] = field.split('.') as [string, string];
          const call = SAMPLES[type]![name]!(who);
          if (type !== 'Subscription') return gql(app.app, call);
          const received = subscribeSse(server.url, call.key, documentText(call.query), {}, name);
          // Allowed: it replays the product's events (one of each kind exists); refused: it
          // ends with the error.
          await Promise.race([received.ended, received.waitFor(1, 20_000)]);
          received.stop();
          return { status: 200, errors: received.errors[0] as GraphQLResponse['errors'] };
        };
        for (const field of fields) {
          const first = await outcome(field);
          expect(
            first.errors?.map((e) => e.extensions?.code) ?? [],
            `${field} (${rateClass}) within the limit`,
          ).not.toContain('RATE_LIMITED');
        }
        for (const field of fields) {
          const over = await outcome(field);
          expect(over.errors?.[0]?.extensions?.code, `${field} (${rateClass}) over the limit`).toBe(
            'RATE_LIMITED',
          );
          expect(over.errors?.[0]?.message).toMatch(
            new RegExp(`Too many ${rateClass} calls for this key`),
          );
        }
      }
    } finally {
      await server.close();
    }
  });

  it('aliases count one call each, in every class: 20 aliases spend 20 calls', async ({ t }) => {
    const app = await limitedApp(t, { perWindow: { verify: 25, read: 25, insight: 25 } });
    const { keys, tag } = await setup(t);
    const session = await start(t, keys[0], tag);
    const aliased = (field: string) =>
      Array.from({ length: 20 }, (_, i) => `a${i}: ${field}`).join(' ');
    const fields = [
      ['isSessionValid(tag: $tag, token: $token)', { tag, token: session.token }],
      ['sessions(tag: $tag, identifier: "u") { totalCount }', { tag }],
      ['activityLog(first: 1) { totalCount }', {}],
    ] as const;
    for (const [field, variables] of fields) {
      const declared = Object.keys(variables)
        .map((name) => `$${name}: String!`)
        .join(', ');
      const call = (query: string) =>
        gql(app.app, {
          key: keys[0],
          query: `query${declared ? `(${declared})` : ''} { ${query} }`,
          variables,
        });
      // 20 aliases in one request: all within the limit of 25...
      expectOk(await call(aliased(field)));
      // ...and they spent 20 of it: 5 more calls pass, the next is refused.
      for (let i = 0; i < 5; i++) expectOk(await call(`a: ${field}`));
      expectLimited(await call(`a: ${field}`), 60);
    }
  });
});

describe('refresh loops', () => {
  it('a session refreshing too often is RATE_LIMITED, others are not, and the refused attempt spends nothing', async ({
    t,
  }) => {
    const app = await limitedApp(t, { windowSeconds: 2, refreshesPerSession: 3 });
    const { keys, tag } = await setup(t);
    const looping = await start(t, keys[0], tag);
    const other = await start(t, keys[0], tag);
    let current = looping;
    for (let i = 0; i < 3; i++) {
      const response = await gql(app.app, refreshCall(keys[0], tag, current.refreshToken));
      expectOk(response);
      current = (response.data as { refreshSession: Started }).refreshSession;
    }
    const refused = await gql(app.app, refreshCall(keys[0], tag, current.refreshToken));
    const wait = expectLimited(refused, 2, /refreshing too often/);
    // Nothing rotated or revoked; the current session token still verifies.
    expect(await refreshState(t, looping.sessionId)).toEqual({
      total: 4,
      spent: 3,
      revoked: false,
    });
    expect(await eventTypesOf(t, looping.sessionId)).toEqual([
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
    expect(await refreshState(t, looping.sessionId)).toEqual({
      total: 5,
      spent: 4,
      revoked: false,
    });
  });
});

describe('configuration', () => {
  it('RATE_LIMIT_* are read into config.rateLimits, with a default for every class, and bad values are named', () => {
    const defaults = {
      verify: 60_000,
      start: 6_000,
      refresh: 6_000,
      write: 6_000,
      read: 3_000,
      config: 120,
      insight: 300,
      admin: 600,
      subscribe: 300,
    };
    expect(loadConfig({}).rateLimits).toEqual({
      windowSeconds: 60,
      perKey: defaults,
      perIp: defaults,
      refreshesPerSession: 20,
      store: 'memory',
      syncMs: 200,
      redisUrl: undefined,
    });
    // The existing names still work (per key, and per IP unless set apart); every class has
    // its own pair.
    expect(
      loadConfig({
        RATE_LIMIT_WINDOW_SECONDS: '10',
        RATE_LIMIT_START: '5',
        RATE_LIMIT_VERIFY: '50',
        RATE_LIMIT_VERIFY_PER_IP: '40',
        RATE_LIMIT_REFRESH: '7',
        RATE_LIMIT_REFRESHES_PER_SESSION: '4',
        RATE_LIMIT_READ: '30',
        RATE_LIMIT_INSIGHT_PER_IP: '3',
      }).rateLimits,
    ).toEqual({
      windowSeconds: 10,
      perKey: { ...defaults, start: 5, verify: 50, refresh: 7, read: 30 },
      perIp: { ...defaults, start: 5, verify: 40, refresh: 7, read: 30, insight: 3 },
      refreshesPerSession: 4,
      store: 'memory',
      syncMs: 200,
      redisUrl: undefined,
    });
    let problems: readonly string[] = [];
    try {
      loadConfig({
        RATE_LIMIT_WINDOW_SECONDS: '0',
        RATE_LIMIT_START: 'many',
        RATE_LIMIT_VERIFY: '-1',
        RATE_LIMIT_REFRESH: '1.5',
        RATE_LIMIT_REFRESHES_PER_SESSION: '0',
        RATE_LIMIT_WRITE_PER_IP: '0',
        RATE_LIMIT_SUBSCRIBE: 'x',
      });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      problems = (error as ConfigError).problems;
    }
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'RATE_LIMIT_REFRESH',
      'RATE_LIMIT_REFRESHES_PER_SESSION',
      'RATE_LIMIT_START',
      'RATE_LIMIT_SUBSCRIBE',
      'RATE_LIMIT_VERIFY',
      'RATE_LIMIT_WINDOW_SECONDS',
      'RATE_LIMIT_WRITE_PER_IP',
    ]);
  });

  it('the server process applies them (RATE_LIMIT_START=2: the third start is RATE_LIMITED)', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sessions-rl-'));
    const adminKey = `ak_${'r'.repeat(40)}`;
    const server = await startServerProcess({
      DATA_DIR: dataDir,
      ADMIN_KEY: adminKey,
      RATE_LIMIT_START: '2',
      // On Postgres, the default store there (the fleet counters), wired as main.ts does.
      ...(TEST_DATABASE_URL ? { RATE_LIMIT_STORE: 'postgres' } : {}),
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

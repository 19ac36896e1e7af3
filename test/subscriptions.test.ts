import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { createClient } from 'graphql-ws';
import { expect } from 'vitest';
import WebSocket from 'ws';
import type { TestApp, TestAppOptions } from './support/app.js';
import {
  eventTypesOf,
  newConfig,
  newSharedConfig,
  newProduct,
  REFRESH,
  REVOKE,
  rowsOf,
  start,
  type Started,
  type TestProduct,
} from './support/fixtures.js';
import { failure, ok } from './support/graphql.js';
import { sequenceAllPendingEvents } from '../src/domain/events.js';
import {
  errorCodeOf,
  listen,
  nextCloseCode,
  subscribeSse,
  subscribeWs,
  waitUntil,
  wsClient,
  type Received,
} from './support/live.js';
import { test, type TestServer } from './support/test.js';

interface Event {
  id: string;
  type: string;
  sessionId: string;
  tag: string;
  identifier: string;
  reason: string | null;
}

const FIELDS = 'id type sessionId tag identifier reason';
const REVOKED_SUB = `subscription($tag: String, $identifier: String) {
  sessionRevoked(tag: $tag, identifier: $identifier) { ${FIELDS} } }`;
const EVENTS_SUB = `subscription($tag: String, $identifier: String, $types: [SessionEventType!], $after: ID) {
  sessionEvents(tag: $tag, identifier: $identifier, types: $types, after: $after) { ${FIELDS} } }`;
const REVOKE_ALL = `mutation($tag: String!, $identifier: String!) {
  revokeAllSessions(tag: $tag, identifier: $identifier) { count } }`;

type Transport = 'ws' | 'sse';

interface Subscription extends Received<Event> {
  /** Closes the subscription and, over WebSocket, its client. */
  close(): Promise<void>;
}

const idsOf = (list: Event[]) => list.map((e) => Number(e.id));

function expectStrictlyIncreasing(list: Event[]) {
  const ids = idsOf(list);
  for (let i = 1; i < ids.length; i++) {
    if (!(ids[i]! > ids[i - 1]!)) {
      throw new Error(`ids not strictly increasing at ${i}: ${ids[i - 1]} then ${ids[i]}`);
    }
  }
}

/**
 * The helpers of a test, on `t` and its `server`. Every subscription `subscribe` opens is closed
 * after the test (see `it` below).
 */
function liveOn(t: TestApp, server: TestServer, opened: Set<Subscription>) {
  /**
   * Opens a subscription on `target` and resolves once the bus has registered it, so that every
   * event committed afterwards must reach it.
   */
  async function subscribe(
    transport: Transport,
    key: string,
    query: string,
    variables: Record<string, unknown>,
    field: string,
    target: { t: TestApp; server: TestServer } = { t, server },
  ): Promise<Subscription> {
    const before = target.t.services.events.subscriberCount;
    let received: Received<Event>;
    let close: () => Promise<void>;
    if (transport === 'ws') {
      const client = wsClient(target.server.wsUrl, key);
      received = subscribeWs<Event>(client, query, variables, field);
      close = async () => {
        received.stop();
        await client.dispose();
      };
    } else {
      received = subscribeSse<Event>(target.server.url, key, query, variables, field);
      close = async () => received.stop();
    }
    await waitUntil(
      () => target.t.services.events.subscriberCount > before || received.errors.length > 0,
      `the ${transport} subscription to be registered`,
    );
    const subscription = Object.assign(received, {
      close: async () => {
        opened.delete(subscription);
        await close();
      },
    });
    opened.add(subscription);
    expect(received.errors).toEqual([]);
    return subscription;
  }

  const events = (
    key: string,
    variables: Record<string, unknown> = {},
    transport: Transport = 'ws',
  ) => subscribe(transport, key, EVENTS_SUB, variables, 'sessionEvents');

  /** Starts `n` sessions, 50 at a time in parallel; `user(i)` is the i-th session's userId. */
  async function startMany(
    key: string,
    tag: string,
    n: number,
    user: (i: number) => string = (i) => `user-${i}`,
    app: TestApp = t,
  ): Promise<Started[]> {
    const started: Started[] = [];
    for (let from = 0; from < n; from += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, n - from) }, (_, j) =>
          start(app, key, tag, {
            userId: user(from + j),
            details: { username: 'u', email: 'u@x.io' },
          }),
        ),
      );
      started.push(...batch);
    }
    return started;
  }

  const revoke = (key: string, tag: string, sessionId: string, app: TestApp = t) =>
    ok(app.app, { key, query: REVOKE, variables: { tag, sessionId } });

  /** Revokes the sessions, `parallel` requests in flight at a time. */
  async function revokeMany(key: string, tag: string, ids: string[], parallel = 50): Promise<void> {
    for (let from = 0; from < ids.length; from += parallel) {
      await Promise.all(ids.slice(from, from + parallel).map((id) => revoke(key, tag, id)));
    }
  }

  const refresh = async (key: string, tag: string, refreshToken: string, app: TestApp = t) =>
    (
      await ok<{ refreshSession: Started }>(app.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken },
      })
    ).refreshSession;

  /** The ids (commit sequence numbers) of the product's events in one env after `after`, in order. */
  async function tableIdsAfter(product: TestProduct, env: string, after = 0): Promise<number[]> {
    // Ids are drawn after the writers' commits (migration 0009): number what has committed first.
    await sequenceAllPendingEvents(t.database.db);
    const result = await t.database.db.execute(
      sql`select e.seq as id from session_events e join products p on p.id = e.product_id
          where p.tag = ${product.tag} and e.env = ${env} and e.seq > ${after} order by e.seq`,
    );
    return rowsOf<{ id: number | string }>(result).map((r) => Number(r.id));
  }

  /** The id of one of the product's API keys, as the admin sees it. */
  async function apiKeyId(product: TestProduct, env: string, kind: 'SECRET' | 'PUBLISHABLE') {
    const data = await ok<{
      products: { tag: string; apiKeys: { id: string; env: string; kind: string }[] }[];
    }>(t.app, { key: t.adminKey, query: '{ products { tag apiKeys { id env kind } } }' });
    const keys = data.products
      .find((p) => p.tag === product.tag)!
      .apiKeys.filter((k) => k.env === env && k.kind === kind);
    expect(keys).toHaveLength(1);
    return keys[0]!.id;
  }

  return {
    subscribe,
    events,
    startMany,
    revoke,
    revokeMany,
    refresh,
    tableIdsAfter,
    apiKeyId,
    opened,
    /** Closes what `subscribe` opened and is still open. */
    async closeOpened() {
      for (const sub of opened) await sub.close();
      opened.clear();
    },
  };
}

/** `live`: the helpers of {@link liveOn} on the file's app and server. */
const it = test.extend('live', async ({ t, server }) => liveOn(t, server, new Set()));
const describe = it.describe;
// Every test closes what it opened; the bus must then hold no subscriber (nothing leaks), and
// the next test can tell when its own subscriptions are registered.
it.afterEach(async ({ t, live }) => {
  await live.closeOpened();
  await waitUntil(() => t.services.events.subscriberCount === 0, 'subscriptions to close');
});

describe('revocation events', () => {
  it('a graphql-ws subscriber hears a revocation', async ({ t, server }) => {
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    const client = wsClient(server.wsUrl, product.secret.dev);
    const before = t.services.events.subscriberCount;
    const received = subscribeWs<Event>(client, REVOKED_SUB, { tag }, 'sessionRevoked');
    await waitUntil(() => t.services.events.subscriberCount > before, 'the subscription');
    const session = await start(t, product.secret.dev, tag);
    await ok(t.app, {
      key: product.secret.dev,
      query: REVOKE,
      variables: { tag, sessionId: session.sessionId },
    });
    const [event] = await received.waitFor(1);
    expect(event).toMatchObject({
      type: 'REVOKED',
      sessionId: session.sessionId,
      tag,
      identifier: 'user-123',
      reason: 'revoked',
    });
    received.stop();
    await client.dispose();
  });

  it('an SSE subscriber hears a revocation', async ({ t, server }) => {
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    const before = t.services.events.subscriberCount;
    const received = subscribeSse<Event>(
      server.url,
      product.secret.dev,
      REVOKED_SUB,
      { tag },
      'sessionRevoked',
    );
    expect(await received.status).toBe(200);
    await waitUntil(() => t.services.events.subscriberCount > before, 'the subscription');
    const session = await start(t, product.secret.dev, tag);
    await ok(t.app, {
      key: product.secret.dev,
      query: REVOKE,
      variables: { tag, sessionId: session.sessionId },
    });
    const [event] = await received.waitFor(1);
    expect(event).toMatchObject({ type: 'REVOKED', sessionId: session.sessionId });
    received.stop();
  });
});

describe('session events', () => {
  it('sessionEvents delivers STARTED, REFRESHED, REVOKED in order, each written with its change', async ({
    t,
    live: { events, revoke, refresh },
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const ws = await events(key);
    const sse = await events(key, {}, 'sse');

    const session = await start(t, key, tag);
    // The event is committed with the change: it is in the table when the response arrives.
    expect(await eventTypesOf(t, session.sessionId)).toEqual(['STARTED']);
    await refresh(key, tag, session.refreshToken);
    expect(await eventTypesOf(t, session.sessionId)).toEqual(['STARTED', 'REFRESHED']);
    await revoke(key, tag, session.sessionId);
    expect(await eventTypesOf(t, session.sessionId)).toEqual(['STARTED', 'REFRESHED', 'REVOKED']);

    for (const sub of [ws, sse]) {
      const got = await sub.waitFor(3);
      expect(got.map((e) => e.type)).toEqual(['STARTED', 'REFRESHED', 'REVOKED']);
      for (const e of got) {
        expect(e).toMatchObject({ sessionId: session.sessionId, tag, identifier: 'user-123' });
      }
      expect(got[2]!.reason).toBe('revoked');
      expectStrictlyIncreasing(got);
    }
    await sleep(100);
    expect(ws.items).toHaveLength(3);
    expect(sse.items).toHaveLength(3);
    expect(idsOf(ws.items)).toEqual(idsOf(sse.items));
    await ws.close();
    await sse.close();
  });

  it('ids strictly increase in commit order under concurrent changes of many sessions', async ({
    t,
    live: { events, revoke, refresh, tableIdsAfter },
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const ws = await events(key);

    const sessions = await Promise.all(Array.from({ length: 30 }, () => start(t, key, tag)));
    await Promise.all(sessions.map((s) => refresh(key, tag, s.refreshToken)));
    await Promise.all(sessions.map((s) => revoke(key, tag, s.sessionId)));

    const got = await ws.waitFor(90);
    expectStrictlyIncreasing(got);
    // Exactly the table, in its order.
    expect(idsOf(got)).toEqual(await tableIdsAfter(product, 'dev'));
    // Per session: STARTED, then REFRESHED, then REVOKED.
    for (const s of sessions) {
      expect(got.filter((e) => e.sessionId === s.sessionId).map((e) => e.type)).toEqual([
        'STARTED',
        'REFRESHED',
        'REVOKED',
      ]);
    }
    await ws.close();
  });

  it('REUSE_DETECTED (and the revocation) when a rotated refresh token is replayed after the grace window', async ({
    instance,
    live: { subscribe, refresh },
  }) => {
    const app = await instance({ refreshGraceSeconds: 1 });
    const own = await listen(app);
    try {
      const product = await newProduct(app);
      const key = product.secret.dev;
      const tag = await newConfig(app, key);
      const target = { t: app, server: own };
      const all = await subscribe('ws', key, EVENTS_SUB, { tag }, 'sessionEvents', target);
      const revoked = await subscribe('sse', key, REVOKED_SUB, { tag }, 'sessionRevoked', target);

      const session = await start(app, key, tag);
      const next = await refresh(key, tag, session.refreshToken, app);
      // Replayed inside the grace window: the same pair, no state change, no event.
      expect(await refresh(key, tag, session.refreshToken, app)).toEqual(next);
      await sleep(1_300);
      const reused = await failure(app.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken: session.refreshToken },
      });
      expect(reused.code).toBe('REFRESH_TOKEN_REUSED');

      const got = await all.waitFor(4);
      expect(got.slice(0, 2).map((e) => e.type)).toEqual(['STARTED', 'REFRESHED']);
      expect(
        got
          .slice(2)
          .map((e) => e.type)
          .sort(),
      ).toEqual(['REUSE_DETECTED', 'REVOKED']);
      for (const e of got) expect(e.sessionId).toBe(session.sessionId);
      expect(got.find((e) => e.type === 'REVOKED')!.reason).toBe('refresh_token_reused');
      expect(got.find((e) => e.type === 'REUSE_DETECTED')!.reason).toBeTruthy();
      expectStrictlyIncreasing(got);

      const [revocation] = await revoked.waitFor(1);
      expect(revocation).toMatchObject({
        type: 'REVOKED',
        sessionId: session.sessionId,
        reason: 'refresh_token_reused',
      });
      await sleep(100);
      expect(all.items).toHaveLength(4);
      expect(revoked.items).toHaveLength(1);
      await all.close();
      await revoked.close();
      await waitUntil(() => app.services.events.subscriberCount === 0, 'subscriptions to close');
    } finally {
      await own.close();
    }
  });
});

describe('filters', () => {
  it('tag, identifier and types each keep what matches and drop the rest; they combine', async ({
    t,
    live: { subscribe, events, startMany, revoke, refresh },
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tagA = await newConfig(t, key);
    const tagB = await newConfig(t, key);
    const filters: Record<string, { tag?: string; identifier?: string; types?: string[] }> = {
      none: {},
      tag: { tag: tagA },
      identifier: { identifier: 'alice' },
      types: { types: ['REFRESHED', 'REVOKED'] },
      combined: { tag: tagA, identifier: 'alice', types: ['REVOKED'] },
    };
    const subs = new Map<string, Subscription>();
    for (const [name, filter] of Object.entries(filters)) {
      subs.set(name, await events(key, filter, name === 'types' ? 'sse' : 'ws'));
    }
    const revokedOfBob = await subscribe(
      'ws',
      key,
      REVOKED_SUB,
      { identifier: 'bob' },
      'sessionRevoked',
    );

    for (const tag of [tagA, tagB]) {
      for (const user of ['alice', 'bob']) {
        const [s] = await startMany(key, tag, 1, () => user);
        await refresh(key, tag, s!.refreshToken);
        await revoke(key, tag, s!.sessionId);
      }
    }
    // Last, an event every filter keeps: once it arrives, everything before it was judged.
    const [last] = await startMany(key, tagA, 1, () => 'alice');
    await revoke(key, tagA, last!.sessionId);

    const all = await subs.get('none')!.waitFor(14);
    const expected = (f: { tag?: string; identifier?: string; types?: string[] }) =>
      all.filter(
        (e) =>
          (f.tag === undefined || e.tag === f.tag) &&
          (f.identifier === undefined || e.identifier === f.identifier) &&
          (f.types === undefined || f.types.includes(e.type)),
      );
    for (const [name, filter] of Object.entries(filters)) {
      const want = expected(filter);
      // Each filter drops something and keeps something.
      if (name !== 'none') expect(want.length).toBeLessThan(all.length);
      expect(want.length).toBeGreaterThan(0);
      const sub = subs.get(name)!;
      await sub.waitFor(want.length);
      expect(sub.items.at(-1)!.sessionId).toBe(last!.sessionId);
      expect(idsOf(sub.items), `filter ${name}`).toEqual(idsOf(want));
    }
    expect(expected(filters.tag!).every((e) => e.tag === tagA)).toBe(true);
    expect(expected(filters.combined!)).toHaveLength(2);

    const bobs = all.filter((e) => e.identifier === 'bob' && e.type === 'REVOKED');
    expect(bobs).toHaveLength(2);
    await revokedOfBob.waitFor(2);
    expect(idsOf(revokedOfBob.items)).toEqual(idsOf(bobs));

    for (const sub of [...subs.values(), revokedOfBob]) await sub.close();
  });
});

describe('scope', () => {
  it('a secret key sees only its product and env', async ({
    t,
    live: { subscribe, events, revoke, refresh },
  }) => {
    const a = await newProduct(t);
    const b = await newProduct(t);
    // Product-wide, so that A's prd key starts sessions under it too.
    const tag = await newSharedConfig(t, a.tag);
    // The same tag in product B: a tag filter must not reach across products.
    await newConfig(t, b.secret.dev, { tag });
    const ws = await events(a.secret.dev);
    const sse = await events(a.secret.dev, {}, 'sse');
    const tagged = await events(a.secret.dev, { tag, identifier: 'user-123' });
    // The admin key names the product and env it watches.
    const admin = await subscribe(
      'ws',
      t.adminKey,
      `subscription($product: String, $env: String) { sessionEvents(product: $product, env: $env) { ${FIELDS} } }`,
      { product: a.tag, env: 'prd' },
      'sessionEvents',
    );

    // Product A, env prd (same config, other env) and product B, env dev (same tag).
    for (const [key] of [[a.secret.prd], [b.secret.dev]] as const) {
      const s = await start(t, key, tag);
      await refresh(key, tag, s.refreshToken);
      await revoke(key, tag, s.sessionId);
    }
    const final = await start(t, a.secret.dev, tag);

    for (const sub of [ws, sse, tagged]) {
      const [event] = await sub.waitFor(1);
      expect(event).toMatchObject({ type: 'STARTED', sessionId: final.sessionId });
    }
    const prd = await admin.waitFor(3);
    expect(prd.map((e) => e.type)).toEqual(['STARTED', 'REFRESHED', 'REVOKED']);
    await sleep(150);
    for (const sub of [ws, sse, tagged]) expect(sub.items).toHaveLength(1);
    expect(admin.items).toHaveLength(3);
    for (const sub of [ws, sse, tagged, admin]) await sub.close();
  });
});

describe('authentication', () => {
  const unknownKey = `sk_dev_${'x'.repeat(43)}`;

  it.for([
    { what: 'no key', given: undefined, code: 4401 },
    { what: 'an unknown key', given: unknownKey, code: 4401 },
    { what: 'a malformed key', given: 'not a key', code: 4401 },
    { what: 'a publishable key', given: 'publishable', code: 4403 },
  ] as const)(
    'over WebSocket, $what is refused at connect with close code $code',
    async ({ given, code }, { t, server }) => {
      const key = given === 'publishable' ? (await newProduct(t)).publishable : given;
      const client = wsClient(server.wsUrl, key);
      const closed = nextCloseCode(client);
      const received = subscribeWs<Event>(client, EVENTS_SUB, {}, 'sessionEvents');
      await received.ended;
      expect(await closed).toBe(code);
      expect(received.errors).toHaveLength(1);
      expect((received.errors[0] as { code?: number }).code).toBe(code);
      expect(received.items).toEqual([]);
      await client.dispose();
    },
  );

  it.for([
    { what: 'no key', given: undefined, code: 'UNAUTHENTICATED' },
    { what: 'an unknown key', given: unknownKey, code: 'UNAUTHENTICATED' },
    { what: 'a publishable key', given: 'publishable', code: 'FORBIDDEN' },
  ] as const)('over SSE, $what is refused with $code', async ({ given, code }, { t, server }) => {
    const key = given === 'publishable' ? (await newProduct(t)).publishable : given;
    for (const [query, field] of [
      [EVENTS_SUB, 'sessionEvents'],
      [REVOKED_SUB, 'sessionRevoked'],
    ] as const) {
      const received = subscribeSse<Event>(server.url, key, query, {}, field);
      await received.ended;
      expect(errorCodeOf(received), JSON.stringify(received.errors)).toBe(code);
      expect(received.items).toEqual([]);
    }
  });

  it.for(['Authorization', 'AUTHORIZATION', 'aUtHoRiZaTiOn'])(
    'over WebSocket, connectionParams.%s is accepted as HTTP accepts the header in any case',
    async (name, { t, server }) => {
      const product = await newProduct(t);
      const key = product.secret.dev;
      const tag = await newConfig(t, key);
      const client = createClient({
        url: server.wsUrl,
        webSocketImpl: WebSocket,
        connectionParams: { [name]: `Bearer ${key}` },
        retryAttempts: 0,
        lazy: true,
      });
      const before = t.services.events.subscriberCount;
      const received = subscribeWs<Event>(client, EVENTS_SUB, {}, 'sessionEvents');
      await waitUntil(
        () => t.services.events.subscriberCount > before || received.errors.length > 0,
        'the subscription to be registered',
      );
      expect(received.errors).toEqual([]);
      const started = await start(t, key, tag);
      expect((await received.waitFor(1))[0]!.sessionId).toBe(started.sessionId);
      received.stop();
      await client.dispose();
    },
  );

  it('revoking a key ends its open subscriptions (WebSocket and SSE) with UNAUTHENTICATED, and only those', async ({
    t,
    server,
    live: { subscribe, events, revoke, apiKeyId },
  }) => {
    const product = await newProduct(t);
    const doomed = product.secret.dev;
    const doomedId = await apiKeyId(product, 'dev', 'SECRET');
    const other = (
      await ok<{ createApiKey: { key: string } }>(t.app, {
        key: t.adminKey,
        query: `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { key } }`,
        variables: { input: { product: product.tag, env: 'dev', kind: 'SECRET', name: 'other' } },
      })
    ).createApiKey.key;
    const tag = await newConfig(t, other);

    const ws = await events(doomed);
    const sse = await events(doomed, {}, 'sse');
    const wsRevoked = await subscribe('ws', doomed, REVOKED_SUB, {}, 'sessionRevoked');
    const survivor = await events(other);
    const first = await start(t, other, tag);
    for (const sub of [ws, sse, survivor]) await sub.waitFor(1);

    await ok(t.app, {
      key: t.adminKey,
      query: 'mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }',
      variables: { id: doomedId },
    });
    for (const sub of [ws, sse, wsRevoked]) {
      await Promise.race([
        sub.ended,
        sleep(5_000).then(() => {
          throw new Error('the subscription of a revoked key did not end');
        }),
      ]);
      expect(errorCodeOf(sub), JSON.stringify(sub.errors)).toBe('UNAUTHENTICATED');
    }
    await waitUntil(() => t.services.events.subscriberCount === 1, 'only the survivor to remain');

    // The other key's subscription goes on.
    await revoke(other, tag, first.sessionId);
    const got = await survivor.waitFor(2);
    expect(got.map((e) => e.type)).toEqual(['STARTED', 'REVOKED']);
    expect(ws.items).toHaveLength(1);

    // And the revoked key cannot subscribe again.
    const client = wsClient(server.wsUrl, doomed);
    const closed = nextCloseCode(client);
    const again = subscribeWs<Event>(client, EVENTS_SUB, {}, 'sessionEvents');
    expect(await closed).toBe(4401);
    await again.ended;
    await client.dispose();
    const sseAgain = subscribeSse<Event>(server.url, doomed, EVENTS_SUB, {}, 'sessionEvents');
    await sseAgain.ended;
    expect(errorCodeOf(sseAgain)).toBe('UNAUTHENTICATED');

    for (const sub of [ws, sse, wsRevoked, survivor]) await sub.close();
  });
});

describe('resuming with after', () => {
  it('replays exactly the missed events in order, then continues live, with no duplicate', async ({
    t,
    live: { events, startMany, revokeMany, tableIdsAfter },
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);

    const first = await events(key);
    const early = await startMany(key, tag, 5);
    await revokeMany(
      key,
      tag,
      early.map((s) => s.sessionId),
    );
    await first.waitFor(10);
    await first.close();
    await waitUntil(() => t.services.events.subscriberCount === 0, 'the subscriber to leave');
    const cursor = Number(first.items[9]!.id);

    // Missed while away.
    const missed = await startMany(key, tag, 5);
    await revokeMany(
      key,
      tag,
      missed.map((s) => s.sessionId),
    );
    expect(await tableIdsAfter(product, 'dev', cursor)).toHaveLength(10);

    for (const transport of ['ws', 'sse'] as const) {
      // (The second pass also replays what the first one saw live.)
      const missedIds = await tableIdsAfter(product, 'dev', cursor);
      const resumed = await events(key, { after: String(cursor) }, transport);
      const replayed = await resumed.waitFor(missedIds.length);
      expect(idsOf(replayed)).toEqual(missedIds);
      // (The 5 starts ran in parallel, then the 5 revocations: either half in any order.)
      const missedSessions = new Set(missed.map((s) => s.sessionId));
      expect(new Set(replayed.slice(0, 5).map((e) => e.sessionId))).toEqual(missedSessions);
      expect(new Set(replayed.slice(5, 10).map((e) => e.sessionId))).toEqual(missedSessions);
      expect(replayed.slice(0, 10).map((e) => e.type)).toEqual([
        ...Array(5).fill('STARTED'),
        ...Array(5).fill('REVOKED'),
      ]);
      // Then live.
      const live = await startMany(key, tag, 3);
      await resumed.waitFor(missedIds.length + 3);
      expect(new Set(resumed.items.slice(missedIds.length).map((e) => e.sessionId))).toEqual(
        new Set(live.map((s) => s.sessionId)),
      );
      await sleep(100);
      expect(idsOf(resumed.items)).toEqual(await tableIdsAfter(product, 'dev', cursor));
      expectStrictlyIncreasing(resumed.items);
      await resumed.close();
      await waitUntil(() => t.services.events.subscriberCount === 0, 'the subscriber to leave');
    }
  });

  it('with events committed while it replays, the resumed sequence is every id after the cursor, once, in order', async ({
    t,
    live: { events, startMany, revoke, revokeMany, tableIdsAfter },
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);

    const first = await events(key, { types: ['STARTED'] });
    const sessions = await startMany(key, tag, 300);
    await first.waitFor(300);
    await first.close();
    // Past the cursor: 250 STARTED, more than one page (500 rows) of replay with the revocations.
    const cursor = Number(first.items[49]!.id);
    const ids = sessions.map((s) => s.sessionId);

    // 100 revocations while nobody listens, then 200 more fired while the subscriber resumes.
    await revokeMany(key, tag, ids.slice(0, 100));
    const racing = ids.slice(100);
    let wsResumed: Promise<Subscription> | undefined;
    let sseResumed: Promise<Subscription> | undefined;
    await Promise.all(
      racing.map(async (id, i) => {
        if (i === 20) wsResumed = events(key, { after: String(cursor) });
        if (i === 60) sseResumed = events(key, { after: String(cursor) }, 'sse');
        await revoke(key, tag, id);
      }),
    );
    const expected = await tableIdsAfter(product, 'dev', cursor);
    expect(expected).toHaveLength(550);
    for (const pending of [wsResumed!, sseResumed!]) {
      const sub = await pending;
      await sub.waitFor(expected.length);
      await sleep(100);
      expect(idsOf(sub.items)).toEqual(expected);
      const revokedIds = sub.items.filter((e) => e.type === 'REVOKED').map((e) => e.sessionId);
      expect(new Set(revokedIds).size).toBe(300);
      await sub.close();
    }
  });

  it('refuses an after that is not an event id', async ({ t, server }) => {
    const product = await newProduct(t);
    const client = wsClient(server.wsUrl, product.secret.dev);
    for (const after of ['abc', '-1', '1.5', '9'.repeat(40)]) {
      const ws = subscribeWs<Event>(client, EVENTS_SUB, { after }, 'sessionEvents');
      const sse = subscribeSse<Event>(
        server.url,
        product.secret.dev,
        EVENTS_SUB,
        { after },
        'sessionEvents',
      );
      for (const received of [ws, sse]) {
        await received.ended;
        expect(errorCodeOf(received), JSON.stringify(received.errors)).toBe('BAD_USER_INPUT');
        expect(received.items).toEqual([]);
      }
    }
    await client.dispose();
  });
});

// Liveness bound: a thousand revocations and their delivery on a machine running every file.
describe('bursts', { timeout: 180_000 }, () => {
  it('1,000 concurrent revocations reach the subscriber completely, in order, each once', async ({
    t,
    live: { subscribe, startMany, revokeMany },
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const sessions = await startMany(key, tag, 1_000, (i) => `user-${i % 17}`);
    const ws = await subscribe('ws', key, REVOKED_SUB, { tag }, 'sessionRevoked');
    const sse = await subscribe('sse', key, REVOKED_SUB, {}, 'sessionRevoked');

    await revokeMany(
      key,
      tag,
      sessions.map((s) => s.sessionId),
      100,
    );
    for (const sub of [ws, sse]) {
      await sub.waitFor(1_000, 30_000);
      await sleep(50);
      expect(sub.items).toHaveLength(1_000);
      expect(sub.items.every((e) => e.type === 'REVOKED')).toBe(true);
      expectStrictlyIncreasing(sub.items);
      expect(new Set(sub.items.map((e) => e.sessionId))).toEqual(
        new Set(sessions.map((s) => s.sessionId)),
      );
    }
    expect(idsOf(ws.items)).toEqual(idsOf(sse.items));
    await ws.close();
    await sse.close();
  });

  it('revokeAllSessions over 300 sessions of one user delivers 300 events', async ({
    t,
    live: { subscribe, events, startMany },
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const mine = await startMany(key, tag, 300, () => 'bulk-user');
    await startMany(key, tag, 20, () => 'someone-else');
    const ofUser = await subscribe(
      'ws',
      key,
      REVOKED_SUB,
      { tag, identifier: 'bulk-user' },
      'sessionRevoked',
    );
    const all = await events(key, {}, 'sse');

    const result = await ok(t.app, {
      key,
      query: REVOKE_ALL,
      variables: { tag, identifier: 'bulk-user' },
    });
    expect(result.revokeAllSessions.count).toBe(300);
    for (const sub of [ofUser, all]) {
      await sub.waitFor(300);
      await sleep(50);
      expect(sub.items).toHaveLength(300);
      expectStrictlyIncreasing(sub.items);
      for (const e of sub.items) {
        expect(e).toMatchObject({
          type: 'REVOKED',
          identifier: 'bulk-user',
          reason: 'revoked_all',
        });
      }
      expect(new Set(sub.items.map((e) => e.sessionId))).toEqual(
        new Set(mine.map((s) => s.sessionId)),
      );
    }
    await ofUser.close();
    await all.close();
  });
});

describe('shutdown', () => {
  /**
   * A separate app (an instance on the file's database, from `instance`) and server, so that
   * shutting it down leaves the other tests alone.
   */
  async function withOwnServer(
    instance: (options?: TestAppOptions) => Promise<TestApp>,
    body: (
      app: TestApp,
      own: Awaited<ReturnType<typeof listen>>,
      product: TestProduct,
      markShutDown: () => void,
    ) => Promise<void>,
  ) {
    const app = await instance();
    const own = await listen(app);
    let shutDown = false;
    try {
      await body(app, own, await newProduct(app), () => (shutDown = true));
    } finally {
      if (!shutDown) await own.close();
    }
  }

  it('closes open graphql-ws subscriptions with close code 1001', async ({ instance }) => {
    await withOwnServer(instance, async (app, own, product, markShutDown) => {
      const client = wsClient(own.wsUrl, product.secret.dev);
      const closed = nextCloseCode(client);
      const ws = subscribeWs<Event>(client, EVENTS_SUB, {}, 'sessionEvents');
      await waitUntil(
        () => app.services.events.subscriberCount === 1,
        'the subscription to be registered',
      );

      const started = performance.now();
      await own.http.shutdown(2_000);
      markShutDown();
      expect(await closed).toBe(1001);
      await ws.ended;
      // The client sees the close event with 1001 as the subscription's error.
      expect((ws.errors[0] as { code?: number }).code).toBe(1001);
      // Nothing else was in flight: no waiting for the grace period.
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(app.services.events.subscriberCount).toBe(0);
      await client.dispose();
    });
  });

  it('ends open SSE subscriptions and stops without waiting out the grace period', async ({
    instance,
    live: { subscribe, opened },
  }) => {
    await withOwnServer(instance, async (app, own, product, markShutDown) => {
      const sse = await subscribe('sse', product.secret.dev, EVENTS_SUB, {}, 'sessionEvents', {
        t: app,
        server: own,
      });
      opened.delete(sse);

      const started = performance.now();
      const stopped = own.http.shutdown(2_000).then(() => performance.now() - started);
      await sse.ended;
      expect(sse.errors).toEqual([]);
      expect(performance.now() - started).toBeLessThan(1_000);
      const took = await stopped;
      markShutDown();
      expect(app.services.events.subscriberCount).toBe(0);
      // The stream ended at once, so nothing is left in flight: shutdown must not wait 2 s.
      expect(took).toBeLessThan(1_000);
    });
  });
});

describe('latestSessionEventId', () => {
  it('names the newest event of the caller’s product and env, so a subscriber can start from it without a gap', async ({
    t,
    server,
    live: { tableIdsAfter },
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const LATEST = '{ latestSessionEventId }';
    expect(
      (await ok<{ latestSessionEventId: string | null }>(t.app, { key, query: LATEST }))
        .latestSessionEventId,
    ).toBeNull();
    const tag = await newSharedConfig(t, product.tag);
    const first = await start(t, key, tag);
    await start(t, product.secret.prd, tag); // another env: not counted
    const latest = (await ok<{ latestSessionEventId: string }>(t.app, { key, query: LATEST }))
      .latestSessionEventId;
    expect(latest).toBe(String((await tableIdsAfter(product, 'dev')).at(-1)));
    // Events committed after reading it, but before subscribing, are still delivered.
    await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: first.sessionId } });
    const client = wsClient(server.wsUrl, key);
    const received = subscribeWs<Event>(client, EVENTS_FROM, { after: latest }, 'sessionEvents');
    const [event] = await received.waitFor(1);
    expect(event).toMatchObject({ type: 'REVOKED', sessionId: first.sessionId });
    received.stop();
    await client.dispose();
  });
});

const EVENTS_FROM = `subscription($after: ID) { sessionEvents(after: $after) { id type sessionId tag identifier reason } }`;

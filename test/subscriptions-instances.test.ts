import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { newConfig, newProduct, REVOKE, rowsOf, start, uniqueTag } from './support/fixtures.js';
import { ok, documentText, type Document } from './support/graphql.js';
import { SEQUENCER_LOCK } from '../src/domain/events.js';
import {
  errorCodeOf,
  listen,
  subscribeSse,
  subscribeWs,
  waitUntil,
  wsClient,
  wsUrlOf,
  type Received,
} from './support/live.js';
import {
  post,
  startServerProcess,
  TEST_SESSION_SECRET,
  type ServerProcess,
} from './support/server-process.js';
import { TcpProxy } from './support/tcp-proxy.js';

/**
 * Several server processes on one Postgres: events and key revocations cross instances through
 * LISTEN/NOTIFY, and an instance whose listening connection drops catches up from the table.
 * Postgres only: the embedded database is one process by nature.
 */

interface Event {
  id: string;
  type: string;
  sessionId: string;
  tag: string;
  identifier: string;
  reason: string | null;
}

const FIELDS = 'id type sessionId tag identifier reason';
const EVENTS_SUB = `subscription($types: [SessionEventType!], $after: ID) {
  sessionEvents(types: $types, after: $after) { ${FIELDS} } }`;
const REVOKED_SUB = `subscription { sessionRevoked { ${FIELDS} } }`;

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sessions-instances-'));
  dirs.push(dir);
  return dir;
};

const adminKey = `ak_${randomBytes(24).toString('hex')}`;
// Instances on one database share one secret: the suite's, on the shared test database.
const sessionSecret = TEST_SESSION_SECRET;
let a: ServerProcess;
let b: ServerProcess;

beforeAll(async () => {
  if (!TEST_DATABASE_URL) return;
  const env = () => ({
    DATABASE_URL: TEST_DATABASE_URL!,
    SESSION_SECRET: sessionSecret,
    ADMIN_KEY: adminKey,
    DATA_DIR: tempDir(),
  });
  [a, b] = await Promise.all([startServerProcess(env()), startServerProcess(env())]);
});
afterAll(async () => {
  for (const server of [a, b]) {
    if (!server) continue;
    server.child.kill('SIGTERM');
    await server.exited;
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The data of a request to a server process that must succeed. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read response shapes freely
async function call<T = Record<string, any>>(
  server: ServerProcess,
  key: string,
  query: Document,
  variables?: Record<string, unknown>,
): Promise<T> {
  const response = await post(server.url, key, query, variables);
  if (response.errors?.length || !response.data) {
    throw new Error(`expected success: ${documentText(query)}\n${JSON.stringify(response)}`);
  }
  return response.data as T;
}

/** A product with a dev secret key and a session config, created over HTTP on `server`. */
async function productOn(server: ServerProcess) {
  const product = uniqueTag('p');
  await call(
    server,
    adminKey,
    'mutation($input: CreateProductInput!) { createProduct(input: $input) { tag } }',
    { input: { tag: product, name: product, envs: ['dev'] } },
  );
  const created = await call<{ createApiKey: { key: string; apiKey: { id: string } } }>(
    server,
    adminKey,
    'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { key apiKey { id } } }',
    { input: { product, env: 'dev', kind: 'SECRET', name: 'backend' } },
  );
  const key = created.createApiKey.key;
  const tag = uniqueTag('s');
  await call(
    server,
    key,
    'mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input) { tag } }',
    {
      input: {
        name: 'User session',
        tag,
        description: 'Signed-in users',
        schema: { userId: 'u' },
        selector: '$Session{userId}',
        expiry: 1,
        period: 'HOURS',
      },
    },
  );
  return { product, key, tag };
}

async function startOn(server: ServerProcess, key: string, tag: string, n: number) {
  const ids: string[] = [];
  for (let from = 0; from < n; from += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, n - from) }, async (_, i) => {
        const data = await call<{ startSession: { sessionId: string } }>(
          server,
          key,
          'mutation($input: StartSessionInput!) { startSession(input: $input) { sessionId } }',
          { input: { tag, data: { userId: `user-${from + i}` } } },
        );
        return data.startSession.sessionId;
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

const revokeOn = (server: ServerProcess, key: string, tag: string, sessionId: string) =>
  call(server, key, REVOKE, { tag, sessionId });

function expectStrictlyIncreasing(list: Event[]) {
  const ids = list.map((e) => Number(e.id));
  for (let i = 1; i < ids.length; i++) {
    if (!(ids[i]! > ids[i - 1]!)) {
      throw new Error(`ids not strictly increasing at ${i}: ${ids[i - 1]} then ${ids[i]}`);
    }
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

describe('across instances (Postgres)', () => {
  it.runIf(TEST_DATABASE_URL)(
    'a revocation on one instance reaches subscribers on the other, both ways (delay measured)',
    async () => {
      for (const [from, to, label] of [
        [a, b, 'A -> B'],
        [b, a, 'B -> A'],
      ] as const) {
        // Everything is created on instance A, as an operator would.
        const { key, tag } = await productOn(a);
        const sessions = await startOn(from, key, tag, 21);
        const client = wsClient(wsUrlOf(to.url), key);
        // `after: 0` replays the 21 STARTED: once they are in, the subscription is live.
        const ws = subscribeWs<Event>(client, EVENTS_SUB, { after: '0' }, 'sessionEvents');
        const sse = subscribeSse<Event>(to.url, key, REVOKED_SUB, {}, 'sessionRevoked');
        expect(await sse.status).toBe(200);
        await ws.waitFor(21);

        // The first revocation warms up (and proves the SSE subscriber is live), then 20 are timed.
        await revokeOn(from, key, tag, sessions[0]!);
        await ws.waitFor(22);
        await sse.waitFor(1);
        // From the revoke's response to the event's receipt on the other instance (negative:
        // the event arrived before the response), and from the request to the receipt.
        const afterResponse: number[] = [];
        const afterRequest: number[] = [];
        for (const [i, sessionId] of sessions.slice(1).entries()) {
          const sent = performance.now();
          await revokeOn(from, key, tag, sessionId);
          const answered = performance.now();
          const [event] = (await ws.waitFor(23 + i, 5_000)).slice(-1);
          expect(event).toMatchObject({ type: 'REVOKED', sessionId, tag });
          afterResponse.push(ws.times[22 + i]! - answered);
          afterRequest.push(ws.times[22 + i]! - sent);
        }
        const got = await sse.waitFor(21);
        expect(got.map((e) => e.sessionId)).toEqual(sessions);
        expectStrictlyIncreasing(ws.items);
        expectStrictlyIncreasing(sse.items);

        afterResponse.sort((x, y) => x - y);
        afterRequest.sort((x, y) => x - y);
        const median = Math.max(0, percentile(afterResponse, 0.5));
        const max = Math.max(0, afterResponse.at(-1)!);
        const early = afterResponse.filter((d) => d < 0).length;
        console.log(
          `cross-instance delivery ${label}: median ${median.toFixed(1)} ms, max ${max.toFixed(1)} ms ` +
            `after the revoke response (n=${afterResponse.length}, ${early} arrived before the response); ` +
            `request to receipt: median ${percentile(afterRequest, 0.5).toFixed(1)} ms, max ${afterRequest.at(-1)!.toFixed(1)} ms`,
        );
        expect(max).toBeLessThan(2_000);
        ws.stop();
        sse.stop();
        await client.dispose();
      }
    },
  );

  it.runIf(TEST_DATABASE_URL)(
    'revocations fired on both instances at once reach subscribers on both, complete and in the same order',
    async () => {
      const { key, tag } = await productOn(a);
      const sessions = await startOn(a, key, tag, 200);
      const subs: Received<Event>[] = [];
      const clients = [wsClient(wsUrlOf(a.url), key), wsClient(wsUrlOf(b.url), key)];
      for (const client of clients) {
        subs.push(
          subscribeWs<Event>(
            client,
            EVENTS_SUB,
            { after: '0', types: ['STARTED', 'REVOKED'] },
            'sessionEvents',
          ),
        );
      }
      for (const sub of subs) await sub.waitFor(200);

      await Promise.all(sessions.map((id, i) => revokeOn(i % 2 === 0 ? a : b, key, tag, id)));
      for (const sub of subs) {
        await sub.waitFor(400, 15_000);
        const revoked = sub.items.slice(200);
        expect(revoked.every((e) => e.type === 'REVOKED')).toBe(true);
        expect(new Set(revoked.map((e) => e.sessionId))).toEqual(new Set(sessions));
        expectStrictlyIncreasing(sub.items);
      }
      await new Promise((r) => setTimeout(r, 100));
      expect(subs[0]!.items).toHaveLength(400);
      expect(subs[1]!.items.map((e) => e.id)).toEqual(subs[0]!.items.map((e) => e.id));
      for (const sub of subs) sub.stop();
      for (const client of clients) await client.dispose();
    },
  );

  it.runIf(TEST_DATABASE_URL)(
    'revoking a key on one instance ends its subscriptions on the other',
    async () => {
      const { product, key, tag } = await productOn(a);
      const client = wsClient(wsUrlOf(b.url), key);
      const ws = subscribeWs<Event>(client, EVENTS_SUB, { after: '0' }, 'sessionEvents');
      const sse = subscribeSse<Event>(b.url, key, EVENTS_SUB, { after: '0' }, 'sessionEvents');
      await startOn(a, key, tag, 1);
      await ws.waitFor(1);
      await sse.waitFor(1);

      const products = await call<{
        products: { tag: string; apiKeys: { id: string; env: string; kind: string }[] }[];
      }>(a, adminKey, '{ products { tag apiKeys { id env kind } } }');
      const keyId = products.products
        .find((p) => p.tag === product)!
        .apiKeys.find((k) => k.env === 'dev' && k.kind === 'SECRET')!.id;
      await call(a, adminKey, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', {
        id: keyId,
      });
      for (const sub of [ws, sse]) {
        await Promise.race([
          sub.ended,
          new Promise((_, reject) =>
            setTimeout(() => reject(new Error('subscription did not end')), 5_000),
          ),
        ]);
        expect(errorCodeOf(sub), JSON.stringify(sub.errors)).toBe('UNAUTHENTICATED');
      }
      await client.dispose();
    },
  );
});

describe('a dropped listening connection (Postgres)', () => {
  const listenerPids = async (t: TestApp) =>
    rowsOf<{ pid: number }>(
      await t.database.db.execute(
        sql`select pid from pg_stat_activity where application_name = 'session-service-listener'`,
      ),
    ).map((r) => Number(r.pid));

  const lockWaiters = async (t: TestApp) =>
    Number(
      rowsOf<{ n: number | string }>(
        await t.database.db.execute(
          sql`select count(*) as n from pg_locks where locktype = 'advisory' and not granted`,
        ),
      )[0]!.n,
    );

  it.runIf(TEST_DATABASE_URL)(
    'reconnects and delivers, from the table, what was committed while it was down',
    async () => {
      // Another app only to read pg_stat_activity before ours exists.
      const probe = await createTestApp();
      const before = new Set(await listenerPids(probe));
      const t = await createTestApp();
      const server = await listen(t);
      try {
        const mine = (await listenerPids(probe)).filter((pid) => !before.has(pid));
        expect(mine.length).toBeGreaterThan(0);

        const product = await newProduct(t);
        const key = product.secret.dev;
        const tag = await newConfig(t, key);
        const startAs = (userId: string) =>
          start(t, key, tag, { userId, details: { username: 'u', email: 'u@x.io' } });
        const early = await Promise.all(Array.from({ length: 10 }, () => startAs('early')));
        const dropped = await Promise.all(Array.from({ length: 15 }, () => startAs('dropped')));
        const later = await Promise.all(Array.from({ length: 10 }, () => startAs('later')));
        const idsOf = (list: { sessionId: string }[]) => list.map((s) => s.sessionId);
        const revoke = (sessionId: string) =>
          ok(t.app, { key, query: REVOKE, variables: { tag, sessionId } });

        const client = wsClient(server.wsUrl, key);
        const ws = subscribeWs<Event>(client, REVOKED_SUB, {}, 'sessionRevoked');
        await waitUntil(() => t.services.events.subscriberCount === 1, 'the subscription');
        await Promise.all(idsOf(early).map(revoke));
        await ws.waitFor(10);

        // The reconnection takes a few ms. To number and notify inside that window, the event
        // sequencer's lock (which every sweep takes first, migration 0009) is held while a
        // revokeAllSessions of 15 sessions commits and the sweep that follows queues behind it;
        // the listener is cut, the lock let go at once, and the 15 events are numbered and
        // notified while no LISTEN is in place.
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        let locked!: () => void;
        const isLocked = new Promise<void>((resolve) => (locked = resolve));
        const holder = probe.database.db.transaction(async (tx) => {
          await tx.execute(sql`select pg_advisory_xact_lock(${SEQUENCER_LOCK}::bigint)`);
          locked();
          await gate;
        });
        await isLocked;
        const waitersBefore = await lockWaiters(probe);
        const revokeAll = ok(t.app, {
          key,
          query: `mutation($tag: String!, $identifier: String!) { revokeAllSessions(tag: $tag, identifier: $identifier) { count } }`,
          variables: { tag, identifier: 'dropped' },
        });
        await waitUntil(
          async () => (await lockWaiters(probe)) > waitersBefore,
          'the sweep to queue behind the lock',
        );
        for (const pid of mine) {
          await probe.database.db.execute(sql`select pg_terminate_backend(${pid})`);
        }
        release();
        await holder;
        expect((await revokeAll).revokeAllSessions.count).toBe(15);

        // Nothing else is committed: what the dropped connection missed comes from the table.
        const caughtUp = await ws.waitFor(25, 15_000);
        expect(new Set(caughtUp.map((e) => e.sessionId))).toEqual(
          new Set(idsOf([...early, ...dropped])),
        );
        await waitUntil(
          async () =>
            (await listenerPids(probe)).some((pid) => !before.has(pid) && !mine.includes(pid)),
          'the listener to reconnect',
        );
        // And live again afterwards.
        await Promise.all(idsOf(later).map(revoke));
        const got = await ws.waitFor(35, 10_000);
        expect(new Set(got.slice(25).map((e) => e.sessionId))).toEqual(new Set(idsOf(later)));
        expectStrictlyIncreasing(got);
        await new Promise((r) => setTimeout(r, 100));
        expect(ws.items).toHaveLength(35);

        // Key revocations are heard on the new connection too.
        const keys = await ok<{
          products: { tag: string; apiKeys: { id: string; env: string; kind: string }[] }[];
        }>(t.app, { key: t.adminKey, query: '{ products { tag apiKeys { id env kind } } }' });
        const keyId = keys.products
          .find((p) => p.tag === product.tag)!
          .apiKeys.find((k) => k.env === 'dev' && k.kind === 'SECRET')!.id;
        await ok(t.app, {
          key: t.adminKey,
          query: 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }',
          variables: { id: keyId },
        });
        await ws.ended;
        expect(errorCodeOf(ws)).toBe('UNAUTHENTICATED');
        await client.dispose();
      } finally {
        await server.close();
        await t.close();
        await probe.close();
      }
    },
  );

  it.runIf(TEST_DATABASE_URL)(
    'an instance cut off from Postgres for a while catches up, after it is back, on what other instances committed',
    async () => {
      const target = new URL(TEST_DATABASE_URL!);
      const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
      await proxy.start();
      const proxied = new URL(TEST_DATABASE_URL!);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(proxy.port);
      const x = await startServerProcess({
        DATABASE_URL: proxied.toString(),
        SESSION_SECRET: sessionSecret,
        ADMIN_KEY: adminKey,
        DATA_DIR: tempDir(),
      });
      try {
        const { key, tag } = await productOn(a);
        const sessions = await startOn(a, key, tag, 60);
        const subscriber = wsClient(wsUrlOf(x.url), key);
        const ws = subscribeWs<Event>(
          subscriber,
          EVENTS_SUB,
          { after: '0', types: ['STARTED', 'REVOKED'] },
          'sessionEvents',
        );
        await ws.waitFor(60);

        // X loses every connection to Postgres; instance A goes on revoking meanwhile.
        await proxy.cut();
        await Promise.all(sessions.slice(0, 30).map((id) => revokeOn(a, key, tag, id)));
        await new Promise((r) => setTimeout(r, 1_500));
        await proxy.restore();
        // Nothing else happens: what was missed must come from the table once X is back.
        const caughtUp = await ws.waitFor(90, 20_000);
        expect(new Set(caughtUp.slice(60).map((e) => e.sessionId))).toEqual(
          new Set(sessions.slice(0, 30)),
        );
        // And live again.
        await Promise.all(sessions.slice(30).map((id) => revokeOn(a, key, tag, id)));
        const all = await ws.waitFor(120, 10_000);
        expectStrictlyIncreasing(all);
        expect(new Set(all.slice(60).map((e) => e.sessionId))).toEqual(new Set(sessions));
        await new Promise((r) => setTimeout(r, 100));
        expect(ws.items).toHaveLength(120);
        ws.stop();
        await subscriber.dispose();
      } finally {
        x.child.kill('SIGTERM');
        await x.exited;
        await proxy.cut();
      }
    },
  );
});

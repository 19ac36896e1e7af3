import { expect } from 'vitest';
import { randomSecret } from '../src/tokens/secrets.js';
import { createTestApp, TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { newConfig, newProduct, REFRESH, REVOKE, start } from './support/fixtures.js';
import { ok } from './support/graphql.js';
import { listen, subscribeSse, waitUntil } from './support/live.js';
import { test, type TestServer } from './support/test.js';

/**
 * Events are numbered after their writers' commits (migration 0009), by whichever instance
 * sweeps: writers in several products at once, on two instances, and each subscriber must see
 * its own product's events exactly once, with ids 1, 2, 3, ... in commit order.
 */
const sessionSecret = randomSecret(48);
test.override('appOptions', { sessionSecret });

/**
 * The first instance is the file's `t` (and `server`); `b`, the second, is on the same database
 * with connections of its own on Postgres (not `instance`, which shares `t`'s handle), and on
 * PGlite on the same handle, as one process would be. `serverB` serves it.
 */
const it = test
  .extend('b', { scope: 'file' }, async ({ t }, { onCleanup }): Promise<TestApp> => {
    const b = await createTestApp({
      sessionSecret,
      ...(TEST_DATABASE_URL ? {} : { database: t.database }),
    });
    onCleanup(() => b.close());
    return b;
  })
  .extend('serverB', { scope: 'file' }, async ({ b }, { onCleanup }): Promise<TestServer> => {
    const serverB = await listen(b);
    onCleanup(() => serverB.close());
    return serverB;
  });
const describe = it.describe;

const EVENTS = `subscription($after: ID) { sessionEvents(after: $after) { id type sessionId } }`;

interface EventNode {
  id: string;
  type: string;
  sessionId: string;
}

/** One write as the client saw it: sent at `sentAt`, answered at `doneAt`. */
interface Write {
  readonly sessionId: string;
  readonly type: 'STARTED' | 'REFRESHED' | 'REVOKED';
  readonly sentAt: number;
  readonly doneAt: number;
}

describe('event order under concurrent writers in several products', () => {
  it('each subscriber sees its product’s events exactly once, numbered 1..n without a gap, in commit order, on both instances', async ({
    t: a,
    server: serverA,
    b,
    serverB,
  }) => {
    const PRODUCTS = 4;
    const CHAINS = 6; // concurrent sessions per product, each started, refreshed twice, revoked
    const products = await Promise.all(
      Array.from({ length: PRODUCTS }, async () => {
        const product = await newProduct(a);
        const key = product.secret.dev;
        return { key, tag: await newConfig(a, key) };
      }),
    );

    // Live subscribers on both instances, from the first event on.
    const subs = products.map(({ key }) => ({
      onA: subscribeSse<EventNode>(serverA.url, key, EVENTS, {}, 'sessionEvents'),
      onB: subscribeSse<EventNode>(serverB.url, key, EVENTS, {}, 'sessionEvents'),
    }));
    await waitUntil(
      () =>
        a.services.events.subscriberCount === PRODUCTS &&
        b.services.events.subscriberCount === PRODUCTS,
      'the subscriptions',
    );

    // Every chain alternates instances, so writes of one product commit through both.
    const writes = await Promise.all(
      products.map(async ({ key, tag }) => {
        const log: Write[] = [];
        await Promise.all(
          Array.from({ length: CHAINS }, async (_, chain) => {
            const on = (step: number) => ((chain + step) % 2 === 0 ? a : b);
            let sentAt = performance.now();
            const s = await start(on(0), key, tag);
            log.push({
              sessionId: s.sessionId,
              type: 'STARTED',
              sentAt,
              doneAt: performance.now(),
            });
            let refreshToken = s.refreshToken;
            for (let step = 1; step <= 2; step++) {
              sentAt = performance.now();
              const r = await ok<{ refreshSession: { refreshToken: string } }>(on(step).app, {
                key,
                query: REFRESH,
                variables: { tag, refreshToken },
              });
              refreshToken = r.refreshSession.refreshToken;
              log.push({
                sessionId: s.sessionId,
                type: 'REFRESHED',
                sentAt,
                doneAt: performance.now(),
              });
            }
            sentAt = performance.now();
            await ok(on(3).app, { key, query: REVOKE, variables: { tag, sessionId: s.sessionId } });
            log.push({
              sessionId: s.sessionId,
              type: 'REVOKED',
              sentAt,
              doneAt: performance.now(),
            });
          }),
        );
        return log;
      }),
    );

    const perProduct = CHAINS * 4;
    for (const [i, sub] of subs.entries()) {
      const log = writes[i]!;
      for (const received of [sub.onA, sub.onB]) {
        const events = await received.waitFor(perProduct, 20_000);
        // Nothing more arrives: no duplicate, nothing of another product.
        await new Promise((r) => setTimeout(r, 200));
        expect(received.items).toHaveLength(perProduct);
        expect(received.errors).toEqual([]);
        // Ids 1..n, in the order delivered.
        expect(events.map((e) => Number(e.id))).toEqual(
          Array.from({ length: perProduct }, (_, n) => n + 1),
        );
        // Exactly this product's writes, each once.
        const key = (e: { sessionId: string; type: string }) => `${e.sessionId}|${e.type}`;
        const expected = log.map(key).sort();
        expect(events.map(key).sort()).toEqual(expected);
        // Commit order: a write answered before another was sent committed first, so its event
        // has the lower id (REFRESHED twice per session: compared as a pair, first to first).
        const idOf = new Map<string, number[]>();
        for (const e of events) {
          const ids = idOf.get(key(e)) ?? [];
          ids.push(Number(e.id));
          idOf.set(key(e), ids);
        }
        const ordinal = new Map<string, number>();
        const withIds = log.map((w) => {
          const k = key(w);
          const n = ordinal.get(k) ?? 0;
          ordinal.set(k, n + 1);
          return { ...w, id: idOf.get(k)![n]! };
        });
        let pairs = 0;
        for (const x of withIds)
          for (const y of withIds)
            if (x.doneAt < y.sentAt) {
              pairs++;
              expect(x.id, `${x.type} answered before ${y.type} was sent`).toBeLessThan(y.id);
            }
        expect(pairs).toBeGreaterThan(perProduct);
      }
      sub.onA.stop();
      sub.onB.stop();
    }

    // Both instances agree on where each product's stream stands.
    for (const { key } of products) {
      const LATEST = '{ latestSessionEventId }';
      const onA = await ok<{ latestSessionEventId: string }>(a.app, { key, query: LATEST });
      const onB = await ok<{ latestSessionEventId: string }>(b.app, { key, query: LATEST });
      expect(onA.latestSessionEventId).toBe(String(perProduct));
      expect(onB.latestSessionEventId).toBe(String(perProduct));
    }
  });
});

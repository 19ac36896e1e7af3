import { createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { openDatabase, rowsOf, type DatabaseHandle } from '../src/db/client.js';
import { createLogger } from '../src/logger.js';
import { FleetCounters } from '../src/workers/fleet-counters.js';
import { openRateLimitStore } from '../src/limits/rate-limit-store.js';
import { RATE_CLASSES, type RateClass, type RateLimitStore } from '../src/limits/rate-limits.js';
import { hashSecret, randomSecret } from '../src/tokens/secrets.js';
import { createTestApp, TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { newConfig, newProduct, start, uniqueTag, VERIFY } from './support/fixtures.js';
import { gql } from './support/graphql.js';
import { TcpProxy } from './support/tcp-proxy.js';

/**
 * Rate limits shared by a fleet: two instances counting in one store let a key through at its
 * limit, not twice it; a store that is down leaves every instance answering, each counting alone.
 */
const REDIS_URL = 'redis://127.0.0.1:6379';
/** Keys of this test file in the shared Redis: the branch's name, and the run. */
const REDIS_PREFIX = `h4-test:${uniqueTag('run')}:`;
const LIMIT = 12;
const sessionSecret = randomSecret(48);
const opened: TestApp[] = [];
const closers: (() => Promise<void>)[] = [];
let base: TestApp;
beforeAll(async () => {
  base = await createTestApp({ sessionSecret });
});
afterAll(async () => {
  for (const app of opened) await app.close();
  // Last opened, first closed: counters before the database handle they sync on.
  for (const close of closers.reverse()) await close();
  await base?.close();
});

const all = (n: number) =>
  Object.fromEntries(RATE_CLASSES.map((c) => [c, n])) as Record<RateClass, number>;

/**
 * An instance on base's database handle, counting in `store`: each has rate limiters of its own,
 * so only what the store shares is shared (one pool: the shared Postgres has few connections).
 */
async function instance(
  store: RateLimitStore,
  { limit = LIMIT, windowSeconds = 60 } = {},
): Promise<TestApp> {
  const limits = { ...all(1_000_000), verify: limit };
  const app = await createTestApp({
    sessionSecret,
    database: base.database,
    rateLimits: { windowSeconds, perKey: limits, perIp: limits, refreshesPerSession: 1e6 },
    rateLimitStore: store,
  });
  opened.push(app);
  return app;
}

/** A key of a new product, with a session to verify. */
async function subject() {
  const product = await newProduct(base);
  const key = product.secret.dev;
  const tag = await newConfig(base, key);
  const s = await start(base, key, tag);
  return { key, tag, token: s.token };
}

/** The fleet's count of verifies by `key` in the windows the table holds (its rows, summed). */
async function fleetCount(key: string): Promise<number> {
  const rows = rowsOf<{ points: string | null }>(
    await base.database.db.execute(sql`
      select sum(c.points) as points from rate_limit_counters c, api_keys k
       where k.key_hash = ${hashSecret(key)}
         and c.key like 'fc:verify:key:%:' || k.id::text`),
  );
  return Number(rows[0]?.points ?? 0);
}

interface Tally {
  ok: number;
  limited: number;
  /** The largest `retryAfterSeconds` of the refusals. */
  retryAfter: number;
}

/** Sends `n` verifies of `who`'s key at once, alternating the instances; how they were answered. */
async function verifiesOf(
  who: Awaited<ReturnType<typeof subject>>,
  apps: TestApp[],
  n: number,
): Promise<Tally> {
  const tally: Tally = { ok: 0, limited: 0, retryAfter: 0 };
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const response = await gql(apps[i % apps.length]!.app, {
        key: who.key,
        query: VERIFY,
        variables: { tag: who.tag, token: who.token },
      });
      const error = response.errors?.[0]?.extensions;
      if (error === undefined) tally.ok++;
      else if (error.code === 'RATE_LIMITED') {
        tally.limited++;
        tally.retryAfter = Math.max(tally.retryAfter, Number(error.retryAfterSeconds));
      } else throw new Error(`unexpected ${JSON.stringify(response.errors)}`);
    }),
  );
  return tally;
}

/** Sends `n` verifies of one new key at once, alternating the instances. */
async function verifies(apps: TestApp[], n: number): Promise<{ ok: number; limited: number }> {
  const { ok, limited } = await verifiesOf(await subject(), apps, n);
  return { ok, limited };
}

/** Postgres counters on `database` syncing every `syncMs`, closed after the file. */
function postgresStore(
  syncMs: number,
  database: DatabaseHandle = base.database,
  logs?: string[],
): RateLimitStore & { kind: 'postgres' } {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs?.push(chunk.toString('utf8'));
      done();
    },
  });
  // The counters themselves (openRateLimitStore takes them on Postgres only; they run on
  // PGlite too, where one handle stands for the database two instances share).
  const counters = new FleetCounters(database.db, {
    syncMs,
    logger: createLogger(logs ? 'info' : 'silent', sink),
  });
  closers.push(() => counters.close());
  return { kind: 'postgres', counters };
}

/** Waits until each store has synced everything counted before the call (two syncs: one may run). */
/**
 * The Postgres store counts in fixed windows of the clock (60 s here). A test whose counts span
 * several steps starts with at least 15 s of its window left, so that no step lands in the next
 * window, where every count starts again from zero.
 */
async function roomInWindow(windowSeconds = 60, needMs = 15_000): Promise<void> {
  const left = windowSeconds * 1000 - (Date.now() % (windowSeconds * 1000));
  if (left < needMs) await new Promise((resolve) => setTimeout(resolve, left + 20));
}

async function settle(stores: (RateLimitStore & { kind: 'postgres' })[]): Promise<void> {
  for (let i = 0; i < 2; i++) await Promise.all(stores.map((s) => s.counters.synced()));
}

const redisUp = await (async () => {
  const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0 });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
})();

async function redisStore(url: string, up = true): Promise<RateLimitStore> {
  const opened = await openRateLimitStore('redis', {
    redisUrl: url,
    database: base.database,
    logger: createLogger('silent'),
  });
  closers.push(() => opened.close());
  expect(await opened.ready(up ? 5_000 : 300)).toBe(up);
  const store = opened.store;
  return store.kind === 'redis' ? { ...store, prefix: REDIS_PREFIX } : store;
}

describe('where rate limits count (configuration)', () => {
  const store = (env: Record<string, string>) => loadConfig(env).rateLimits.store;
  it('Redis with REDIS_URL, else Postgres with DATABASE_URL, else memory; RATE_LIMIT_STORE overrides', () => {
    const pg = 'postgres://u@h/db';
    expect(store({ REDIS_URL: REDIS_URL, DATABASE_URL: pg })).toBe('redis');
    expect(store({ DATABASE_URL: pg })).toBe('postgres');
    expect(store({ DATABASE_URL: pg, RATE_LIMIT_STORE: 'postgres' })).toBe('postgres');
    expect(store({})).toBe('memory');
    expect(store({ REDIS_URL: REDIS_URL })).toBe('redis');
    expect(store({ DATABASE_URL: pg, RATE_LIMIT_STORE: 'memory' })).toBe('memory');
    expect(store({ DATABASE_URL: pg, REDIS_URL, RATE_LIMIT_STORE: 'postgres' })).toBe('postgres');
    expect(() => loadConfig({ RATE_LIMIT_STORE: 'redis' })).toThrow(ConfigError);
    expect(() => loadConfig({ RATE_LIMIT_STORE: 'postgres' })).toThrow(ConfigError);
    expect(() => loadConfig({ REDIS_URL: 'http://x' })).toThrow(ConfigError);
    expect(loadConfig({}).rateLimits.syncMs).toBe(200);
    expect(loadConfig({ RATE_LIMIT_SYNC_MS: '50' }).rateLimits.syncMs).toBe(50);
    expect(() => loadConfig({ RATE_LIMIT_SYNC_MS: '5' })).toThrow(ConfigError);
    expect(() => loadConfig({ RATE_LIMIT_SYNC_MS: '60000' })).toThrow(ConfigError);
  });
});

describe('rate limits shared by two instances', () => {
  it('each instance alone (memory) lets the key through once per instance: the problem', async () => {
    const apps = [await instance({ kind: 'memory' }), await instance({ kind: 'memory' })];
    expect(await verifies(apps, LIMIT * 3)).toEqual({ ok: LIMIT * 2, limited: LIMIT });
  });

  // Both databases: two instances share one PGlite handle as they would one Postgres.
  it('in the database: the limit holds across both within the slack of one sync, under concurrent waves', async () => {
    // Waves of 8 calls at once (4 to each instance), the counters synced between waves: an
    // instance can miss at most the other's calls since its own last sync, two waves' worth.
    const limit = 40;
    const wave = 8;
    const stores = [postgresStore(50), postgresStore(50)];
    const apps = [await instance(stores[0]!, { limit }), await instance(stores[1]!, { limit })];
    const who = await subject();
    await roomInWindow();
    const total: Tally = { ok: 0, limited: 0, retryAfter: 0 };
    for (let sent = 0; sent < limit * 3; sent += wave) {
      const t = await verifiesOf(who, apps, wave);
      total.ok += t.ok;
      total.limited += t.limited;
      total.retryAfter = Math.max(total.retryAfter, t.retryAfter);
      await settle(stores);
    }
    // Never fewer than the limit; at most the slack more; alone, each would let `limit` in.
    expect(total.ok).toBeGreaterThanOrEqual(limit);
    expect(total.ok).toBeLessThanOrEqual(limit + wave);
    expect(total.ok + total.limited).toBe(limit * 3);
    expect(total.retryAfter).toBeGreaterThan(0);
    expect(total.retryAfter).toBeLessThanOrEqual(60);
    // Once synced, both instances refuse the key.
    expect(await verifiesOf(who, apps, wave)).toMatchObject({ ok: 0, limited: wave });
    // Every call reached the fleet's row, none twice.
    await settle(stores);
    expect(await fleetCount(who.key)).toBe(limit * 3 + wave);
  });

  // Both databases: two instances share one PGlite handle as they would one Postgres.
  it('in the database: a burst at once lets each instance through at most the limit, then the fleet refuses', async () => {
    const stores = [postgresStore(50), postgresStore(50)];
    const apps = [await instance(stores[0]!), await instance(stores[1]!)];
    const who = await subject();
    await roomInWindow();
    const burst = await verifiesOf(who, apps, LIMIT * 3);
    expect(burst.ok).toBeGreaterThanOrEqual(LIMIT);
    expect(burst.ok).toBeLessThanOrEqual(LIMIT * 2);
    await settle(stores);
    expect(await verifiesOf(who, apps, 10)).toMatchObject({ ok: 0, limited: 10 });
  });

  // Both databases: two instances share one PGlite handle as they would one Postgres.
  it('in the database: the window rolls over, for the fleet too', async () => {
    const windowSeconds = 2;
    const stores = [postgresStore(50), postgresStore(50)];
    const apps = [
      await instance(stores[0]!, { windowSeconds }),
      await instance(stores[1]!, { windowSeconds }),
    ];
    const who = await subject();
    const toNextWindow = () => windowSeconds * 1000 - (Date.now() % (windowSeconds * 1000)) + 20;
    const windowOf = () => Math.floor(Date.now() / (windowSeconds * 1000));
    await new Promise((resolve) => setTimeout(resolve, toNextWindow()));
    const window = windowOf();
    // Spent on one instance, synced, then refused on the other too.
    const first = await verifiesOf(who, [apps[0]!], LIMIT + 4);
    await settle(stores);
    const second = await verifiesOf(who, [apps[1]!], 4);
    await settle(stores);
    const third = await verifiesOf(who, [apps[1]!], 4);
    // The machine may be slow enough for the window to end meanwhile: then nothing is asserted
    // of this window but the rollover below still is.
    if (windowOf() === window) {
      expect(first).toMatchObject({ ok: LIMIT, limited: 4 });
      expect(first.retryAfter).toBeLessThanOrEqual(windowSeconds);
      // The other instance had not seen the key: it lets through what it counts until its sync.
      expect(second.ok + third.ok).toBeLessThanOrEqual(4);
      expect(third).toMatchObject({ ok: 0, limited: 4 });
    }
    await new Promise((resolve) => setTimeout(resolve, toNextWindow()));
    expect(await verifiesOf(who, apps, LIMIT)).toMatchObject({ ok: LIMIT, limited: 0 });
  });

  it.runIf(TEST_DATABASE_URL)(
    'in Postgres: with the counters table locked, every call is answered, each instance counting alone; then the fleet counts again',
    async () => {
      const logs: string[] = [];
      const stores = [postgresStore(50, base.database, logs), postgresStore(50)];
      const apps = [await instance(stores[0]!), await instance(stores[1]!)];
      const who = await subject();
      await roomInWindow();
      const locker = postgres(TEST_DATABASE_URL!, { max: 1 });
      closers.push(() => locker.end());
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const holding = locker.begin(async (sql) => {
        await sql`lock table rate_limit_counters in access exclusive mode`;
        locked();
        await released;
      });
      await isLocked;
      try {
        const started = performance.now();
        const during = await verifiesOf(who, apps, LIMIT * 3);
        expect(during.ok + during.limited).toBe(LIMIT * 3);
        // Each instance counts its own calls: between the limit and twice it.
        expect(during.ok).toBeGreaterThanOrEqual(LIMIT);
        expect(during.ok).toBeLessThanOrEqual(LIMIT * 2);
        // Answered without waiting on the lock (a liveness bound, not a speed figure).
        expect(performance.now() - started).toBeLessThan(15_000);
        // The statement timeout gives up on the lock: the outage is logged, without keys.
        await settle(stores);
        await settle(stores);
      } finally {
        release();
        await holding;
      }
      await settle(stores);
      expect(await verifiesOf(who, apps, 10)).toMatchObject({ ok: 0, limited: 10 });
      const text = logs.join('');
      expect(text).toMatch(/rate limit counters unavailable/);
      expect(text).toMatch(/rate limit counters are back/);
      expect(text).not.toContain(who.key);
      expect(text).not.toMatch(/fc:verify/);
    },
  );

  it.runIf(TEST_DATABASE_URL)(
    'in Postgres: with the counters connection cut, every call is answered; when it is back the fleet counts again',
    async () => {
      const target = new URL(TEST_DATABASE_URL!);
      const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
      const port = await proxy.start();
      closers.push(() => proxy.cut());
      const viaProxy = new URL(TEST_DATABASE_URL!);
      viaProxy.hostname = '127.0.0.1';
      viaProxy.port = String(port);
      const proxied = await openDatabase({ databaseUrl: viaProxy.toString(), maxConnections: 2 });
      closers.push(() => proxied.close());
      const stores = [postgresStore(50, proxied), postgresStore(50, proxied)];
      const apps = [await instance(stores[0]!), await instance(stores[1]!)];
      const who = await subject();
      await roomInWindow();
      await verifiesOf(who, apps, 2);
      await settle(stores);
      await proxy.cut();
      const started = performance.now();
      const during = await verifiesOf(who, apps, LIMIT * 3);
      await settle(stores);
      const after = await verifiesOf(who, apps, LIMIT * 2);
      expect(performance.now() - started).toBeLessThan(15_000);
      expect(during.ok + during.limited).toBe(LIMIT * 3);
      // Each instance alone: 2 synced calls, then its own counts.
      expect(during.ok).toBeGreaterThanOrEqual(LIMIT - 2);
      expect(during.ok).toBeLessThanOrEqual(LIMIT * 2 - 2);
      expect(after.ok).toBe(0);
      await proxy.restore();
      // Back: the counts made meanwhile are sent, and the fleet holds the key at its limit.
      const deadline = Date.now() + 15_000;
      for (;;) {
        await settle(stores);
        const probe = await verifiesOf(who, apps, 2);
        if (probe.ok === 0 || Date.now() > deadline) break;
      }
      // Nothing counted during the cut was lost (the probes add a few more).
      expect(await fleetCount(who.key)).toBeGreaterThanOrEqual(2 + LIMIT * 5);
    },
  );

  it.runIf(redisUp)('in Redis: the limit holds across both', async () => {
    const apps = [
      await instance(await redisStore(REDIS_URL)),
      await instance(await redisStore(REDIS_URL)),
    ];
    expect(await verifies(apps, LIMIT * 3)).toEqual({ ok: LIMIT, limited: LIMIT * 2 });
  });

  it('Redis down: every call is answered, each instance counting in its own memory', async () => {
    // A port with nothing behind it: connections are refused at once.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const apps = [
      await instance(await redisStore(`redis://127.0.0.1:${port}`, false)),
      await instance(await redisStore(`redis://127.0.0.1:${port}`, false)),
    ];
    const started = performance.now();
    expect(await verifies(apps, LIMIT * 3)).toEqual({ ok: LIMIT * 2, limited: LIMIT });
    // Refused without waiting on Redis (a liveness bound, not a speed figure).
    expect(performance.now() - started).toBeLessThan(15_000);
  });
});

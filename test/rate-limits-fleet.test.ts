import { createServer, type AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { openRateLimitStore } from '../src/security/rate-limit-store.js';
import { RATE_CLASSES, type RateClass, type RateLimitStore } from '../src/security/rate-limits.js';
import { randomSecret } from '../src/tokens/secrets.js';
import { createTestApp, TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { newConfig, newProduct, start, uniqueTag, VERIFY } from './support/fixtures.js';
import { gql } from './support/graphql.js';

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
  for (const close of closers) await close();
  await base?.close();
});

const all = (n: number) =>
  Object.fromEntries(RATE_CLASSES.map((c) => [c, n])) as Record<RateClass, number>;

/**
 * An instance on base's database handle, counting in `store`: each has rate limiters of its own,
 * so only what the store shares is shared (one pool: the shared Postgres has few connections).
 */
async function instance(store: RateLimitStore): Promise<TestApp> {
  const limits = { ...all(1_000_000), verify: LIMIT };
  const app = await createTestApp({
    sessionSecret,
    database: base.database,
    rateLimits: { windowSeconds: 60, perKey: limits, perIp: limits, refreshesPerSession: 1e6 },
    rateLimitStore: store,
  });
  opened.push(app);
  return app;
}

/** Sends `n` verifies of one key, alternating the instances; how many were RATE_LIMITED. */
async function verifies(apps: TestApp[], n: number): Promise<{ ok: number; limited: number }> {
  const product = await newProduct(base);
  const key = product.secret.dev;
  const tag = await newConfig(base, key);
  const s = await start(base, key, tag);
  let ok = 0;
  let limited = 0;
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const response = await gql(apps[i % apps.length]!.app, {
        key,
        query: VERIFY,
        variables: { tag, token: s.token },
      });
      const code = response.errors?.[0]?.extensions?.code;
      if (code === undefined) ok++;
      else if (code === 'RATE_LIMITED') limited++;
      else throw new Error(`unexpected ${JSON.stringify(response.errors)}`);
    }),
  );
  return { ok, limited };
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
  const opened = openRateLimitStore('redis', {
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
  it('Redis with REDIS_URL, else memory; RATE_LIMIT_STORE=postgres shares them in the database', () => {
    const pg = 'postgres://u@h/db';
    expect(store({ REDIS_URL: REDIS_URL, DATABASE_URL: pg })).toBe('redis');
    expect(store({ DATABASE_URL: pg })).toBe('memory');
    expect(store({ DATABASE_URL: pg, RATE_LIMIT_STORE: 'postgres' })).toBe('postgres');
    expect(store({})).toBe('memory');
    expect(store({ DATABASE_URL: pg, RATE_LIMIT_STORE: 'memory' })).toBe('memory');
    expect(() => loadConfig({ RATE_LIMIT_STORE: 'redis' })).toThrow(ConfigError);
    expect(() => loadConfig({ RATE_LIMIT_STORE: 'postgres' })).toThrow(ConfigError);
    expect(() => loadConfig({ REDIS_URL: 'http://x' })).toThrow(ConfigError);
  });
});

describe('rate limits shared by two instances', () => {
  it('each instance alone (memory) lets the key through once per instance: the problem', async () => {
    const apps = [await instance({ kind: 'memory' }), await instance({ kind: 'memory' })];
    expect(await verifies(apps, LIMIT * 3)).toEqual({ ok: LIMIT * 2, limited: LIMIT });
  });

  it.runIf(TEST_DATABASE_URL)('in Postgres: the limit holds across both', async () => {
    const apps = [
      await instance({ kind: 'postgres', db: base.database.db }),
      await instance({ kind: 'postgres', db: base.database.db }),
    ];
    expect(await verifies(apps, LIMIT * 3)).toEqual({ ok: LIMIT, limited: LIMIT * 2 });
  });

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

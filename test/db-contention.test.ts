import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase, TRANSACTION_ATTEMPTS } from '../src/db/client.js';
import { createTestApp, TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { newConfig, newProduct, REFRESH, start } from './support/fixtures.js';
import { gql } from './support/graphql.js';
import { START } from './support/documents.js';

// A database that is busy rather than broken: out of connection slots, a lock that is not free
// within lock_timeout, a statement past statement_timeout, a deadlock. None of these is a fault
// of the service: they answer SERVICE_UNAVAILABLE (retriable), or are retried, never
// INTERNAL_SERVER_ERROR. Postgres only: PGlite is one session, without these limits.

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

/**
 * A login role of its own with `settings` (CONNECTION LIMIT, or per-session settings such as
 * lock_timeout), with the privileges of `postgres` on the tables; and its database URL.
 */
async function roleUrl(options: { connectionLimit?: number; set?: Record<string, string> }) {
  const admin = postgres(TEST_DATABASE_URL!, { max: 1, onnotice: () => {} });
  const role = `busy_${randomBytes(6).toString('hex')}`;
  await admin.unsafe(
    `create role ${role} login connection limit ${options.connectionLimit ?? -1} in role postgres`,
  );
  for (const [name, value] of Object.entries(options.set ?? {}))
    await admin.unsafe(`alter role ${role} set ${name} = '${value}'`);
  cleanups.push(async () => {
    await admin.unsafe(
      `select pg_terminate_backend(pid) from pg_stat_activity where usename = '${role}'`,
    );
    await admin.unsafe(`drop role if exists ${role}`);
    await admin.end();
  });
  const url = new URL(TEST_DATABASE_URL!);
  url.username = role;
  return { url: url.toString(), admin };
}

async function appOn(url: string): Promise<TestApp> {
  const t = await createTestApp({ databaseUrl: url });
  cleanups.push(() => t.close());
  return t;
}

describe.runIf(TEST_DATABASE_URL)('a busy database', () => {
  /**
   * An app on a role of its own, then every connection slot of that role taken away: the pool's
   * connections are ended and the role may open none (CONNECTION LIMIT 0), so each new one the
   * pool opens is refused with 53300, as when a shared server is full.
   */
  async function appWithoutSlots() {
    const { url, admin } = await roleUrl({});
    const t = await appOn(url);
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const role = new URL(url).username;
    const setLimit = (n: number) => admin.unsafe(`alter role ${role} connection limit ${n}`);
    await setLimit(0);
    await admin.unsafe(
      `select pg_terminate_backend(pid) from pg_stat_activity where usename = '${role}'`,
    );
    // Until the pool has seen its connections close (else a statement meets a closed one:
    // CONNECTION_CLOSED, which is answered SERVICE_UNAVAILABLE too, but is not this case).
    await new Promise((resolve) => setTimeout(resolve, 300));
    const startCall = (i: number) =>
      gql(t.app, {
        key,
        query: START,
        variables: { input: { tag, data: { userId: `u-${i}`, details: { username: 'a' } } } },
      });
    return { t, setLimit, startCall };
  }

  it('out of connection slots (53300): SERVICE_UNAVAILABLE and retriable, never INTERNAL_SERVER_ERROR', async () => {
    const { startCall } = await appWithoutSlots();
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => startCall(i)));
    for (const r of responses) {
      expect(r.errors?.[0]?.extensions).toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
        retriable: true,
      });
      expect(r.status).toBe(503);
      expect(r.errors![0]!.message).not.toMatch(/client|postgres|53300/i);
    }
  });

  it('a statement refused a connection slot is sent again, and succeeds once a slot is free', async () => {
    const { setLimit, startCall } = await appWithoutSlots();
    const pending = Promise.all(Array.from({ length: 10 }, (_, i) => startCall(i)));
    // Slots come back well within the retries' window (about 150 ms at the least).
    await new Promise((resolve) => setTimeout(resolve, 30));
    await setLimit(-1);
    for (const r of await pending) {
      expect(r.errors).toBeUndefined();
      expect(r.data).toMatchObject({ startSession: { sessionId: expect.any(String) } });
    }
  });

  it.each([
    ['lock_timeout', '55P03'],
    ['statement_timeout', '57014'],
  ])(
    'a lock held past %s (%s): SERVICE_UNAVAILABLE, then the same refresh succeeds once the lock is free',
    async (setting) => {
      const { url, admin } = await roleUrl({ set: { [setting]: '300ms' } });
      const t = await appOn(url);
      const product = await newProduct(t);
      const key = product.secret.dev;
      const tag = await newConfig(t, key);
      const session = await start(t, key, tag);
      const call = { key, query: REFRESH, variables: { tag, refreshToken: session.refreshToken } };

      // Another transaction holds the session's row lock, which the refresh waits for.
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const holder = admin.begin(async (tx) => {
        await tx`select id from sessions where id = ${session.sessionId} for update`;
        locked();
        await released;
      });
      await isLocked;
      try {
        const blocked = await gql(t.app, call);
        expect(blocked.errors?.[0]?.extensions).toMatchObject({
          code: 'SERVICE_UNAVAILABLE',
          retriable: true,
        });
        expect(blocked.status).toBe(503);
      } finally {
        release();
        await holder;
      }
      // Nothing was decided: the token is still the current one.
      const retried = await gql<{ refreshSession: { sessionId: string } }>(t.app, call);
      expect(retried.errors).toBeUndefined();
      expect(retried.data!.refreshSession.sessionId).toBe(session.sessionId);
    },
  );

  it('a transaction Postgres aborts for a deadlock (40P01) is run again, and both sides commit', async () => {
    const database = await openDatabase({ databaseUrl: TEST_DATABASE_URL!, maxConnections: 4 });
    cleanups.push(() => database.close());
    const [a, b] = [1, 2].map(() => Number.parseInt(randomBytes(4).toString('hex'), 16));
    let attempts = 0;
    // Each takes its first lock, waits until the other has taken its first, then takes the
    // other's: a real deadlock, which Postgres breaks (after deadlock_timeout) by aborting one.
    let firstLocks = 0;
    let bothLocked!: () => void;
    const both = new Promise<void>((resolve) => (bothLocked = resolve));
    const run = (first: number, second: number) =>
      database.db.transaction(async (tx) => {
        attempts++;
        await tx.execute(sql`select pg_advisory_xact_lock(${first})`);
        if (++firstLocks === 2) bothLocked();
        await both;
        await tx.execute(sql`select pg_advisory_xact_lock(${second})`);
        return first;
      });
    expect(await Promise.all([run(a!, b!), run(b!, a!)])).toEqual([a, b]);
    // One of the two was aborted and run again; no more than the bound.
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(attempts).toBeLessThanOrEqual(2 * TRANSACTION_ATTEMPTS);
  });

  it('a transaction that fails after it began for any other reason is not run again', async () => {
    const database = await openDatabase({ databaseUrl: TEST_DATABASE_URL!, maxConnections: 2 });
    cleanups.push(() => database.close());
    let attempts = 0;
    await expect(
      database.db.transaction(async (tx) => {
        attempts++;
        await tx.execute(sql`select 1/0`);
      }),
    ).rejects.toThrow();
    expect(attempts).toBe(1);
  });
});

import net from 'node:net';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { DatabaseDeadlineError, openDatabase, rowsOf } from '../src/db/client.js';

/** Whether an error is, or wraps (Drizzle wraps the driver's), a missed deadline. */
const missedDeadline = (error: unknown) => hasErrorCode(error, 'DATABASE_DEADLINE');
import { hasErrorCode, isDatabaseUnavailable } from '../src/db/errors.js';
import { TEST_DATABASE_URL } from './support/app.js';

/**
 * Every database wait has a deadline, and the patched postgres.js (patches/) survives what ended
 * the process or answered wrongly before. Postgres only: PGlite has no connections to lose.
 */
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A server that accepts connections and never answers: a database that hangs. */
async function blackhole(): Promise<string> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as net.AddressInfo;
  return `postgres://postgres@127.0.0.1:${port}/test`;
}

const admin = () => {
  const client = postgres(TEST_DATABASE_URL!, { max: 1, onnotice: () => {} });
  cleanups.push(() => client.end());
  return client;
};

describe.runIf(TEST_DATABASE_URL)('deadlines on every database wait', () => {
  it('a server that never answers: a statement and a transaction end at their deadline, as SERVICE_UNAVAILABLE', async () => {
    const database = await openDatabase({
      databaseUrl: await blackhole(),
      connectTimeoutMs: 30_000,
      statementTimeoutMs: 300,
    });
    cleanups.push(() => database.close());
    const began = performance.now();
    const statement = await database.db.execute(sql`select 1`).catch((e: unknown) => e);
    expect(missedDeadline(statement)).toBe(true);
    expect(isDatabaseUnavailable(statement)).toBe(true);
    const transaction = await database.db
      .transaction(async (tx) => tx.execute(sql`select 1`))
      .catch((e: unknown) => e);
    expect(missedDeadline(transaction)).toBe(true);
    // Both at their deadline, long before the 30 s connect timeout.
    expect(performance.now() - began).toBeLessThan(10_000);
    await expect(database.ping()).rejects.toBeInstanceOf(DatabaseDeadlineError);
  });

  it('a statement that runs past the deadline is cancelled on the server, and the pool goes on', async () => {
    const database = await openDatabase({
      databaseUrl: TEST_DATABASE_URL,
      statementTimeoutMs: 400,
    });
    cleanups.push(() => database.close());
    const failed = await database.db
      .transaction(async (tx) => {
        await tx.execute(sql`select pg_sleep(30)`);
      })
      .catch((e: unknown) => e);
    expect(missedDeadline(failed)).toBe(true);
    // The cancel reached the server: no backend still sleeps in our statement.
    const watcher = admin();
    for (let i = 0; ; i++) {
      const rows = await watcher`select count(*)::int as n from pg_stat_activity
        where query like 'select pg_sleep(30)%' and state = 'active'`;
      if (rows[0]!.n === 0) break;
      if (i > 100) throw new Error('the sleeping statement was not cancelled');
      await new Promise((r) => setTimeout(r, 100));
    }
    // And the pool goes on answering.
    const rows = rowsOf<{ ok: number }>(await database.db.execute(sql`select 1 as ok`));
    expect(rows[0]!.ok).toBe(1);
  });

  it('a transaction whose callback outlives the deadline sends nothing more and commits nothing', async () => {
    const database = await openDatabase({
      databaseUrl: TEST_DATABASE_URL,
      statementTimeoutMs: 300,
    });
    cleanups.push(() => database.close());
    const name = `t_late_${Math.random().toString(36).slice(2)}`;
    let afterDeadline: unknown;
    const failed = await database.db
      .transaction(async (tx) => {
        await new Promise((r) => setTimeout(r, 600));
        afterDeadline = await tx.execute(sql.raw(`create table ${name} (v int)`)).catch((e) => e);
      })
      .catch((e: unknown) => e);
    expect(missedDeadline(failed)).toBe(true);
    // The callback goes on after its caller was answered; what it sends then is refused.
    await new Promise((r) => setTimeout(r, 700));
    expect(missedDeadline(afterDeadline)).toBe(true);
    const exists = await admin()`select to_regclass(${name}) as t`;
    expect(exists[0]!.t).toBeNull();
  });
});

describe.runIf(TEST_DATABASE_URL)('the patched postgres.js', () => {
  it('a reserved connection whose backend is terminated rejects its next statements; nothing throws outside them (upstream #1208)', async () => {
    const client = postgres(TEST_DATABASE_URL!, { max: 2, onnotice: () => {}, fetch_types: false });
    cleanups.push(() => client.end({ timeout: 1 }));
    await client`select 1`; // an open connection for reserve() to take
    const reserved = await client.reserve();
    const rows = await reserved<{ pid: number }[]>`select pg_backend_pid() as pid`;
    await admin()`select pg_terminate_backend(${rows[0]!.pid})`;
    // The first statements meet the closing connection and are rejected when it closes; the
    // next ones are written to no socket at all, which threw in an immediate and ended the
    // process before the patch.
    for (let round = 0; round < 2; round++) {
      const results = await Promise.allSettled(Array.from({ length: 5 }, () => reserved`select 1`));
      for (const result of results) {
        expect(result.status).toBe('rejected');
        expect(isDatabaseUnavailable((result as PromiseRejectedResult).reason)).toBe(true);
      }
    }
    // The pool's other connection still answers.
    const ok = await client<{ ok: number }[]>`select 1 as ok`;
    expect(ok[0]!.ok).toBe(1);
  });

  it('a COMMIT answered ROLLBACK is an error, not a commit (what a pooler did with a prepared COMMIT)', async () => {
    // Named prepared statements, as postgres.js's default: COMMIT is prepared in the first
    // transaction, and deallocated in the second before its COMMIT, as a pooler's other server
    // connection would not have it. postgres.js re-prepares it after the failed bind, in a
    // transaction that the failure aborted, and Postgres answers that COMMIT with ROLLBACK.
    const client = postgres(TEST_DATABASE_URL!, { max: 1, onnotice: () => {}, fetch_types: false });
    cleanups.push(() => client.end({ timeout: 1 }));
    await client.begin((tx) => tx`select 1`);
    const name = `t_rolled_${Math.random().toString(36).slice(2)}`;
    const failed = await client
      .begin(async (tx) => {
        await tx.unsafe(`create table ${name} (v int)`);
        await tx.unsafe('deallocate all');
      })
      .catch((e: unknown) => e);
    expect((failed as { code?: string }).code).toBe('COMMIT_ROLLED_BACK');
    const exists = await admin()`select to_regclass(${name}) as t`;
    expect(exists[0]!.t).toBeNull();
  });
});

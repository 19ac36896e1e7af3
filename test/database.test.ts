import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { openDatabase } from '../src/db/client.js';
import { createLogger } from '../src/logger.js';
import { startServices } from '../src/services.js';
import { randomSecret } from '../src/tokens/secrets.js';
import { TEST_DATABASE_URL } from './support/app.js';
import { rowsOf } from './support/fixtures.js';
import { TcpProxy } from './support/tcp-proxy.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A database nobody else uses: a new Postgres database, or a new in-memory PGlite. */
async function freshDatabaseUrl(): Promise<string | undefined> {
  if (!TEST_DATABASE_URL) return undefined;
  const name = `mig_${randomBytes(6).toString('hex')}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  cleanups.push(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

const migrationCount = async (db: Awaited<ReturnType<typeof openDatabase>>['db']) =>
  Number(
    rowsOf<{ n: number }>(
      await db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`),
    )[0]!.n,
  );

describe('migrations', () => {
  it('apply on a fresh database, and applying them again, or from several instances at once, changes nothing', async () => {
    const url = await freshDatabaseUrl();
    const handles = url
      ? await Promise.all(
          [1, 2, 3, 4].map(() => openDatabase({ databaseUrl: url, maxConnections: 2 })),
        )
      : [await openDatabase({ dataDir: 'memory://' })];
    for (const h of handles) cleanups.push(() => h.close());
    // Several instances (or several calls in one process) starting together.
    await Promise.all([...handles, ...handles].map((h) => h.migrate()));
    const first = handles[0]!;
    const applied = await migrationCount(first.db);
    expect(applied).toBeGreaterThan(0);
    // And once more, afterwards.
    await first.migrate();
    expect(await migrationCount(first.db)).toBe(applied);
    const tables = rowsOf<{ table_name: string }>(
      await first.db.execute(
        sql`select table_name from information_schema.tables where table_schema = 'public' order by 1`,
      ),
    ).map((r) => r.table_name);
    expect(tables).toEqual(
      expect.arrayContaining([
        'products',
        'api_keys',
        'session_configs',
        'sessions',
        'refresh_tokens',
        'session_events',
      ]),
    );
  });
});

describe('readiness', () => {
  const services = (database: Awaited<ReturnType<typeof openDatabase>>) =>
    startServices(database, {
      sessionSecret: randomSecret(48),
      adminKeys: { configuredHash: undefined },
      refreshGraceSeconds: 10,
      logger: createLogger('silent'),
    });

  it.runIf(TEST_DATABASE_URL)(
    '/ready turns 503 while Postgres is unreachable and 200 again when it returns; /health stays 200',
    async () => {
      const target = new URL(TEST_DATABASE_URL!);
      const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
      const port = await proxy.start();
      cleanups.push(() => proxy.cut());
      const viaProxy = new URL(TEST_DATABASE_URL!);
      viaProxy.hostname = '127.0.0.1';
      viaProxy.port = String(port);
      const database = await openDatabase({ databaseUrl: viaProxy.toString(), maxConnections: 2 });
      cleanups.push(() => database.close());
      const app = createApp(await services(database), { graphiql: false });
      const status = async (path: string) => (await app.fetch(`http://test.local${path}`)).status;

      expect(await status('/ready')).toBe(200);
      await proxy.cut();
      expect(await status('/ready')).toBe(503);
      expect(await status('/health')).toBe(200);
      await proxy.restore();
      let ready = 0;
      for (let i = 0; i < 50 && ready !== 200; i++) {
        ready = await status('/ready');
        if (ready !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ready).toBe(200);
    },
  );

  it.runIf(TEST_DATABASE_URL)(
    'a connection lost right after it is set up fails the statement on it, and nothing else (no unhandled rejection)',
    async () => {
      const target = new URL(TEST_DATABASE_URL!);
      // Forwards the startup; once the server has said "ready for query" (a 'Z' message), the
      // first thing the client sends next resets both sockets.
      const sockets = new Set<net.Socket>();
      const proxy = net.createServer((client) => {
        const upstream = net.connect(Number(target.port || 5432), target.hostname);
        let ready = false;
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('error', () => {});
          s.on('close', () => sockets.delete(s));
        }
        upstream.on('data', (chunk: Buffer) => {
          if (chunk.includes(Buffer.from([0x5a, 0, 0, 0, 5]))) ready = true;
          client.write(chunk);
        });
        client.on('data', (chunk: Buffer) => {
          if (ready) {
            client.destroy();
            upstream.destroy();
          } else upstream.write(chunk);
        });
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      cleanups.push(async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => proxy.close(() => resolve()));
      });
      const viaProxy = new URL(TEST_DATABASE_URL!);
      viaProxy.hostname = '127.0.0.1';
      viaProxy.port = String((proxy.address() as net.AddressInfo).port);
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        const database = await openDatabase({
          databaseUrl: viaProxy.toString(),
          maxConnections: 2,
        });
        cleanups.push(() => database.close());
        for (let i = 0; i < 3; i++) await expect(database.ping()).rejects.toThrow();
        await new Promise((r) => setTimeout(r, 200));
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
      expect(unhandled).toEqual([]);
    },
  );

  it.skipIf(TEST_DATABASE_URL)(
    '/ready turns 503 once the embedded database is closed; /health stays 200',
    async () => {
      const database = await openDatabase({ dataDir: 'memory://' });
      await database.migrate();
      const app = createApp(await services(database), { graphiql: false });
      expect((await app.fetch('http://test.local/ready')).status).toBe(200);
      await database.close();
      expect((await app.fetch('http://test.local/ready')).status).toBe(503);
      expect((await app.fetch('http://test.local/health')).status).toBe(200);
    },
  );
});

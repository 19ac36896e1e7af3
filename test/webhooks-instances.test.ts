import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../src/db/client.js';
import { generateAdminKey } from '../src/domain/keys.js';
import { createTestApp, TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { newConfig, newProduct, start } from './support/fixtures.js';
import { ok } from './support/graphql.js';
import {
  exitOrKill,
  newProductOverHttp,
  post,
  startServerProcess,
  TEST_SESSION_SECRET,
  type ServerProcess,
} from './support/server-process.js';
import {
  eventIdOf,
  firstArrivals,
  startReceiver,
  TEST_WEBHOOKS,
  verified,
  type Receiver,
} from './support/webhook-receiver.js';

const CREATE = `mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret endpoint { id } } }`;

const increasing = (ids: number[]) => ids.every((id, i) => i === 0 || id > ids[i - 1]!);

/**
 * On Postgres this file gets a database of its own: delivery workers claim endpoints across the
 * whole database, so another file's worker (test/webhooks.test.ts) on the shared one could take
 * this file's deliveries, and the counts of who delivered what would be off.
 */
let databaseUrl: string | undefined;
beforeAll(async () => {
  if (!TEST_DATABASE_URL) return;
  const url = new URL(TEST_DATABASE_URL);
  const name = `${url.pathname.slice(1)}_webhooks_instances`;
  const admin = postgres({ ...urlParts(url), database: 'postgres', max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  url.pathname = `/${name}`;
  databaseUrl = url.toString();
});

function urlParts(url: URL) {
  return {
    host: url.hostname,
    port: Number(url.port || 5432),
    user: decodeURIComponent(url.username || 'postgres'),
    password: url.password ? decodeURIComponent(url.password) : undefined,
  };
}

describe('webhooks across instances', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });

  it('two server instances on one database deliver each event once, in order per endpoint', async () => {
    // Two endpoints at a time per instance: four endpoints need both.
    const settings = { ...TEST_WEBHOOKS, concurrency: 2, timeoutMs: 15_000 };
    // Instances on one database share one SESSION_SECRET (the server refuses to start otherwise).
    const sessionSecret = TEST_SESSION_SECRET;
    const first: TestApp = await createTestApp({ webhooks: settings, sessionSecret, databaseUrl });
    cleanups.push(() => first.close());
    const second = await createTestApp({
      database: first.database,
      webhooks: settings,
      sessionSecret,
    });
    cleanups.push(() => second.close());
    const product = await newProduct(first);
    const tag = await newConfig(first, product.secret.dev);
    const receivers: Receiver[] = [];
    for (let i = 0; i < 4; i++) {
      const receiver = await startReceiver();
      cleanups.push(() => receiver.close());
      receivers.push(receiver);
      await ok(first.app, {
        key: product.secret.dev,
        query: CREATE,
        variables: { input: { url: receiver.url } },
      });
    }
    // Events written through both instances.
    for (let i = 0; i < 150; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, (_, j) =>
          start(i % 20 === 0 ? first : second, product.secret.dev, tag, {
            userId: `u-${i + j}`,
            details: { username: 'x', email: 'x@y.z' },
          }),
        ),
      );
    }
    // A liveness bound as long as the test's: 600 deliveries took over 2 minutes on a busy machine.
    for (const receiver of receivers) {
      await receiver.until(() => receiver.requests.length >= 150, 480_000);
    }
    await new Promise((r) => setTimeout(r, 1_000));
    for (const receiver of receivers) {
      // Every request accepted, none twice: each event delivered once between the instances.
      expect(receiver.requests).toHaveLength(150);
      expect(new Set(receiver.requests.map((r) => r.id)).size).toBe(150);
      const ids = receiver.requests.map(eventIdOf);
      expect(increasing(ids)).toBe(true);
    }
    // One successful attempt per delivery between the two instances: none was delivered twice;
    // both took part (two endpoints at a time each, four endpoints). An attempt that failed on a
    // machine under load (and was retried) is allowed: delivery is at least once, and the
    // receivers above saw each event once.
    const made = [first, second].map((t) => t.services.webhookWorker!.attemptsMade);
    const succeeded = await first.database.db.execute(
      sql`select count(*)::int as n from webhook_attempts a
          join webhook_deliveries d on d.id = a.delivery_id
          join webhook_endpoints e on e.id = d.endpoint_id
          join products p on p.id = e.product_id
          where a.succeeded and p.tag = ${product.tag}`,
    );
    expect(rowsOf<{ n: number }>(succeeded)[0]?.n).toBe(4 * 150);
    // (Attempts are not summed here: another test file's worker on this database may take some.)
    expect(Math.min(made[0]!, made[1]!)).toBeGreaterThan(0);
  }, 600_000);

  it('a server killed mid-delivery resumes after a restart: nothing is lost, order holds', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sessions-webhooks-kill-'));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const adminKey = generateAdminKey();
    const env = {
      ADMIN_KEY: adminKey,
      DATA_DIR: dataDir,
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
      WEBHOOK_DELIVERY: 'true',
      WEBHOOK_ALLOW_PRIVATE_URLS: 'true',
      WEBHOOK_POLL_INTERVAL_MS: '100',
      WEBHOOK_RETRY_BASE_MS: '20',
      // A lease is twice this plus 5 s: the restarted server takes over after it.
      WEBHOOK_TIMEOUT_MS: '4000',
      SWEEP_INTERVAL_SECONDS: '0',
    };
    // The 5th request hangs; once every event is written, the server is killed while it waits.
    const kill: { now?: () => void } = {};
    let hanging = false;
    // (Retries of it, after a timeout, hang too until then.)
    let killedYet = false;
    const receiver = await startReceiver((_r, n) => {
      if (n === 5) {
        hanging = true;
        kill.now?.();
      }
      return n >= 5 && !killedYet ? 'hang' : 200;
    });
    cleanups.push(() => receiver.close());
    let server: ServerProcess = await startServerProcess(env);
    cleanups.push(async () => void server.child.kill('SIGKILL'));
    const { key } = await newProductOverHttp(server.url, adminKey);
    const created = await post(server.url, key, CREATE, { input: { url: receiver.url } });
    const secret = (created.data!.createWebhookEndpoint as { secret: string }).secret;
    let arm!: () => void;
    const killed = new Promise<void>((resolve) => (arm = resolve));
    const startQuery = `mutation($input: StartSessionInput!) { startSession(input: $input) { sessionId } }`;
    for (let i = 0; i < 10; i++) {
      const result = await post(server.url, key, startQuery, {
        input: {
          tag: 'web',
          data: { userId: `u-${i}`, details: { username: 'n', email: 'e@x.y' } },
        },
      });
      expect(result.errors).toBeUndefined();
    }
    kill.now = () => {
      server.child.kill('SIGKILL');
      arm();
    };
    if (hanging) kill.now();
    await killed;
    expect(await exitOrKill(server)).toBeNull();
    killedYet = true;
    expect(receiver.accepted).toHaveLength(4);

    server = await startServerProcess(env);
    // An event written after the restart comes after the others.
    await post(server.url, key, startQuery, {
      input: { tag: 'web', data: { userId: 'late', details: { username: 'n', email: 'e@x.y' } } },
    });
    await receiver.until(() => firstArrivals(receiver.accepted).length >= 11, 120_000);
    await new Promise((r) => setTimeout(r, 500));
    // A receiver that keeps each webhook-id once has all 11, in order.
    const ids = firstArrivals(receiver.accepted).map(eventIdOf);
    expect(ids).toHaveLength(11);
    expect(new Set(ids).size).toBe(11);
    expect(ids).toEqual(ids.slice().sort((a, b) => a - b));
    // The interrupted one came again with the same webhook-id, and verifies.
    expect(receiver.accepted.map((r) => r.id)).toContain(receiver.requests[4]!.id);
    for (const request of receiver.accepted) verified(secret, request);
    server.child.kill('SIGTERM');
    expect(await exitOrKill(server)).toBe(0);
  }, 300_000);
});

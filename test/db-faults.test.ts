import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase, type DatabaseHandle } from '../src/db/client.js';
import { hashSecret, randomSecret } from '../src/tokens/secrets.js';
import { createTestApp, TEST_DATABASE_URL } from './support/app.js';
import { gql, ok, type GraphQLResponse, type Document } from './support/graphql.js';
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
} from './support/fixtures.js';
import {
  newProductOverHttp,
  post,
  startServerProcess,
  TEST_SESSION_SECRET,
} from './support/server-process.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { START, IS_VALID } from './support/documents.js';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const DATA = { userId: 'user-123', details: { username: 'ada', email: 'ada@example.com' } };

/** Failed closed: a masked, retriable SERVICE_UNAVAILABLE (HTTP 503), and no answer at all. */
function expectUnavailable(response: GraphQLResponse, label: string): void {
  expect(response.status, `${label}: ${JSON.stringify(response)}`).toBe(503);
  expect(response.errors?.length, `${label}: ${JSON.stringify(response)}`).toBeGreaterThan(0);
  for (const error of response.errors!) {
    expect(error.extensions, label).toMatchObject({ code: 'SERVICE_UNAVAILABLE', retriable: true });
    expect(error.message, label).toBe('The service is temporarily unavailable; retry shortly.');
  }
  // No data: not "valid", not "invalid", not false.
  const data = (response.data ?? {}) as Record<string, unknown>;
  for (const [field, value] of Object.entries(data)) expect(value, `${label}: ${field}`).toBeNull();
  expect(JSON.stringify(response), label).not.toMatch(
    /ECONN|postgres|select|insert|update|stack|at [A-Za-z]+ \(/i,
  );
}

describe('the database goes away', () => {
  it.runIf(TEST_DATABASE_URL)(
    'with Postgres unreachable, every operation fails closed (503, retriable), /ready is 503; when it returns the same process recovers',
    async () => {
      const target = new URL(TEST_DATABASE_URL!);
      const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
      const port = await proxy.start();
      cleanups.push(() => proxy.cut());
      const viaProxy = new URL(TEST_DATABASE_URL!);
      viaProxy.hostname = '127.0.0.1';
      viaProxy.port = String(port);
      const t = await createTestApp({ databaseUrl: viaProxy.toString() });
      cleanups.push(() => t.close());
      const product = await newProduct(t);
      const key = product.secret.dev;
      const tag = await newConfig(t, key);
      const verified = await start(t, key, tag);
      const refreshed = await start(t, key, tag);
      expect(
        (await ok(t.app, { key, query: VERIFY, variables: { tag, token: verified.token } }))
          .verifySession.sessionId,
      ).toBe(verified.sessionId);
      const status = async (p: string) => (await t.app.fetch(`http://test.local${p}`)).status;
      expect(await status('/ready')).toBe(200);

      await proxy.cut();
      const calls: Record<string, { query: Document; variables: Record<string, unknown> }> = {
        verifySession: { query: VERIFY, variables: { tag, token: verified.token } },
        isSessionValid: { query: IS_VALID, variables: { tag, token: verified.token } },
        startSession: { query: START, variables: { input: { tag, data: DATA } } },
        refreshSession: {
          query: REFRESH,
          variables: { tag, refreshToken: refreshed.refreshToken },
        },
        revokeSession: { query: REVOKE, variables: { tag, sessionId: verified.sessionId } },
        sessions: {
          query: `query($tag: String!) { sessions(tag: $tag, identifier: "user-123") { totalCount } }`,
          variables: { tag },
        },
      };
      for (const [label, call] of Object.entries(calls)) {
        expectUnavailable(await gql(t.app, { key, ...call }), label);
      }
      // A tampered token is refused too: as TOKEN_INVALID when the key is still known to this
      // instance (nothing else need be read), or as unavailable; never with data.
      const tampered = await gql(t.app, {
        key,
        query: VERIFY,
        variables: { tag, token: `${verified.token}x` },
      });
      expect(tampered.data ?? null).toBeNull();
      expect(['TOKEN_INVALID', 'SERVICE_UNAVAILABLE']).toContain(
        tampered.errors?.[0]?.extensions?.code,
      );
      expect(await status('/ready')).toBe(503);
      expect(await status('/health')).toBe(200);
      // An outage is logged as such, at warn: it is not a fault of this server's code.
      expect(t.logs.join('')).toMatch(/"level":40,[^\n]*"msg":"database unavailable"/);

      await proxy.restore();
      let answer: GraphQLResponse | undefined;
      const deadline = Date.now() + 15_000;
      do {
        answer = await gql(t.app, {
          key,
          query: VERIFY,
          variables: { tag, token: verified.token },
        });
        if (answer.errors) await new Promise((r) => setTimeout(r, 200));
      } while (answer.errors && Date.now() < deadline);
      expect(answer.errors, JSON.stringify(answer.errors)).toBeUndefined();
      expect(
        (answer.data as { verifySession: { sessionId: string } }).verifySession.sessionId,
      ).toBe(verified.sessionId);
      expect(await status('/ready')).toBe(200);
      // Nothing the outage refused half-happened: the session was not revoked, the refresh
      // token was not spent, and it rotates now, once.
      expect(await eventTypesOf(t, verified.sessionId)).toEqual(['STARTED']);
      const after = await ok(t.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken: refreshed.refreshToken },
      });
      expect(after.refreshSession.sessionId).toBe(refreshed.sessionId);
      expect(await eventTypesOf(t, refreshed.sessionId)).toEqual(['STARTED', 'REFRESHED']);
      await start(t, key, tag);
    },
  );
});

/** The state of one session's refresh tokens and events, read straight from the tables. */
async function tokenState(database: DatabaseHandle, sessionId: string) {
  const rows = rowsOf<{ token_hash: string; spent: boolean; successor: boolean }>(
    await database.db.execute(
      sql`select token_hash, spent_at is not null as spent, successor_enc is not null as successor
          from refresh_tokens where session_id = ${sessionId}`,
    ),
  );
  const refreshed = rowsOf<{ n: number }>(
    await database.db.execute(
      sql`select count(*)::int as n from session_events where session_id = ${sessionId} and type = 'REFRESHED'`,
    ),
  )[0]!.n;
  return { rows, refreshed };
}

describe('a process killed mid-refresh', () => {
  // On Postgres, and on the embedded database (whose files the killed process was writing).
  it('SIGKILL during concurrent refreshes leaves every session either rotated or not, and every client-held token usable', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sessions-kill-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const adminKey = `ak_${randomSecret(30)}`;
    // On the shared test database every process holds the suite's secret (the fingerprint).
    const sessionSecret = TEST_SESSION_SECRET;
    const server = await startServerProcess({
      DATA_DIR: dataDir,
      ...(TEST_DATABASE_URL ? { DATABASE_URL: TEST_DATABASE_URL } : {}),
      ADMIN_KEY: adminKey,
      SESSION_SECRET: sessionSecret,
      REFRESH_GRACE_SECONDS: '120',
      RATE_LIMIT_REFRESHES_PER_SESSION: '100000',
      SWEEP_INTERVAL_SECONDS: '0',
      LOG_LEVEL: 'warn',
    });
    cleanups.push(() => {
      if (server.child.exitCode === null && server.child.signalCode === null) {
        server.child.kill('SIGKILL');
      }
    });
    const { key, tag } = await newProductOverHttp(server.url, adminKey);
    const sessions: Started[] = [];
    for (let batch = 0; batch < 5; batch++) {
      const started = await Promise.all(
        Array.from({ length: 10 }, () =>
          post(server.url, key, START, { input: { tag, data: DATA } }),
        ),
      );
      for (const s of started) {
        if (!s.data) throw new Error(`startSession failed: ${JSON.stringify(s)}`);
        sessions.push(s.data.startSession as Started);
      }
    }
    expect(sessions).toHaveLength(50);

    // Every refresh token each client has received, in order: the first is from startSession.
    const received = new Map(sessions.map((s) => [s.sessionId, [s.refreshToken]]));
    let total = 0;
    let killed = false;
    // The kill comes once 200 refreshes have been answered, however long a busy machine takes
    // (the test's timeout is the liveness bound), or once every chain has ended (they end early
    // only by failing: the count below then says so).
    let reached!: () => void;
    const enough = new Promise<void>((resolve) => (reached = resolve));
    const chains = sessions.map(async (s) => {
      const mine = received.get(s.sessionId)!;
      while (!killed) {
        let response;
        try {
          response = await post(server.url, key, REFRESH, { tag, refreshToken: mine.at(-1) });
        } catch {
          return; // the connection died with the process
        }
        const pair = response.data?.refreshSession as Started | undefined;
        if (!pair) throw new Error(`refresh failed before the kill: ${JSON.stringify(response)}`);
        mine.push(pair.refreshToken);
        if (++total === 200) reached();
      }
    });
    await Promise.race([enough, Promise.all(chains)]);
    server.child.kill('SIGKILL');
    killed = true;
    await Promise.all(chains);
    expect(await server.exited).toBeNull(); // killed by a signal: no exit code
    expect(server.child.signalCode).toBe('SIGKILL');
    expect(total).toBeGreaterThanOrEqual(200);

    const database = await openDatabase(
      TEST_DATABASE_URL ? { databaseUrl: TEST_DATABASE_URL, maxConnections: 2 } : { dataDir },
    );
    cleanups.push(() => database.close());
    let rotations = 0;
    for (const s of sessions) {
      const { rows, refreshed } = await tokenState(database, s.sessionId);
      const unspent = rows.filter((r) => !r.spent);
      const spent = rows.filter((r) => r.spent);
      // Exactly one current token; every spent one recorded its successor; one event each.
      expect(unspent, s.sessionId).toHaveLength(1);
      expect(
        spent.every((r) => r.successor),
        s.sessionId,
      ).toBe(true);
      expect(refreshed, s.sessionId).toBe(spent.length);
      rotations += spent.length;
      // Every token the client received exists; all but its last were spent by the client
      // itself; the last is the current one, or spent by a refresh whose answer was lost.
      const byHash = new Map(rows.map((r) => [r.token_hash, r]));
      const mine = received.get(s.sessionId)!;
      mine.forEach((token, i) => {
        const row = byHash.get(hashSecret(token));
        expect(row, `${s.sessionId} token ${i}`).toBeDefined();
        if (i < mine.length - 1) expect(row!.spent).toBe(true);
      });
      expect(rows.length - mine.length, s.sessionId).toBeLessThanOrEqual(1);
    }
    expect(rotations).toBeGreaterThanOrEqual(total);

    // Another instance picks up where the killed one left off: each client's last token
    // renews its session (a lost answer is given again, within the grace window).
    // The same grace window as the killed process: a busy machine can take longer than the
    // default 10 s between the kill and these refreshes.
    const recovery = await createTestApp({ sessionSecret, database, refreshGraceSeconds: 120 });
    cleanups.push(() => recovery.close());
    for (const s of sessions) {
      const last = received.get(s.sessionId)!.at(-1)!;
      const renewed = await ok(recovery.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken: last },
      });
      const verified = await ok(recovery.app, {
        key,
        query: VERIFY,
        variables: { tag, token: renewed.refreshSession.token },
      });
      expect(verified.verifySession.sessionId).toBe(s.sessionId);
      const { rows } = await tokenState(database, s.sessionId);
      expect(rows.filter((r) => !r.spent)).toHaveLength(1);
    }
    // A liveness bound, not a timing claim: a server process's start, 50 starts, 200 refreshes,
    // reopening the killed database (recovery, on PGlite) and 100 calls after it, one by one,
    // took more than a minute on a busy 2-core CI machine.
  }, 240_000);
});

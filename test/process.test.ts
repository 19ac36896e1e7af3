import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from './support/app.js';
import { freshPostgresDatabase } from './support/databases.js';
import {
  acceptedRequest,
  exitOrKill,
  post,
  refusesConnections,
  runServerExpectingExit,
  startServerProcess,
} from './support/server-process.js';

/** A TCP listener holding a free port on `host`, as another program would. */
async function occupy(host: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sessions-'));
  dirs.push(dir);
  return dir;
};

/** The keys a start printed: admin keys and demo secret keys, each as often as shown. */
function shownKeys(stdout: string): { admin: string[]; demo: string[] } {
  return {
    admin: [...stdout.matchAll(/Admin key \(shown once, store it now\): (ak_\S+)/g)].map(
      (m) => m[1]!,
    ),
    demo: [...stdout.matchAll(/secret key \(shown once\): (sk_dev_\S+)/g)].map((m) => m[1]!),
  };
}

/**
 * The README's five steps with `key` (steps 3 to 5: a session type, a session, its verify);
 * returns the verified session's user.
 */
async function fiveSteps(url: string, key: string): Promise<unknown> {
  const config = await post(
    url,
    key,
    'mutation { createSessionConfig(input: {name: "App session", tag: "app-session", description: "Signed-in users of my app", schema: {userId: "u-1", email: "a@b.c"}, selector: "$Session{userId}", expiry: 1, period: HOURS}) { tag expiry period } }',
  );
  expect(config).toEqual({
    data: { createSessionConfig: { tag: 'app-session', expiry: 1, period: 'HOURS' } },
  });
  const started = await post(
    url,
    key,
    'mutation { startSession(input: {tag: "app-session", data: {userId: "user-123", email: "ada@example.com"}}) { token } }',
  );
  const token = (started.data?.startSession as { token?: string } | undefined)?.token;
  expect(token, JSON.stringify(started)).toBeDefined();
  const verified = await post(
    url,
    key,
    'query($token: String!) { verifySession(tag: "app-session", token: $token) { identifier data } }',
    { token },
  );
  expect(verified.errors).toBeUndefined();
  const session = verified.data?.verifySession as { identifier: unknown; data: unknown };
  expect(session.data).toEqual({ userId: 'user-123', email: 'ada@example.com' });
  return session.identifier;
}

/** A fresh embedded database, or the test Postgres when DATABASE_URL is set. */
const databaseEnv = (): Record<string, string> => ({
  DATA_DIR: tempDir(),
  SWEEP_INTERVAL_SECONDS: '0',
  ...(TEST_DATABASE_URL ? { DATABASE_URL: TEST_DATABASE_URL } : {}),
});

// Each test spawns server processes (a start is seconds on a busy 2-core machine, more on a new
// embedded database): a liveness bound of 3 minutes a test, not a timing claim.
describe('the server process', { timeout: 180_000 }, () => {
  // From the sources through tsx, as `npm run dev` starts it (the other tests run the build): a
  // first embedded start there has no PGlite template, so it runs initdb and every migration.
  it('on a first embedded start prints GraphiQL, the admin key and a working demo key, once; they persist', async () => {
    const dataDir = tempDir();
    const first = await startServerProcess({ DATA_DIR: dataDir }, 'source');
    const adminKey = /Admin key \(shown once, store it now\): (ak_\S+)/.exec(first.stdout())?.[1];
    const demoKey = /secret key \(shown once\): (sk_dev_\S+)/.exec(first.stdout())?.[1];
    expect(adminKey).toBeDefined();
    expect(demoKey).toBeDefined();
    const configs = await post(first.url, demoKey!, '{ sessionConfigs { tag } }');
    // The demo ships with the session config of Ductape's examples, for GraphiQL's first tab.
    expect(configs).toEqual({ data: { sessionConfigs: [{ tag: 'user-session' }] } });
    const products = await post(first.url, adminKey!, '{ products { tag envs } }');
    expect(products.data?.products).toEqual([{ tag: 'demo', envs: ['dev'] }]);
    // Keys go to the terminal once, never into log lines.
    const logLines = first
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    expect(logLines.join('\n')).not.toContain(demoKey!);
    expect(logLines.join('\n')).not.toContain(adminKey!);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = await startServerProcess({ DATA_DIR: dataDir }, 'source');
    expect(second.stdout()).not.toMatch(/ak_|sk_dev_/);
    expect(await post(second.url, demoKey!, '{ sessionConfigs { tag } }')).toEqual({
      data: { sessionConfigs: [{ tag: 'user-session' }] },
    });
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  }, 600_000);

  it('shuts down on SIGTERM after finishing requests in flight, and exits 0', async () => {
    const adminKey = `ak_${'k'.repeat(40)}`;
    const server = await startServerProcess({ ...databaseEnv(), ADMIN_KEY: adminKey });
    // Twenty requests the server has begun to handle (it answered 100 Continue to each).
    const inFlight = Array.from({ length: 20 }, () =>
      acceptedRequest(server.url, adminKey, '{ products { tag } }'),
    );
    await Promise.all(inFlight.map((r) => r.accepted));
    server.child.kill('SIGTERM');
    // Once the port refuses new connections the server is shutting down: the requests are
    // finished after the signal, and each gets a whole answer.
    expect(await refusesConnections(server.url)).toBe(true);
    for (const r of inFlight) r.finish();
    for (const r of inFlight) {
      const answer = await r.response;
      expect(answer.status).toBe(200);
      expect((JSON.parse(answer.body) as { data?: { products?: unknown } }).data?.products).toEqual(
        expect.any(Array),
      );
    }
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toMatch(/"msg":"stopped"/);
  }, 300_000);

  it('exits when its stdout and stderr reader goes away at SIGTERM, with requests in flight; every time', async () => {
    const adminKey = `ak_${'e'.repeat(40)}`;
    for (let run = 0; run < 3; run++) {
      const server = await startServerProcess({ ...databaseEnv(), ADMIN_KEY: adminKey });
      // Load: requests finished before the signal (each logged a line) and requests in flight.
      await Promise.all(
        Array.from({ length: 10 }, () => post(server.url, adminKey, '{ products { tag } }')),
      );
      const inFlight = Array.from({ length: 10 }, () =>
        acceptedRequest(server.url, adminKey, '{ products { tag } }'),
      );
      await Promise.all(inFlight.map((r) => r.accepted));
      server.child.kill('SIGTERM');
      // The reader goes away at once: every later write to stdout or stderr gets EPIPE.
      server.child.stdout!.destroy();
      server.child.stderr!.destroy();
      for (const r of inFlight) r.finish();
      const code = await exitOrKill(server);
      expect(code, `run ${run}`).toBe(0);
      await Promise.allSettled(inFlight.map((r) => r.response));
    }
  }, 600_000);

  it('keeps serving while its stdout is a full pipe nobody reads: log lines are dropped (said once on stderr), and SIGTERM still ends it', async () => {
    const adminKey = `ak_${'f'.repeat(40)}`;
    const server = await startServerProcess({
      ...databaseEnv(),
      ADMIN_KEY: adminKey,
      LOG_BUFFER_BYTES: '16384',
    });
    // Nobody reads stdout any more: the pipe (and this side's buffer) fills up.
    server.child.stdout!.pause();
    server.child.stdout!.removeAllListeners('data');
    const dropping = () => /dropping log lines/.test(server.stderr());
    let requests = 0;
    while (!dropping() && requests < 5_000) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => post(server.url, adminKey, '{ products { tag } }')),
      );
      requests += answers.length;
      for (const a of answers) expect(a.errors).toBeUndefined();
    }
    expect(dropping()).toBe(true);
    // The event loop is not blocked: the server still answers, and logs without blocking.
    for (let i = 0; i < 50; i++) {
      const answer = await post(server.url, adminKey, '{ products { tag } }');
      expect(answer.data?.products).toEqual(expect.any(Array));
    }
    expect((await fetch(server.url.replace('/graphql', '/health'))).status).toBe(200);
    server.child.kill('SIGTERM');
    expect(await exitOrKill(server)).toBe(0);
    // Said once, not once per dropped line.
    expect(server.stderr().match(/dropping log lines/g)).toHaveLength(1);
  }, 300_000);

  it.runIf(TEST_DATABASE_URL)(
    'a first start on an empty Postgres database (outside production) makes the demo and prints its key once, ADMIN_KEY set; the five steps work; it persists',
    async () => {
      const database = await freshPostgresDatabase();
      try {
        const adminKey = `ak_${'p'.repeat(40)}`;
        const env = {
          DATA_DIR: tempDir(),
          SWEEP_INTERVAL_SECONDS: '0',
          DATABASE_URL: database.url,
          ADMIN_KEY: adminKey,
        };
        const first = await startServerProcess(env);
        expect(first.stdout()).toMatch(/"database":"postgres"/);
        const { admin, demo } = shownKeys(first.stdout());
        expect(admin).toEqual([]);
        expect(demo).toHaveLength(1);
        expect(await fiveSteps(first.url, demo[0]!)).toBe('user-123');
        const products = await post(first.url, adminKey, '{ products { tag envs } }');
        expect(products.data?.products).toEqual([{ tag: 'demo', envs: ['dev'] }]);
        first.child.kill('SIGTERM');
        expect(await first.exited).toBe(0);

        const second = await startServerProcess(env);
        expect(second.stdout()).not.toMatch(/ak_|sk_dev_|No product yet/);
        const configs = await post(second.url, demo[0]!, '{ sessionConfigs { tag } }');
        expect(
          (configs.data?.sessionConfigs as { tag: string }[]).map((c) => c.tag).sort(),
        ).toEqual(['app-session', 'user-session']);
        second.child.kill('SIGTERM');
        expect(await second.exited).toBe(0);
      } finally {
        await database.drop();
      }
    },
    300_000,
  );

  it.runIf(TEST_DATABASE_URL)(
    'two instances starting at once on one empty Postgres database: one admin key and one demo key, each shown once, and both instances take them',
    async () => {
      const database = await freshPostgresDatabase();
      try {
        const env = () => ({
          DATA_DIR: tempDir(),
          SWEEP_INTERVAL_SECONDS: '0',
          DATABASE_URL: database.url,
          // Instances on one database share their secret (docs/operations/security.md).
          SESSION_SECRET: 'two-instances-at-once:a-secret-of-32-bytes-or-more',
        });
        const [a, b] = await Promise.all([startServerProcess(env()), startServerProcess(env())]);
        const { admin, demo } = shownKeys(a.stdout() + b.stdout());
        expect(admin).toHaveLength(1);
        expect(demo).toHaveLength(1);
        expect(await fiveSteps(a.url, demo[0]!)).toBe('user-123');
        for (const server of [a, b]) {
          const products = await post(server.url, admin[0]!, '{ products { tag } }');
          expect(products.data?.products).toEqual([{ tag: 'demo' }]);
          expect((await post(server.url, demo[0]!, '{ sessionConfigs { tag } }')).errors).toBe(
            undefined,
          );
        }
        for (const server of [a, b]) server.child.kill('SIGTERM');
        expect(await Promise.all([a.exited, b.exited])).toEqual([0, 0]);
      } finally {
        await database.drop();
      }
    },
    300_000,
  );

  it.runIf(TEST_DATABASE_URL)(
    'in production, a first start on an empty Postgres database makes no demo and prints the two commands that make a product and a key; they work',
    async () => {
      const database = await freshPostgresDatabase();
      try {
        const adminKey = `ak_${'q'.repeat(40)}`;
        const env = {
          DATA_DIR: tempDir(),
          SWEEP_INTERVAL_SECONDS: '0',
          DATABASE_URL: database.url,
          NODE_ENV: 'production',
          SESSION_SECRET: 'production-first-start:a-secret-of-32-bytes-or-more',
          ADMIN_KEY: adminKey,
          METRICS_PORT: 'main',
          METRICS_TOKEN: 'm'.repeat(32),
        };
        const first = await startServerProcess(env);
        const out = first.stdout();
        expect(out).not.toMatch(/sk_dev_|ak_/);
        expect(out).toMatch(/No product yet/);
        // The printed commands, run as an operator would paste them, with ADMIN in the shell.
        const commands = out.slice(out.indexOf('  curl'));
        const run = spawnSync('bash', ['-e', '-c', commands], {
          env: { PATH: process.env.PATH ?? '', ADMIN: adminKey },
          encoding: 'utf8',
        });
        expect(run.status, run.stderr).toBe(0);
        const key = /"key":"(sk_prd_[^"]+)"/.exec(run.stdout)?.[1];
        expect(key, run.stdout).toBeDefined();
        expect(await post(first.url, key!, '{ sessionConfigs { tag } }')).toEqual({
          data: { sessionConfigs: [] },
        });
        expect((await post(first.url, adminKey, '{ products { tag } }')).data?.products).toEqual([
          { tag: 'my-app' },
        ]);
        first.child.kill('SIGTERM');
        expect(await first.exited).toBe(0);
        // A product exists: the next start says nothing of it.
        const second = await startServerProcess(env);
        expect(second.stdout()).not.toMatch(/No product yet|sk_|ak_/);
        second.child.kill('SIGTERM');
        expect(await second.exited).toBe(0);
      } finally {
        await database.drop();
      }
    },
    300_000,
  );

  it('a port already in use: one line on stderr naming it and PORT, exit 1, before anything is created (the first start keys are still shown on the next start)', async () => {
    const squatter = await occupy('127.0.0.1');
    const dataDir = tempDir();
    try {
      const refused = await runServerExpectingExit({
        DATA_DIR: dataDir,
        HOST: '127.0.0.1',
        PORT: String(squatter.port),
      });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toBe(
        `port ${squatter.port} on 127.0.0.1 is already in use (EADDRINUSE); set PORT to a free port\n`,
      );
      expect(refused.stdout).not.toMatch(/ak_|sk_dev_/);
    } finally {
      await squatter.close();
    }
    // Nothing was spent: the next start on a free port is still the first one.
    const next = await startServerProcess({ DATA_DIR: dataDir });
    try {
      expect(next.stdout()).toMatch(/Admin key \(shown once, store it now\): ak_/);
      expect(next.stdout()).toMatch(/secret key \(shown once\): sk_dev_/);
    } finally {
      next.child.kill('SIGTERM');
      expect(await next.exited).toBe(0);
    }
  });

  it('a metrics port already in use: one line on stderr naming it and METRICS_PORT, exit 1', async () => {
    const squatter = await occupy('127.0.0.1');
    try {
      const refused = await runServerExpectingExit({
        ...databaseEnv(),
        HOST: '127.0.0.1',
        PORT: '0',
        METRICS_PORT: String(squatter.port),
        METRICS_HOST: '127.0.0.1',
      });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toBe(
        `metrics port ${squatter.port} on 127.0.0.1 is already in use (EADDRINUSE); set METRICS_PORT to a free port\n`,
      );
    } finally {
      await squatter.close();
    }
  });

  it('a HOST that is no address of this machine: one line on stderr naming it and HOST, exit 1', async () => {
    // 192.0.2.1 is a documentation address (RFC 5737): no machine has it.
    const refused = await runServerExpectingExit({
      ...databaseEnv(),
      HOST: '192.0.2.1',
      PORT: '0',
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      'cannot listen on 192.0.2.1: not an address of this machine (EADDRNOTAVAIL); set HOST to one of its addresses\n',
    );
  });

  it('refuses to start on bad configuration, naming every bad variable, and exits non-zero', async () => {
    const result = await runServerExpectingExit({
      PORT: 'not-a-port',
      ADMIN_KEY: 'ak_short',
      NODE_ENV: 'production',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/PORT:/);
    expect(result.stderr).toMatch(/ADMIN_KEY:/);
    expect(result.stderr).toMatch(/SESSION_SECRET:/);
    expect(result.stderr).not.toContain('ak_short');
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from './support/app.js';
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

/** A fresh embedded database, or the test Postgres when DATABASE_URL is set. */
const databaseEnv = (): Record<string, string> => ({
  DATA_DIR: tempDir(),
  SWEEP_INTERVAL_SECONDS: '0',
  ...(TEST_DATABASE_URL ? { DATABASE_URL: TEST_DATABASE_URL } : {}),
});

describe('the server process', () => {
  it('on a first embedded start prints GraphiQL, the admin key and a working demo key, once; they persist', async () => {
    const dataDir = tempDir();
    const first = await startServerProcess({ DATA_DIR: dataDir });
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

    const second = await startServerProcess({ DATA_DIR: dataDir });
    expect(second.stdout()).not.toMatch(/ak_|sk_dev_/);
    expect(await post(second.url, demoKey!, '{ sessionConfigs { tag } }')).toEqual({
      data: { sessionConfigs: [{ tag: 'user-session' }] },
    });
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  }, 300_000);

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
    'runs on Postgres when DATABASE_URL is set, without a demo product',
    async () => {
      const adminKey = `ak_${'p'.repeat(40)}`;
      const server = await startServerProcess({
        DATA_DIR: tempDir(),
        DATABASE_URL: TEST_DATABASE_URL!,
        ADMIN_KEY: adminKey,
      });
      expect(server.stdout()).not.toMatch(/sk_dev_/);
      expect(server.stdout()).toMatch(/"database":"postgres"/);
      const products = await post(server.url, adminKey, '{ products { tag } }');
      expect(Array.isArray(products.data?.products)).toBe(true);
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    },
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

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from './support/app.js';
import { post, runServerExpectingExit, startServerProcess } from './support/server-process.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sessions-'));
  dirs.push(dir);
  return dir;
};

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
  });

  it('shuts down on SIGTERM after finishing requests in flight, and exits 0', async () => {
    const server = await startServerProcess({
      DATA_DIR: tempDir(),
      ADMIN_KEY: `ak_${'k'.repeat(40)}`,
    });
    const inFlight = Array.from({ length: 20 }, () =>
      post(server.url, `ak_${'k'.repeat(40)}`, '{ products { tag } }'),
    );
    await new Promise((r) => setTimeout(r, 5));
    server.child.kill('SIGTERM');
    const results = await Promise.allSettled(inFlight);
    // Requests accepted before the signal complete; none is cut off with a half answer.
    for (const r of results) {
      if (r.status === 'fulfilled') expect(r.value.data?.products).toBeDefined();
    }
    expect(results.some((r) => r.status === 'fulfilled')).toBe(true);
    expect(await server.exited).toBe(0);
    expect(server.stdout()).toMatch(/"msg":"stopped"/);
  });

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

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyPgliteTemplate } from '../src/db/pglite-template.js';
import { TEST_DATABASE_URL } from './support/app.js';
import { freshPostgresDatabase } from './support/databases.js';
import { post, startServerProcess, type ServerProcess } from './support/server-process.js';

const ROOT = path.resolve(import.meta.dirname, '..');

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'compiled-'));
  dirs.push(dir);
  return dir;
};

/** `npm run build`, as a deployment runs it; resolves with its exit code and output. */
function build(): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['scripts/build.mjs'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

beforeAll(async () => {
  const built = await build();
  expect(built.code, built.output).toBe(0);
}, 600_000);

/**
 * What a first start of the build serves: health, the demo key it printed starting and verifying
 * a session on the demo's config, the console's page and GraphiQL's (files the build finds from
 * its own location: the console's build, GraphiQL's chunk).
 */
async function servesAll(server: ServerProcess): Promise<void> {
  const base = server.url.replace(/\/graphql$/, '');
  expect((await fetch(`${base}/health`)).status).toBe(200);
  const demoKey = /secret key \(shown once\): (sk_dev_\S+)/.exec(server.stdout())?.[1];
  expect(demoKey, server.stdout()).toBeDefined();
  const data = { userId: 'user-123', details: { username: 'ada', email: 'ada@example.com' } };
  const started = await post(
    server.url,
    demoKey!,
    'mutation($data: JSON!) { startSession(input: {tag: "user-session", data: $data}) { token } }',
    { data },
  );
  const token = (started.data?.startSession as { token?: string } | undefined)?.token;
  expect(token, JSON.stringify(started)).toBeDefined();
  const verified = await post(
    server.url,
    demoKey!,
    'query($token: String!) { verifySession(tag: "user-session", token: $token) { identifier data } }',
    { token },
  );
  expect(verified).toEqual({ data: { verifySession: { identifier: 'user-123', data } } });
  const consolePage = await fetch(`${base}/console`);
  expect(consolePage.status).toBe(200);
  expect(await consolePage.text()).toMatch(/<script[^>]+src="[^"]*assets\//);
  const graphiql = await fetch(server.url, { headers: { accept: 'text/html' } });
  expect(graphiql.status).toBe(200);
  expect(await graphiql.text()).toMatch(/graphiql/i);
  server.child.kill('SIGTERM');
  expect(await server.exited).toBe(0);
}

describe('the compiled server (npm run build, node dist/main.js)', () => {
  it('emits dist/main.js (JavaScript only) and a migrated PGlite template', () => {
    expect(existsSync(path.join(ROOT, 'dist/main.js'))).toBe(true);
    expect(existsSync(path.join(ROOT, 'dist/pglite-template/pgdata/PG_VERSION'))).toBe(true);
    expect(readdirSync(path.join(ROOT, 'dist')).filter((f) => f.endsWith('.ts'))).toEqual([]);
  });

  it('copies the template into a new DATA_DIR byte for byte, and never over a database', () => {
    const template = path.join(ROOT, 'dist/pglite-template');
    const location = path.join(tempDir(), 'pgdata');
    expect(copyPgliteTemplate(template, location)).toBe(true);
    const files = (dir: string) =>
      readdirSync(dir, { recursive: true, encoding: 'utf8' })
        .filter((file) => statSync(path.join(dir, file)).isFile())
        .sort();
    const source = path.join(template, 'pgdata');
    expect(files(location)).toEqual(files(source));
    for (const file of files(source)) {
      const same = readFileSync(path.join(location, file)).equals(
        readFileSync(path.join(source, file)),
      );
      expect(same, file).toBe(true);
    }
    expect(copyPgliteTemplate(template, location)).toBe(false);
  });

  it('on a new DATA_DIR: starts from the template, healthy, the demo key verifies, the pages are served', async () => {
    const dataDir = tempDir();
    const server = await startServerProcess(
      { DATA_DIR: dataDir, SWEEP_INTERVAL_SECONDS: '0' },
      'dist',
    );
    expect(server.stdout()).toMatch(/"database":"pglite"/);
    expect(existsSync(path.join(dataDir, 'pgdata', 'PG_VERSION'))).toBe(true);
    await servesAll(server);
  }, 300_000);

  it.runIf(TEST_DATABASE_URL)(
    'on an empty Postgres database: healthy, the demo key verifies, the pages are served',
    async () => {
      const database = await freshPostgresDatabase();
      try {
        const server = await startServerProcess(
          { DATA_DIR: tempDir(), SWEEP_INTERVAL_SECONDS: '0', DATABASE_URL: database.url },
          'dist',
        );
        expect(server.stdout()).toMatch(/"database":"postgres"/);
        await servesAll(server);
      } finally {
        await database.drop();
      }
    },
    300_000,
  );
});

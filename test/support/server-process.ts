import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { inject } from 'vitest';
import { TEST_DATABASE_URL } from './app.js';
import { documentText, type Document } from './graphql.js';
import { serverBuild } from './server-build.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * The one `SESSION_SECRET` of every server process on the shared test database: instances on
 * one database must share their secret, or the second refuses to start (docs/operations/security.md). A
 * test that needs another secret runs on a database of its own (support/databases.ts).
 */
export const TEST_SESSION_SECRET = 'test-suite-secret:every-process-on-the-shared-test-database';

/** The environment a server process gets on the shared test database: {@link TEST_SESSION_SECRET}. */
function withSharedSecret(env: Record<string, string>): Record<string, string> {
  if (!TEST_DATABASE_URL || env.DATABASE_URL !== TEST_DATABASE_URL) return env;
  if (env.SESSION_SECRET === undefined) return { ...env, SESSION_SECRET: TEST_SESSION_SECRET };
  if (env.SESSION_SECRET !== TEST_SESSION_SECRET) {
    throw new Error(
      'a server process on the shared test database must use TEST_SESSION_SECRET (or none); ' +
        'use freshPostgresDatabase() for another secret',
    );
  }
  return env;
}

/**
 * Rate limits count in memory unless the test says otherwise: on the shared test database every
 * server process of every test file would otherwise count in the same fleet rows (the admin
 * key's limit, for one, is the whole fleet's), though each test is a deployment of its own.
 */
function withOwnRateLimits(env: Record<string, string>): Record<string, string> {
  return env.RATE_LIMIT_STORE === undefined ? { RATE_LIMIT_STORE: 'memory', ...env } : env;
}

/**
 * No webhook delivery unless the test asks for it (`WEBHOOK_DELIVERY`): on the shared test
 * database a server process's worker would serve every test file's endpoints with the default
 * settings, refusing their 127.0.0.1 URLs (no private URLs by default) and so counting failures
 * toward another test's endpoint's disable, as a deployment whose instances disagree would.
 */
function withoutDelivery(env: Record<string, string>): Record<string, string> {
  return env.WEBHOOK_DELIVERY === undefined ? { WEBHOOK_DELIVERY: 'false', ...env } : env;
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/**
 * How a server process is run: `compiled`, the default, from a build of the current sources
 * (test/support/server-build.ts: made once, on the first ask, and kept until the sources change;
 * as `npm start` runs the server, and a start costs a fraction of the CPU of one through tsx);
 * `source`, from the sources through tsx, as `npm run dev` runs it (`TEST_SERVER=source` runs every
 * test's server processes so); `dist`, the build `npm run build` wrote (test/compiled.test.ts).
 */
export type ServerEntry = 'source' | 'compiled' | 'dist';

const DEFAULT_ENTRY: ServerEntry = process.env.TEST_SERVER === 'source' ? 'source' : 'compiled';

let compiledDir: Promise<string> | undefined;

/** The directory of the build of the current sources, asked of the global set-up once per file. */
function compiledBuild(): Promise<string> {
  compiledDir ??= (async () => {
    const url = inject('serverBuildUrl');
    // Without the global set-up (a file run on its own config), this file builds it itself.
    if (!url) return serverBuild();
    const response = await fetch(url);
    const text = await response.text();
    if (!response.ok) throw new Error(text);
    return text;
  })();
  return compiledDir;
}

async function argvOf(entry: ServerEntry): Promise<string[]> {
  if (entry === 'source') return ['--import', 'tsx', 'src/main.ts'];
  if (entry === 'dist') return ['dist/main.js'];
  return [path.join(await compiledBuild(), 'main.js')];
}

/** Runs the server with exactly the given environment (plus PATH), from `entry`. */
export async function startServerProcess(
  env: Record<string, string>,
  entry: ServerEntry = DEFAULT_ENTRY,
): Promise<ServerProcess> {
  const child = spawn(process.execPath, await argvOf(entry), {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      ...withoutDelivery(withOwnRateLimits(withSharedSecret(env))),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not start:\n${out}\n${err}`)),
      // A liveness bound, generous: on a loaded 2-core machine a start can take tens of seconds,
      // and a first embedded start through tsx (initdb, every migration) over 2 minutes.
      240_000,
    );
    const check = () => {
      const match = /Graph(?:iQL|QL) at (http:\/\/localhost:\d+\/graphql)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', check);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`server exited:\n${out}\n${err}`));
    });
  });
  return { child, url, stdout: () => out, stderr: () => err, exited };
}

/** Runs the server expecting it to exit at once; returns its code and output. */
export async function runServerExpectingExit(
  env: Record<string, string>,
  entry: ServerEntry = DEFAULT_ENTRY,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, await argvOf(entry), {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      ...withoutDelivery(withOwnRateLimits(withSharedSecret(env))),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    // It started after all: stop it, and let the caller see the exit code of a normal stop.
    if (/Session service ready/.test(stdout)) child.kill('SIGTERM');
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stdout, stderr };
}

export async function post(url: string, key: string, query: Document, variables?: unknown) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: documentText(query), variables }),
  });
  return (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
}

/**
 * Through a running server's HTTP API: a new product with a `dev` env, a secret key for it, and
 * a session config `web` selecting `$Session{userId}` (1-hour tokens). Throws on any error.
 */
export async function newProductOverHttp(
  url: string,
  adminKey: string,
): Promise<{ productTag: string; key: string; tag: string }> {
  const productTag = `p-${randomBytes(6).toString('hex')}`;
  const expectData = (result: { data?: Record<string, unknown>; errors?: unknown[] }) => {
    if (result.errors || !result.data) throw new Error(`setup failed: ${JSON.stringify(result)}`);
    return result.data;
  };
  expectData(
    await post(
      url,
      adminKey,
      `mutation($input: CreateProductInput!) { createProduct(input: $input) { tag } }`,
      { input: { tag: productTag, name: productTag, envs: ['dev'] } },
    ),
  );
  const created = expectData(
    await post(
      url,
      adminKey,
      `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { key } }`,
      { input: { product: productTag, env: 'dev', kind: 'SECRET', name: 'test' } },
    ),
  );
  const key = (created.createApiKey as { key: string }).key;
  expectData(
    await post(
      url,
      key,
      `mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input) { tag } }`,
      {
        input: {
          name: 'Web',
          tag: 'web',
          description: 'Signed-in users',
          schema: { userId: 'u', details: { username: 'n', email: 'e@example.com' } },
          selector: '$Session{userId}',
          expiry: 1,
          period: 'HOURS',
        },
      },
    ),
  );
  return { productTag, key, tag: 'web' };
}

/**
 * A POST the server has provably begun to handle: it is sent with `Expect: 100-continue`, and
 * `accepted` resolves when the server answers `100 Continue`, which Node's server does once it
 * has parsed the request's headers (the request is then in flight, not an idle connection). The
 * body is sent only when `finish()` is called.
 */
export function acceptedRequest(url: string, key: string, query: string, variables?: unknown) {
  const body = JSON.stringify({ query, variables });
  let markAccepted!: () => void;
  const accepted = new Promise<void>((resolve) => (markAccepted = resolve));
  const request = httpRequest(url, {
    method: 'POST',
    agent: false,
    headers: {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      authorization: `Bearer ${key}`,
      expect: '100-continue',
    },
  });
  request.on('continue', markAccepted);
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    request.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    request.on('error', reject);
  });
  request.flushHeaders();
  // Callers await `accepted` before they care; a failure shows in `response`.
  void response.catch(() => {});
  return { accepted, response, finish: () => request.end(body) };
}

/** Resolves once a new TCP connection to the server's port is refused (it stopped listening). */
export async function refusesConnections(url: string, attempts = 200): Promise<boolean> {
  const { hostname, port } = new URL(url.replace('localhost', '127.0.0.1'));
  for (let i = 0; i < attempts; i++) {
    const refused = await new Promise<boolean>((resolve) => {
      const probe = httpRequest({ hostname, port, path: '/health', agent: false });
      probe.on('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
      probe.on('response', (res) => {
        res.resume();
        resolve(false);
      });
      probe.end();
    });
    if (refused) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

/**
 * The process's exit code, or `'hung'` (after SIGKILL) when it has not exited `limitMs` after
 * this call: a liveness bound for tests of processes that must exit, never a timing claim.
 */
export async function exitOrKill(
  server: ServerProcess,
  limitMs = 30_000,
): Promise<number | null | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => {
    timer = setTimeout(() => {
      server.child.kill('SIGKILL');
      resolve('hung');
    }, limitMs);
  });
  const result = await Promise.race([server.exited, hung]);
  clearTimeout(timer);
  return result;
}

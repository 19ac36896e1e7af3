import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** Runs `src/main.ts` as `npm start` would, with exactly the given environment (plus PATH). */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
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
      30_000,
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

/** Runs `src/main.ts` expecting it to exit at once; returns its code and output. */
export async function runServerExpectingExit(
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stdout, stderr };
}

export async function post(url: string, key: string, query: string, variables?: unknown) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
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

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import {
  CLIENT_DIR,
  CLIENT_ENTRIES,
  ROOT,
  clientExports,
  packClient,
} from '../scripts/client-package.js';
import { ok } from './support/graphql.js';
import { describe, it } from './support/test.js';

const run = promisify(execFile);
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');

/**
 * The package README's TypeScript blocks: each is a file of an example app, named by its first
 * line (`// sessions.ts`). Every block must name one, so that none escapes the type check.
 */
function readmeFiles(markdown: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const [, code] of markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
    const name = /^\/\/ ([a-z][\w-]*\.ts)\n/.exec(code!)?.[1];
    if (!name) throw new Error(`a README block does not start with its file name:\n${code}`);
    if (files.has(name)) throw new Error(`two README blocks are ${name}`);
    files.set(name, code!);
  }
  return files;
}

/**
 * The test's own driver of the README's app (not in the README): start → verify (locally and
 * on the server) → revoke → refused by the server at once, and by the local verifier once the
 * feed has brought the revocation. It also uses the package's exported types, so that the type
 * check covers them.
 */
const DRIVER = `
import {
  API_ERROR_CODES,
  type LocalVerifier,
  type LocalVerifyResult,
  type SessionClient,
  type SessionTokens,
} from '@session-service/client';
import { authenticate, authenticateOnServer } from './authenticate.js';
import { client, verifier } from './sessions.js';
import { signIn, signOut, type User } from './sign-in.js';

const clients: [SessionClient, LocalVerifier] = [client, verifier];
await verifier.ready;
const user: User = { userId: 'user-1', role: 'user' };
const session: SessionTokens = await signIn(user);
const local = (await authenticate(session.token)) as LocalVerifyResult<User> | null;
const onServer = await authenticateOnServer(session.token);
await signOut(session.sessionId);
const onServerAfter = await authenticateOnServer(session.token);
// The revocation reaches the verifier over its feed (milliseconds); the bound is for a busy machine.
const before = verifier.stats();
let localAfter = await authenticate(session.token);
for (const deadline = Date.now() + 30_000; localAfter !== null && Date.now() < deadline; ) {
  await new Promise((resolve) => setTimeout(resolve, 5));
  localAfter = await authenticate(session.token);
}
const after = verifier.stats();
console.log(
  JSON.stringify({
    local: local && { verifiedBy: local.verifiedBy, sessionId: local.sessionId, data: local.data },
    onServer: onServer && { sessionId: onServer.sessionId, identifier: onServer.identifier },
    onServerAfter,
    localAfter,
    refusedLocally: after.serverVerifies === before.serverVerifies,
    knowsCodes: API_ERROR_CODES.includes('SESSION_REVOKED'),
  }),
);
await Promise.all(clients.map((c) => c.close()));
`;

/** What a consumer's tsconfig says, but for module resolution. */
const tsconfig = (compilerOptions: Record<string, unknown>) =>
  JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2023'],
      strict: true,
      types: ['node'],
      ...compilerOptions,
    },
    include: ['src'],
  });

describe('the client package', () => {
  it("installs from its tarball in a fresh project, where its README's code type-checks (node16 and bundler) and runs against a server", async ({
    t,
    server,
    key,
    onTestFinished,
  }) => {
    const work = await mkdtemp(path.join(tmpdir(), 'client-package-'));
    onTestFinished(() => rm(work, { recursive: true, force: true }));

    // `npm pack` builds it (prepack: tsc) and packs what `files` names.
    const tarball = await packClient(work);
    const { stdout: listing } = await run('tar', ['-tzf', tarball]);
    const files = listing
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md']));
    for (const target of Object.values(clientExports())) {
      const paths = typeof target === 'string' ? [target] : [target.types, target.default];
      for (const p of paths) expect(files).toContain(p.replace(/^\.\//, ''));
    }
    // The one module the client shares with the server (the contract's lists) travels with it.
    expect(files).toContain('build/contract/enums.js');
    expect(files.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => !f.startsWith('build/')).sort()).toEqual([
      'README.md',
      'package.json',
    ]);

    // A project of its own, which installs the tarball as the README says. Its dependencies
    // are in npm's cache since this checkout installed them: no registry round trip unless not.
    const project = path.join(work, 'app');
    await mkdir(path.join(project, 'src'), { recursive: true });
    await writeFile(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'app', private: true, type: 'module' }),
    );
    await run(
      'npm',
      ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'],
      {
        cwd: project,
        env: { ...process.env, npm_config_update_notifier: 'false', npm_config_loglevel: 'error' },
        timeout: 120_000,
      },
    );
    const manifest = JSON.parse(await readFile(path.join(project, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(manifest.dependencies['@session-service/client']).toMatch(/^file:/);
    // A Node app's own dev dependency, taken from this checkout.
    await mkdir(path.join(project, 'node_modules/@types'), { recursive: true });
    await symlink(
      path.join(ROOT, 'node_modules/@types/node'),
      path.join(project, 'node_modules/@types/node'),
    );
    // The frameworks whose types the Fastify and Hono adapters' declarations import (optional
    // peers): an app that imports those adapters has them installed.
    for (const framework of ['fastify', 'hono']) {
      await symlink(
        path.join(ROOT, 'node_modules', framework),
        path.join(project, 'node_modules', framework),
      );
    }

    // The README's code, as the app's files, and the test's driver.
    const readme = await readFile(path.join(CLIENT_DIR, 'README.md'), 'utf8');
    const example = readmeFiles(readme);
    expect([...example.keys()].sort()).toEqual([
      'authenticate.ts',
      'create-session-type.ts',
      'sessions.ts',
      'sign-in.ts',
    ]);
    for (const [name, code] of example) await writeFile(path.join(project, 'src', name), code);
    await writeFile(path.join(project, 'src/run.ts'), DRIVER);

    // Type-checked as a Node project (node16) that emits the JavaScript it runs, and as a
    // bundled one. Every entry point is imported too, so its types must resolve under both.
    await writeFile(
      path.join(project, 'src/entries.ts'),
      Object.keys(CLIENT_ENTRIES)
        .map((subpath, i) => {
          const specifier = path.posix.join('@session-service/client', subpath);
          return `import * as entry${i} from '${specifier}';\nexport { entry${i} };\n`;
        })
        .join(''),
    );
    // node16 also checks the declarations (the package's and what they import: a type that only
    // exists in the DOM's lib would fail here); bundler, as most apps do, skips them.
    const configs = {
      node16: {
        module: 'node16',
        moduleResolution: 'node16',
        skipLibCheck: false,
        outDir: 'dist',
        rootDir: 'src',
      },
      bundler: { module: 'esnext', moduleResolution: 'bundler', skipLibCheck: true, noEmit: true },
    };
    const checks = await Promise.all(
      Object.entries(configs).map(async ([name, options]) => {
        await writeFile(path.join(project, `tsconfig.${name}.json`), tsconfig(options));
        const { stdout } = await run(process.execPath, [TSC, '-p', `tsconfig.${name}.json`], {
          cwd: project,
          timeout: 240_000,
        }).catch((error: { stdout?: string; message: string }) => ({
          stdout: error.stdout || error.message,
        }));
        return [name, stdout] as const;
      }),
    );
    expect(checks).toEqual([
      ['node16', ''],
      ['bundler', ''],
    ]);

    const env = { PATH: process.env.PATH ?? '', SESSIONS_URL: server.url, SESSIONS_KEY: key };
    const node = (file: string) =>
      run(process.execPath, [file], { cwd: project, env, timeout: 60_000 });
    // Every entry point loads in plain Node.
    await node('dist/entries.js');
    // The README's one-time set-up, then its app.
    await node('dist/create-session-type.js');
    const { stdout } = await node('dist/run.js');
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as { local: { sessionId: string } };
    expect(result).toEqual({
      local: {
        verifiedBy: 'local',
        sessionId: result.local.sessionId,
        data: { userId: 'user-1', role: 'user' },
      },
      onServer: { sessionId: result.local.sessionId, identifier: 'user-1' },
      onServerAfter: null,
      localAfter: null,
      refusedLocally: true,
      knowsCodes: true,
    });
    // The README's app started its session in the test's product, for its user, and revoked it.
    const { session } = await ok<{ session: { tag: string; identifier: string; status: string } }>(
      t.app,
      {
        key,
        query: 'query($id: ID!) { session(id: $id) { tag identifier status } }',
        variables: { id: result.local.sessionId },
      },
    );
    expect(session).toEqual({ tag: 'user-session', identifier: 'user-1', status: 'REVOKED' });
  }, 300_000);
});

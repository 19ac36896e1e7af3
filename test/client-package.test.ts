import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { start } from './support/fixtures.js';
import { describe, it } from './support/test.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const PACKAGE_DIR = path.join(ROOT, 'packages/client');

/** A plain Node script, as an app would write it: no tsx, no TypeScript, the package by name. */
const SCRIPT = `
import { createLocalVerifier, createSessionClient } from '@session-service/client';
const { SERVICE_URL: url, SERVICE_KEY: key, TAG: tag, TOKEN: token, SESSION_ID: sessionId } = process.env;
const verifier = createLocalVerifier({ url, key, tags: [tag], heartbeatMs: 1000 });
await verifier.ready;
const first = await verifier.verify({ tag, token });
const client = createSessionClient({ url, key });
await client.sessions.revoke({ tag, sessionId });
let afterRevoke = 'VALID';
const deadline = Date.now() + 10_000;
while (Date.now() < deadline) {
  try {
    await verifier.verify({ tag, token });
    await new Promise((resolve) => setTimeout(resolve, 1));
  } catch (error) {
    afterRevoke = error.code;
    break;
  }
}
console.log(JSON.stringify({ verifiedBy: first.verifiedBy, sessionId: first.sessionId, afterRevoke }));
await verifier.close();
await client.close();
`;

describe('the client package', () => {
  it('packs to built JavaScript with types that a plain Node project runs', async ({
    t,
    server,
    key,
    config: tag,
    onTestFinished,
  }) => {
    const work = await mkdtemp(path.join(tmpdir(), 'client-package-'));
    onTestFinished(() => rm(work, { recursive: true, force: true }));
    // `npm pack` builds it (prepack: tsc) and packs only what `files` names. No network.
    const { stdout } = await run('npm', ['pack', '--pack-destination', work, '--json'], {
      cwd: PACKAGE_DIR,
      env: { ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false' },
    });
    const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    const files = packed!.files.map((f) => f.path);
    expect(files).toContain('build/client/index.js');
    expect(files).toContain('build/client/index.d.ts');
    expect(files).toContain('build/client/local-verifier.d.ts');
    // The one module the client shares with the server (the contract's lists) travels with it.
    expect(files).toContain('build/contract/enums.js');
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);

    // A project of its own: the tarball unpacked where npm would put it; its three
    // dependencies linked from this checkout (the pinned versions), so no registry is needed.
    const project = path.join(work, 'app');
    const installed = path.join(project, 'node_modules/@session-service/client');
    await mkdir(installed, { recursive: true });
    await run('tar', [
      '-xzf',
      path.join(work, packed!.filename),
      '-C',
      installed,
      '--strip-components=1',
    ]);
    for (const dep of ['jose', 'graphql-ws', 'ws']) {
      await symlink(path.join(ROOT, 'node_modules', dep), path.join(project, 'node_modules', dep));
    }
    expect((await readdir(installed)).sort()).toEqual(['build', 'package.json']);
    await writeFile(path.join(project, 'package.json'), JSON.stringify({ type: 'module' }));
    await writeFile(path.join(project, 'check.mjs'), SCRIPT);

    const session = await start(t, key, tag);
    const result = await run(process.execPath, ['check.mjs'], {
      cwd: project,
      env: {
        PATH: process.env.PATH ?? '',
        SERVICE_URL: server.url,
        SERVICE_KEY: key,
        TAG: tag,
        TOKEN: session.token,
        SESSION_ID: session.sessionId,
      },
      timeout: 60_000,
    });
    expect(JSON.parse(result.stdout.trim().split('\n').pop()!)).toEqual({
      verifiedBy: 'local',
      sessionId: session.sessionId,
      afterRevoke: 'SESSION_REVOKED',
    });
  });
});

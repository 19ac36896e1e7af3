import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * Where the tests' builds of the server are kept, one directory per {@link sourceHash}. Inside
 * the project (a build finds the migrations and node_modules from its own location, as dist/
 * does), apart from dist/, which test/compiled.test.ts rebuilds while other files' servers run.
 */
export const SERVER_BUILD_CACHE = path.join(ROOT, 'node_modules', '.cache', 'test-server-build');

/** What a build is made from (scripts/start.mjs's inputs, and the migrations its template runs). */
const INPUTS = ['src', 'patches', 'drizzle', 'package-lock.json', 'scripts/build.mjs'];

/** The files at `relative` (a file, or every file under a directory), relative to the root. */
function filesUnder(relative: string): string[] {
  const full = path.join(ROOT, relative);
  if (!existsSync(full)) return [];
  if (!statSync(full).isDirectory()) return [relative];
  return readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(ROOT, path.join(entry.parentPath, entry.name)));
}

/** A hash of every input's path and content: a build is reused until one of them changes. */
export function sourceHash(): string {
  const hash = createHash('sha256');
  for (const file of INPUTS.flatMap(filesUnder).sort()) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(path.join(ROOT, file)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

/** `node scripts/build.mjs <target>`; rejects with its output if it fails. */
function runBuild(target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['scripts/build.mjs', target], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`the server build failed (${code}):\n${output}`)),
    );
  });
}

/**
 * The build of the current sources (its directory, with `main.js` and the PGlite template), made
 * if no run made it before. Older builds are removed once a new one is in place.
 */
export async function serverBuild(): Promise<string> {
  const hash = sourceHash();
  const dir = path.join(SERVER_BUILD_CACHE, hash);
  if (existsSync(path.join(dir, 'main.js'))) return dir;
  mkdirSync(SERVER_BUILD_CACHE, { recursive: true });
  const mine = path.join(SERVER_BUILD_CACHE, `${hash}.${process.pid}`);
  await runBuild(mine);
  try {
    renameSync(mine, dir);
  } catch (error) {
    // Another run (another checkout's vitest on the same tree) put the same build in place first.
    rmSync(mine, { recursive: true, force: true });
    if (!existsSync(path.join(dir, 'main.js'))) throw error;
  }
  for (const name of readdirSync(SERVER_BUILD_CACHE)) {
    if (/^[0-9a-f]{16}$/.test(name) && name !== hash) {
      rmSync(path.join(SERVER_BUILD_CACHE, name), { recursive: true, force: true });
    }
  }
  return dir;
}

/**
 * A loopback HTTP endpoint, run by the global set-up, that answers each request with the
 * build's directory, building it on the first request only: test files that spawn no compiled
 * server never wait for a build, and files running at once share one.
 */
export async function serveServerBuild(): Promise<{ url: string; close(): Promise<void> }> {
  let building: Promise<string> | undefined;
  const server: Server = createServer((_request, response) => {
    building ??= serverBuild();
    building.then(
      (dir) => response.writeHead(200, { 'content-type': 'text/plain' }).end(dir),
      (error: Error) => {
        building = undefined;
        response.writeHead(500, { 'content-type': 'text/plain' }).end(error.message);
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

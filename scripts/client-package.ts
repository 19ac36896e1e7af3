/**
 * The client package, `packages/client` (`@session-service/client`): its entry points, and the
 * commands that keep it installable.
 *
 * - `npm run client:exports` writes the package's `exports` from {@link CLIENT_ENTRIES};
 * - `npm run client:pack` builds it (tsc) and packs it to `dist-client/` (the tarball a team
 *   installs before the package is published; CI keeps it);
 * - `npm run client:check` packs it, then fails when `exports` is out of date or when publint or
 *   Are the Types Wrong (ESM-only: node16 ESM and bundler resolution) finds a fault in the tarball.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

/**
 * The package's entry points: subpath → module under `src/client/`, without its extension. One
 * line per entry point; then `npm run client:exports`.
 */
export const CLIENT_ENTRIES: Readonly<Record<string, string>> = {
  '.': 'index',
  './server': 'server/index',
  './express': 'express',
  './fastify': 'fastify',
  './hono': 'hono',
  './next': 'next',
};

export const ROOT = path.resolve(import.meta.dirname, '..');
export const CLIENT_DIR = path.join(ROOT, 'packages/client');
export const CLIENT_MANIFEST = path.join(CLIENT_DIR, 'package.json');
/** Where `npm run client:pack` leaves the tarball (ignored by git; CI keeps it). */
export const CLIENT_PACK_DIR = path.join(ROOT, 'dist-client');

type Exports = Record<string, string | { types: string; default: string }>;

/** The `exports` field that {@link CLIENT_ENTRIES} makes: ESM only, each with its types. */
export function clientExports(): Exports {
  const exports: Exports = {};
  for (const [subpath, module] of Object.entries(CLIENT_ENTRIES)) {
    if (!existsSync(path.join(ROOT, 'src/client', `${module}.ts`))) {
      throw new Error(`CLIENT_ENTRIES['${subpath}']: src/client/${module}.ts does not exist`);
    }
    exports[subpath] = {
      types: `./build/client/${module}.d.ts`,
      default: `./build/client/${module}.js`,
    };
  }
  exports['./package.json'] = './package.json';
  return exports;
}

const readManifest = () =>
  JSON.parse(readFileSync(CLIENT_MANIFEST, 'utf8')) as { version: string; exports?: unknown };

/** Writes `exports` into packages/client/package.json; with `check`, only says if it differs. */
function syncExports(check: boolean): void {
  const manifest = readManifest();
  const wanted = clientExports();
  if (JSON.stringify(manifest.exports) === JSON.stringify(wanted)) return;
  if (check) {
    throw new Error(
      'packages/client/package.json: `exports` does not match CLIENT_ENTRIES (scripts/client-package.ts); run `npm run client:exports`',
    );
  }
  writeFileSync(CLIENT_MANIFEST, `${JSON.stringify({ ...manifest, exports: wanted }, null, 2)}\n`);
}

/**
 * `npm pack` of packages/client (its prepack builds it) into `destination`; the tarball's path.
 * Offline: the package's own files are all it needs.
 */
export async function packClient(destination: string): Promise<string> {
  mkdirSync(destination, { recursive: true });
  // A failure's error carries its stderr (tsc's errors, from prepack).
  const { stdout: out } = await promisify(execFile)(
    'npm',
    ['pack', '--json', '--pack-destination', destination],
    {
      cwd: CLIENT_DIR,
      env: { ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false' },
      timeout: 300_000,
    },
  );
  // The JSON starts on a line of its own (older npms print the prepack script's lines before it).
  const [packed] = JSON.parse(out.slice(out.search(/^\[/m))) as Array<{ filename: string }>;
  return path.join(destination, packed!.filename);
}

async function main(command: string | undefined): Promise<void> {
  const bin = (name: string) => path.join(ROOT, 'node_modules/.bin', name);
  const run = (file: string, args: string[]) =>
    execFileSync(file, args, { cwd: ROOT, stdio: 'inherit' });
  switch (command) {
    case 'exports':
      syncExports(process.argv.includes('--check'));
      return;
    case 'pack':
    case 'check': {
      if (command === 'check') syncExports(true);
      // Only this version's tarball stays: CI keeps the folder as an artifact.
      if (existsSync(CLIENT_PACK_DIR)) {
        for (const file of readdirSync(CLIENT_PACK_DIR)) {
          if (file.endsWith('.tgz')) rmSync(path.join(CLIENT_PACK_DIR, file));
        }
      }
      const tarball = await packClient(CLIENT_PACK_DIR);
      process.stdout.write(`${path.relative(ROOT, tarball)}\n`);
      if (command === 'check') {
        run(bin('publint'), ['run', '--strict', '--pack', 'false', tarball]);
        run(bin('attw'), ['--profile', 'esm-only', '--no-color', tarball]);
      }
      return;
    }
    default:
      throw new Error('usage: tsx scripts/client-package.ts exports [--check] | pack | check');
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv[2]);
}

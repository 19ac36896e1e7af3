/**
 * `npm start`: runs the build (`dist/main.js`), building it first when it is missing or older
 * than what it is built from (the sources, the lockfile, the patches, the build script). A
 * deployment builds once (`npm run build`) and runs `node dist/main.js`, or this.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(import.meta.dirname, '..');
const MAIN = path.join(ROOT, 'dist', 'main.js');
/** What the build is made from: a change to any of them makes it stale. */
// drizzle/: the build's embedded-database template is migrated from it.
const INPUTS = ['src', 'drizzle', 'patches', 'package-lock.json', 'scripts/build.mjs'];

/** The newest modification time (ms) of a file, or of any file under a directory. */
function newest(file) {
  if (!existsSync(file)) return 0;
  const stat = statSync(file);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = stat.mtimeMs;
  for (const entry of readdirSync(file)) latest = Math.max(latest, newest(path.join(file, entry)));
  return latest;
}

export function buildIsStale() {
  if (!existsSync(MAIN)) return true;
  const built = statSync(MAIN).mtimeMs;
  return INPUTS.some((input) => newest(path.join(ROOT, input)) > built);
}

if (buildIsStale()) {
  let build;
  try {
    ({ build } = await import('./build.mjs'));
    await import('esbuild');
  } catch {
    process.stderr.write(
      `${existsSync(MAIN) ? 'dist/ is older than src/' : 'dist/ is missing'} and esbuild is not ` +
        'installed (a production install?): run `npm run build` where the dev dependencies are.\n',
    );
    process.exit(1);
  }
  process.stderr.write('building dist/ (npm run build)...\n');
  await build();
}
await import(pathToFileURL(MAIN).href);

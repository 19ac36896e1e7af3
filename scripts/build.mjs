/**
 * `npm run build`: the server as JavaScript in `dist/`, for `npm start` (`node dist/main.js`).
 *
 * esbuild bundles `src/main.ts` with its dependencies into a few files (what the start needs in
 * `main.js`; what only some starts need, such as the Redis client, the PGlite driver and
 * GraphiQL's page, in chunks loaded on use). A start then reads and compiles a handful of files
 * instead of some 900 modules: about half the CPU of the same code left as separate files.
 * Types are not checked here (`npm run typecheck` does). Run time files stay where they are:
 * the migrations (`drizzle/`) and the console's build are found from the project's root
 * (src/paths.ts), and PGlite and pino are left in node_modules (PGlite loads its WebAssembly
 * from beside its own files; pino's transports start workers from its own files). Beside the
 * code: a migrated PGlite database, `dist/pglite-template/`, that a new DATA_DIR starts from.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const DIST = path.join(ROOT, 'dist');

/**
 * Removes the WAL segments after `current`: old segments the checkpoint renamed to future names
 * for reuse, with their old content (16 MB each, to copy on every new DATA_DIR). Postgres makes
 * a segment anew when it needs one that is not there. A WAL segment's name is 24 hex digits.
 */
function removeRecycledWal(walDir, current) {
  for (const name of readdirSync(walDir)) {
    if (/^[0-9A-F]{24}$/.test(name) && name > current) rmSync(path.join(walDir, name));
  }
}

/**
 * A migrated PGlite database, which a start on a new DATA_DIR copies instead of running
 * PGlite's initdb and every migration (src/db/pglite-template.ts): made as the server makes one.
 */
async function makePgliteTemplate(dir) {
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { migrate } = await import('drizzle-orm/pglite/migrator');
  const data = path.join(dir, 'pgdata');
  mkdirSync(data, { recursive: true });
  const client = await PGlite.create(data);
  await migrate(drizzle(client), { migrationsFolder: path.join(ROOT, 'drizzle') });
  // PGlite serves one database: initdb's two template databases are never used (a CREATE
  // DATABASE copies one; nothing here makes databases), and they are 600 of the data directory's
  // 1,100 files, each of which a start on a new DATA_DIR creates (about 1 ms of CPU a file).
  // Dropped the way Postgres drops any database, so its catalog stays whole.
  for (const name of ['template1', 'template0']) {
    await client.exec(`alter database ${name} is_template false`);
    await client.exec(`drop database ${name}`);
  }
  // A new WAL segment, then a checkpoint: the migrations' WAL (8 MB) is no longer needed, and the
  // segment a start copies holds little more than the checkpoint record; a start writes only
  // that part of it (src/db/pglite-template.ts).
  await client.query('select pg_switch_wal()');
  await client.query('checkpoint');
  const [{ segment }] = (
    await client.query('select pg_walfile_name(pg_current_wal_insert_lsn()) as segment')
  ).rows;
  await client.close();
  removeRecycledWal(path.join(data, 'pg_wal'), segment);
  const pkg = JSON.parse(
    readFileSync(path.join(ROOT, 'node_modules/@electric-sql/pglite/package.json'), 'utf8'),
  );
  writeFileSync(path.join(dir, 'pglite-version'), `${pkg.version}\n`);
}

/**
 * Builds into `target` (`dist/` unless told otherwise; the tests build into a cache of their own,
 * test/support/server-build.ts). A build found from `target` finds the project's files from the
 * nearest package.json above it (src/paths.ts), so `target` lies inside the project.
 */
export async function build(target = DIST) {
  const { build: esbuild } = await import('esbuild');
  // Built beside, then moved into place: a start never sees half a build.
  const staging = path.join(path.dirname(target), `.dist-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  try {
    await esbuild({
      absWorkingDir: ROOT,
      entryPoints: ['src/main.ts'],
      outdir: staging,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20.19',
      sourcemap: true,
      // Whitespace and syntax only: names stay as written, for stack traces and error names.
      minifyWhitespace: true,
      minifySyntax: true,
      external: ['@electric-sql/pglite', 'pino', 'bufferutil', 'utf-8-validate'],
      // The CommonJS dependencies bundled here call require() for Node's own modules.
      banner: {
        js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
      },
      logLevel: 'warning',
    });
    await makePgliteTemplate(path.join(staging, 'pglite-template'));
    rmSync(target, { recursive: true, force: true });
    renameSync(staging, target);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  // `node scripts/build.mjs [directory]`: into dist/, or into the directory given.
  await build(process.argv[2] ? path.resolve(process.argv[2]) : DIST);
}

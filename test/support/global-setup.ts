import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../../src/db/client.js';
import { rowsOf } from '../../src/db/client.js';
import { serveServerBuild } from './server-build.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A dump of a migrated PGlite data directory (PGlite runs only), see {@link setup}. */
    pgliteTemplate: string | undefined;
    /** Where test/support/server-build.ts answers with the server's build, made on first ask. */
    serverBuildUrl: string;
  }
}

/**
 * Serves the server's build to the test files that spawn it (test/support/server-build.ts), and
 * on PGlite runs, creates and migrates one database, dumps its data directory to a file, and
 * gives each test app a copy of it (test/support/app.ts): starting PGlite from a dump skips its
 * `initdb` and the migrations, the larger part of every test file's set-up. Each app still gets
 * a database of its own. Postgres runs share one database and need no template.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const builds = await serveServerBuild();
  project.provide('serverBuildUrl', builds.url);
  if (process.env.DATABASE_URL) {
    project.provide('pgliteTemplate', undefined);
    return () => builds.close();
  }
  const database = await openDatabase({ dataDir: 'memory://' });
  await database.migrate();
  const client = (database.db as unknown as { $client: { dumpDataDir(c: 'none'): Promise<Blob> } })
    .$client;
  // A real migration table, so that a broken dump fails here rather than in every file.
  const applied = rowsOf<{ n: number }>(
    await database.db.execute('select count(*)::int as n from drizzle.__drizzle_migrations'),
  );
  if (!applied[0]?.n) throw new Error('the PGlite template has no migrations');
  const dump = await client.dumpDataDir('none');
  await database.close();
  const dir = mkdtempSync(path.join(tmpdir(), 'pglite-template-'));
  const file = path.join(dir, 'pgdata.tar');
  writeFileSync(file, new Uint8Array(await dump.arrayBuffer()));
  project.provide('pgliteTemplate', file);
  return async () => {
    rmSync(dir, { recursive: true, force: true });
    await builds.close();
  };
}

import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * A migrated PGlite database that `npm run build` makes (`dist/pglite-template/`): a new
 * `DATA_DIR` starts from a copy of it instead of running PGlite's initdb and every migration,
 * the larger part of a first start on the embedded database. `pgdata/` is the data directory,
 * `pglite-version` the PGlite version that made it (a copy is taken only by the same version).
 */
export const TEMPLATE_DATA = 'pgdata';
export const TEMPLATE_VERSION_FILE = 'pglite-version';

/** The version of the PGlite package this process loads, or undefined if it cannot be read. */
function installedPgliteVersion(): string | undefined {
  try {
    const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
    for (let dir = path.dirname(entry); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
      const file = path.join(dir, 'package.json');
      if (!existsSync(file)) continue;
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@electric-sql/pglite') return pkg.version;
    }
  } catch {
    // No version, no template: the database is made from scratch.
  }
  return undefined;
}

const isEmptyOrMissing = (dir: string) => !existsSync(dir) || readdirSync(dir).length === 0;

/**
 * Makes `location` a copy of the template's data directory when `location` holds no database
 * yet and the template was made by the PGlite version installed; returns whether it did. The
 * copy is made beside and renamed into place, so a start cut short leaves no half a database.
 */
export function copyPgliteTemplate(templateDir: string, location: string): boolean {
  const data = path.join(templateDir, TEMPLATE_DATA);
  const versionFile = path.join(templateDir, TEMPLATE_VERSION_FILE);
  if (!isEmptyOrMissing(location) || !existsSync(path.join(data, 'PG_VERSION'))) return false;
  if (!existsSync(versionFile)) return false;
  const version = installedPgliteVersion();
  if (version === undefined || readFileSync(versionFile, 'utf8').trim() !== version) return false;
  const staging = `${location}.copy-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  try {
    cpSync(data, staging, { recursive: true });
    rmSync(location, { recursive: true, force: true });
    renameSync(staging, location);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return true;
}

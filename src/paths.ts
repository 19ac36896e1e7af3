import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * The project's root directory (where `package.json` is), found from this module's location
 * upwards: `src/` when run from the sources (tsx), `dist/` when run from the build, where every
 * module is bundled into files at one depth. Files read at run time (the migrations in
 * `drizzle/`, the console's build) are found from it, so both ways find the same ones.
 */
function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

/**
 * The project's root directory, absolute (see `findRoot`). Found once, when this module loads:
 * with no `package.json` above it, the import throws.
 */
export const PROJECT_ROOT = findRoot(import.meta.dirname);

/** The migrations, as `npm run db:generate` writes them. */
export const MIGRATIONS_DIR = path.join(PROJECT_ROOT, 'drizzle');

/** The console's built files (`npm run console:build` writes them; they are committed). */
export const CONSOLE_BUILD_DIR = path.join(PROJECT_ROOT, 'console', 'build');

/**
 * The migrated PGlite database `npm run build` puts beside the build (src/db/pglite-template.ts):
 * `dist/pglite-template` when run from the build; from the sources there is none.
 */
export const PGLITE_TEMPLATE_DIR = path.join(import.meta.dirname, 'pglite-template');

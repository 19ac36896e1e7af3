import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * A migrated PGlite database that `npm run build` makes (`dist/pglite-template/`): a new
 * `DATA_DIR` starts from a copy of it instead of running PGlite's initdb and every migration,
 * the larger part of a first start on the embedded database. It has no template databases
 * (PGlite serves one database; scripts/build.mjs drops them): half as many files to copy.
 * This is the name of its data directory, `pgdata/`; {@link TEMPLATE_VERSION_FILE} says which
 * PGlite made it.
 */
export const TEMPLATE_DATA = 'pgdata';
/**
 * The template's file that holds the version of PGlite that made it: {@link copyPgliteTemplate}
 * copies the template only when the installed PGlite is that same version.
 */
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

/** Postgres' page size: files of a data directory are read and written in pages of it. */
const PAGE_BYTES = 8192;
const ZERO_PAGE = Buffer.alloc(PAGE_BYTES);

/** The length of `content` without its trailing zero bytes. */
function withoutZeroTail(content: Buffer): number {
  let end = content.length;
  // Whole zero pages first (a native comparison), then byte by byte in the last written one.
  while (end >= PAGE_BYTES && content.subarray(end - PAGE_BYTES, end).equals(ZERO_PAGE))
    end -= PAGE_BYTES;
  while (end > 0 && content[end - 1] === 0) end--;
  return end;
}

/**
 * Copies one file, keeping its mode. Only the bytes before its zero tail are written; the file
 * is then extended to its size, which reads back as zeros: the same content, with the tail left
 * as a hole. The WAL segment is a 16 MB file nearly all zeros (the build ends it just after a
 * checkpoint), so this spares writing most of it. Postgres writes into the hole later as into any
 * WAL it did not zero-fill (what it does itself with `wal_init_zero = off`).
 */
function copyFileWithoutZeroTail(source: string, target: string): void {
  const input = openSync(source, 'r');
  try {
    const { size, mode } = fstatSync(input);
    const content = Buffer.allocUnsafe(size);
    for (let read = 0; read < size;) {
      const n = readSync(input, content, read, size - read, read);
      if (n === 0) throw new Error(`${source} ended before its size`);
      read += n;
    }
    const output = openSync(target, 'wx', mode & 0o777);
    try {
      const end = withoutZeroTail(content);
      for (let written = 0; written < end;)
        written += writeSync(output, content, written, end - written, written);
      if (end < size) ftruncateSync(output, size);
    } finally {
      closeSync(output);
    }
  } finally {
    closeSync(input);
  }
}

/**
 * Copies the template's data directory (directories and regular files only, as Postgres makes
 * it). Written for the start: a file is opened, read and written once, where `cpSync` stats
 * every path several times and writes every zero of the WAL segment.
 */
function copyDataDir(source: string, target: string): void {
  mkdirSync(target, { mode: 0o700 });
  for (const entry of readdirSync(source, { withFileTypes: true })) {
    const from = path.join(source, entry.name);
    const to = path.join(target, entry.name);
    if (entry.isDirectory()) copyDataDir(from, to);
    else if (entry.isFile()) copyFileWithoutZeroTail(from, to);
    else throw new Error(`${from} in the PGlite template is neither a file nor a directory`);
  }
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
    copyDataDir(data, staging);
    rmSync(location, { recursive: true, force: true });
    renameSync(staging, location);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return true;
}

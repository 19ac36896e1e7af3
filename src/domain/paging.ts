import { and, count, desc, eq, lt, or, type SQL } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import type { Database } from '../db/client.js';
import { badCursor, badPageSize } from './errors.js';
import { cursorInstant } from './validation.js';

/**
 * Paging, written once: every list pages forward by keyset, `first` items after an opaque
 * cursor. A cursor is base64url of a JSON array of strings (the row's sort key); lists check
 * each part themselves and refuse anything else as BAD_USER_INPUT on `after`.
 */

/** The largest `first` a list takes; more is BAD_USER_INPUT. */
export const MAX_PAGE_SIZE = 100;
/** The page size when `first` is not given. */
export const DEFAULT_PAGE_SIZE = 20;
/**
 * The longest cursor read. The longest the API writes is a user's: an instant and an identifier
 * of 256 characters, each `\u0000`-escaped in the JSON at worst (about 2,100 characters).
 */
export const MAX_CURSOR_LENGTH = 2_400;

/** One page of a list. */
export interface Page<T> {
  readonly rows: T[];
  readonly hasNextPage: boolean;
  /** The cursor of a row of this page: pass as `after` for the rows after it. */
  readonly cursorOf: (row: T) => string;
  /** The cursor of the last row, null on an empty page. */
  readonly endCursor: string | null;
  /** Counts every row of the list, on all pages; run only when asked for. */
  readonly totalCount: () => Promise<number>;
}

/** `first` checked: a whole number from 0 to {@link MAX_PAGE_SIZE}, 20 when not given. */
export function pageSize(first: number | null | undefined): number {
  const n = first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(n) || n < 0 || n > MAX_PAGE_SIZE) throw badPageSize(MAX_PAGE_SIZE);
  return n;
}

/**
 * A page from the rows a list read with `limit first + 1`: the extra row, if any, only says
 * there is a next page.
 */
export function pageOf<T>(
  fetched: readonly T[],
  first: number,
  cursorOf: (row: T) => string,
  totalCount: () => Promise<number>,
): Page<T> {
  const rows = fetched.slice(0, first);
  const last = rows.at(-1);
  return {
    rows,
    hasNextPage: fetched.length > first,
    cursorOf,
    endCursor: last === undefined ? null : cursorOf(last),
    totalCount,
  };
}

/** The `totalCount` of a page: counts the rows of `table` that match `where`, when called. */
export function counter(
  db: Database,
  table: PgTable,
  where: SQL | undefined,
): () => Promise<number> {
  return async () => Number((await db.select({ n: count() }).from(table).where(where))[0]?.n ?? 0);
}

/**
 * The cursor of a row from its sort key's parts: base64url of their JSON array, read back by
 * {@link decodeCursor}.
 */
export function encodeCursor(parts: readonly string[]): string {
  return Buffer.from(JSON.stringify(parts), 'utf8').toString('base64url');
}

/**
 * The `arity` parts of a cursor, or BAD_USER_INPUT on `after`. With `pipeSeparated`, also the
 * form the session list issued before cursors were one format (`<instant>|<uuid>`), so that a
 * cursor a client holds across an upgrade still works.
 */
export function decodeCursor(
  cursor: string,
  arity: number,
  options: { pipeSeparated?: boolean } = {},
): string[] {
  if (cursor.length > MAX_CURSOR_LENGTH) throw badCursor();
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (options.pipeSeparated && !text.startsWith('[')) {
    const parts = text.split('|');
    if (parts.length === arity) return parts;
    throw badCursor();
  }
  let parts: unknown;
  try {
    parts = JSON.parse(text);
  } catch {
    throw badCursor();
  }
  if (
    Array.isArray(parts) &&
    parts.length === arity &&
    parts.every((p): p is string => typeof p === 'string')
  ) {
    return parts;
  }
  throw badCursor();
}

/** An instant part of a cursor (as the API writes them), or BAD_USER_INPUT on `after`. */
export function cursorInstantPart(text: string): Date {
  const at = cursorInstant(text);
  if (at === undefined) throw badCursor();
  return at;
}

/**
 * A cursor over (an instant, a key): the keyset of the lists ordered by time and then an id.
 * The key must match `key`; anything else is BAD_USER_INPUT on `after`.
 */
export function decodeInstantCursor(
  cursor: string,
  key: RegExp,
  options: { pipeSeparated?: boolean } = {},
): { at: Date; key: string } {
  const [at, id] = decodeCursor(cursor, 2, options) as [string, string];
  const instant = cursorInstantPart(at);
  if (!key.test(id)) throw badCursor();
  return { at: instant, key: id };
}

/**
 * A list ordered newest first by an instant, then by a key that orders the rows of one instant
 * (keyset pagination): its cursors are `[instant, key]`.
 */
export interface InstantKeyset<T extends PgTable> {
  readonly table: T;
  readonly at: PgColumn;
  readonly key: PgColumn;
  /** What the key part of a cursor must match. */
  readonly keyPattern: RegExp;
  /** The key as the column compares it (default: the cursor's text). */
  readonly keyValue?: (key: string) => unknown;
  /** Also read the `<instant>|<key>` cursors of before (see {@link decodeCursor}). */
  readonly pipeSeparated?: boolean;
  /** A row's cursor: {@link instantCursor} of its instant and key. */
  readonly cursorOf: (row: T['$inferSelect']) => string;
}

/** The cursor of a row of an {@link InstantKeyset}. */
export function instantCursor(at: Date, key: string | number): string {
  return encodeCursor([at.toISOString(), String(key)]);
}

/** The rows after a cursor of an {@link InstantKeyset}: older, or as old with a lower key. */
export function afterInstantCursor<T extends PgTable>(
  keyset: InstantKeyset<T>,
  cursor: string,
): SQL {
  const { at, key } = decodeInstantCursor(cursor, keyset.keyPattern, {
    pipeSeparated: keyset.pipeSeparated,
  });
  const value = keyset.keyValue ? keyset.keyValue(key) : key;
  return or(lt(keyset.at, at), and(eq(keyset.at, at), lt(keyset.key, value)))!;
}

/** One page of the rows of an {@link InstantKeyset} that match `where`, newest first. */
export async function instantKeysetPage<T extends PgTable>(
  db: Database,
  keyset: InstantKeyset<T>,
  where: SQL | undefined,
  args: { first?: number | null; after?: string | null },
): Promise<Page<T['$inferSelect']>> {
  const first = pageSize(args.first);
  const table: PgTable = keyset.table;
  const rows = (await db
    .select()
    .from(table)
    .where(args.after != null ? and(where, afterInstantCursor(keyset, args.after)) : where)
    .orderBy(desc(keyset.at), desc(keyset.key))
    .limit(first + 1)) as T['$inferSelect'][];
  return pageOf(rows, first, keyset.cursorOf, counter(db, table, where));
}

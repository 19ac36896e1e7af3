/** Keyset cursors and page sizes of the activity read models. */
import { sql } from 'drizzle-orm';
import type { sessionUsers } from '../../db/schema.js';
import { badInput } from '../errors.js';
import { cursorInstant } from '../validation.js';

/** An instant as text with microseconds, in UTC: what keyset cursors carry. */
export const exactInstant = (column: typeof sessionUsers.lastSeenAt) =>
  sql<string>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
export const EXACT_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

export const MAX_PAGE = 100;
export const DEFAULT_PAGE = 20;

export function pageSize(first: number | null | undefined): number {
  const n = first ?? DEFAULT_PAGE;
  if (!Number.isInteger(n) || n < 0 || n > MAX_PAGE) {
    throw badInput('first', `expected a whole number from 0 to ${MAX_PAGE}`);
  }
  return n;
}

export function encode(parts: readonly string[]): string {
  return Buffer.from(JSON.stringify(parts), 'utf8').toString('base64url');
}

export function decode(cursor: string, arity: number): string[] {
  try {
    const parts = JSON.parse(Buffer.from(cursor.slice(0, 1000), 'base64url').toString('utf8'));
    if (
      Array.isArray(parts) &&
      parts.length === arity &&
      parts.every((p) => typeof p === 'string')
    ) {
      return parts as string[];
    }
  } catch {
    // fall through
  }
  throw badInput('after', 'is not a cursor this API returned');
}

export function instant(text: string): Date {
  const at = cursorInstant(text);
  if (at === undefined) throw badInput('after', 'is not a cursor this API returned');
  return at;
}

export interface Page<T> {
  readonly rows: T[];
  readonly hasNextPage: boolean;
  readonly cursorOf: (row: T) => string;
  readonly totalCount: () => Promise<number>;
}

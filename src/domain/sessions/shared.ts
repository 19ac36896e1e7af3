/** Helpers shared by the session operations. */
import { sql, type SQL } from 'drizzle-orm';
import { sessions, type SessionRow } from '../../db/schema.js';
import type { Keyring } from '../../tokens/keyring.js';
import { ownedBy, type Scope } from '../callers.js';

/**
 * The longest identifier (a user), in characters, whether given or picked out of the data by the
 * selector.
 */
export const MAX_IDENTIFIER_LENGTH = 256;

/** Postgres `now()` truncated to the second: the one clock, at the precision tokens carry. */
const nowSeconds = sql`date_trunc('second', now())`;
/** SQL for the database clock, to the second, plus `seconds`: the expiries a statement writes. */
export const secondsFromNow = (seconds: number) =>
  sql`${nowSeconds} + make_interval(secs => ${seconds})`;

/** SQL: the session row belongs to the scope's product and env. */
export const inScope = (scope: Scope): SQL => ownedBy(sessions, scope);

/** The session row is the scope's (product and env) and under `tag`. */
export function belongsTo(
  row: Pick<SessionRow, 'productId' | 'env' | 'tag'>,
  scope: Scope,
  tag: string,
): boolean {
  return row.productId === scope.productId && row.env === scope.env && row.tag === tag;
}

/** The decrypted data of a session row. */
export function sessionData(keyring: Keyring, row: SessionRow): Record<string, unknown> {
  return sessionDataSized(keyring, row).data;
}

/** The decrypted data of a session row, with its serialized length. */
export function sessionDataSized(
  keyring: Keyring,
  row: SessionRow,
): { data: Record<string, unknown>; bytes: number } {
  const serialized = keyring.dataBox(row.productId, row.env).open(row.dataEnc, row.id);
  return { data: JSON.parse(serialized) as Record<string, unknown>, bytes: serialized.length };
}

/** Helpers shared by the session operations. */
import { sql, type SQL } from 'drizzle-orm';
import { sessionConfigs, sessions, type SessionRow } from '../../db/schema.js';
import type { Keyring } from '../../tokens/keyring.js';
import { ownedBy, type Scope } from '../callers.js';

/** The session's config is live and still holds the session's tag (of the joined config row). */
export const configHoldsTag = sql<boolean>`coalesce(${sessionConfigs.tag} = ${sessions.tag} and ${sessionConfigs.deletedAt} is null, false)`;

export const MAX_IDENTIFIER_LENGTH = 256;

/** Postgres `now()` truncated to the second: the one clock, at the precision tokens carry. */
const nowSeconds = sql`date_trunc('second', now())`;
export const secondsFromNow = (seconds: number) =>
  sql`${nowSeconds} + make_interval(secs => ${seconds})`;

export const inScope = (scope: Scope): SQL => ownedBy(sessions, scope);

/** The session row is the scope's (product and env) and under `tag`. */
export function belongsTo(
  row: Pick<SessionRow, 'productId' | 'env' | 'tag'>,
  scope: Scope,
  tag: string,
): boolean {
  return row.productId === scope.productId && row.env === scope.env && row.tag === tag;
}

/**
 * What a refresh reads of a session and its config (joined on `sessions.config_id`): the row,
 * the config's lifetimes, and whether the config still accepts it ({@link configAccepts}).
 */
export const sessionWithConfig = {
  session: sessions,
  config: {
    expiry: sessionConfigs.expiry,
    period: sessionConfigs.period,
    refreshExpirySeconds: sessionConfigs.refreshExpirySeconds,
  },
  configCurrent: configHoldsTag,
  configEnv: sessionConfigs.env,
  /** The config row's version (`xmin`), which a refresh from a snapshot requires unchanged. */
  configVersion: sql<string>`session_configs.xmin::text`,
};

/** The session's config still holds its tag, and the scope's env may use it. */
export function configAccepts(
  row: { configCurrent: boolean | null; configEnv: string | null },
  scope: Scope,
): boolean {
  return Boolean(row.configCurrent) && (row.configEnv === null || row.configEnv === scope.env);
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

import { sql, type AnyColumn, type SQL } from 'drizzle-orm';

/**
 * The part of "is this session over?" (src/domain/liveness.ts) that the sweep's partial indexes
 * (db/schema.ts) are built on, as a function of the columns so that the table definition and the
 * domain share it without importing each other.
 */

/** Not ended: neither revoked nor marked over by the sweep. */
export const notEndedOf = (t: { revokedAt: AnyColumn; expiredAt: AnyColumn }): SQL =>
  sql`${t.revokedAt} is null and ${t.expiredAt} is null`;

/** Has an idle timeout, and is not ended: the sessions the idle pass of the sweep looks at. */
export const idleCandidateOf = (t: {
  idleTimeoutSeconds: AnyColumn;
  revokedAt: AnyColumn;
  expiredAt: AnyColumn;
}): SQL => sql`${t.idleTimeoutSeconds} is not null and ${notEndedOf(t)}`;

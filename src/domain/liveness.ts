import { and, gt, isNull, sql } from 'drizzle-orm';
import { sessions } from '../db/schema.js';

/**
 * A live session, by the database clock: not revoked, not swept, still refreshable, and not
 * idle past its timeout. Lists, counts, caps and revoke-all all use this one definition.
 */
export const isLive = and(
  isNull(sessions.revokedAt),
  isNull(sessions.expiredAt),
  gt(sessions.refreshExpiresAt, sql`now()`),
  sql`(${sessions.idleTimeoutSeconds} is null or ${sessions.lastActiveAt} + make_interval(secs => ${sessions.idleTimeoutSeconds}) > now())`,
)!;

import type { SessionRow } from '../../db/schema.js';
import type { SessionStatus } from './types.js';

/** Why a session row no longer accepts tokens, by the database clock; null while it is live. */
export function deadReason(row: SessionRow, now: Date): 'revoked' | 'expired' | null {
  if (row.revokedAt !== null) return 'revoked';
  if (
    row.expiredAt !== null ||
    row.refreshExpiresAt <= now ||
    (row.idleTimeoutSeconds !== null && idleExpiresAt(row)! <= now)
  ) {
    return 'expired';
  }
  return null;
}

/** When an idle session runs out: last activity plus the idle timeout (null: no idle timeout). */
export function idleExpiresAt(row: SessionRow): Date | null {
  return row.idleTimeoutSeconds === null
    ? null
    : new Date(row.lastActiveAt.getTime() + row.idleTimeoutSeconds * 1000);
}

/**
 * A session's status at an instant: revoked; expired once nothing can revive it (refresh token
 * expired, idle too long, or swept); otherwise active (usable, or refreshable).
 */
export function sessionStatus(row: SessionRow, now: Date): SessionStatus {
  const dead = deadReason(row, now);
  return dead === 'revoked' ? 'REVOKED' : dead === 'expired' ? 'EXPIRED' : 'ACTIVE';
}

import { deadReason, type LivenessRow } from '../liveness.js';
import type { SessionStatus } from './types.js';

/**
 * A session's status at an instant: revoked; expired once nothing can revive it (refresh token
 * expired, idle too long, or swept); otherwise active (usable, or refreshable).
 */
export function sessionStatus(row: LivenessRow, now: Date): SessionStatus {
  const dead = deadReason(row, now);
  return dead === 'revoked' ? 'REVOKED' : dead === 'expired' ? 'EXPIRED' : 'ACTIVE';
}

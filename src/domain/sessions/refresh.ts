import type { Scope } from '../callers.js';
import { checkConfigAccess } from '../configs.js';
import { ServiceError } from '../errors.js';
import { rotateInOneStatement } from './refresh-fast.js';
import { exchangeRefreshToken } from './refresh-locked.js';
import type { Device, SessionDeps, SessionTokens } from './types.js';

/**
 * Exchanges a refresh token for a new pair. A token already exchanged returns the same pair
 * within the grace window (racing refreshes); after it, the exchange is taken as theft: the
 * session is revoked and REUSE_DETECTED recorded. A token that matches nothing revokes nothing.
 *
 * The common case (a live session, an unspent token) is one read and one conditional statement
 * ({@link rotateInOneStatement}); anything else, including losing a race for the token, goes
 * through {@link exchangeRefreshToken}, one transaction holding the session row's lock.
 */
export async function refreshSession(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  refreshToken: string,
  device: Device = {},
): Promise<SessionTokens> {
  const rotated = await rotateInOneStatement(deps, scope, tag, refreshToken, device);
  const outcome = rotated ?? (await exchangeRefreshToken(deps, scope, tag, refreshToken, device));
  switch (outcome.kind) {
    case 'ok':
      return outcome.tokens;
    case 'invalid':
      await checkConfigAccess(deps.db, scope, tag);
      throw new ServiceError(
        'TOKEN_INVALID',
        'The refresh token is malformed, unknown, or not for this tag.',
      );
    case 'revoked':
      throw new ServiceError('SESSION_REVOKED', 'This session was revoked; sign in again.');
    case 'expired':
      if (outcome.reason === 'idle_timeout') {
        throw new ServiceError(
          'TOKEN_EXPIRED',
          'The session was idle for longer than its idle timeout; sign in again.',
          undefined,
          { reason: 'idle_timeout' },
        );
      }
      throw new ServiceError('TOKEN_EXPIRED', 'The refresh token has expired; sign in again.');
    case 'reused':
      throw new ServiceError(
        'REFRESH_TOKEN_REUSED',
        'This refresh token was already used; the session has been revoked as a precaution.',
      );
  }
}

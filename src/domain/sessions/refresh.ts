import type { Scope } from '../callers.js';
import { checkConfigAccess } from '../configs.js';
import {
  idleTimeout,
  refreshTokenExpired,
  refreshTokenInvalid,
  refreshTokenReused,
  sessionRevoked,
} from '../errors.js';
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
      throw refreshTokenInvalid();
    case 'revoked':
      throw sessionRevoked();
    case 'expired':
      // Idle expiry is told apart: the user must sign in again, and is told why.
      throw outcome.reason === 'idle_timeout' ? idleTimeout() : refreshTokenExpired();
    case 'reused':
      throw refreshTokenReused();
  }
}

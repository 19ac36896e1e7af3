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
import { rotateFromSnapshot } from './refresh-snapshot.js';
import { isRefreshTokenShaped } from './refresh-token.js';
import { hashSecret } from '../../tokens/secrets.js';
import type { Device, SessionDeps, SessionTokens } from './types.js';

/**
 * Exchanges a refresh token for a new pair. A token already exchanged returns the same pair
 * within the grace window (racing refreshes); after it, the exchange is taken as theft: the
 * session is revoked and REUSE_DETECTED recorded. A token that matches nothing revokes nothing.
 *
 * The common case (a pair this instance issued, the session unchanged since) is one conditional
 * statement from the instance's snapshot ({@link rotateFromSnapshot}); without a snapshot, or when
 * that statement rotates nothing, one read and one conditional statement
 * ({@link rotateInOneStatement}); anything else, including losing a race for the token, goes
 * through {@link exchangeRefreshToken}, one transaction holding the session row's lock. Each
 * path answers as the next would: a path that cannot tell hands over, it never answers alone.
 */
export async function refreshSession(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  refreshToken: string,
  device: Device = {},
): Promise<SessionTokens> {
  const tokenHash = isRefreshTokenShaped(refreshToken) ? hashSecret(refreshToken) : undefined;
  const snapshot = tokenHash === undefined ? undefined : deps.refreshSnapshots?.take(tokenHash);
  let paths = deps;
  if (snapshot !== undefined && deps.refreshGuard) {
    // The refresh counts once against the session's limit, whichever path rotates it.
    const guard = deps.refreshGuard;
    let counted = false;
    paths = {
      ...deps,
      refreshGuard: async (sessionId) => {
        if (counted) return;
        counted = true;
        await guard(sessionId);
      },
    };
  }
  const outcome =
    (snapshot &&
      (await rotateFromSnapshot(paths, scope, tag, refreshToken, tokenHash!, snapshot, device))) ??
    (await rotateInOneStatement(paths, scope, tag, refreshToken, device)) ??
    (await exchangeRefreshToken(paths, scope, tag, refreshToken, device));
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

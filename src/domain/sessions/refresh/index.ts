/**
 * Refresh: a refresh token exchanged for the next pair. A token already exchanged returns the
 * same pair within the grace window (racing refreshes); after it, the exchange is taken as theft:
 * the session is revoked and REUSE_DETECTED recorded. A token that matches nothing revokes
 * nothing.
 *
 * Three paths, tried in this order; each either rotates or hands over to the next, and a path
 * that cannot tell never answers alone, so each answers as the next would:
 *
 * 1. From a snapshot (from-snapshot.ts; snapshot.ts keeps them): when this instance issued the
 *    presented pair (start or an earlier refresh here), it kept what minting the next one needs.
 *    Then one conditional statement, with no read before it, rotates the pair, if the database
 *    still says everything the snapshot assumed (same session version, config row version, not
 *    revoked, live, token unspent...). The common case on a single instance or with sticky
 *    clients. Without a snapshot, or when its statement rotates nothing, on to 2.
 * 2. One statement (one-statement.ts): one read of the token, its session and config, then the
 *    same conditional statement (rotate.ts). Runs for a pair another instance issued, or one whose
 *    snapshot was forgotten or stale. Only the common case: a token unspent and unexpired, the
 *    session live, its config still accepting it (usable.ts) and no watermark against it. For
 *    anything else, or when the statement rotates nothing (a racing refresh spent the token
 *    between read and statement), on to 3.
 * 3. Locked (locked.ts): one transaction holding the session row's lock, which decides every case:
 *    invalid, revoked (marking a watermark's revocation), expired or idle, the config gone, the
 *    token spent (the grace-window pair, or reuse), or the rotation. It is the slow path: it runs
 *    for every refusal and every lost race, never for the common case unless 1 and 2 both missed.
 *
 * Minting is written once (mint.ts, also used by start); the token is hashed once per request
 * (token.ts) and handed to whichever path runs. A refresh that starts from a snapshot counts once
 * against the rate limit (`refreshGuard`), whichever path then rotates it; without one, each of
 * 2 and 3 that gets as far as rotating asks the limit (a refresh whose statement in 2 lost a race
 * is counted again in 3).
 */
import type { Scope } from '../../callers.js';
import { checkConfigAccess } from '../../configs.js';
import {
  idleTimeout,
  refreshTokenExpired,
  refreshTokenInvalid,
  refreshTokenReused,
  sessionRevoked,
} from '../../errors.js';
import type { Device, SessionDeps, SessionTokens } from '../types.js';
import { rotateFromSnapshot } from './from-snapshot.js';
import { exchangeRefreshToken } from './locked.js';
import { rotateInOneStatement } from './one-statement.js';
import { refreshTokenHash, type PresentedToken, type RefreshOutcome } from './token.js';

export { RefreshSnapshots, type RefreshSnapshot } from './snapshot.js';

/** Exchanges a refresh token for a new pair: RefreshOutcome's errors for anything but a pair. */
export async function refreshSession(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  refreshToken: string,
  device: Device = {},
): Promise<SessionTokens> {
  const hash = refreshTokenHash(refreshToken);
  const outcome: RefreshOutcome =
    hash === undefined
      ? { kind: 'invalid' }
      : await exchange(deps, scope, tag, { token: refreshToken, hash }, device);
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

/** The three paths in order (see above): the first that answers does. */
async function exchange(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  spent: PresentedToken,
  device: Device,
): Promise<RefreshOutcome> {
  const snapshot = deps.refreshSnapshots?.take(spent.hash);
  const paths = snapshot === undefined ? deps : guardedOnce(deps);
  return (
    (snapshot && (await rotateFromSnapshot(paths, scope, tag, spent, snapshot, device))) ??
    (await rotateInOneStatement(paths, scope, tag, spent, device)) ??
    (await exchangeRefreshToken(paths, scope, tag, spent, device))
  );
}

/** The deps with a rate limit that counts once, however many paths a refresh goes through. */
function guardedOnce(deps: SessionDeps): SessionDeps {
  const guard = deps.refreshGuard;
  if (!guard) return deps;
  let counted = false;
  return {
    ...deps,
    refreshGuard: async (sessionId) => {
      if (counted) return;
      counted = true;
      await guard(sessionId);
    },
  };
}

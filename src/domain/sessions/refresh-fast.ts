import { eq, sql } from 'drizzle-orm';
import { rowsOf } from '../../db/client.js';
import { refreshTokens, sessionConfigs, sessions } from '../../db/schema.js';
import { hashSecret } from '../../tokens/secrets.js';
import { mintSessionToken } from '../../tokens/session-token.js';
import type { Scope } from '../callers.js';
import { refreshLifetimeSeconds } from '../configs.js';
import { isLive } from '../liveness.js';
import {
  isRefreshTokenShaped,
  newRefreshToken,
  successorBox,
  type RefreshOutcome,
} from './refresh-token.js';
import { belongsTo, configAccepts, sessionData, sessionWithConfig } from './shared.js';
import { deviceMove, notBeforeOfSession, revokedBeforeWatermark } from './controls-rules.js';
import type { Device, SessionDeps } from './types.js';

/**
 * The fast path of a refresh: reads the token and its session, mints the new pair, then spends
 * the token, stores its successor, renews the session and records the event in one statement
 * that does nothing unless the token is still unspent and the session still live and at the
 * version the new token carries. Returns undefined whenever the slow path must decide.
 */
export async function rotateInOneStatement(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  refreshToken: string,
  device: Device,
): Promise<RefreshOutcome | undefined> {
  if (!isRefreshTokenShaped(refreshToken)) return { kind: 'invalid' };
  const tokenHash = hashSecret(refreshToken);
  const found = await deps.db
    .select({
      ...sessionWithConfig,
      usable: sql<boolean>`${refreshTokens.spentAt} is null and ${refreshTokens.expiresAt} > now() and ${sessions.revokedAt} is null and ${isLive}`,
      notBefore: notBeforeOfSession,
      // The one clock, at the precision tokens carry: new expiries count from it.
      nowMs: sql<number>`(extract(epoch from date_trunc('second', now())) * 1000)::float8`,
    })
    .from(refreshTokens)
    .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .innerJoin(sessionConfigs, eq(sessionConfigs.id, sessions.configId))
    .where(eq(refreshTokens.tokenHash, tokenHash));
  const current = found[0];
  if (!current) return { kind: 'invalid' };
  const session = current.session;
  if (!belongsTo(session, scope, tag)) {
    return { kind: 'invalid' };
  }
  // The slow path decides (revoked first, then the config) for anything but the common case.
  if (
    !current.usable ||
    !configAccepts(current, scope) ||
    revokedBeforeWatermark({ createdAt: session.createdAt, notBefore: current.notBefore ?? null })
  ) {
    return undefined;
  }
  await deps.refreshGuard?.(session.id);

  const lifetime = session.tokenLifetimeSeconds;
  const refreshLifetime = Math.max(refreshLifetimeSeconds(current.config), lifetime);
  const now = Number(current.nowMs);
  // An impersonation never outlives its cap (`ends_at`), however often it is refreshed.
  const cap = session.endsAt?.getTime() ?? Infinity;
  const expiresAt = new Date(Math.min(now + lifetime * 1000, cap));
  const refreshExpiresAt = new Date(Math.min(now + refreshLifetime * 1000, cap));
  const nextRefreshToken = newRefreshToken();
  const nextToken = await mintSessionToken(deps.keyring, scope, {
    sessionId: session.id,
    tag: session.tag,
    identifier: session.identifier,
    data: sessionData(deps.keyring, session),
    expiresAt: refreshExpiresAt,
    version: session.version,
    sessionExpiresAt: expiresAt,
    idleTimeout: session.idleTimeoutSeconds !== null,
    startedAt: session.createdAt,
    authenticatedAt: session.authenticatedAt,
    actor: session.actor,
  });
  const successorEnc = successorBox(refreshToken).seal(
    JSON.stringify({
      token: nextToken,
      refreshToken: nextRefreshToken,
      expiresAt: expiresAt.toISOString(),
    }),
    session.id,
  );
  const moved = deviceMove(device);
  // The session row is updated first (its lock orders this against revocations and other
  // refreshes); the token is spent only through it, and the rest only through the spent token.
  const result = await deps.db.execute(sql`
    with s as (
      update sessions set expires_at = ${expiresAt.toISOString()}::timestamptz,
                          refresh_expires_at = ${refreshExpiresAt.toISOString()}::timestamptz,
                          last_active_at = now(),
                          user_agent = ${moved.userAgent}, ip = ${moved.ip},
                          device_history = ${moved.deviceHistory}
      where id = ${session.id} and version = ${session.version} and ${isLive}
      returning id, product_id, env, tag, identifier, actor
    ), spent as (
      update refresh_tokens rt set spent_at = now(), successor_enc = ${successorEnc}
      from s
      where rt.token_hash = ${tokenHash} and rt.session_id = s.id and rt.spent_at is null
        and rt.expires_at > now()
      returning rt.session_id
    ), fresh as (
      insert into refresh_tokens (token_hash, session_id, expires_at)
      select ${hashSecret(nextRefreshToken)}, spent.session_id,
             ${refreshExpiresAt.toISOString()}::timestamptz
      from spent
    ), seen as (
      update session_users u set last_seen_at = date_trunc('milliseconds', now())
      from s, spent
      where u.product_id = s.product_id and u.env = s.env and u.tag = s.tag
        and u.identifier = s.identifier
    ), event as (
      insert into session_events (product_id, env, session_id, tag, identifier, type, actor)
      select s.product_id, s.env, s.id, s.tag, s.identifier, 'REFRESHED', s.actor from s, spent
    )
    select session_id from spent`);
  if (rowsOf<{ session_id: string }>(result).length === 0) return undefined;
  return {
    kind: 'ok',
    tokens: {
      token: nextToken,
      refreshToken: nextRefreshToken,
      sessionId: session.id,
      identifier: session.identifier,
      expiresAt,
      actor: session.actor,
    },
  };
}

import { eq, sql } from 'drizzle-orm';
import { refreshTokens, sessionConfigs, sessions } from '../../db/schema.js';
import { hashSecret } from '../../tokens/secrets.js';
import { mintSessionToken } from '../../tokens/session-token.js';
import { recordUserSeen } from '../activity/users.js';
import type { Scope } from '../callers.js';
import { refreshLifetimeSeconds } from '../configs.js';
import { recordEvents } from '../events.js';
import { idleRanOutAt, isOver, refreshRanOutAt } from '../liveness.js';
import { deviceMove, notBeforeOfSession, revokedBeforeWatermark } from './controls-rules.js';
import { revokeSessionsWhere } from '../revocation.js';
import {
  isRefreshTokenShaped,
  newRefreshToken,
  successorBox,
  type RefreshOutcome,
} from './refresh-token.js';
import { belongsTo, configAccepts, secondsFromNow, sessionWithConfig } from './shared.js';
import { snapshotOfRow } from './refresh-snapshot.js';
import type { Device, SessionDeps, SessionTokens } from './types.js';

export async function exchangeRefreshToken(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  refreshToken: string,
  device: Device = {},
): Promise<RefreshOutcome> {
  if (!isRefreshTokenShaped(refreshToken)) return { kind: 'invalid' };
  const tokenHash = hashSecret(refreshToken);
  let remember: (() => void) | undefined;
  const outcome = await deps.db.transaction(async (tx): Promise<RefreshOutcome> => {
    const found = await tx
      .select({ sessionId: refreshTokens.sessionId })
      .from(refreshTokens)
      .where(eq(refreshTokens.tokenHash, tokenHash));
    if (!found[0]) return { kind: 'invalid' };
    const sessionId = found[0].sessionId;

    // The lock: every exchange of this session's tokens, and every revocation, queues here.
    const locked = await tx
      .select({
        ...sessionWithConfig,
        // Over for good: swept, or idle past its timeout (by the database clock).
        over: sql<boolean>`${isOver}`,
        idle: sql<boolean>`${idleRanOutAt()} and not ${refreshRanOutAt()}`,
        notBefore: notBeforeOfSession,
      })
      .from(sessions)
      .innerJoin(sessionConfigs, eq(sessionConfigs.id, sessions.configId))
      .where(eq(sessions.id, sessionId))
      .for('update', { of: sessions });
    const current = locked[0];
    if (!current || !belongsTo(current.session, scope, tag)) {
      return { kind: 'invalid' };
    }
    const session = current.session;
    if (session.revokedAt !== null) return { kind: 'revoked' };
    if (revokedBeforeWatermark({ createdAt: session.createdAt, notBefore: current.notBefore })) {
      // Not reached by the not-before batches yet: revoked here, with its event.
      await revokeSessionsWhere(tx, eq(sessions.id, sessionId), 'not_before');
      return { kind: 'revoked' };
    }
    if (!configAccepts(current, scope)) return { kind: 'invalid' };

    // Read the token again now that the lock is held: a racing exchange may have spent it.
    const tokenRows = await tx
      .select({
        spent: sql<boolean>`${refreshTokens.spentAt} is not null`,
        inGrace: sql<boolean>`coalesce(${refreshTokens.spentAt} > now() - make_interval(secs => ${deps.refreshGraceSeconds}), false)`,
        expired: sql<boolean>`${refreshTokens.expiresAt} <= now()`,
        successorEnc: refreshTokens.successorEnc,
      })
      .from(refreshTokens)
      .where(eq(refreshTokens.tokenHash, tokenHash));
    const token = tokenRows[0]!;

    if (token.spent) {
      if (token.inGrace && token.successorEnc !== null) {
        const pair = successorBox(refreshToken).open(token.successorEnc, sessionId);
        const parsed = JSON.parse(pair) as {
          token: string;
          refreshToken: string;
          expiresAt: string;
        };
        return {
          kind: 'ok',
          tokens: {
            ...parsed,
            sessionId,
            identifier: session.identifier,
            expiresAt: new Date(parsed.expiresAt),
            actor: session.actor,
          },
        };
      }
      await revokeSessionsWhere(tx, eq(sessions.id, sessionId), 'refresh_token_reused');
      await recordEvents(tx, [
        {
          ...scope,
          sessionId,
          tag: session.tag,
          identifier: session.identifier,
          type: 'REUSE_DETECTED',
          reason: 'a rotated refresh token was presented after the grace window',
          actor: session.actor,
        },
      ]);
      return { kind: 'reused' };
    }
    if (current.idle) return { kind: 'expired', reason: 'idle_timeout' };
    if (token.expired || current.over) return { kind: 'expired' };
    await deps.refreshGuard?.(sessionId);

    const nextRefreshToken = newRefreshToken();
    const refreshLifetime = Math.max(
      refreshLifetimeSeconds(current.config),
      session.tokenLifetimeSeconds,
    );
    const updated = await tx
      .update(sessions)
      .set({
        // An impersonation never outlives its cap (`ends_at`).
        expiresAt: sql`least(${secondsFromNow(session.tokenLifetimeSeconds)}, ${sessions.endsAt})`,
        refreshExpiresAt: sql`least(${secondsFromNow(refreshLifetime)}, ${sessions.endsAt})`,
        lastActiveAt: sql`now()`,
        ...deviceMove(device),
      })
      .where(eq(sessions.id, sessionId))
      .returning({ expiresAt: sessions.expiresAt, refreshExpiresAt: sessions.refreshExpiresAt });
    const times = updated[0]!;
    const serialized = deps.keyring
      .dataBox(scope.productId, scope.env)
      .open(session.dataEnc, sessionId);
    const data = JSON.parse(serialized) as Record<string, unknown>;
    const nextToken = await mintSessionToken(deps.keyring, scope, {
      sessionId,
      tag: session.tag,
      identifier: session.identifier,
      data,
      expiresAt: times.refreshExpiresAt,
      version: session.version,
      sessionExpiresAt: times.expiresAt,
      idleTimeout: session.idleTimeoutSeconds !== null,
      startedAt: session.createdAt,
      authenticatedAt: session.authenticatedAt,
      actor: session.actor,
    });
    const tokens: SessionTokens = {
      token: nextToken,
      refreshToken: nextRefreshToken,
      sessionId,
      identifier: session.identifier,
      expiresAt: times.expiresAt,
      actor: session.actor,
    };
    await recordUserSeen(tx, session);
    const nextTokenHash = hashSecret(nextRefreshToken);
    await tx.insert(refreshTokens).values({
      tokenHash: nextTokenHash,
      sessionId,
      expiresAt: times.refreshExpiresAt,
    });
    await tx
      .update(refreshTokens)
      .set({
        spentAt: sql`now()`,
        successorEnc: successorBox(refreshToken).seal(
          JSON.stringify({
            token: nextToken,
            refreshToken: nextRefreshToken,
            expiresAt: times.expiresAt.toISOString(),
          }),
          sessionId,
        ),
      })
      .where(eq(refreshTokens.tokenHash, tokenHash));
    await recordEvents(tx, [
      {
        ...scope,
        sessionId,
        tag: session.tag,
        identifier: session.identifier,
        type: 'REFRESHED',
        actor: session.actor,
      },
    ]);
    // Kept only once the transaction commits (a rollback leaves the token unspent).
    remember = () =>
      deps.refreshSnapshots?.remember(
        nextTokenHash,
        snapshotOfRow(session, data, serialized.length, {
          version: current.configVersion,
          refreshSeconds: refreshLifetimeSeconds(current.config),
        }),
      );
    return { kind: 'ok', tokens };
  });
  remember?.();
  return outcome;
}

/** The locked path: one transaction holding the session row's lock, which decides every case. */
import { eq, sql } from 'drizzle-orm';
import type { Transaction } from '../../../db/client.js';
import { refreshTokens, sessionConfigs, sessions, type SessionRow } from '../../../db/schema.js';
import { recordUserSeen } from '../../activity/users.js';
import type { Scope } from '../../callers.js';
import { refreshLifetimeSeconds } from '../../configs.js';
import { recordEvents } from '../../events.js';
import { idleRanOutAt, isOver, refreshRanOutAt } from '../../liveness.js';
import { revokeSessionsWhere } from '../../revocation.js';
import { deviceMove, notBeforeOfSession, revokedBeforeWatermark } from '../controls-rules.js';
import { belongsTo, secondsFromNow, sessionDataSized } from '../shared.js';
import type { Device, SessionDeps } from '../types.js';
import { mintNextPair, openSuccessor } from './mint.js';
import { sessionWithConfig, snapshotOfRow, type RefreshSnapshot } from './snapshot.js';
import type { PresentedToken, RefreshOutcome } from './token.js';
import { configAccepts } from './usable.js';

/**
 * Exchanges a refresh token under the session row's lock: every exchange of the session's
 * tokens, and every revocation, queues on it, so whatever this path finds holds until it commits.
 * It answers every case: a token that matches nothing, a revoked or over session, a config that
 * no longer accepts it, a token spent by a racing refresh (its pair, within the grace window) or
 * long ago (reuse: the session is revoked), and the rotation itself.
 */
export async function exchangeRefreshToken(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  spent: PresentedToken,
  device: Device = {},
): Promise<RefreshOutcome> {
  let remember: (() => void) | undefined;
  const outcome = await deps.db.transaction(async (tx): Promise<RefreshOutcome> => {
    const current = await lockSessionOf(tx, spent);
    if (!current || !belongsTo(current.session, scope, tag)) return { kind: 'invalid' };
    const refused = await refusal(tx, scope, current);
    if (refused) return refused;
    // Read the token again now that the lock is held: a racing exchange may have spent it.
    const token = await readToken(tx, deps.refreshGraceSeconds, spent);
    if (token.spent) return answerSpent(tx, scope, spent, token, current.session);
    if (current.idle) return { kind: 'expired', reason: 'idle_timeout' };
    if (token.expired || current.over) return { kind: 'expired' };
    await deps.refreshGuard?.(current.session.id);
    const rotated = await rotateLocked(tx, deps, scope, spent, current, device);
    // Kept only once the transaction commits (a rollback leaves the token unspent).
    remember = () => deps.refreshSnapshots?.remember(rotated.nextTokenHash, rotated.inputs);
    return rotated.outcome;
  });
  remember?.();
  return outcome;
}

/** The token's session with its config, locked (FOR UPDATE of the session row); undefined: no such token. */
async function lockSessionOf(tx: Transaction, spent: PresentedToken) {
  const found = await tx
    .select({ sessionId: refreshTokens.sessionId })
    .from(refreshTokens)
    .where(eq(refreshTokens.tokenHash, spent.hash));
  if (!found[0]) return undefined;
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
    .where(eq(sessions.id, found[0].sessionId))
    .for('update', { of: sessions });
  return locked[0];
}

type LockedSession = NonNullable<Awaited<ReturnType<typeof lockSessionOf>>>;

/** Revoked (by a watermark the batches have not reached yet: revoked here), or no longer its config's. */
async function refusal(
  tx: Transaction,
  scope: Scope,
  current: LockedSession,
): Promise<RefreshOutcome | undefined> {
  const session = current.session;
  if (session.revokedAt !== null) return { kind: 'revoked' };
  if (revokedBeforeWatermark({ createdAt: session.createdAt, notBefore: current.notBefore })) {
    // Not reached by the not-before batches yet: revoked here, with its event.
    await revokeSessionsWhere(tx, eq(sessions.id, session.id), 'not_before');
    return { kind: 'revoked' };
  }
  if (!configAccepts(current.configRow, session)) return { kind: 'invalid' };
  return undefined;
}

/** The token's state under the lock. */
async function readToken(tx: Transaction, graceSeconds: number, spent: PresentedToken) {
  const rows = await tx
    .select({
      spent: sql<boolean>`${refreshTokens.spentAt} is not null`,
      inGrace: sql<boolean>`coalesce(${refreshTokens.spentAt} > now() - make_interval(secs => ${graceSeconds}), false)`,
      expired: sql<boolean>`${refreshTokens.expiresAt} <= now()`,
      successorEnc: refreshTokens.successorEnc,
    })
    .from(refreshTokens)
    .where(eq(refreshTokens.tokenHash, spent.hash));
  return rows[0]!;
}

/**
 * A spent token: within the grace window, the pair it was exchanged for (racing refreshes);
 * after it, theft: the session is revoked and REUSE_DETECTED recorded.
 */
async function answerSpent(
  tx: Transaction,
  scope: Scope,
  spent: PresentedToken,
  token: Awaited<ReturnType<typeof readToken>>,
  session: SessionRow,
): Promise<RefreshOutcome> {
  if (token.inGrace && token.successorEnc !== null) {
    return { kind: 'ok', tokens: openSuccessor(spent, token.successorEnc, session) };
  }
  await revokeSessionsWhere(tx, eq(sessions.id, session.id), 'refresh_token_reused');
  await recordEvents(tx, [
    {
      ...scope,
      sessionId: session.id,
      tag: session.tag,
      identifier: session.identifier,
      type: 'REUSE_DETECTED',
      reason: 'a rotated refresh token was presented after the grace window',
      actor: session.actor,
    },
  ]);
  return { kind: 'reused' };
}

/**
 * Renews the locked session (expiries from the database clock, capped at `ends_at`; the device
 * moved), mints the next pair, marks the user seen, stores the new token, spends the presented
 * one with its successor sealed, and records REFRESHED. Returns the snapshot to keep on commit.
 */
async function rotateLocked(
  tx: Transaction,
  deps: SessionDeps,
  scope: Scope,
  spent: PresentedToken,
  current: LockedSession,
  device: Device,
): Promise<{ outcome: RefreshOutcome; nextTokenHash: string; inputs: RefreshSnapshot }> {
  const session = current.session;
  const refreshSeconds = refreshLifetimeSeconds(current.config);
  const refreshLifetime = Math.max(refreshSeconds, session.tokenLifetimeSeconds);
  const updated = await tx
    .update(sessions)
    .set({
      // An impersonation never outlives its cap (`ends_at`).
      expiresAt: sql`least(${secondsFromNow(session.tokenLifetimeSeconds)}, ${sessions.endsAt})`,
      refreshExpiresAt: sql`least(${secondsFromNow(refreshLifetime)}, ${sessions.endsAt})`,
      lastActiveAt: sql`now()`,
      ...deviceMove(device),
    })
    .where(eq(sessions.id, session.id))
    .returning({ expiresAt: sessions.expiresAt, refreshExpiresAt: sessions.refreshExpiresAt });
  const times = updated[0]!;
  const { data, bytes } = sessionDataSized(deps.keyring, session);
  const inputs = snapshotOfRow(session, data, bytes, {
    version: current.configVersion,
    refreshSeconds,
  });
  const next = await mintNextPair(deps.keyring, scope, spent, inputs, times);
  await recordUserSeen(tx, session);
  await tx.insert(refreshTokens).values({
    tokenHash: next.nextTokenHash,
    sessionId: session.id,
    expiresAt: times.refreshExpiresAt,
  });
  await tx
    .update(refreshTokens)
    .set({ spentAt: sql`now()`, successorEnc: next.successorEnc })
    .where(eq(refreshTokens.tokenHash, spent.hash));
  await recordEvents(tx, [
    {
      ...scope,
      sessionId: session.id,
      tag: session.tag,
      identifier: session.identifier,
      type: 'REFRESHED',
      actor: session.actor,
    },
  ]);
  return {
    outcome: { kind: 'ok', tokens: next.tokens },
    nextTokenHash: next.nextTokenHash,
    inputs,
  };
}

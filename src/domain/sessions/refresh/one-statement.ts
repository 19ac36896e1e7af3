/** The one-statement path: a read, then one conditional statement. */
import { eq, sql } from 'drizzle-orm';
import { refreshTokens, sessionConfigs, sessions } from '../../../db/schema.js';
import type { Scope } from '../../callers.js';
import { refreshLifetimeSeconds } from '../../configs.js';
import { isLive } from '../../liveness.js';
import { notBeforeOfSession, revokedBeforeWatermark } from '../controls-rules.js';
import { belongsTo, sessionDataSized } from '../shared.js';
import type { Device, SessionDeps } from '../types.js';
import { rotatePair } from './rotate.js';
import { sessionWithConfig, snapshotOfRow } from './snapshot.js';
import type { PresentedToken, RefreshOutcome } from './token.js';
import { configAccepts } from './usable.js';

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
  spent: PresentedToken,
  device: Device,
): Promise<RefreshOutcome | undefined> {
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
    .where(eq(refreshTokens.tokenHash, spent.hash));
  const current = found[0];
  if (!current) return { kind: 'invalid' };
  const session = current.session;
  if (!belongsTo(session, scope, tag)) {
    return { kind: 'invalid' };
  }
  // The slow path decides (revoked first, then the config) for anything but the common case.
  if (
    !current.usable ||
    !configAccepts(current.configRow, session) ||
    revokedBeforeWatermark({ createdAt: session.createdAt, notBefore: current.notBefore ?? null })
  ) {
    return undefined;
  }
  await deps.refreshGuard?.(session.id);
  const { data, bytes } = sessionDataSized(deps.keyring, session);
  const inputs = snapshotOfRow(session, data, bytes, {
    version: current.configVersion,
    refreshSeconds: refreshLifetimeSeconds(current.config),
  });
  return rotatePair(deps, scope, spent, inputs, device, {
    nowMs: Number(current.nowMs),
    holds: sql`version = ${session.version} and ${isLive}`,
  });
}

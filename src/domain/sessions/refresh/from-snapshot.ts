/** The path from a snapshot: a pair this instance issued, rotated without a read. */
import { sql } from 'drizzle-orm';
import type { Scope } from '../../callers.js';
import { isLive } from '../../liveness.js';
import { notBeforeOfSession } from '../controls-rules.js';
import type { Device, SessionDeps } from '../types.js';
import { rotatePair } from './rotate.js';
import type { RefreshSnapshot } from './snapshot.js';
import type { PresentedToken, RefreshOutcome } from './token.js';
import { configAcceptsSql } from './usable.js';

/**
 * The instance clock, which the new expiries count from without a read, may be this far ahead of
 * the database's `now()` when the statement runs, ms: a lifetime is never longer than configured
 * by more than this, by the database clock.
 */
export const MAX_CLOCK_AHEAD_MS = 1_000;
/**
 * And this far behind it (the time from taking the base to the statement: minting, the queue
 * for a connection, or a slow instance clock), ms: a lifetime is at most this much shorter.
 */
export const MAX_CLOCK_BEHIND_MS = 60_000;

/**
 * Rotates a pair this instance issued, from its snapshot, in one statement. The statement
 * renews the session, spends the token, stores its successor (the grace-window pair), marks the
 * user seen and records REFRESHED exactly as the read path's statement does ({@link rotatePair}),
 * but only if what the read path checks still holds:
 *
 * - the token is unspent, unexpired and the session's (`spent`, as in the read path);
 * - the session is the caller's product, env and tag, not revoked and live (`isLive`);
 * - it is still what the snapshot minted from: same data `version` (every data change bumps it),
 *   same `authenticated_at` (markSessionFresh), identifier, actor, lifetimes and cap (`ends_at`);
 * - no not-before watermark of its tag or env is later than its start (revokeSessionsStartedBefore,
 *   before or after the batches marked it);
 * - its config still holds the tag, is live, usable by the env, and is the row version read
 *   (`xmin`): a change of lifetimes, a rename or a delete since gives no rotation.
 *
 * The time base: without the read there is no database clock to count the new expiries from, so
 * they count from the instance clock (to the second, as the read path truncates `now()`), and are
 * the values both stored and minted, so token and database agree exactly. The read path counts
 * from its read's `now()`, which precedes its statement by the minting and the wait for a
 * connection; here the base precedes the statement by the same, so the statement accepts a base
 * up to {@link MAX_CLOCK_BEHIND_MS} before its `now()` (a token that much shorter-lived at most)
 * but at most {@link MAX_CLOCK_AHEAD_MS} after it (an instance clock running ahead would
 * otherwise lengthen lifetimes); outside that the read path decides. The cap (`ends_at`) is the
 * database's own value, so an impersonation never outlives it.
 *
 * Returns undefined when the statement rotated nothing: the read path then decides, as if there
 * had been no snapshot (the token may have been refreshed by another instance, the session
 * revoked, its data changed...).
 */
export async function rotateFromSnapshot(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  spent: PresentedToken,
  snapshot: RefreshSnapshot,
  device: Device,
): Promise<RefreshOutcome | undefined> {
  if (
    snapshot.productId !== scope.productId ||
    snapshot.env !== scope.env ||
    snapshot.tag !== tag
  ) {
    return undefined;
  }
  await deps.refreshGuard?.(snapshot.sessionId);
  const clientNow = Date.now();
  const endsAt = snapshot.endsAt === null ? null : snapshot.endsAt.toISOString();
  // The session's env is the scope's (checked above, and by the statement).
  const configAccepted = configAcceptsSql(
    { tag: sql`c.tag`, env: sql`c.env`, deletedAt: sql`c.deleted_at` },
    { tag: sql`sessions.tag`, env: sql`sessions.env` },
  );
  return rotatePair(deps, scope, spent, snapshot, device, {
    nowMs: Math.floor(clientNow / 1000) * 1000,
    holds: sql`product_id = ${scope.productId} and env = ${scope.env} and tag = ${tag}
        and version = ${snapshot.version}
        and date_trunc('milliseconds', authenticated_at) = ${snapshot.authenticatedAt.toISOString()}::timestamptz
        and identifier = ${snapshot.identifier}
        and actor is not distinct from ${snapshot.actor}::text
        and token_lifetime_seconds = ${snapshot.tokenLifetimeSeconds}
        and idle_timeout_seconds is not distinct from ${snapshot.idleTimeoutSeconds}::integer
        and ends_at is not distinct from ${endsAt}::timestamptz
        and ${isLive}
        and coalesce(created_at >= ${notBeforeOfSession}, true)
        and exists (
          select 1 from session_configs c
          where c.id = sessions.config_id and c.id = ${snapshot.configId}
            and ${configAccepted} and c.xmin::text = ${snapshot.configVersion})
        and ${clientNow}::float8 - extract(epoch from now()) * 1000
            between ${-MAX_CLOCK_BEHIND_MS}::float8 and ${MAX_CLOCK_AHEAD_MS}::float8
        -- A token spent before this statement began (another instance's refresh) leaves the
        -- session as it is; one spent meanwhile is caught by \`spent\`.
        and exists (
          select 1 from refresh_tokens t
          where t.token_hash = ${spent.hash} and t.session_id = sessions.id
            and t.spent_at is null and t.expires_at > now())`,
  });
}

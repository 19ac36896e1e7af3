/**
 * The one rotation statement, shared by the one-statement path (one-statement.ts) and the path
 * from a snapshot (from-snapshot.ts): each gives it the inputs and the condition it rotates under.
 */
import { sql, type SQL } from 'drizzle-orm';
import { rowsOf, signalEventsWritten } from '../../../db/client.js';
import type { Scope } from '../../callers.js';
import { deviceMove } from '../controls-rules.js';
import type { Device, SessionDeps } from '../types.js';
import { mintNextPair } from './mint.js';
import type { RefreshSnapshot } from './snapshot.js';
import type { PresentedToken, RefreshOutcome } from './token.js';

/** The new expiries counted from `nowMs`, capped at `ends_at` (an impersonation never outlives it). */
function nextExpiries(inputs: RefreshSnapshot, nowMs: number) {
  const lifetime = inputs.tokenLifetimeSeconds;
  const refreshLifetime = Math.max(inputs.configRefreshSeconds, lifetime);
  const cap = inputs.endsAt?.getTime() ?? Infinity;
  return {
    expiresAt: new Date(Math.min(nowMs + lifetime * 1000, cap)),
    refreshExpiresAt: new Date(Math.min(nowMs + refreshLifetime * 1000, cap)),
  };
}

/**
 * Mints the next pair from `inputs` and rotates to it in one statement: renews the session
 * (expiries counted from `nowMs`, capped at `ends_at`; the device moved), spends the token and
 * stores its successor sealed (the grace-window pair), inserts the new token, marks the user seen
 * and records REFRESHED; all of it only if the session row still satisfies `holds` and the token
 * is unspent. Undefined when it rotated nothing. On success the new pair's snapshot is kept.
 */
export async function rotatePair(
  deps: SessionDeps,
  scope: Scope,
  spent: PresentedToken,
  inputs: RefreshSnapshot,
  device: Device,
  at: { readonly nowMs: number; readonly holds: SQL },
): Promise<RefreshOutcome | undefined> {
  const times = nextExpiries(inputs, at.nowMs);
  const next = await mintNextPair(deps.keyring, scope, spent, inputs, times);
  const expiresAt = times.expiresAt.toISOString();
  const refreshExpiresAt = times.refreshExpiresAt.toISOString();
  const moved = deviceMove(device);
  // The session row is updated first (its lock orders this against revocations, data changes
  // and other refreshes); the token is spent only through it, the rest only through the spent
  // token.
  const result = await deps.db.execute(sql`
    with s as (
      update sessions set expires_at = ${expiresAt}::timestamptz,
                          refresh_expires_at = ${refreshExpiresAt}::timestamptz,
                          last_active_at = now(),
                          user_agent = ${moved.userAgent}, ip = ${moved.ip},
                          device_history = ${moved.deviceHistory}
      where id = ${inputs.sessionId} and ${at.holds}
      returning id, product_id, env, tag, identifier, actor
    ), spent as (
      update refresh_tokens rt set spent_at = now(), successor_enc = ${next.successorEnc}
      from s
      where rt.token_hash = ${spent.hash} and rt.session_id = s.id and rt.spent_at is null
        and rt.expires_at > now()
      returning rt.session_id
    ), fresh as (
      insert into refresh_tokens (token_hash, session_id, expires_at)
      select ${next.nextTokenHash}, spent.session_id, ${refreshExpiresAt}::timestamptz
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
  // The statement wrote the REFRESHED event: the sequencer numbers it now.
  signalEventsWritten(deps.db);
  // The next pair was issued here from the same inputs: its refresh needs no read.
  deps.refreshSnapshots?.remember(next.nextTokenHash, inputs);
  return { kind: 'ok', tokens: next.tokens };
}

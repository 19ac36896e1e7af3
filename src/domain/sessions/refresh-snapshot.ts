/**
 * Refresh in one statement (issue #14): what minting a session's next token needs, kept by the
 * instance that issued the session's current pair, so that the refresh of that pair here needs
 * no read. The snapshot never decides anything: the rotation statement runs only if every check
 * the read path makes still holds in the database, and anything else goes the read path.
 */
import { sql, type SQL } from 'drizzle-orm';
import { rowsOf, signalEventsWritten } from '../../db/client.js';
import type { SessionRow } from '../../db/schema.js';
import { hashSecret } from '../../tokens/secrets.js';
import { mintSessionToken } from '../../tokens/session-token.js';
import type { Scope } from '../callers.js';
import { isLive } from '../liveness.js';
import { deviceMove, notBeforeOfSession } from './controls-rules.js';
import { newRefreshToken, successorBox, type RefreshOutcome } from './refresh-token.js';
import type { Device, SessionDeps } from './types.js';

/** What minting the next token of a session needs, as of the pair this instance issued. */
export interface RefreshSnapshot {
  readonly sessionId: string;
  readonly productId: string;
  readonly env: string;
  readonly tag: string;
  readonly identifier: string;
  readonly actor: string | null;
  readonly data: Record<string, unknown>;
  /** The data's serialized length (what the memory bound counts). */
  readonly dataBytes: number;
  readonly version: number;
  readonly tokenLifetimeSeconds: number;
  readonly idleTimeoutSeconds: number | null;
  readonly createdAt: Date;
  /** To the millisecond, as tokens carry it. */
  readonly authenticatedAt: Date;
  /** The impersonation cap; null: none. */
  readonly endsAt: Date | null;
  readonly configId: string;
  /** The config row's `xmin` when read: any change to the config (lifetimes, tag, env, delete) moves it. */
  readonly configVersion: string;
  /** The config's refresh lifetime, seconds (`refreshLifetimeSeconds`). */
  readonly configRefreshSeconds: number;
}

/** The snapshot of a session row as read with its config (the read and the locked path). */
export function snapshotOfRow(
  session: SessionRow,
  data: Record<string, unknown>,
  dataBytes: number,
  config: { readonly version: string; readonly refreshSeconds: number },
): RefreshSnapshot {
  return {
    sessionId: session.id,
    productId: session.productId,
    env: session.env,
    tag: session.tag,
    identifier: session.identifier,
    actor: session.actor,
    data,
    dataBytes,
    version: session.version,
    tokenLifetimeSeconds: session.tokenLifetimeSeconds,
    idleTimeoutSeconds: session.idleTimeoutSeconds,
    createdAt: session.createdAt,
    authenticatedAt: session.authenticatedAt,
    endsAt: session.endsAt,
    configId: session.configId,
    configVersion: config.version,
    configRefreshSeconds: config.refreshSeconds,
  };
}

/** Fixed cost of an entry besides its data, bytes (a rough upper bound of the strings and dates). */
const ENTRY_OVERHEAD_BYTES = 1024;

/**
 * The snapshots of one instance, by the hash of the refresh token they go with: bounded in
 * entries and in bytes (the data is bounded by the config limits, 16 KiB each; the byte budget
 * keeps 10,000 large ones from holding 160 MiB), the least recently issued forgotten first.
 * Never shared between instances: another instance's refresh spends the token, and the
 * statement finds nothing to rotate.
 */
export class RefreshSnapshots {
  readonly #entries = new Map<string, RefreshSnapshot>();
  #bytes = 0;

  constructor(
    readonly maxEntries = 10_000,
    readonly maxBytes = 32 * 1024 * 1024,
  ) {}

  /** Keeps the snapshot of the pair whose refresh token hashes to `tokenHash`. */
  remember(tokenHash: string, snapshot: RefreshSnapshot): void {
    const size = snapshot.dataBytes + ENTRY_OVERHEAD_BYTES;
    if (size > this.maxBytes) return;
    this.take(tokenHash);
    while (
      this.#entries.size > 0 &&
      (this.#entries.size >= this.maxEntries || this.#bytes + size > this.maxBytes)
    ) {
      const oldest = this.#entries.keys().next().value!;
      this.take(oldest);
    }
    this.#entries.set(tokenHash, snapshot);
    this.#bytes += size;
  }

  /** Removes and returns the snapshot of a token: a token is exchanged once. */
  take(tokenHash: string): RefreshSnapshot | undefined {
    const entry = this.#entries.get(tokenHash);
    if (entry === undefined) return undefined;
    this.#entries.delete(tokenHash);
    this.#bytes -= entry.dataBytes + ENTRY_OVERHEAD_BYTES;
    return entry;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }
}

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
  refreshToken: string,
  tokenHash: string,
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
  return rotatePair(deps, scope, refreshToken, tokenHash, snapshot, device, {
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
            and c.tag = sessions.tag and c.deleted_at is null
            and (c.env is null or c.env = ${scope.env}) and c.xmin::text = ${snapshot.configVersion})
        and ${clientNow}::float8 - extract(epoch from now()) * 1000
            between ${-MAX_CLOCK_BEHIND_MS}::float8 and ${MAX_CLOCK_AHEAD_MS}::float8
        -- A token spent before this statement began (another instance's refresh) leaves the
        -- session as it is; one spent meanwhile is caught by \`spent\`.
        and exists (
          select 1 from refresh_tokens t
          where t.token_hash = ${tokenHash} and t.session_id = sessions.id
            and t.spent_at is null and t.expires_at > now())`,
  });
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
  refreshToken: string,
  tokenHash: string,
  inputs: RefreshSnapshot,
  device: Device,
  at: { readonly nowMs: number; readonly holds: SQL },
): Promise<RefreshOutcome | undefined> {
  const lifetime = inputs.tokenLifetimeSeconds;
  const refreshLifetime = Math.max(inputs.configRefreshSeconds, lifetime);
  // An impersonation never outlives its cap (`ends_at`), however often it is refreshed.
  const cap = inputs.endsAt?.getTime() ?? Infinity;
  const expiresAt = new Date(Math.min(at.nowMs + lifetime * 1000, cap));
  const refreshExpiresAt = new Date(Math.min(at.nowMs + refreshLifetime * 1000, cap));
  const nextRefreshToken = newRefreshToken();
  const nextToken = await mintSessionToken(deps.keyring, scope, {
    sessionId: inputs.sessionId,
    tag: inputs.tag,
    identifier: inputs.identifier,
    data: inputs.data,
    expiresAt: refreshExpiresAt,
    version: inputs.version,
    sessionExpiresAt: expiresAt,
    idleTimeout: inputs.idleTimeoutSeconds !== null,
    startedAt: inputs.createdAt,
    authenticatedAt: inputs.authenticatedAt,
    actor: inputs.actor,
  });
  const successorEnc = successorBox(refreshToken).seal(
    JSON.stringify({
      token: nextToken,
      refreshToken: nextRefreshToken,
      expiresAt: expiresAt.toISOString(),
    }),
    inputs.sessionId,
  );
  const nextTokenHash = hashSecret(nextRefreshToken);
  const moved = deviceMove(device);
  // The session row is updated first (its lock orders this against revocations, data changes
  // and other refreshes); the token is spent only through it, the rest only through the spent
  // token.
  const result = await deps.db.execute(sql`
    with s as (
      update sessions set expires_at = ${expiresAt.toISOString()}::timestamptz,
                          refresh_expires_at = ${refreshExpiresAt.toISOString()}::timestamptz,
                          last_active_at = now(),
                          user_agent = ${moved.userAgent}, ip = ${moved.ip},
                          device_history = ${moved.deviceHistory}
      where id = ${inputs.sessionId} and ${at.holds}
      returning id, product_id, env, tag, identifier, actor
    ), spent as (
      update refresh_tokens rt set spent_at = now(), successor_enc = ${successorEnc}
      from s
      where rt.token_hash = ${tokenHash} and rt.session_id = s.id and rt.spent_at is null
        and rt.expires_at > now()
      returning rt.session_id
    ), fresh as (
      insert into refresh_tokens (token_hash, session_id, expires_at)
      select ${nextTokenHash}, spent.session_id, ${refreshExpiresAt.toISOString()}::timestamptz
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
  deps.refreshSnapshots?.remember(nextTokenHash, inputs);
  return {
    kind: 'ok',
    tokens: {
      token: nextToken,
      refreshToken: nextRefreshToken,
      sessionId: inputs.sessionId,
      identifier: inputs.identifier,
      expiresAt,
      actor: inputs.actor,
    },
  };
}

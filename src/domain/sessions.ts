import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { and, count, desc, eq, inArray, isNull, lt, or, sql, type SQL } from 'drizzle-orm';
import { type Database, type Transaction, rowsOf } from '../db/client.js';
import { refreshTokens, sessionConfigs, sessions, type SessionRow } from '../db/schema.js';
import type { Keyring } from '../tokens/keyring.js';
import { SealedBox } from '../tokens/sealed-box.js';
import { hashSecret, randomSecret } from '../tokens/secrets.js';
import { mintSessionToken, openSessionToken } from '../tokens/session-token.js';
import type { Scope } from './callers.js';
import {
  LIFETIME_LIMITS,
  checkConfigAccess,
  refreshLifetimeSeconds,
  requireSessionConfig,
  tokenLifetimeSeconds,
} from './configs.js';
import { JSON_LIMITS, checkDataAgainstSample, checkJsonObject } from './data-schema.js';
import { ServiceError, badInput, notFound } from './errors.js';
import { recordUserSeen } from './activity.js';
import { recordEvents } from './events.js';
import { revokeSessionsWhere } from './revocation.js';
import { isLive } from './liveness.js';
import { identifierFromData } from './selector.js';
import { checkLength, cursorInstant, UUID_PATTERN } from './validation.js';

/** What the session rules need from the process. */
export interface SessionDeps {
  readonly db: Database;
  readonly keyring: Keyring;
  /** Seconds during which a rotated refresh token still yields the pair it was exchanged for. */
  readonly refreshGraceSeconds: number;
  /** Called before each rotation; may throw (RATE_LIMITED) to refuse it. */
  readonly refreshGuard?: (sessionId: string) => Promise<void>;
}

/**
 * A session row as read for checks, with the database clock at the time of reading, and whether
 * its config still holds its tag (live, not renamed) and which env owns that config.
 */
export type SessionRecord = SessionRow & {
  readonly dbNow: Date;
  /** The session's config is live and still has the session's tag: only then do tokens verify. */
  readonly configCurrent: boolean;
  /** The env owning the session's config; null: product-wide. */
  readonly configEnv: string | null;
};

/** The session's config is live and still holds the session's tag (of the joined config row). */
const configHoldsTag = sql<boolean>`coalesce(${sessionConfigs.tag} = ${sessions.tag} and ${sessionConfigs.deletedAt} is null, false)`;

/** Loads session rows by id; batched by the caller (DataLoader), `undefined` for a missing one. */
export type SessionLoader = (id: string) => Promise<SessionRecord | undefined>;

export interface Device {
  readonly userAgent?: string | null;
  readonly ip?: string | null;
}

export interface StartSessionInput {
  readonly tag: string;
  readonly data?: unknown;
  readonly identifier?: string | null;
  readonly expiresIn?: number | null;
  readonly device?: Device | null;
}

/** A session token with its refresh token, as start and refresh return them. */
export interface SessionTokens {
  readonly token: string;
  readonly refreshToken: string;
  readonly sessionId: string;
  /** Who the session is for (not part of the API's SessionTokens; used by the activity log). */
  readonly identifier: string;
  readonly expiresAt: Date;
}

export interface VerifiedSession {
  readonly sessionId: string;
  readonly tag: string;
  readonly identifier: string;
  readonly data: Record<string, unknown>;
  /** The data's version: bumped by every change of the data. */
  readonly version: number;
  readonly expiresAt: Date;
  readonly session: SessionRow;
}

const MAX_IDENTIFIER_LENGTH = 256;
const MAX_USER_AGENT_LENGTH = 512;
const REFRESH_TOKEN_PREFIX = 'rt_';
const REFRESH_TOKEN_LENGTH = REFRESH_TOKEN_PREFIX.length + 43; // 32 random bytes, base64url

/** Postgres `now()` truncated to the second: the one clock, at the precision tokens carry. */
const nowSeconds = sql`date_trunc('second', now())`;
const secondsFromNow = (seconds: number) => sql`${nowSeconds} + make_interval(secs => ${seconds})`;

function normalizeDevice(device: Device | null | undefined, fallback: Device): Device {
  const userAgent = device?.userAgent ?? fallback.userAgent ?? null;
  const ip = device?.ip ?? fallback.ip ?? null;
  if (device?.userAgent != null && device.userAgent.length > MAX_USER_AGENT_LENGTH) {
    throw badInput('input.device.userAgent', `must be at most ${MAX_USER_AGENT_LENGTH} characters`);
  }
  if (device?.ip != null && isIP(device.ip) === 0) {
    throw badInput('input.device.ip', 'expected an IPv4 or IPv6 address');
  }
  return {
    userAgent: userAgent === null ? null : userAgent.slice(0, MAX_USER_AGENT_LENGTH),
    ip: ip !== null && isIP(ip) !== 0 ? ip : null,
  };
}

/**
 * Starts a session: checks the data against the config, picks the identifier, stores the
 * session (data sealed at rest) with its first refresh token and a STARTED event in one
 * transaction, then mints the session token with the database's expiry.
 */
export async function startSession(
  deps: SessionDeps,
  scope: Scope,
  input: StartSessionInput,
  requestDevice: Device,
): Promise<SessionTokens> {
  const config = await requireSessionConfig(deps.db, scope, input.tag);
  const serialized = checkJsonObject('input.data', input.data, JSON_LIMITS.dataBytes);
  const data = JSON.parse(serialized) as Record<string, unknown>;
  checkDataAgainstSample('input.data', data, config.schema as Record<string, unknown>);
  const identifier =
    input.identifier != null
      ? checkLength('input.identifier', input.identifier, MAX_IDENTIFIER_LENGTH)
      : identifierFromData(config.selector, data);
  if (identifier.length > MAX_IDENTIFIER_LENGTH) {
    throw badInput(
      'input.data',
      `the selected identifier is longer than ${MAX_IDENTIFIER_LENGTH} characters`,
    );
  }
  const lifetime = input.expiresIn ?? tokenLifetimeSeconds(config);
  if (
    !Number.isInteger(lifetime) ||
    lifetime < LIFETIME_LIMITS.minTokenSeconds ||
    lifetime > LIFETIME_LIMITS.maxTokenSeconds
  ) {
    throw badInput(
      'input.expiresIn',
      `expected whole seconds from ${LIFETIME_LIMITS.minTokenSeconds} to ${LIFETIME_LIMITS.maxTokenSeconds}`,
    );
  }
  const device = normalizeDevice(input.device, requestDevice);
  const sessionId = randomUUID();
  const refreshToken = newRefreshToken();
  const refreshLifetime = Math.max(refreshLifetimeSeconds(config), lifetime);

  // One statement, so one round trip and no transaction held open across the network: the
  // session, its first refresh token, its user's record and its STARTED event, all or nothing.
  const dataEnc = deps.keyring.dataBox(scope.productId, scope.env).seal(serialized, sessionId);
  const result = await deps.db.execute(sql`
    with s as (
      insert into sessions (id, product_id, env, config_id, tag, identifier, data_enc,
                            token_lifetime_seconds, idle_timeout_seconds, user_agent, ip,
                            created_at, last_active_at, expires_at, refresh_expires_at)
      select ${sessionId}, ${scope.productId}, ${scope.env}, c.id, c.tag,
             ${identifier}, ${dataEnc}, ${lifetime}, ${config.idleTimeoutSeconds},
             ${device.userAgent}, ${device.ip}, date_trunc('milliseconds', now()), now(),
             ${secondsFromNow(lifetime)}, ${secondsFromNow(refreshLifetime)}
      -- The config must still hold the tag when the row is written: the row lock waits for a
      -- rename or delete in progress (FOR UPDATE) and then re-reads the row, so a session never
      -- lands on a config that has just been renamed or deleted.
      from session_configs c
      where c.id = ${config.id} and c.tag = ${config.tag} and c.deleted_at is null
      for key share of c
      returning id, product_id, env, tag, identifier, created_at, expires_at, refresh_expires_at
    ), r as (
      insert into refresh_tokens (token_hash, session_id, expires_at)
      select ${hashSecret(refreshToken)}, s.id, s.refresh_expires_at from s
    ), u as (
      insert into session_users (product_id, env, tag, identifier, total_sessions,
                                 first_seen_at, last_seen_at)
      select s.product_id, s.env, s.tag, s.identifier, 1, s.created_at, s.created_at from s
      on conflict (product_id, env, tag, identifier) do update
        set last_seen_at = excluded.last_seen_at,
            total_sessions = session_users.total_sessions + 1
    ), e as (
      insert into session_events (product_id, env, session_id, tag, identifier, type)
      select s.product_id, s.env, s.id, s.tag, s.identifier, 'STARTED' from s
    )
    select (extract(epoch from created_at) * 1000)::float8 as created_ms,
           (extract(epoch from expires_at) * 1000)::float8 as expires_ms,
           (extract(epoch from refresh_expires_at) * 1000)::float8 as refresh_expires_ms
    from s`);
  const times = rowsOf<{ created_ms: number; expires_ms: number; refresh_expires_ms: number }>(
    result,
  )[0];
  if (!times) throw notFound(`No session config with tag "${config.tag}" in this product.`);
  const expiresAt = new Date(Number(times.expires_ms));
  if (config.maxSessionsPerIdentifier !== null) {
    await deps.db.transaction((tx) =>
      enforceSessionCap(tx, scope, config.tag, identifier, config.maxSessionsPerIdentifier!),
    );
  }

  const token = await mintSessionToken(deps.keyring, scope, {
    sessionId,
    tag: config.tag,
    identifier,
    data,
    issuedAt: new Date(Number(times.created_ms)),
    expiresAt: new Date(Number(times.refresh_expires_ms)),
    version: 1,
    sessionExpiresAt: expiresAt,
    idleTimeout: config.idleTimeoutSeconds !== null,
  });
  return { token, refreshToken, sessionId, identifier, expiresAt };
}

/**
 * Keeps at most `cap` live sessions for an identifier: the oldest beyond it are revoked (reason
 * `session_limit`). Run after each start; a per-identifier lock makes concurrent starts converge
 * on exactly `cap`.
 */
async function enforceSessionCap(
  tx: Transaction,
  scope: Scope,
  tag: string,
  identifier: string,
  cap: number,
): Promise<void> {
  const owner = `${scope.productId}|${scope.env}|${tag}|${identifier}`;
  await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`cap|${owner}`}, 0))`);
  const beyond = tx
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(inScope(scope), eq(sessions.tag, tag), eq(sessions.identifier, identifier), isLive))
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
    .offset(cap);
  await revokeSessionsWhere(tx, inArray(sessions.id, beyond), 'session_limit');
}

function newRefreshToken(): string {
  return `${REFRESH_TOKEN_PREFIX}${randomSecret(32)}`;
}

/** Reads session rows by id with the database clock, in one query: the batch behind verify. */
export async function loadSessionRecords(
  db: Database,
  ids: readonly string[],
): Promise<SessionRecord[]> {
  const valid = ids.filter((id) => UUID_PATTERN.test(id));
  if (valid.length === 0) return [];
  // The config by primary key, in the same query: no round trip added to verify.
  const rows = await db
    .select({
      session: sessions,
      dbNow: sql`now()`.mapWith(sessions.createdAt),
      configCurrent: configHoldsTag,
      configEnv: sessionConfigs.env,
    })
    .from(sessions)
    .leftJoin(sessionConfigs, eq(sessionConfigs.id, sessions.configId))
    .where(inArray(sessions.id, valid));
  return rows.map((r) => ({
    ...r.session,
    dbNow: r.dbNow as Date,
    configCurrent: Boolean(r.configCurrent),
    configEnv: r.configEnv,
  }));
}

const tokenInvalid = () =>
  new ServiceError(
    'TOKEN_INVALID',
    'The session token is malformed, altered, or not for this tag.',
  );

/** How often verify records activity: at most one write per session per this many seconds. */
export const TOUCH_INTERVAL_SECONDS = 60;

/** Why a session row no longer accepts tokens, by the database clock; null while it is live. */
function deadReason(row: SessionRow, now: Date): 'revoked' | 'expired' | null {
  if (row.revokedAt !== null) return 'revoked';
  if (
    row.expiredAt !== null ||
    row.refreshExpiresAt <= now ||
    (row.idleTimeoutSeconds !== null && idleExpiresAt(row)! <= now)
  ) {
    return 'expired';
  }
  return null;
}

/** When an idle session runs out: last activity plus the idle timeout (null: no idle timeout). */
export function idleExpiresAt(row: SessionRow): Date | null {
  return row.idleTimeoutSeconds === null
    ? null
    : new Date(row.lastActiveAt.getTime() + row.idleTimeoutSeconds * 1000);
}

const sessionRevoked = () =>
  new ServiceError('SESSION_REVOKED', 'This session was revoked; sign in again.');

/**
 * Verifies a session token: opens it (claims checked in src/tokens), then checks its session row
 * so that a revocation takes effect on the very next call. The row decides, by the database
 * clock: revoked, past its expiry (which extend and setExpiration move), idle for too long.
 * Returns the session's current data and version. Records activity at most once a minute.
 */
export async function verifySession(
  deps: Pick<SessionDeps, 'keyring' | 'db'>,
  scope: Scope,
  tag: string,
  token: string,
  loadSession: SessionLoader,
): Promise<VerifiedSession> {
  try {
    return await verifyOpened(deps, scope, tag, token, loadSession);
  } catch (error) {
    // Off the hot path: only a token that fails asks whether the tag is another env's config.
    if (error instanceof ServiceError && error.code === 'TOKEN_INVALID') {
      await checkConfigAccess(deps.db, scope, tag);
    }
    throw error;
  }
}

async function verifyOpened(
  deps: Pick<SessionDeps, 'keyring' | 'db'>,
  scope: Scope,
  tag: string,
  token: string,
  loadSession: SessionLoader,
): Promise<VerifiedSession> {
  const claims = await openSessionToken(deps.keyring, scope, tag, token);
  const row = await loadSession(claims.sessionId);
  if (!row || row.productId !== scope.productId || row.env !== scope.env || row.tag !== tag) {
    throw tokenInvalid();
  }
  const dead = deadReason(row, row.dbNow);
  if (dead === 'revoked') throw sessionRevoked();
  // A session belongs to its config, not to a string: once that config is renamed or deleted,
  // a config that later takes the tag never accepts it.
  if (!row.configCurrent || (row.configEnv !== null && row.configEnv !== scope.env)) {
    throw tokenInvalid();
  }
  if (dead === 'expired' || row.expiresAt <= row.dbNow) {
    throw new ServiceError('TOKEN_EXPIRED', 'The session token has expired; refresh the session.');
  }
  let session: SessionRow = row;
  if (row.dbNow.getTime() - row.lastActiveAt.getTime() >= TOUCH_INTERVAL_SECONDS * 1000) {
    const touched = await deps.db
      .update(sessions)
      .set({ lastActiveAt: sql`now()` })
      .where(and(eq(sessions.id, row.id), isNull(sessions.revokedAt)))
      .returning({ lastActiveAt: sessions.lastActiveAt });
    if (touched[0]) {
      session = { ...row, lastActiveAt: touched[0].lastActiveAt };
      await recordUserSeen(deps.db, row);
    }
  }
  return {
    sessionId: row.id,
    tag: row.tag,
    identifier: row.identifier,
    data: sessionData(deps.keyring, row),
    version: row.version,
    expiresAt: row.expiresAt,
    session,
  };
}

type RefreshOutcome =
  | { readonly kind: 'ok'; readonly tokens: SessionTokens }
  | { readonly kind: 'invalid' | 'revoked' | 'expired' | 'reused' };

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
): Promise<SessionTokens> {
  const rotated = await rotateInOneStatement(deps, scope, tag, refreshToken);
  const outcome = rotated ?? (await exchangeRefreshToken(deps, scope, tag, refreshToken));
  switch (outcome.kind) {
    case 'ok':
      return outcome.tokens;
    case 'invalid':
      await checkConfigAccess(deps.db, scope, tag);
      throw new ServiceError(
        'TOKEN_INVALID',
        'The refresh token is malformed, unknown, or not for this tag.',
      );
    case 'revoked':
      throw new ServiceError('SESSION_REVOKED', 'This session was revoked; sign in again.');
    case 'expired':
      throw new ServiceError('TOKEN_EXPIRED', 'The refresh token has expired; sign in again.');
    case 'reused':
      throw new ServiceError(
        'REFRESH_TOKEN_REUSED',
        'This refresh token was already used; the session has been revoked as a precaution.',
      );
  }
}

/**
 * The fast path of a refresh: reads the token and its session, mints the new pair, then spends
 * the token, stores its successor, renews the session and records the event in one statement
 * that does nothing unless the token is still unspent and the session still live and at the
 * version the new token carries. Returns undefined whenever the slow path must decide.
 */
async function rotateInOneStatement(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  refreshToken: string,
): Promise<RefreshOutcome | undefined> {
  if (
    refreshToken.length !== REFRESH_TOKEN_LENGTH ||
    !refreshToken.startsWith(REFRESH_TOKEN_PREFIX)
  ) {
    return { kind: 'invalid' };
  }
  const tokenHash = hashSecret(refreshToken);
  const found = await deps.db
    .select({
      session: sessions,
      config: {
        expiry: sessionConfigs.expiry,
        period: sessionConfigs.period,
        refreshExpirySeconds: sessionConfigs.refreshExpirySeconds,
      },
      usable: sql<boolean>`${refreshTokens.spentAt} is null and ${refreshTokens.expiresAt} > now() and ${sessions.revokedAt} is null and ${isLive}`,
      configCurrent: configHoldsTag,
      configEnv: sessionConfigs.env,
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
  if (session.productId !== scope.productId || session.env !== scope.env || session.tag !== tag) {
    return { kind: 'invalid' };
  }
  // The slow path decides (revoked first, then the config) for anything but the common case.
  if (!current.usable || !configAccepts(current, scope)) return undefined;
  await deps.refreshGuard?.(session.id);

  const lifetime = session.tokenLifetimeSeconds;
  const refreshLifetime = Math.max(refreshLifetimeSeconds(current.config), lifetime);
  const now = Number(current.nowMs);
  const expiresAt = new Date(now + lifetime * 1000);
  const refreshExpiresAt = new Date(now + refreshLifetime * 1000);
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
  });
  const successorEnc = successorBox(refreshToken).seal(
    JSON.stringify({
      token: nextToken,
      refreshToken: nextRefreshToken,
      expiresAt: expiresAt.toISOString(),
    }),
    session.id,
  );
  // The session row is updated first (its lock orders this against revocations and other
  // refreshes); the token is spent only through it, and the rest only through the spent token.
  const result = await deps.db.execute(sql`
    with s as (
      update sessions set expires_at = ${expiresAt.toISOString()}::timestamptz,
                          refresh_expires_at = ${refreshExpiresAt.toISOString()}::timestamptz,
                          last_active_at = now()
      where id = ${session.id} and version = ${session.version} and ${isLive}
      returning id, product_id, env, tag, identifier
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
      insert into session_events (product_id, env, session_id, tag, identifier, type)
      select s.product_id, s.env, s.id, s.tag, s.identifier, 'REFRESHED' from s, spent
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
    },
  };
}

/** The session's config still holds its tag, and the scope's env may use it. */
function configAccepts(
  row: { configCurrent: boolean | null; configEnv: string | null },
  scope: Scope,
): boolean {
  return Boolean(row.configCurrent) && (row.configEnv === null || row.configEnv === scope.env);
}

async function exchangeRefreshToken(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  refreshToken: string,
): Promise<RefreshOutcome> {
  if (
    refreshToken.length !== REFRESH_TOKEN_LENGTH ||
    !refreshToken.startsWith(REFRESH_TOKEN_PREFIX)
  ) {
    return { kind: 'invalid' };
  }
  const tokenHash = hashSecret(refreshToken);
  return deps.db.transaction(async (tx): Promise<RefreshOutcome> => {
    const found = await tx
      .select({ sessionId: refreshTokens.sessionId })
      .from(refreshTokens)
      .where(eq(refreshTokens.tokenHash, tokenHash));
    if (!found[0]) return { kind: 'invalid' };
    const sessionId = found[0].sessionId;

    // The lock: every exchange of this session's tokens, and every revocation, queues here.
    const locked = await tx
      .select({
        session: sessions,
        config: {
          expiry: sessionConfigs.expiry,
          period: sessionConfigs.period,
          refreshExpirySeconds: sessionConfigs.refreshExpirySeconds,
        },
        configCurrent: configHoldsTag,
        configEnv: sessionConfigs.env,
        // Over for good: swept, or idle past its timeout (by the database clock).
        over: sql<boolean>`${sessions.expiredAt} is not null or (${sessions.idleTimeoutSeconds} is not null and ${sessions.lastActiveAt} + make_interval(secs => ${sessions.idleTimeoutSeconds}) <= now())`,
      })
      .from(sessions)
      .innerJoin(sessionConfigs, eq(sessionConfigs.id, sessions.configId))
      .where(eq(sessions.id, sessionId))
      .for('update', { of: sessions });
    const current = locked[0];
    if (
      !current ||
      current.session.productId !== scope.productId ||
      current.session.env !== scope.env ||
      current.session.tag !== tag
    ) {
      return { kind: 'invalid' };
    }
    const session = current.session;
    if (session.revokedAt !== null) return { kind: 'revoked' };
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
        },
      ]);
      return { kind: 'reused' };
    }
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
        expiresAt: secondsFromNow(session.tokenLifetimeSeconds),
        refreshExpiresAt: secondsFromNow(refreshLifetime),
        lastActiveAt: sql`now()`,
      })
      .where(eq(sessions.id, sessionId))
      .returning({ expiresAt: sessions.expiresAt, refreshExpiresAt: sessions.refreshExpiresAt });
    const times = updated[0]!;
    const data = JSON.parse(
      deps.keyring.dataBox(scope.productId, scope.env).open(session.dataEnc, sessionId),
    ) as Record<string, unknown>;
    const nextToken = await mintSessionToken(deps.keyring, scope, {
      sessionId,
      tag: session.tag,
      identifier: session.identifier,
      data,
      expiresAt: times.refreshExpiresAt,
      version: session.version,
      sessionExpiresAt: times.expiresAt,
      idleTimeout: session.idleTimeoutSeconds !== null,
    });
    const tokens: SessionTokens = {
      token: nextToken,
      refreshToken: nextRefreshToken,
      sessionId,
      identifier: session.identifier,
      expiresAt: times.expiresAt,
    };
    await recordUserSeen(tx, session);
    await tx.insert(refreshTokens).values({
      tokenHash: hashSecret(nextRefreshToken),
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
      { ...scope, sessionId, tag: session.tag, identifier: session.identifier, type: 'REFRESHED' },
    ]);
    return { kind: 'ok', tokens };
  });
}

/**
 * The box a spent refresh token's successor pair is sealed in: its key derives from the spent
 * token itself, so only a holder of that token (not a reader of the database) can open it.
 */
function successorBox(refreshToken: string): SealedBox {
  return SealedBox.derive(refreshToken, 'refresh-successor', 'successor-pair');
}

function checkSessionId(sessionId: string): string {
  if (!UUID_PATTERN.test(sessionId)) throw badInput('sessionId', 'expected a session id (a UUID)');
  return sessionId.toLowerCase();
}

const inScope = (scope: Scope): SQL =>
  and(eq(sessions.productId, scope.productId), eq(sessions.env, scope.env))!;

/**
 * Revokes one session. Idempotent: revoking a revoked session returns it unchanged. A session of
 * another product, env or tag is NOT_FOUND and untouched.
 */
export async function revokeSession(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  sessionId: string,
): Promise<SessionRow> {
  const id = checkSessionId(sessionId);
  const where = and(inScope(scope), eq(sessions.tag, tag), eq(sessions.id, id));
  return deps.db.transaction(async (tx) => {
    await revokeSessionsWhere(tx, where, 'revoked');
    const rows = await tx.select().from(sessions).where(where);
    if (!rows[0]) {
      throw new ServiceError('NOT_FOUND', `No session with that id for tag "${tag}".`);
    }
    return rows[0];
  });
}

/** Revokes every live session of one identifier under a tag, but the one excluded; returns the count. */
export async function revokeAllSessions(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  identifier: string,
  excludeSessionId?: string | null,
): Promise<number> {
  checkLength('identifier', identifier, MAX_IDENTIFIER_LENGTH);
  const exclude =
    excludeSessionId != null
      ? sql`${sessions.id} <> ${checkSessionIdField(excludeSessionId)}`
      : undefined;
  const ids = await deps.db.transaction((tx) =>
    revokeSessionsWhere(
      tx,
      and(
        inScope(scope),
        eq(sessions.tag, tag),
        eq(sessions.identifier, identifier),
        isLive,
        exclude,
      ),
      'revoked_all',
    ),
  );
  return ids.length;
}

function checkSessionIdField(value: string): string {
  if (!UUID_PATTERN.test(value)) {
    throw badInput('excludeSessionId', 'expected a session id (a UUID)');
  }
  return value.toLowerCase();
}

export interface SessionPage {
  readonly rows: SessionRow[];
  readonly hasNextPage: boolean;
  /** Counts every live session of the identifier; run only when asked for. */
  readonly totalCount: () => Promise<number>;
}

export const MAX_PAGE_SIZE = 100;
const DEFAULT_PAGE_SIZE = 20;

/** Keyset cursor over (createdAt desc, id desc); opaque to clients. */
export function encodeCursor(row: Pick<SessionRow, 'createdAt' | 'id'>): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const text = cursor.length <= 200 ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const [at, id] = text.split('|');
  const createdAt = cursorInstant(at);
  if (!id || !UUID_PATTERN.test(id) || createdAt === undefined) {
    throw badInput('after', 'is not a cursor this API returned');
  }
  return { createdAt, id };
}

/** One page of an identifier's live sessions under a tag, newest first (keyset pagination). */
export async function listSessions(
  deps: Pick<SessionDeps, 'db'>,
  scope: Scope,
  args: { tag: string; identifier: string; first?: number | null; after?: string | null },
): Promise<SessionPage> {
  checkLength('identifier', args.identifier, MAX_IDENTIFIER_LENGTH);
  const first = args.first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 0 || first > MAX_PAGE_SIZE) {
    throw badInput('first', `expected a whole number from 0 to ${MAX_PAGE_SIZE}`);
  }
  const owner = and(
    inScope(scope),
    eq(sessions.tag, args.tag),
    eq(sessions.identifier, args.identifier),
    isLive,
  );
  let where = owner;
  if (args.after != null) {
    const c = decodeCursor(args.after);
    where = and(
      owner,
      or(
        lt(sessions.createdAt, c.createdAt),
        and(eq(sessions.createdAt, c.createdAt), lt(sessions.id, c.id)),
      ),
    );
  }
  const rows = await deps.db
    .select()
    .from(sessions)
    .where(where)
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
    .limit(first + 1);
  return {
    rows: rows.slice(0, first),
    hasNextPage: rows.length > first,
    totalCount: async () => {
      const counted = await deps.db.select({ n: count() }).from(sessions).where(owner);
      return Number(counted[0]?.n ?? 0);
    },
  };
}

/** One session of the caller's product and env, or undefined. */
export async function findSession(
  deps: Pick<SessionDeps, 'db'>,
  scope: Scope,
  sessionId: string,
): Promise<SessionRow | undefined> {
  if (!UUID_PATTERN.test(sessionId)) return undefined;
  const rows = await deps.db
    .select()
    .from(sessions)
    .where(and(inScope(scope), eq(sessions.id, sessionId.toLowerCase())));
  return rows[0];
}

/** The decrypted data of a session row. */
export function sessionData(keyring: Keyring, row: SessionRow): Record<string, unknown> {
  return JSON.parse(keyring.dataBox(row.productId, row.env).open(row.dataEnc, row.id)) as Record<
    string,
    unknown
  >;
}

export type SessionStatus = 'ACTIVE' | 'EXPIRED' | 'REVOKED';

/**
 * A session's status at an instant: revoked; expired once nothing can revive it (refresh token
 * expired, idle too long, or swept); otherwise active (usable, or refreshable).
 */
export function sessionStatus(row: SessionRow, now: Date): SessionStatus {
  const dead = deadReason(row, now);
  return dead === 'revoked' ? 'REVOKED' : dead === 'expired' ? 'EXPIRED' : 'ACTIVE';
}

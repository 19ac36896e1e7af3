import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import { type Transaction, rowsOf, signalEventsWritten } from '../../db/client.js';
import { sessions, type SessionConfigRow } from '../../db/schema.js';
import { hashSecret } from '../../tokens/secrets.js';
import type { Scope } from '../callers.js';
import { LIFETIME_LIMITS, refreshLifetimeSeconds, tokenLifetimeSeconds } from '../configs.js';
import { JSON_LIMITS, checkDataAgainstSample, checkJsonObject } from '../data-schema.js';
import { badInput, configNotFound } from '../errors.js';
import { isLive } from '../liveness.js';
import { revokeSessionsWhere } from '../revocation.js';
import { identifierFromData } from '../selector.js';
import { checkLength, checkWholeNumber } from '../validation.js';
import { mintSessionTokenOf } from './refresh/mint.js';
import type { RefreshSnapshot } from './refresh/snapshot.js';
import { newRefreshToken } from './refresh/token.js';
import { configAcceptsSql } from './refresh/usable.js';
import { sessionConfigFor } from './start-config.js';
import { MAX_IDENTIFIER_LENGTH, inScope, secondsFromNow } from './shared.js';
import type {
  Device,
  DeviceInput,
  SessionDeps,
  SessionTokens,
  StartSessionInput,
} from './types.js';

/**
 * The longest User-Agent kept, in characters: a longer one given is BAD_USER_INPUT; one taken from
 * the request is cut to it.
 */
export const MAX_USER_AGENT_LENGTH = 512;

/**
 * The device a caller gives, its parts checked (`field`: where it is in the request). Parts not
 * given stay unknown (null), unless `fromRequest` asks for this request's own User-Agent and IP
 * (`request`) in their place: a backend's request is not its end user's device.
 */
export function normalizeDevice(
  device: DeviceInput | null | undefined,
  request: Device,
  field: string,
): Device {
  if (device?.userAgent != null && device.userAgent.length > MAX_USER_AGENT_LENGTH) {
    throw badInput(`${field}.userAgent`, `must be at most ${MAX_USER_AGENT_LENGTH} characters`);
  }
  if (device?.ip != null && isIP(device.ip) === 0) {
    throw badInput(`${field}.ip`, 'expected an IPv4 or IPv6 address');
  }
  const fallback: Device = device?.fromRequest === true ? request : {};
  const userAgent = device?.userAgent ?? fallback.userAgent ?? null;
  const ip = device?.ip ?? fallback.ip ?? null;
  return {
    userAgent: userAgent === null ? null : userAgent.slice(0, MAX_USER_AGENT_LENGTH),
    ip: ip !== null && isIP(ip) !== 0 ? ip : null,
  };
}

/** Longest an actor (an operator's identifier) may be. */
export const MAX_ACTOR_LENGTH = 256;

function checkActor(actor: string | null | undefined): string | null {
  if (actor == null) return null;
  if (actor.length === 0) throw badInput('input.actor', 'must not be empty');
  return checkLength('input.actor', actor, MAX_ACTOR_LENGTH);
}

/** A session token's lifetime, in seconds. */
const TOKEN_LIFETIME = {
  min: LIFETIME_LIMITS.minTokenSeconds,
  max: LIFETIME_LIMITS.maxTokenSeconds,
};

/**
 * The token lifetime the caller asked for, in seconds: `expiresIn`, or the absolute `expiresAt`
 * counted from now (rounded up to the second); undefined for the config's own.
 */
function requestedLifetime(input: StartSessionInput): number | undefined {
  if (input.expiresAt != null) {
    if (input.expiresIn != null) {
      throw badInput('input.expiresAt', 'give either expiresIn or expiresAt, not both');
    }
    return checkWholeNumber(
      'input.expiresAt',
      Math.ceil((input.expiresAt.getTime() - Date.now()) / 1000),
      TOKEN_LIFETIME,
      `expected an instant from ${TOKEN_LIFETIME.min} seconds to ${TOKEN_LIFETIME.max} seconds from now`,
    );
  }
  return input.expiresIn ?? undefined;
}

/** The input's data, identifier, actor and lifetime, checked against the config. */
function checkStartInput(deps: SessionDeps, config: SessionConfigRow, input: StartSessionInput) {
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
  const actor = checkActor(input.actor);
  const cap = actor === null ? null : (deps.impersonationMaxSeconds ?? 3600);
  const requested = requestedLifetime(input) ?? tokenLifetimeSeconds(config);
  // An impersonation never outlives its cap, whatever the config or the request say.
  const lifetime = checkWholeNumber(
    'input.expiresIn',
    cap === null ? requested : Math.min(requested, cap),
    TOKEN_LIFETIME,
    `expected whole seconds from ${TOKEN_LIFETIME.min} to ${TOKEN_LIFETIME.max}`,
  );
  return { serialized, data, identifier, actor, cap, lifetime };
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
  /** Read the config afresh (the cached one was gone when the statement ran). */
  fresh = false,
): Promise<SessionTokens> {
  const { config, version } = await sessionConfigFor(deps, scope, input.tag, fresh);
  let checked: ReturnType<typeof checkStartInput>;
  try {
    checked = checkStartInput(deps, config, input);
  } catch (error) {
    // A config from the cache may be out of date: only a fresh one may refuse the input.
    if (!fresh && deps.sessionConfigs) return startSession(deps, scope, input, requestDevice, true);
    throw error;
  }
  const { serialized, identifier, actor, cap, lifetime } = checked;
  const device = normalizeDevice(input.device, requestDevice, 'input.device');
  const sessionId = randomUUID();
  const refreshToken = newRefreshToken();
  const uncapped = Math.max(refreshLifetimeSeconds(config), lifetime);
  const refreshLifetime = cap === null ? uncapped : Math.min(uncapped, cap);

  // One statement, so one round trip and no transaction held open across the network: the
  // session, its first refresh token, its user's record and its STARTED event, all or nothing.
  const dataEnc = deps.keyring.dataBox(scope.productId, scope.env).seal(serialized, sessionId);
  const refreshTokenHash = hashSecret(refreshToken);
  // The config accepts the session about to be written (its tag and the scope's env).
  const configTakes = configAcceptsSql(
    { tag: sql`c.tag`, env: sql`c.env`, deletedAt: sql`c.deleted_at` },
    { tag: config.tag, env: scope.env },
  );
  const result = await deps.db.execute(sql`
    with s as (
      insert into sessions (id, product_id, env, config_id, tag, identifier, data_enc,
                            token_lifetime_seconds, idle_timeout_seconds, user_agent, ip,
                            created_at, last_active_at, expires_at, refresh_expires_at,
                            authenticated_at, actor, ends_at)
      select ${sessionId}, ${scope.productId}, ${scope.env}, c.id, c.tag,
             ${identifier}, ${dataEnc}, ${lifetime}, ${config.idleTimeoutSeconds},
             ${device.userAgent}, ${device.ip}, date_trunc('milliseconds', now()), now(),
             ${secondsFromNow(lifetime)}, ${secondsFromNow(refreshLifetime)},
             date_trunc('milliseconds', now()), ${actor},
             ${cap === null ? null : secondsFromNow(refreshLifetime)}
      -- The config must still hold the tag when the row is written: the row lock waits for a
      -- rename or delete in progress (FOR UPDATE) and then re-reads the row, so a session never
      -- lands on a config that has just been renamed or deleted. It must also still be the
      -- version read (perhaps from the cache): any change since gives no row, and a fresh read.
      from session_configs c
      where c.id = ${config.id} and ${configTakes} and c.xmin::text = ${version}
      for key share of c
      returning id, product_id, env, tag, identifier, actor, created_at, expires_at,
                refresh_expires_at
    ), r as (
      insert into refresh_tokens (token_hash, session_id, expires_at)
      select ${refreshTokenHash}, s.id, s.refresh_expires_at from s
    ), u as (
      insert into session_users (product_id, env, tag, identifier, total_sessions,
                                 first_seen_at, last_seen_at)
      select s.product_id, s.env, s.tag, s.identifier, 1, s.created_at, s.created_at from s
      on conflict (product_id, env, tag, identifier) do update
        set last_seen_at = excluded.last_seen_at,
            total_sessions = session_users.total_sessions + 1
    ), e as (
      insert into session_events (product_id, env, session_id, tag, identifier, type, actor)
      select s.product_id, s.env, s.id, s.tag, s.identifier, 'STARTED', s.actor from s
    )
    select (extract(epoch from created_at) * 1000)::float8 as created_ms,
           (extract(epoch from expires_at) * 1000)::float8 as expires_ms,
           (extract(epoch from refresh_expires_at) * 1000)::float8 as refresh_expires_ms
    from s`);
  const times = rowsOf<{ created_ms: number; expires_ms: number; refresh_expires_ms: number }>(
    result,
  )[0];
  // The statement wrote the STARTED event: the sequencer numbers it now.
  if (times) signalEventsWritten(deps.db);
  if (!times) {
    // The config changed or went since it was read: read it again (NOT_FOUND, FORBIDDEN or the
    // new version), once; gone again on the fresh read, it was deleted or renamed meanwhile.
    if (!fresh) return startSession(deps, scope, input, requestDevice, true);
    throw configNotFound(config.tag, 'product');
  }
  const expiresAt = new Date(Number(times.expires_ms));
  if (config.maxSessionsPerIdentifier !== null) {
    await deps.db.transaction((tx) =>
      enforceSessionCap(tx, scope, config.tag, identifier, config.maxSessionsPerIdentifier!),
    );
  }

  const createdAt = new Date(Number(times.created_ms));
  const refreshExpiresAt = new Date(Number(times.refresh_expires_ms));
  const inputs = startedInputs(scope, config, version, {
    ...checked,
    sessionId,
    createdAt,
    // `ends_at` is the refresh expiry's instant when capped (the same expression, one now()).
    endsAt: cap === null ? null : refreshExpiresAt,
  });
  // Its first refresh here needs no read (refresh/from-snapshot.ts).
  deps.refreshSnapshots?.remember(refreshTokenHash, inputs);
  const token = await mintSessionTokenOf(deps.keyring, scope, inputs, {
    issuedAt: createdAt,
    expiresAt,
    refreshExpiresAt,
  });
  return { token, refreshToken, sessionId, identifier, expiresAt, actor };
}

/** What minting a started session's tokens needs: the inputs as stored (version 1). */
function startedInputs(
  scope: Scope,
  config: SessionConfigRow,
  version: string,
  started: ReturnType<typeof checkStartInput> & {
    readonly sessionId: string;
    readonly createdAt: Date;
    readonly endsAt: Date | null;
  },
): RefreshSnapshot {
  return {
    sessionId: started.sessionId,
    productId: scope.productId,
    env: scope.env,
    tag: config.tag,
    identifier: started.identifier,
    actor: started.actor,
    data: started.data,
    dataBytes: started.serialized.length,
    version: 1,
    tokenLifetimeSeconds: started.lifetime,
    idleTimeoutSeconds: config.idleTimeoutSeconds,
    createdAt: started.createdAt,
    // The start is when the user proved who they are (authenticated_at = created_at).
    authenticatedAt: started.createdAt,
    endsAt: started.endsAt,
    configId: config.id,
    configVersion: version,
    configRefreshSeconds: refreshLifetimeSeconds(config),
  };
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

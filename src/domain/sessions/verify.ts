import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { sessionConfigs, sessions, type SessionRow } from '../../db/schema.js';
import { openSessionToken, TokenRefused } from '../../tokens/session-token.js';
import { recordUserSeen } from '../activity/users.js';
import type { Scope } from '../callers.js';
import { checkConfigAccess } from '../configs.js';
import {
  ServiceError,
  idleTimeout,
  reauthenticationRequired,
  sessionRevoked,
  tokenExpired,
  tokenInvalid,
} from '../errors.js';
import { UUID_PATTERN } from '../validation.js';
import { belongsTo, sessionData } from './shared.js';
import { configAccepts, configOfSession } from './refresh/usable.js';
import { deadReason, idleExpiresAt } from '../liveness.js';
import { checkMaxAge, notBeforeOfSession, revokedBeforeWatermark } from './controls-rules.js';
import type { SessionDeps, SessionLoader, SessionRecord, VerifiedSession } from './types.js';

/** A token the tokens module refused, as the API says it: TOKEN_EXPIRED or TOKEN_INVALID. */
function refusal(error: unknown): never {
  if (error instanceof TokenRefused) {
    throw error.reason === 'expired' ? tokenExpired() : tokenInvalid();
  }
  throw error;
}

/**
 * The batch read behind verify, built once per database handle (drizzle's prepared query: the
 * SQL text and its result mapping are not worked out again per batch). The ids are one array
 * parameter, so every batch size shares it. The config by primary key, in the same query: no
 * round trip added to verify.
 */
const sessionRecordQueries = new WeakMap<Database, ReturnType<typeof sessionRecordQuery>>();

function sessionRecordQuery(db: Database) {
  return db
    .select({
      session: sessions,
      dbNow: sql`now()`.mapWith(sessions.createdAt),
      config: configOfSession,
      notBefore: notBeforeOfSession,
    })
    .from(sessions)
    .leftJoin(sessionConfigs, eq(sessionConfigs.id, sessions.configId))
    .where(sql`${sessions.id} = any(${sql.placeholder('ids')}::uuid[])`)
    .prepare('session_records');
}

/** Reads session rows by id with the database clock, in one query: the batch behind verify. */
export async function loadSessionRecords(
  db: Database,
  ids: readonly string[],
): Promise<SessionRecord[]> {
  const valid = ids.filter((id) => UUID_PATTERN.test(id));
  if (valid.length === 0) return [];
  let query = sessionRecordQueries.get(db);
  if (!query) sessionRecordQueries.set(db, (query = sessionRecordQuery(db)));
  // An array literal, not a JavaScript array: the drivers' serializers differ on arrays, a text
  // parameter cast to uuid[] reads the same on both (the ids are checked UUIDs: nothing to quote).
  const rows = await query.execute({ ids: `{${valid.join(',')}}` });
  return rows.map((r) => ({
    ...r.session,
    dbNow: r.dbNow as Date,
    config: r.config,
    notBefore: r.notBefore ?? null,
  }));
}

/** How often verify records activity: at most one write per session per this many seconds. */
export const TOUCH_INTERVAL_SECONDS = 60;

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
  maxAge?: number | null,
): Promise<VerifiedSession> {
  const maxAgeSeconds = checkMaxAge(maxAge);
  let row: SessionRecord | undefined;
  let dead: ReturnType<typeof deadReason>;
  try {
    const claims = await openSessionToken(deps.keyring, scope, tag, token).catch(refusal);
    row = await loadSession(claims.sessionId);
    if (!row || !belongsTo(row, scope, tag)) throw tokenInvalid();
    dead = deadReason(row, row.dbNow);
    if (dead === 'revoked' || revokedBeforeWatermark(row)) throw sessionRevoked();
    // A session belongs to its config, not to a string: once that config is renamed or
    // deleted, a config that later takes the tag never accepts it.
    if (!configAccepts(row.config, row)) throw tokenInvalid();
  } catch (error) {
    // Off the hot path: only a token that fails asks whether the tag is another env's config.
    if (error instanceof ServiceError && error.code === 'TOKEN_INVALID') {
      await checkConfigAccess(deps.db, scope, tag);
    }
    throw error;
  }
  if (dead === 'expired' || row.expiresAt <= row.dbNow) {
    const idleEnd = idleExpiresAt(row);
    // Idle expiry is told apart: refreshing will not help, the user must sign in again.
    throw idleEnd !== null && idleEnd <= row.dbNow && row.refreshExpiresAt > row.dbNow
      ? idleTimeout()
      : tokenExpired();
  }
  // Freshness: a valid session whose login is older than the caller accepts (step-up).
  if (
    maxAgeSeconds !== null &&
    row.dbNow.getTime() - row.authenticatedAt.getTime() > maxAgeSeconds * 1000
  ) {
    throw reauthenticationRequired(maxAgeSeconds);
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
    authenticatedAt: row.authenticatedAt,
    actor: row.actor,
  };
}

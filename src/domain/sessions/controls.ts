/**
 * Session controls: one user's sessions across every tag (list, sign out everywhere),
 * not-before revocation of a tag or a whole env, step-up (mark fresh) and device names.
 */
import { and, asc, eq, inArray, lt, or, sql, type SQL } from 'drizzle-orm';
import { rowsOf } from '../../db/client.js';
import { sessionRevocationWatermarks, sessions, type SessionRow } from '../../db/schema.js';
import { openSessionToken } from '../../tokens/session-token.js';
import { ownedBy, type Scope } from '../callers.js';
import { requireSessionConfig } from '../configs.js';
import { badInput, impersonationNotFreshenable } from '../errors.js';
import { isLive } from '../liveness.js';
import { MAX_PAGE_SIZE } from '../paging.js';
import { revokeSessionsWhere, sparing } from '../revocation.js';
import { changeLiveSession } from '../session-state.js';
import { checkLength, checkTag } from '../validation.js';
import { WHOLE_ENV } from './controls-rules.js';
import { sessionPage, type SessionPage } from './list.js';
import { MAX_IDENTIFIER_LENGTH } from './shared.js';
import type { SessionDeps } from './types.js';

/** Longest display name a client may give a session's device. */
export const MAX_DEVICE_NAME_LENGTH = 64;

/** Sessions revoked per transaction by a not-before revocation: short locks, verifies unblocked. */
export const NOT_BEFORE_BATCH_SIZE = 500;

const inScopes = (scopes: readonly Scope[]): SQL =>
  or(...scopes.map((s) => and(eq(sessions.productId, s.productId), eq(sessions.env, s.env))))!;

function checkIdentifier(identifier: string): string {
  if (identifier.length === 0) throw badInput('identifier', 'must not be empty');
  return checkLength('identifier', identifier, MAX_IDENTIFIER_LENGTH);
}

/**
 * One page of a user's live sessions in the given envs (the caller's, or every env of the product
 * for the admin key), across every tag (or one tag), newest first. A session lives in the env
 * that started it, so another env's sessions never show.
 */
export async function listUserSessions(
  deps: Pick<SessionDeps, 'db'>,
  scopes: readonly Scope[],
  args: { identifier: string; tag?: string | null; first?: number | null; after?: string | null },
): Promise<SessionPage> {
  const identifier = checkIdentifier(args.identifier);
  if (args.tag != null) checkTag('tag', args.tag);
  const owner = and(
    inScopes(scopes),
    eq(sessions.identifier, identifier),
    args.tag != null ? eq(sessions.tag, args.tag) : undefined,
    isLive,
  );
  return sessionPage(deps.db, owner, args);
}

/**
 * The id of the session a caller's own token belongs to, among the sessions of a page (whose
 * tags it is tried against); null when the token opens to none of them. Never an error: a bad
 * token only means no session is marked current.
 */
export async function currentSessionIdAmong(
  deps: Pick<SessionDeps, 'keyring'>,
  scopes: readonly Scope[],
  token: string | null | undefined,
  rows: readonly Pick<SessionRow, 'id' | 'tag' | 'env'>[],
): Promise<string | null> {
  if (token == null || rows.length === 0) return null;
  const places = new Map(rows.map((r) => [`${r.env}|${r.tag}`, r]));
  for (const row of places.values()) {
    const scope = scopes.find((s) => s.env === row.env);
    if (!scope) continue;
    try {
      const claims = await openSessionToken(deps.keyring, scope, row.tag, token);
      return rows.some((r) => r.id === claims.sessionId) ? claims.sessionId : null;
    } catch {
      // Not this tag's token (or not a token at all): try the next tag.
    }
  }
  return null;
}

/**
 * Signs a user out everywhere: revokes every live session of the identifier in the given
 * scopes (one env, or every env of the product for the admin key), across all tags, but the
 * one excepted; one REVOKED event per session (reason `signed_out_everywhere`). Ends
 * impersonation sessions of the user too. Returns how many were revoked.
 */
export async function revokeUserSessions(
  deps: Pick<SessionDeps, 'db'>,
  scopes: readonly Scope[],
  identifier: string,
  exceptSessionId?: string | null,
): Promise<number> {
  const who = checkIdentifier(identifier);
  const except = sparing(exceptSessionId, 'exceptSessionId');
  const ids = await deps.db.transaction((tx) =>
    revokeSessionsWhere(
      tx,
      and(inScopes(scopes), eq(sessions.identifier, who), isLive, except),
      'signed_out_everywhere',
    ),
  );
  return ids.length;
}

/** The outcome of a not-before revocation. */
export interface NotBeforeResult {
  /** Sessions revoked by this call (already revoked ones not counted). */
  readonly count: number;
  /** The watermark now in force: sessions started before it never verify again. */
  readonly notBefore: Date;
}

/**
 * Revokes every session of a tag (or, with no tag, of the whole env) started before `before`
 * (default: now), without touching the config. First raises the not-before watermark, which
 * verify and refresh check on every call, so every such token is refused at once; then marks
 * the rows in transactions of {@link NOT_BEFORE_BATCH_SIZE}, each with its REVOKED events
 * (reason `not_before`). Verifies never wait for it: they read without locks. Calling it again
 * with the same `before` finishes an interrupted run.
 */
export async function revokeSessionsStartedBefore(
  deps: Pick<SessionDeps, 'db'>,
  scope: Scope,
  args: { tag?: string | null; before?: Date | null },
): Promise<NotBeforeResult> {
  // A tag must name a config this env may use (NOT_FOUND, or FORBIDDEN for another env's).
  const tag =
    args.tag != null ? (await requireSessionConfig(deps.db, scope, args.tag)).tag : WHOLE_ENV;
  if (args.before != null && args.before.getTime() > Date.now()) {
    throw badInput('before', 'must not be in the future');
  }
  // The watermark, by the database clock when no instant is given; it only ever moves later.
  // To the millisecond, the precision of `created_at`.
  const before =
    args.before != null
      ? sql`${args.before.toISOString()}::timestamptz`
      : sql`date_trunc('milliseconds', now())`;
  const raised = rowsOf<{ not_before: string | Date }>(
    await deps.db.execute(sql`
      insert into session_revocation_watermarks (product_id, env, tag, not_before)
      values (${scope.productId}, ${scope.env}, ${tag}, ${before})
      on conflict (product_id, env, tag) do update
        set not_before = greatest(session_revocation_watermarks.not_before, excluded.not_before),
            updated_at = now()
      returning not_before`),
  );
  const notBefore = new Date(raised[0]!.not_before);
  const cutoff = args.before ?? notBefore;
  let total = 0;
  for (;;) {
    const revoked = await deps.db.transaction(async (tx) => {
      const batch = tx
        .select({ id: sessions.id })
        .from(sessions)
        .where(
          and(
            ownedBy(sessions, scope, tag === WHOLE_ENV ? undefined : tag),
            sql`${sessions.revokedAt} is null`,
            lt(sessions.createdAt, cutoff),
          ),
        )
        .orderBy(asc(sessions.createdAt))
        .limit(NOT_BEFORE_BATCH_SIZE)
        .for('update');
      return revokeSessionsWhere(tx, inArray(sessions.id, batch), 'not_before');
    });
    total += revoked.length;
    if (revoked.length === 0) break;
  }
  return { count: total, notBefore };
}

/** The not-before watermarks of an env: its own (`tag` null) and each tag's. */
export async function notBeforeWatermarks(
  deps: Pick<SessionDeps, 'db'>,
  scope: Scope,
): Promise<{ tag: string | null; notBefore: Date }[]> {
  const rows = await deps.db
    .select()
    .from(sessionRevocationWatermarks)
    .where(ownedBy(sessionRevocationWatermarks, scope))
    .orderBy(asc(sessionRevocationWatermarks.tag))
    .limit(MAX_PAGE_SIZE + 1);
  return rows.map((r) => ({ tag: r.tag === WHOLE_ENV ? null : r.tag, notBefore: r.notBefore }));
}

/**
 * Step-up: marks a live session freshly authenticated (after the user proved who they are
 * again), so `verifySession(maxAge:)` accepts it. Returns the session.
 */
export async function markSessionFresh(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  sessionId: string,
): Promise<SessionRow> {
  return changeLiveSession(deps, scope, { tag, sessionId }, (session) => {
    if (session.actor !== null) {
      // An operator acting as the user cannot prove the user's identity.
      throw impersonationNotFreshenable();
    }
    return { set: { authenticatedAt: sql`now()` }, bumpsVersion: false, event: null };
  });
}

/** Gives a live session's device a display name (null clears it). Returns the session. */
export async function setSessionDeviceName(
  deps: SessionDeps,
  scope: Scope,
  tag: string,
  sessionId: string,
  name: string | null,
): Promise<SessionRow> {
  if (name !== null) {
    checkLength('name', name, MAX_DEVICE_NAME_LENGTH);
    if (name.trim().length === 0) throw badInput('name', 'must not be blank (pass null to clear)');
  }
  return changeLiveSession(deps, scope, { tag, sessionId }, () => ({
    set: { deviceName: name },
    bumpsVersion: false,
    event: null,
  }));
}

/** Device history entries as stored. */
export interface PastDevice {
  readonly userAgent: string | null;
  readonly ip: string | null;
  /** When the session moved off this device. */
  readonly until: string;
}

import { and, eq, sql } from 'drizzle-orm';
import { checkSessionId, checkWholeNumber } from './validation.js';
import type { Transaction } from '../db/client.js';
import { sessionConfigs, sessions, type SessionRow } from '../db/schema.js';
import { ownedBy, type Scope } from './callers.js';
import { LIFETIME_LIMITS } from './configs.js';
import { JSON_LIMITS, checkDataAgainstSample, checkJsonObject } from './data-schema.js';
import {
  ServiceError,
  badInput,
  expiredSessionUnchangeable,
  revokedSessionUnchangeable,
  sessionNotFound,
} from './errors.js';
import { recordUserSeen } from './activity/users.js';
import { recordEvents, type SessionEventType } from './events.js';
import { isOver } from './liveness.js';
import { sessionData, type SessionDeps } from './sessions/index.js';

/** Addresses one live session, as every state operation does. */
export interface SessionAddress {
  readonly tag: string;
  readonly sessionId: string;
  /** When given, the write happens only if the data is still at this version (else CONFLICT). */
  readonly expectedVersion?: number | null;
}

const MAX_KEY_LENGTH = 128;

interface Change {
  /** Columns to set (besides the version, which data changes bump). */
  readonly set: Partial<Record<keyof SessionRow, unknown>>;
  readonly bumpsVersion: boolean;
  readonly event: { readonly type: SessionEventType; readonly reason?: string } | null;
}

/**
 * Applies one change to a live session in one transaction holding its row lock: the session must
 * exist in the caller's scope under that tag (NOT_FOUND), be neither revoked (SESSION_REVOKED)
 * nor over (TOKEN_EXPIRED), and be at `expectedVersion` when one is given (CONFLICT).
 */
export async function changeLiveSession(
  deps: SessionDeps,
  scope: Scope,
  address: SessionAddress,
  change: (
    session: SessionRow,
    context: { tx: Transaction; schema: Record<string, unknown>; dbNow: Date },
  ) => Change | Promise<Change>,
): Promise<SessionRow> {
  const id = checkSessionId(address.sessionId);
  return deps.db.transaction(async (tx) => {
    const locked = await tx
      .select({
        session: sessions,
        schema: sessionConfigs.schema,
        dbNow: sql`now()`.mapWith(sessions.createdAt),
        over: sql<boolean>`${isOver}`,
      })
      .from(sessions)
      .innerJoin(sessionConfigs, eq(sessionConfigs.id, sessions.configId))
      .where(and(ownedBy(sessions, scope, address.tag), eq(sessions.id, id)))
      .for('update', { of: sessions });
    const current = locked[0];
    if (!current) {
      throw sessionNotFound(address.tag);
    }
    const session = current.session;
    if (session.revokedAt !== null) {
      throw revokedSessionUnchangeable();
    }
    if (current.over) {
      throw expiredSessionUnchangeable();
    }
    if (address.expectedVersion != null && address.expectedVersion !== session.version) {
      throw new ServiceError(
        'CONFLICT',
        `The session's data is at version ${session.version}, not ${address.expectedVersion}: read it again and retry.`,
      );
    }
    const { set, bumpsVersion, event } = await change(session, {
      tx,
      schema: current.schema as Record<string, unknown>,
      dbNow: current.dbNow as Date,
    });
    const updated = await tx
      .update(sessions)
      .set({
        ...(set as Partial<typeof sessions.$inferInsert>),
        ...(bumpsVersion ? { version: sql`${sessions.version} + 1` } : {}),
      })
      .where(eq(sessions.id, id))
      .returning();
    if (event) {
      await recordEvents(tx, [
        {
          ...scope,
          sessionId: id,
          tag: session.tag,
          identifier: session.identifier,
          type: event.type,
          reason: event.reason ?? null,
          actor: session.actor,
        },
      ]);
    }
    return updated[0]!;
  });
}

/** Checks new data against the config and seals it for the row. */
function sealData(
  deps: SessionDeps,
  session: SessionRow,
  schema: Record<string, unknown>,
  field: string,
  data: unknown,
): Change {
  const serialized = checkJsonObject(field, data, JSON_LIMITS.dataBytes);
  checkDataAgainstSample(field, JSON.parse(serialized) as Record<string, unknown>, schema);
  return {
    set: {
      dataEnc: deps.keyring.dataBox(session.productId, session.env).seal(serialized, session.id),
    },
    bumpsVersion: true,
    event: { type: 'DATA_UPDATED' },
  };
}

function checkKey(key: string): string {
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw badInput('key', `expected 1 to ${MAX_KEY_LENGTH} characters`);
  }
  if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
    throw badInput('key', 'is a reserved name');
  }
  return key;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * Deep merge: objects merge key by key, recursively; anything else (arrays, scalars, null) in
 * the patch replaces what was there.
 */
export function deepMerge(
  base: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    const existing = result[key];
    result[key] = isObject(existing) && isObject(value) ? deepMerge(existing, value) : value;
  }
  return result;
}

/** Replaces the session's data. */
export function updateSessionData(
  deps: SessionDeps,
  scope: Scope,
  address: SessionAddress,
  data: unknown,
): Promise<SessionRow> {
  return changeLiveSession(deps, scope, address, (session, { schema }) =>
    sealData(deps, session, schema, 'data', data),
  );
}

/** Deep-merges into the session's data (see {@link deepMerge}). */
export function mergeSessionData(
  deps: SessionDeps,
  scope: Scope,
  address: SessionAddress,
  patch: unknown,
): Promise<SessionRow> {
  checkJsonObject('data', patch, JSON_LIMITS.dataBytes);
  const normalized = JSON.parse(JSON.stringify(patch)) as Record<string, unknown>;
  return changeLiveSession(deps, scope, address, (session, { schema }) =>
    sealData(
      deps,
      session,
      schema,
      'data',
      deepMerge(sessionData(deps.keyring, session), normalized),
    ),
  );
}

/** Sets one top-level key of the session's data. */
export function setSessionValue(
  deps: SessionDeps,
  scope: Scope,
  address: SessionAddress,
  key: string,
  value: unknown,
): Promise<SessionRow> {
  checkKey(key);
  const normalized: unknown = value === undefined ? null : JSON.parse(JSON.stringify(value));
  return changeLiveSession(deps, scope, address, (session, { schema }) =>
    sealData(deps, session, schema, 'data', {
      ...sessionData(deps.keyring, session),
      [key]: normalized,
    }),
  );
}

/** Removes one top-level key of the session's data (nothing to remove is not an error). */
export function removeSessionValue(
  deps: SessionDeps,
  scope: Scope,
  address: SessionAddress,
  key: string,
): Promise<SessionRow> {
  checkKey(key);
  return changeLiveSession(deps, scope, address, (session, { schema }) => {
    const data = sessionData(deps.keyring, session);
    delete data[key];
    return sealData(deps, session, schema, 'data', data);
  });
}

/** Empties the session's data. */
export function clearSessionData(
  deps: SessionDeps,
  scope: Scope,
  address: SessionAddress,
): Promise<SessionRow> {
  return changeLiveSession(deps, scope, address, (session, { schema }) =>
    sealData(deps, session, schema, 'data', {}),
  );
}

/** Records activity now (what verify does at most once a minute), pushing back the idle timeout. */
export function touchSession(
  deps: SessionDeps,
  scope: Scope,
  address: SessionAddress,
): Promise<SessionRow> {
  return changeLiveSession(deps, scope, address, async (session, { tx }) => {
    await recordUserSeen(tx, session);
    return {
      set: { lastActiveAt: sql`now()` },
      bumpsVersion: false,
      event: null,
    };
  });
}

/** The latest a session's expiry may be moved to: its refresh token's expiry. */
function checkNewExpiry(session: SessionRow, newExpiry: Date, field: string): void {
  if (newExpiry > session.refreshExpiresAt) {
    throw badInput(
      field,
      `would end the session after ${session.refreshExpiresAt.toISOString()}, when its refresh token expires; refresh it first or extend less`,
    );
  }
}

/** Extends the session's expiry by `seconds` (from now, if it had already passed). */
export function extendSession(
  deps: SessionDeps,
  scope: Scope,
  address: SessionAddress,
  seconds: number,
): Promise<SessionRow> {
  checkWholeNumber(
    'seconds',
    seconds,
    { min: 1, max: LIFETIME_LIMITS.maxTokenSeconds },
    `expected whole seconds from 1 to ${LIFETIME_LIMITS.maxTokenSeconds}`,
  );
  return changeLiveSession(deps, scope, address, (session, { dbNow }) => {
    const from = Math.max(session.expiresAt.getTime(), dbNow.getTime());
    const next = new Date(Math.floor((from + seconds * 1000) / 1000) * 1000);
    checkNewExpiry(session, next, 'seconds');
    return {
      set: { expiresAt: next },
      bumpsVersion: false,
      event: { type: 'EXTENDED', reason: `extended by ${seconds} s` },
    };
  });
}

/** Moves the session's expiry to an instant in the future, no later than its refresh token's. */
export function setSessionExpiration(
  deps: SessionDeps,
  scope: Scope,
  address: SessionAddress,
  expiresAt: Date,
): Promise<SessionRow> {
  if (Number.isNaN(expiresAt.getTime())) throw badInput('expiresAt', 'expected an instant');
  return changeLiveSession(deps, scope, address, (session, { dbNow }) => {
    if (expiresAt <= dbNow) {
      throw badInput('expiresAt', 'must be in the future; to end a session now, revoke it');
    }
    checkNewExpiry(session, expiresAt, 'expiresAt');
    return {
      set: { expiresAt },
      bumpsVersion: false,
      event: { type: 'EXTENDED', reason: `expiration set to ${expiresAt.toISOString()}` },
    };
  });
}

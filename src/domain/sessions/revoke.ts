import { and, eq } from 'drizzle-orm';
import { sessions, type SessionRow } from '../../db/schema.js';
import type { Scope } from '../callers.js';
import { sessionNotFound } from '../errors.js';
import { isLive } from '../liveness.js';
import { revokeSessionsWhere, sparing } from '../revocation.js';
import { checkLength, checkSessionId } from '../validation.js';
import { MAX_IDENTIFIER_LENGTH, inScope } from './shared.js';
import type { SessionDeps } from './types.js';

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
      throw sessionNotFound(tag);
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
  const exclude = sparing(excludeSessionId, 'excludeSessionId');
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

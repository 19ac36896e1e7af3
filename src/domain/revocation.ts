import { and, isNull, sql, type SQL } from 'drizzle-orm';
import type { Transaction } from '../db/client.js';
import { sessions } from '../db/schema.js';
import { eventsFor, recordEvents } from './events.js';
import { checkSessionId } from './validation.js';

/** Why a session was revoked, as recorded on the session and its REVOKED event. */
export type RevokeReason =
  | 'revoked'
  | 'revoked_all'
  | 'config_deleted'
  | 'refresh_token_reused'
  | 'session_limit'
  | 'signed_out_everywhere'
  | 'not_before';

/**
 * Revokes every live session matching `where` and records a REVOKED event for each, in the
 * caller's transaction. Sessions already revoked are left as they are. Returns the revoked ids.
 */
export async function revokeSessionsWhere(
  tx: Transaction,
  where: SQL | undefined,
  reason: RevokeReason,
): Promise<string[]> {
  const revoked = await tx
    .update(sessions)
    .set({ revokedAt: sql`now()`, revokeReason: reason })
    .where(and(where, isNull(sessions.revokedAt)))
    .returning({
      id: sessions.id,
      productId: sessions.productId,
      env: sessions.env,
      tag: sessions.tag,
      identifier: sessions.identifier,
      actor: sessions.actor,
    });
  await recordEvents(tx, eventsFor(revoked, 'REVOKED', reason));
  return revoked.map((s) => s.id);
}

/**
 * The condition that spares one session from a revocation of many: none when `sessionId` is
 * null or undefined; a malformed id is refused as the argument `argument`.
 */
export function sparing(sessionId: string | null | undefined, argument: string): SQL | undefined {
  return sessionId != null
    ? sql`${sessions.id} <> ${checkSessionId(sessionId, argument)}`
    : undefined;
}

import { and, isNull, sql, type SQL } from 'drizzle-orm';
import type { Transaction } from '../db/client.js';
import { sessions } from '../db/schema.js';
import { eventsFor, recordEvents } from './events.js';

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

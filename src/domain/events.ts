import type { Transaction } from '../db/client.js';
import { sessionEvents } from '../db/schema.js';

export type SessionEventType = (typeof sessionEvents.$inferInsert)['type'];

/** One event about one session, as written beside the change it describes. */
export interface NewSessionEvent {
  readonly productId: string;
  readonly env: string;
  readonly sessionId: string;
  readonly tag: string;
  readonly identifier: string;
  readonly type: SessionEventType;
  readonly reason?: string | null;
}

/**
 * Writes events inside the caller's transaction, so an event exists exactly when its change was
 * committed. Ids increase with commit order within one writer.
 */
export async function recordEvents(
  tx: Transaction,
  events: readonly NewSessionEvent[],
): Promise<void> {
  if (events.length === 0) return;
  await tx.insert(sessionEvents).values(
    events.map((e) => ({
      productId: e.productId,
      env: e.env,
      sessionId: e.sessionId,
      tag: e.tag,
      identifier: e.identifier,
      type: e.type,
      reason: e.reason ?? null,
    })),
  );
}

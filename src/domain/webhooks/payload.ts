import type { SessionEventRow } from '../../db/schema.js';

/**
 * The body of a webhook for one event, in Standard Webhooks' recommended shape: `type`
 * (`session.<event type>`), `timestamp`, and `data`, the event exactly as the `sessionEvents`
 * subscription shows it. Never a token, a key or session data.
 */
export function webhookPayload(event: SessionEventRow): string {
  return JSON.stringify({
    type: `session.${event.type.toLowerCase()}`,
    timestamp: event.at.toISOString(),
    data: {
      id: String(event.seq),
      type: event.type,
      sessionId: event.sessionId,
      tag: event.tag,
      identifier: event.identifier,
      reason: event.reason,
      actor: event.actor,
      at: event.at.toISOString(),
    },
  });
}

import { and, asc, eq, gt, inArray, max, type SQL } from 'drizzle-orm';
import type { Database, Transaction } from '../db/client.js';
import { sessionEvents, type SessionEventRow } from '../db/schema.js';

export type SessionEventType = SessionEventRow['type'];

export const SESSION_EVENT_TYPES: readonly SessionEventType[] = [
  'STARTED',
  'REFRESHED',
  'REVOKED',
  'EXPIRED',
  'REUSE_DETECTED',
  'EXTENDED',
  'DATA_UPDATED',
];

/** The NOTIFY channel that wakes every instance when events of a scope are committed. */
export const EVENTS_CHANNEL = 'session_service_events';

/** One event about one session, as written beside the change it describes. */
export interface NewSessionEvent {
  readonly productId: string;
  readonly env: string;
  readonly sessionId: string;
  readonly tag: string;
  readonly identifier: string;
  readonly type: SessionEventType;
  readonly reason?: string | null;
  /** The operator acting as the user (impersonated sessions). */
  readonly actor?: string | null;
}

/** What a NOTIFY on {@link EVENTS_CHANNEL} carries: which scope has new events (never their content). */
export interface EventsSignal {
  readonly productId: string;
  readonly env: string;
}

/**
 * Writes events inside the caller's transaction, so an event exists exactly when its change was
 * committed. Their ids (`seq`) and the NOTIFY that wakes every instance come at commit time,
 * from the trigger of migration 0005: within one product and env, ids follow commit order,
 * and writers wait for each other only while their commits complete.
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
      actor: e.actor ?? null,
    })),
  );
}

/** Filters a subscriber may set; absent means any. */
export interface EventFilter {
  readonly tag?: string | null;
  readonly identifier?: string | null;
  readonly types?: readonly SessionEventType[] | null;
}

/** Whether an event passes a subscriber's filter. */
export function matchesFilter(event: SessionEventRow, filter: EventFilter): boolean {
  return (
    (filter.tag == null || event.tag === filter.tag) &&
    (filter.identifier == null || event.identifier === filter.identifier) &&
    (filter.types == null || filter.types.includes(event.type))
  );
}

/** Events of a scope after a sequence number, in commit order, optionally filtered, at most `limit`. */
export async function eventsAfter(
  db: Database,
  scope: EventsSignal,
  afterId: number,
  limit: number,
  filter: EventFilter = {},
): Promise<SessionEventRow[]> {
  const conditions: (SQL | undefined)[] = [
    eq(sessionEvents.productId, scope.productId),
    eq(sessionEvents.env, scope.env),
    gt(sessionEvents.seq, afterId),
    filter.tag != null ? eq(sessionEvents.tag, filter.tag) : undefined,
    filter.identifier != null ? eq(sessionEvents.identifier, filter.identifier) : undefined,
    filter.types != null ? inArray(sessionEvents.type, [...filter.types]) : undefined,
  ];
  return db
    .select()
    .from(sessionEvents)
    .where(and(...conditions))
    .orderBy(asc(sessionEvents.seq))
    .limit(limit);
}

/** The newest sequence number of a scope (0 when it has none): where a live feed starts. */
export async function latestEventId(db: Database, scope: EventsSignal): Promise<number> {
  const rows = await db
    .select({ id: max(sessionEvents.seq) })
    .from(sessionEvents)
    .where(and(eq(sessionEvents.productId, scope.productId), eq(sessionEvents.env, scope.env)));
  return Number(rows[0]?.id ?? 0);
}

import { and, asc, eq, gt, inArray, max, sql, type SQL } from 'drizzle-orm';
import {
  rowsOf,
  signalEventsWritten,
  type Database,
  type DatabaseHandle,
  type Transaction,
} from '../db/client.js';
import type { SessionEventType } from '../contract/enums.js';
import { sessionEvents, type SessionEventRow } from '../db/schema.js';
import { ownedBy } from './callers.js';

export type { SessionEventType } from '../contract/enums.js';

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

/** The columns of a session an event names. */
export interface EventSubject {
  readonly id: string;
  readonly productId: string;
  readonly env: string;
  readonly tag: string;
  readonly identifier: string;
  /** The operator acting as the user (impersonated sessions). */
  readonly actor?: string | null;
}

/** One event of `type` for each session. */
export function eventsFor(
  subjects: readonly EventSubject[],
  type: SessionEventType,
  reason: string | null = null,
): NewSessionEvent[] {
  return subjects.map((s) => ({
    productId: s.productId,
    env: s.env,
    sessionId: s.id,
    tag: s.tag,
    identifier: s.identifier,
    type,
    reason,
    actor: s.actor ?? null,
  }));
}

/** What a NOTIFY on {@link EVENTS_CHANNEL} carries: which scope has new events (never their content). */
export interface EventsSignal {
  readonly productId: string;
  readonly env: string;
}

/** What {@link listenForEvents} calls. */
export interface EventsListener {
  /** A scope has new events. */
  onSignal(signal: EventsSignal): void;
  /** A notification that is not a signal (or that `onSignal` could not take). */
  onMalformed(): void;
  /** The listening connection is (re)established: events may have been missed. */
  onListen(): void;
}

/** Follows the NOTIFYs on {@link EVENTS_CHANNEL}; resolves once they flow. */
export function listenForEvents(
  listen: DatabaseHandle['listen'],
  listener: EventsListener,
): Promise<void> {
  return listen(
    EVENTS_CHANNEL,
    (payload) => {
      try {
        listener.onSignal(JSON.parse(payload) as EventsSignal);
      } catch {
        listener.onMalformed();
      }
    },
    () => listener.onListen(),
  );
}

/**
 * Writes events inside the caller's transaction, so an event exists exactly when its change was
 * committed. Their ids (`seq`) and the NOTIFY that wakes every instance come after the commit,
 * from {@link sequencePendingEvents} (run by the `EventSequencer`): within one product and env,
 * ids follow commit order, and writers never wait for each other.
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
  signalEventsWritten(tx);
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
    ownedBy(sessionEvents, scope, filter.tag ?? undefined),
    gt(sessionEvents.seq, afterId),
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

/**
 * The newest sequence number of a scope (0 when it has none): where a live feed starts. Events
 * already committed are numbered first, so a caller sees the ids of its own writes.
 */
export async function latestEventId(db: Database, scope: EventsSignal): Promise<number> {
  await sequenceAllPendingEvents(db);
  const rows = await db
    .select({ id: max(sessionEvents.seq) })
    .from(sessionEvents)
    .where(ownedBy(sessionEvents, scope));
  return Number(rows[0]?.id ?? 0);
}

/** The advisory lock every sweep takes first (hard-coded in migration 0009's function). */
export const SEQUENCER_LOCK = 7_453_201_999;

/** Rows one sweep numbers at most; a larger backlog takes several sweeps. */
export const SEQUENCE_BATCH = 5_000;

/**
 * Numbers committed events that have no id yet, oldest first (at most `maxRows`), and notifies
 * their scopes on {@link EVENTS_CHANNEL}; returns how many it numbered. One sweep at a time per
 * database (migration 0009 says why that keeps ids in commit order); safe to call from any
 * instance at any time.
 */
export async function sequencePendingEvents(
  db: Database,
  maxRows: number = SEQUENCE_BATCH,
): Promise<number> {
  const result = await db.execute(
    sql`select session_events_sequence_pending(${maxRows}::integer) as n`,
  );
  return Number(rowsOf<{ n: number | string }>(result)[0]?.n ?? 0);
}

/** Numbers every committed event that has no id yet (several sweeps for a large backlog). */
export async function sequenceAllPendingEvents(db: Database): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await sequencePendingEvents(db, SEQUENCE_BATCH);
    total += n;
    if (n < SEQUENCE_BATCH) return total;
  }
}

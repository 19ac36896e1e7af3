import { and, asc, desc, eq, inArray, isNull, lt, lte, or, sql } from 'drizzle-orm';
import type { Database, Transaction } from '../../db/client.js';
import {
  webhookAttempts,
  webhookDeliveries,
  webhookEndpoints,
  type WebhookAttemptRow,
  type WebhookDeliveryRow,
  type WebhookEndpointRow,
} from '../../db/schema.js';
import { inScopeOf, type Scope } from '../callers.js';
import { badInput, webhookDeliveryNotFound } from '../errors.js';
import { eventsAfter, type EventsSignal, type SessionEventType } from '../events.js';
import { UUID_PATTERN, checkWholeNumber } from '../validation.js';
import { getEndpoint } from './endpoints.js';
import { webhookPayload } from './payload.js';
import { retryDelayMs, type WebhookSettings } from './settings.js';

/** Events read per query when queueing an endpoint's deliveries. */
const ENQUEUE_PAGE = 500;
/** Attempts shown per delivery (the newest). */
export const ATTEMPTS_SHOWN = 50;
/** Pages of deliveries: 20 by default, at most 100. */
export const DELIVERY_PAGE = { default: 20, max: 100 } as const;

/** The pending delivery at the head of an endpoint's queue: events go out in id order. */
const headDueAt = (endpointId: string) =>
  sql`(select d.next_attempt_at from webhook_deliveries d where d.endpoint_id = ${endpointId} and d.status = 'pending' order by d.event_seq limit 1)`;

/**
 * Queues a delivery, for every enabled endpoint of the scope, of each event committed after the
 * endpoint's cursor that passes its filter. Events are read through the subscriptions' read path
 * (`eventsAfter`), in id order. One short transaction per endpoint and page, holding the
 * endpoint's row: instances doing this at once queue nothing twice. Returns how many it queued.
 */
export async function enqueueEvents(db: Database, scope: EventsSignal): Promise<number> {
  const endpoints = await db
    .select({ id: webhookEndpoints.id })
    .from(webhookEndpoints)
    .where(and(inScopeOf(webhookEndpoints, scope), eq(webhookEndpoints.enabled, true)));
  let queued = 0;
  for (const { id } of endpoints) {
    for (;;) {
      const read = await db.transaction(async (tx) => {
        const [endpoint] = await tx
          .select({
            cursor: webhookEndpoints.cursor,
            eventTypes: webhookEndpoints.eventTypes,
            enabled: webhookEndpoints.enabled,
          })
          .from(webhookEndpoints)
          .where(eq(webhookEndpoints.id, id))
          .for('update');
        if (!endpoint?.enabled) return 0;
        const events = await eventsAfter(
          tx as unknown as Database,
          scope,
          endpoint.cursor,
          ENQUEUE_PAGE,
          { types: endpoint.eventTypes as SessionEventType[] | null },
        );
        if (events.length === 0) return 0;
        await tx
          .insert(webhookDeliveries)
          .values(
            events.map((event) => ({
              endpointId: id,
              eventSeq: event.seq!,
              eventType: event.type,
              payload: webhookPayload(event),
              eventAt: event.at,
              nextAttemptAt: sql`now()`,
            })),
          )
          .onConflictDoNothing();
        await tx
          .update(webhookEndpoints)
          .set({
            cursor: events[events.length - 1]!.seq!,
            nextAttemptAt: sql`coalesce(${webhookEndpoints.nextAttemptAt}, now())`,
          })
          .where(eq(webhookEndpoints.id, id));
        return events.length;
      });
      queued += read;
      if (read < ENQUEUE_PAGE) break;
    }
  }
  return queued;
}

/** Every product and env with an enabled endpoint (what a periodic pass queues for). */
export async function scopesWithEndpoints(db: Database): Promise<EventsSignal[]> {
  return db
    .selectDistinct({ productId: webhookEndpoints.productId, env: webhookEndpoints.env })
    .from(webhookEndpoints)
    .where(eq(webhookEndpoints.enabled, true));
}

/**
 * Leases up to `limit` endpoints whose next delivery is due and that no live instance holds
 * (`FOR UPDATE SKIP LOCKED`, then a lease until `leaseMs` from now: an instance that dies
 * mid-delivery lets go when its lease runs out). The most overdue first.
 */
export async function claimDueEndpoints(
  db: Database,
  owner: string,
  limit: number,
  leaseMs: number,
): Promise<WebhookEndpointRow[]> {
  if (limit <= 0) return [];
  const due = db
    .select({ id: webhookEndpoints.id })
    .from(webhookEndpoints)
    .where(
      and(
        eq(webhookEndpoints.enabled, true),
        lte(webhookEndpoints.nextAttemptAt, sql`now()`),
        or(isNull(webhookEndpoints.leaseUntil), lt(webhookEndpoints.leaseUntil, sql`now()`)),
      ),
    )
    .orderBy(asc(webhookEndpoints.nextAttemptAt))
    .limit(limit)
    .for('update', { skipLocked: true });
  return db
    .update(webhookEndpoints)
    .set({
      leaseOwner: owner,
      leaseUntil: sql`now() + make_interval(secs => ${leaseMs / 1000})`,
    })
    .where(inArray(webhookEndpoints.id, due))
    .returning();
}

/** The endpoint's next delivery when it is due now (in event id order), else undefined. */
export async function dueHead(
  db: Database,
  endpointId: string,
): Promise<WebhookDeliveryRow | undefined> {
  const rows = await db
    .select({
      delivery: webhookDeliveries,
      due: sql<boolean>`${webhookDeliveries.nextAttemptAt} <= now()`,
    })
    .from(webhookDeliveries)
    .where(
      and(eq(webhookDeliveries.endpointId, endpointId), eq(webhookDeliveries.status, 'pending')),
    )
    .orderBy(asc(webhookDeliveries.eventSeq))
    .limit(1);
  const head = rows[0];
  return head && head.due ? head.delivery : undefined;
}

/** One attempt's outcome, as the sender saw it. */
export interface AttemptOutcome {
  readonly succeeded: boolean;
  readonly responseCode: number | null;
  readonly latencyMs: number;
  readonly error: string | null;
}

/** What recording an attempt decided. */
export interface AttemptResult {
  /** The delivery was given up (`FAILED`) after its last attempt. */
  readonly gaveUp: boolean;
  /** The endpoint was disabled by this failure (its failure run reached the setting). */
  readonly disabled: boolean;
  /** This instance no longer holds the endpoint's lease: it must stop delivering to it. */
  readonly leaseLost: boolean;
}

/**
 * Records an attempt: the attempt row, the delivery's new state (delivered, retried later with
 * exponential backoff, or given up after `maxAttempts`), the endpoint's failure run (disabling
 * it at `disableAfterFailures`) and a renewed lease, in one transaction.
 */
export async function recordAttempt(
  db: Database,
  settings: WebhookSettings,
  owner: string,
  leaseMs: number,
  delivery: WebhookDeliveryRow,
  outcome: AttemptOutcome,
): Promise<AttemptResult> {
  return db.transaction(async (tx) => {
    const attempts = delivery.attempts + 1;
    const gaveUp = !outcome.succeeded && attempts >= settings.maxAttempts;
    const retryMs = outcome.succeeded || gaveUp ? null : retryDelayMs(settings, attempts);
    const nextAttemptAt =
      retryMs === null ? null : sql`now() + make_interval(secs => ${retryMs / 1000})`;
    const [updated] = await tx
      .update(webhookDeliveries)
      .set({
        attempts,
        status: outcome.succeeded ? 'delivered' : gaveUp ? 'failed' : 'pending',
        nextAttemptAt,
        lastResponseCode: outcome.responseCode,
        lastError: outcome.error,
        deliveredAt: outcome.succeeded ? sql`now()` : null,
      })
      .where(
        and(
          eq(webhookDeliveries.id, delivery.id),
          eq(webhookDeliveries.status, 'pending'),
          // Not redelivered since it was read (a redelivery starts a new run).
          eq(webhookDeliveries.attempts, delivery.attempts),
        ),
      )
      .returning({ nextAttemptAt: webhookDeliveries.nextAttemptAt });
    await tx.insert(webhookAttempts).values({
      deliveryId: delivery.id,
      succeeded: outcome.succeeded,
      responseCode: outcome.responseCode,
      latencyMs: outcome.latencyMs,
      error: outcome.error,
      nextAttemptAt: updated?.nextAttemptAt ?? null,
    });
    const [endpoint] = await tx
      .update(webhookEndpoints)
      .set({
        failureRun: outcome.succeeded ? 0 : sql`${webhookEndpoints.failureRun} + 1`,
        leaseUntil: sql`now() + make_interval(secs => ${leaseMs / 1000})`,
      })
      .where(
        and(eq(webhookEndpoints.id, delivery.endpointId), eq(webhookEndpoints.leaseOwner, owner)),
      )
      .returning({ failureRun: webhookEndpoints.failureRun });
    if (!endpoint) return { gaveUp, disabled: false, leaseLost: true };
    let disabled = false;
    if (!outcome.succeeded && endpoint.failureRun >= settings.disableAfterFailures) {
      await tx
        .update(webhookEndpoints)
        .set({
          enabled: false,
          disabledAt: sql`now()`,
          disabledReason: `${endpoint.failureRun} failed attempts in a row`,
        })
        .where(eq(webhookEndpoints.id, delivery.endpointId));
      disabled = true;
    }
    return { gaveUp, disabled, leaseLost: false };
  });
}

/** Holds an endpoint's row until the transaction ends: one writer at a time of its deliveries. */
async function lockEndpoint(tx: Transaction, endpointId: string): Promise<void> {
  await tx
    .select({ id: webhookEndpoints.id })
    .from(webhookEndpoints)
    .where(eq(webhookEndpoints.id, endpointId))
    .for('update');
}

/**
 * Lets go of an endpoint's lease, and notes when its next delivery is due: its queue's head's
 * (null when nothing is pending), or `notBeforeMs` from now at the earliest (after an error of
 * the server's own, so that an endpoint it cannot serve is not retried in a loop). Done under
 * the endpoint's row lock, so a delivery queued meanwhile is seen.
 */
export async function releaseEndpoint(
  db: Database,
  endpointId: string,
  owner: string,
  notBeforeMs = 0,
): Promise<void> {
  await db.transaction(async (tx) => {
    await lockEndpoint(tx, endpointId);
    await tx
      .update(webhookEndpoints)
      .set({
        nextAttemptAt:
          notBeforeMs > 0
            ? sql`greatest(${headDueAt(endpointId)}, now() + make_interval(secs => ${notBeforeMs / 1000}))`
            : headDueAt(endpointId),
        leaseOwner: null,
        leaseUntil: null,
      })
      .where(and(eq(webhookEndpoints.id, endpointId), eq(webhookEndpoints.leaseOwner, owner)));
  });
}

/** A delivery with its newest attempts, oldest first. */
export type DeliveryWithAttempts = WebhookDeliveryRow & {
  readonly attemptLog: WebhookAttemptRow[];
};

/**
 * An endpoint's deliveries, newest event first, `first` a page (at most 100), before an event
 * id, optionally of one status; with their attempts, read in one more query for the whole page.
 */
export async function listDeliveries(
  db: Database,
  endpointId: string,
  options: {
    first?: number | null;
    before?: string | null;
    status?: WebhookDeliveryRow['status'] | null;
  },
): Promise<DeliveryWithAttempts[]> {
  const first = checkWholeNumber(
    'first',
    options.first ?? DELIVERY_PAGE.default,
    { min: 0, max: DELIVERY_PAGE.max },
    `expected 0 to ${DELIVERY_PAGE.max}`,
  );
  let before: number | undefined;
  if (options.before != null) {
    if (!/^\d{1,15}$/.test(options.before)) throw badInput('before', 'expected an event id');
    before = Number(options.before);
  }
  if (first === 0) return [];
  const rows = await db
    .select()
    .from(webhookDeliveries)
    .where(
      and(
        eq(webhookDeliveries.endpointId, endpointId),
        before !== undefined ? lt(webhookDeliveries.eventSeq, before) : undefined,
        options.status ? eq(webhookDeliveries.status, options.status) : undefined,
      ),
    )
    .orderBy(desc(webhookDeliveries.eventSeq))
    .limit(first);
  return withAttempts(db, rows);
}

/** Deliveries with their newest attempts, read in one query for all of them. */
export async function withAttempts(
  db: Database,
  rows: WebhookDeliveryRow[],
): Promise<DeliveryWithAttempts[]> {
  if (rows.length === 0) return [];
  const attempts = await db
    .select()
    .from(webhookAttempts)
    .where(
      inArray(
        webhookAttempts.deliveryId,
        rows.map((r) => r.id),
      ),
    )
    .orderBy(asc(webhookAttempts.id));
  const byDelivery = new Map<string, WebhookAttemptRow[]>();
  for (const attempt of attempts) {
    const list = byDelivery.get(attempt.deliveryId) ?? [];
    list.push(attempt);
    byDelivery.set(attempt.deliveryId, list);
  }
  return rows.map((row) => ({
    ...row,
    attemptLog: (byDelivery.get(row.id) ?? []).slice(-ATTEMPTS_SHOWN),
  }));
}

/**
 * Sends a delivery again: a delivered or given-up one gets a fresh run of attempts, a pending
 * one is made due now; both keep their `webhook-id`, so receivers that kept it can tell.
 */
export async function redeliver(
  db: Database,
  scope: Scope,
  deliveryId: string,
): Promise<WebhookDeliveryRow> {
  if (!UUID_PATTERN.test(deliveryId)) throw webhookDeliveryNotFound();
  const [found] = await db
    .select({ endpointId: webhookDeliveries.endpointId })
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.id, deliveryId.toLowerCase()));
  if (!found) throw webhookDeliveryNotFound();
  // NOT_FOUND too when the delivery belongs to another product's or env's endpoint.
  const endpoint = await getEndpoint(db, scope, found.endpointId).catch(() => {
    throw webhookDeliveryNotFound();
  });
  return db.transaction(async (tx) => {
    await lockEndpoint(tx, endpoint.id);
    const [row] = await tx
      .update(webhookDeliveries)
      .set({
        status: 'pending',
        // A pending one (perhaps in flight) keeps its run; a finished one starts a new run.
        attempts: sql`case when ${webhookDeliveries.status} = 'pending' then ${webhookDeliveries.attempts} else 0 end`,
        nextAttemptAt: sql`now()`,
        deliveredAt: null,
      })
      .where(eq(webhookDeliveries.id, deliveryId.toLowerCase()))
      .returning();
    await tx
      .update(webhookEndpoints)
      .set({ nextAttemptAt: headDueAt(endpoint.id) })
      .where(eq(webhookEndpoints.id, endpoint.id));
    return row!;
  });
}

/**
 * Deletes finished (delivered or given-up) deliveries queued more than `retentionSeconds` ago,
 * with their attempts, at most `batch` a call: what is kept stays bounded.
 */
export async function pruneDeliveries(
  db: Database,
  retentionSeconds: number,
  batch: number,
): Promise<number> {
  const old = db
    .select({ id: webhookDeliveries.id })
    .from(webhookDeliveries)
    .where(
      and(
        inArray(webhookDeliveries.status, ['delivered', 'failed']),
        lt(webhookDeliveries.createdAt, sql`now() - make_interval(secs => ${retentionSeconds})`),
      ),
    )
    .limit(batch)
    .for('update', { skipLocked: true });
  const deleted = await db
    .delete(webhookDeliveries)
    .where(inArray(webhookDeliveries.id, old))
    .returning({ id: webhookDeliveries.id });
  return deleted.length;
}

import { randomUUID } from 'node:crypto';
import { and, asc, count, eq, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { webhookDeliveries, webhookEndpoints, type WebhookEndpointRow } from '../../db/schema.js';
import type { SealedBox } from '../../tokens/sealed-box.js';
import { inScopeOf, type Scope } from '../callers.js';
import { ServiceError, badInput, webhookEndpointNotFound } from '../errors.js';
import { latestEventId, type SessionEventType } from '../events.js';
import { SESSION_EVENT_TYPES } from '../../contract/enums.js';
import { UUID_PATTERN, checkWholeNumber } from '../validation.js';
import type { WebhookSettings } from './settings.js';
import { newWebhookSecret } from './signature.js';
import { checkUrlAddresses, parseEndpointUrl } from './url-policy.js';

/** Longest endpoint description. */
export const MAX_WEBHOOK_DESCRIPTION_CHARS = 500;
/** Most entries in an event-type filter as sent (before duplicates are dropped). */
export const MAX_EVENT_TYPE_FILTER = 20;
/** Longest overlap after a rotation during which the previous secret still signs: 7 days. */
export const MAX_ROTATION_OVERLAP_SECONDS = 7 * 86_400;
/** The overlap when none is given: 24 hours. */
export const DEFAULT_ROTATION_OVERLAP_SECONDS = 86_400;

/** The box an endpoint's signing secrets are sealed with, per product and env. */
export type SecretBoxes = (productId: string, env: string) => SealedBox;

/** What webhook management needs beside the database. */
export interface WebhookDeps {
  readonly db: Database;
  readonly boxes: SecretBoxes;
  readonly settings: WebhookSettings;
}

/**
 * An endpoint as the caller gives it, unchecked: all of it to create one (`url` required), or the
 * parts to change in an update (absent or null: left as it is).
 */
export interface EndpointInput {
  readonly url?: string | null;
  readonly description?: string | null;
  /** Only these event types; null or absent: every type. */
  readonly eventTypes?: readonly string[] | null;
  readonly enabled?: boolean | null;
}

/** An endpoint with its signing secret, which is shown only in this answer. */
export interface EndpointWithSecret {
  readonly endpoint: WebhookEndpointRow;
  readonly secret: string;
}

const aad = (endpointId: string) => `webhook-secret\u0000${endpointId}`;

function checkDescription(value: string | null | undefined): string {
  const text = (value ?? '').trim();
  if (text.length > MAX_WEBHOOK_DESCRIPTION_CHARS) {
    throw badInput(
      'input.description',
      `must be at most ${MAX_WEBHOOK_DESCRIPTION_CHARS} characters`,
    );
  }
  return text;
}

function checkEventTypes(value: readonly string[] | null | undefined): SessionEventType[] | null {
  if (value == null) return null;
  if (value.length > MAX_EVENT_TYPE_FILTER) {
    throw badInput('input.eventTypes', `must list at most ${MAX_EVENT_TYPE_FILTER} types`);
  }
  if (value.length === 0) {
    throw badInput('input.eventTypes', 'must list at least one type (or be null for every type)');
  }
  const known = new Set<string>(SESSION_EVENT_TYPES);
  for (const type of value) {
    if (!known.has(type)) throw badInput('input.eventTypes', 'names an unknown event type');
  }
  return SESSION_EVENT_TYPES.filter((t) => value.includes(t));
}

async function checkUrl(text: string, settings: WebhookSettings): Promise<string> {
  const url = parseEndpointUrl(text, settings, 'input.url');
  await checkUrlAddresses(url, settings, 'input.url');
  return url.toString();
}

/**
 * Creates an endpoint in a product and env, with a new signing secret (returned once). It
 * receives the events committed from now on. At most `maxEndpointsPerEnv` per product and env:
 * concurrent creates queue on a per-scope lock, so they never pass it.
 */
export async function createEndpoint(
  deps: WebhookDeps,
  scope: Scope,
  input: EndpointInput,
): Promise<EndpointWithSecret> {
  if (input.url == null) throw badInput('input.url', 'is required');
  const url = await checkUrl(input.url, deps.settings);
  const description = checkDescription(input.description);
  const eventTypes = checkEventTypes(input.eventTypes);
  const id = randomUUID();
  const secret = newWebhookSecret();
  const secretEnc = deps.boxes(scope.productId, scope.env).seal(secret, aad(id));
  const endpoint = await deps.db.transaction(async (tx) => {
    await tx.execute(
      sql`select pg_advisory_xact_lock(hashtextextended(${`webhooks|${scope.productId}|${scope.env}`}, 0))`,
    );
    const [existing] = await tx
      .select({ n: count() })
      .from(webhookEndpoints)
      .where(
        and(eq(webhookEndpoints.productId, scope.productId), eq(webhookEndpoints.env, scope.env)),
      );
    const limit = deps.settings.maxEndpointsPerEnv;
    if ((existing?.n ?? 0) >= limit) {
      throw new ServiceError(
        'LIMIT_EXCEEDED',
        `This environment has ${limit} webhook endpoints, the most allowed (WEBHOOK_MAX_ENDPOINTS_PER_ENV); delete one first.`,
        undefined,
        { limit },
      );
    }
    // Where its feed starts: events committed after this are numbered above it.
    const cursor = await latestEventId(tx as unknown as Database, scope);
    const [row] = await tx
      .insert(webhookEndpoints)
      .values({
        id,
        productId: scope.productId,
        env: scope.env,
        url,
        description,
        eventTypes,
        secretEnc,
        cursor,
      })
      .returning();
    return row!;
  });
  return { endpoint, secret };
}

/** The endpoint with this id in the scope; NOT_FOUND for any other product's or env's. */
export async function getEndpoint(
  db: Database,
  scope: Scope,
  id: string,
): Promise<WebhookEndpointRow> {
  if (!UUID_PATTERN.test(id)) throw webhookEndpointNotFound();
  const rows = await db
    .select()
    .from(webhookEndpoints)
    .where(and(eq(webhookEndpoints.id, id.toLowerCase()), inScopeOf(webhookEndpoints, scope)));
  if (!rows[0]) throw webhookEndpointNotFound();
  return rows[0];
}

/** The scope's endpoints, oldest first (at most `maxEndpointsPerEnv`). */
export async function listEndpoints(db: Database, scope: Scope): Promise<WebhookEndpointRow[]> {
  return db
    .select()
    .from(webhookEndpoints)
    .where(
      and(eq(webhookEndpoints.productId, scope.productId), eq(webhookEndpoints.env, scope.env)),
    )
    .orderBy(asc(webhookEndpoints.createdAt), asc(webhookEndpoints.id));
}

/**
 * Changes what is given. Enabling a disabled endpoint resets its failure run and resumes
 * delivery where it stopped; disabling stops delivery (events keep being kept for it).
 */
export async function updateEndpoint(
  deps: WebhookDeps,
  scope: Scope,
  id: string,
  patch: EndpointInput & { readonly allEventTypes?: boolean | null },
): Promise<WebhookEndpointRow> {
  const current = await getEndpoint(deps.db, scope, id);
  const changes: Partial<typeof webhookEndpoints.$inferInsert> = { updatedAt: new Date() };
  if (patch.url != null) changes.url = await checkUrl(patch.url, deps.settings);
  if (patch.description != null) changes.description = checkDescription(patch.description);
  if (patch.allEventTypes === true && patch.eventTypes != null) {
    throw badInput('input.allEventTypes', 'give either eventTypes or allEventTypes, not both');
  }
  if (patch.allEventTypes === true) changes.eventTypes = null;
  else if (patch.eventTypes != null) changes.eventTypes = checkEventTypes(patch.eventTypes);
  if (patch.enabled === true && !current.enabled) {
    // Anything pending is due again now (its backoff was the endpoint's failure).
    await deps.db
      .update(webhookDeliveries)
      .set({ nextAttemptAt: sql`now()` })
      .where(
        and(eq(webhookDeliveries.endpointId, current.id), eq(webhookDeliveries.status, 'pending')),
      );
    Object.assign(changes, {
      enabled: true,
      disabledAt: null,
      disabledReason: null,
      failureRun: 0,
      nextAttemptAt: sql`now()`,
    });
  } else if (patch.enabled === false && current.enabled) {
    Object.assign(changes, { enabled: false, disabledAt: new Date(), disabledReason: 'disabled' });
  }
  const [row] = await deps.db
    .update(webhookEndpoints)
    .set(changes)
    .where(eq(webhookEndpoints.id, current.id))
    .returning();
  return row!;
}

/** Deletes an endpoint with its deliveries and attempts. */
export async function deleteEndpoint(db: Database, scope: Scope, id: string): Promise<string> {
  const current = await getEndpoint(db, scope, id);
  await db.delete(webhookEndpoints).where(eq(webhookEndpoints.id, current.id));
  return current.id;
}

/**
 * Gives the endpoint a new signing secret (returned once). The previous one keeps signing
 * beside it for `overlapSeconds` (0 ends it at once), so receivers can switch without a gap.
 */
export async function rotateSecret(
  deps: WebhookDeps,
  scope: Scope,
  id: string,
  overlapSeconds: number | null | undefined,
): Promise<EndpointWithSecret> {
  const overlap = checkWholeNumber(
    'overlapSeconds',
    overlapSeconds ?? DEFAULT_ROTATION_OVERLAP_SECONDS,
    { min: 0, max: MAX_ROTATION_OVERLAP_SECONDS },
    `expected a whole number of seconds from 0 to ${MAX_ROTATION_OVERLAP_SECONDS}`,
  );
  const current = await getEndpoint(deps.db, scope, id);
  const secret = newWebhookSecret();
  const secretEnc = deps.boxes(scope.productId, scope.env).seal(secret, aad(current.id));
  const [endpoint] = await deps.db
    .update(webhookEndpoints)
    .set({
      secretEnc,
      previousSecretEnc: overlap > 0 ? sql`${webhookEndpoints.secretEnc}` : null,
      previousSecretExpiresAt: overlap > 0 ? sql`now() + make_interval(secs => ${overlap})` : null,
      updatedAt: new Date(),
    })
    .where(eq(webhookEndpoints.id, current.id))
    .returning();
  return { endpoint: endpoint!, secret };
}

/** The secrets that sign a message now: the current one, and the previous during its overlap. */
export function signingSecrets(
  box: SealedBox,
  endpoint: Pick<
    WebhookEndpointRow,
    'id' | 'secretEnc' | 'previousSecretEnc' | 'previousSecretExpiresAt'
  >,
  now: Date,
): string[] {
  const secrets = [box.open(endpoint.secretEnc, aad(endpoint.id))];
  if (
    endpoint.previousSecretEnc &&
    endpoint.previousSecretExpiresAt &&
    endpoint.previousSecretExpiresAt.getTime() > now.getTime()
  ) {
    secrets.push(box.open(endpoint.previousSecretEnc, aad(endpoint.id)));
  }
  return secrets;
}

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Database, DatabaseHandle } from '../db/client.js';
import { eq } from 'drizzle-orm';
import { webhookEndpoints, type WebhookEndpointRow } from '../db/schema.js';
import { listenForEvents, type EventsSignal } from '../domain/events.js';
import {
  claimDueEndpoints,
  dueHead,
  enqueueEvents,
  pruneDeliveries,
  recordAttempt,
  releaseEndpoint,
  scopesWithEndpoints,
} from '../domain/webhooks/deliveries.js';
import { signingSecrets, type SecretBoxes } from '../domain/webhooks/endpoints.js';
import type { WebhookSettings } from '../domain/webhooks/settings.js';
import { signatureHeader } from '../domain/webhooks/signature.js';
import type { WebhookMetrics } from './webhook-metrics.js';
import { sendWebhook } from './webhook-sender.js';

/** Deliveries sent to one endpoint before its lease is given back (so others get turns). */
const TURN = 50;
/** How often an instance deletes old finished deliveries (a batch at a time). */
const PRUNE_EVERY_MS = 60_000;
/** How long an endpoint waits after a failure of the server's own while serving it. */
const ERROR_BACKOFF_MS = 30_000;

/**
 * Delivers queued webhooks from this instance. Work lives in the database, never in memory:
 * deliveries are queued from the event table, endpoints are leased with `FOR UPDATE SKIP LOCKED`
 * and a lease time, and every attempt is recorded before the next. So several instances share
 * the work, each endpoint is served by one of them at a time (in event order), and a killed
 * instance's endpoints are picked up once its leases run out.
 *
 * Isolation: at most `concurrency` endpoints at once per instance, one request at a time per
 * endpoint, each bounded by `timeoutMs`; a failing endpoint waits out its backoff holding no
 * slot. Requests to endpoints never run on the request path of the API.
 */
export class WebhookWorker {
  readonly #db: Database;
  readonly #listen: DatabaseHandle['listen'];
  readonly #boxes: SecretBoxes;
  readonly #settings: WebhookSettings;
  readonly #logger: Logger;
  readonly #metrics: WebhookMetrics;
  /** This instance's name on the leases it takes. */
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly #leaseMs: number;
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #pendingScopes = new Map<string, EventsSignal>();
  /** Scopes that had an enabled endpoint at the last pass (refreshed every poll interval). */
  #scopesWithEndpoints = new Set<string>();
  #attempts = 0;
  #lastPrune = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #enqueuing = false;
  #claiming = false;
  #claimAgain = false;

  constructor(
    db: Database,
    listen: DatabaseHandle['listen'],
    boxes: SecretBoxes,
    settings: WebhookSettings,
    logger: Logger,
    metrics: WebhookMetrics,
  ) {
    this.#db = db;
    this.#listen = listen;
    this.#boxes = boxes;
    this.#settings = settings;
    this.#logger = logger;
    this.#metrics = metrics;
    // Longer than an attempt, renewed after each: a live instance never loses its lease.
    this.#leaseMs = settings.timeoutMs * 2 + 5_000;
  }

  /** Starts: queues what was committed while no instance ran, then follows notifications. */
  async start(): Promise<void> {
    await listenForEvents(this.#listen, {
      onSignal: (signal) => {
        // Scopes with no endpoint (as of the last pass) cost nothing: no query per event.
        if (this.#scopesWithEndpoints.has(`${signal.productId}|${signal.env}`)) {
          this.#enqueue([{ productId: signal.productId, env: signal.env }]);
        }
      },
      // Malformed: the periodic pass catches up anyway.
      onMalformed: () => {},
      onListen: () => void this.#tick(),
    });
    this.#schedule();
  }

  /** Stops taking work and waits for attempts in flight (each bounded by its timeout). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await Promise.allSettled([...this.#inFlight.values()]);
  }

  /** Attempts this instance has made since it started. */
  get attemptsMade(): number {
    return this.#attempts;
  }

  /** Endpoints being delivered to by this instance now. */
  get activeEndpoints(): number {
    return this.#inFlight.size;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.#tick().finally(() => this.#schedule());
    }, this.#settings.pollIntervalMs);
    this.#timer.unref();
  }

  /** The periodic pass: queue for every scope with endpoints, then deliver what is due. */
  async #tick(): Promise<void> {
    if (this.#stopped) return;
    try {
      const scopes = await scopesWithEndpoints(this.#db);
      this.#scopesWithEndpoints = new Set(scopes.map((x) => `${x.productId}|${x.env}`));
      this.#enqueue(scopes);
      if (Date.now() - this.#lastPrune > PRUNE_EVERY_MS) {
        this.#lastPrune = Date.now();
        await pruneDeliveries(this.#db, this.#settings.retentionSeconds, 1_000);
      }
    } catch (error) {
      this.#warn(error, 'webhook pass failed; will retry');
    }
    this.#dispatch();
  }

  /** Queues deliveries for these scopes, one pass at a time; then delivers. */
  #enqueue(scopes: readonly EventsSignal[]): void {
    for (const scope of scopes) this.#pendingScopes.set(`${scope.productId}|${scope.env}`, scope);
    if (this.#enqueuing || this.#stopped) return;
    this.#enqueuing = true;
    void (async () => {
      try {
        while (this.#pendingScopes.size > 0 && !this.#stopped) {
          const [key, scope] = this.#pendingScopes.entries().next().value as [string, EventsSignal];
          this.#pendingScopes.delete(key);
          try {
            if ((await enqueueEvents(this.#db, scope)) > 0) this.#dispatch();
          } catch (error) {
            this.#warn(error, 'queueing webhooks failed; will retry');
          }
        }
      } finally {
        this.#enqueuing = false;
      }
    })();
  }

  /** Leases due endpoints up to the concurrency and delivers to each. */
  #dispatch(): void {
    if (this.#stopped) return;
    if (this.#claiming) {
      this.#claimAgain = true;
      return;
    }
    this.#claiming = true;
    void (async () => {
      try {
        do {
          this.#claimAgain = false;
          const free = this.#settings.concurrency - this.#inFlight.size;
          if (free <= 0) break;
          const endpoints = await claimDueEndpoints(this.#db, this.owner, free, this.#leaseMs);
          for (const endpoint of endpoints) {
            const run = this.#serve(endpoint).finally(() => {
              this.#inFlight.delete(endpoint.id);
              this.#dispatch();
            });
            this.#inFlight.set(endpoint.id, run);
          }
          if (endpoints.length === free) this.#claimAgain = true;
        } while (this.#claimAgain && !this.#stopped);
      } catch (error) {
        this.#warn(error, 'claiming webhook endpoints failed; will retry');
      } finally {
        this.#claiming = false;
      }
    })();
  }

  /** Sends an endpoint's due deliveries in event order, for one turn; then lets it go. */
  async #serve(endpoint: WebhookEndpointRow): Promise<void> {
    let backoffMs = 0;
    try {
      for (let sent = 0; sent < TURN && !this.#stopped; sent++) {
        const delivery = await dueHead(this.#db, endpoint.id);
        if (!delivery) break;
        // Read again for each delivery: a rotation or a new URL applies to the very next one.
        const [current] = await this.#db
          .select()
          .from(webhookEndpoints)
          .where(eq(webhookEndpoints.id, endpoint.id));
        if (!current?.enabled) break;
        const timestamp = Math.floor(Date.now() / 1000);
        const messageId = `msg_${delivery.id}`;
        const secrets = signingSecrets(
          this.#boxes(current.productId, current.env),
          current,
          new Date(),
        );
        const result = await sendWebhook(
          current.url,
          {
            'webhook-id': messageId,
            'webhook-timestamp': String(timestamp),
            'webhook-signature': signatureHeader(secrets, messageId, timestamp, delivery.payload),
          },
          delivery.payload,
          this.#settings,
        );
        this.#attempts++;
        this.#metrics.attempt(result.reason, result.latencyMs / 1000, delivery.eventAt);
        const recorded = await recordAttempt(
          this.#db,
          this.#settings,
          this.owner,
          this.#leaseMs,
          delivery,
          result,
        );
        if (recorded.gaveUp) this.#metrics.deliveryGaveUp();
        if (recorded.disabled) {
          this.#metrics.endpointDisabled();
          this.#logger.warn(
            { endpointId: endpoint.id, failures: this.#settings.disableAfterFailures },
            'webhook endpoint disabled after failing attempts in a row',
          );
        }
        if (recorded.leaseLost || recorded.disabled || !result.succeeded) break;
      }
    } catch (error) {
      // The server's own failure (the database, a secret it cannot open): not the endpoint's.
      // Back off, so that an endpoint this instance cannot serve does not take every turn.
      backoffMs = ERROR_BACKOFF_MS;
      this.#warn(error, 'webhook delivery failed; will retry');
    } finally {
      await releaseEndpoint(this.#db, endpoint.id, this.owner, backoffMs).catch((error: unknown) =>
        this.#warn(error, 'releasing a webhook endpoint failed; its lease will run out'),
      );
    }
  }

  #warn(error: unknown, message: string): void {
    this.#logger.warn(
      { err: error instanceof Error ? error.message.replace(/\nparams: .*$/s, '') : String(error) },
      message,
    );
  }
}

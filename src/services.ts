import DataLoader from 'dataloader';
import type { Logger } from 'pino';
import { ActivityRecorder } from './workers/activity-recorder.js';
import type { Database, DatabaseHandle } from './db/client.js';
import type { Caller } from './domain/callers.js';
import {
  DEFAULT_IMPERSONATION_MAX_SECONDS,
  DEFAULT_MAX_CONFIGS_PER_PRODUCT,
} from './domain/validation.js';
import { SessionConfigCache } from './domain/config-cache.js';
import { RefreshSnapshots } from './domain/sessions/refresh/index.js';
import { authenticate, type AdminKeySource } from './domain/keys.js';
import { loadSessionRecords, type SessionRecord } from './domain/sessions/index.js';
import { Metrics } from './observability/metrics.js';
import { CallerCache } from './domain/caller-cache.js';
import { ConcurrencyGate } from './limits/gate.js';
import { hashSecret } from './tokens/secrets.js';
import { EventBus, type SubscriptionLimits } from './workers/event-bus.js';
import { EventSequencer, type SequencerOptions } from './workers/event-sequencer.js';
import {
  RATE_CLASSES,
  RateLimits,
  type RateClass,
  type RateLimitOptions,
  type RateLimitStore,
} from './limits/rate-limits.js';
import { Keyring } from './tokens/keyring.js';
import { VerifierFeeds, type VerifierHorizons } from './domain/verifier.js';
import type { WebhookDeps } from './domain/webhooks/endpoints.js';
import { DEFAULT_WEBHOOK_SETTINGS, type WebhookSettings } from './domain/webhooks/settings.js';
import { WebhookMetrics } from './workers/webhook-metrics.js';
import { WebhookWorker } from './workers/webhook-worker.js';

/** What the process holds for the life of the server and hands to every request. */
export interface Services {
  readonly db: Database;
  readonly keyring: Keyring;
  readonly adminKeys: AdminKeySource;
  readonly refreshGraceSeconds: number;
  /** Most live session configs one product may have (MAX_CONFIGS_PER_PRODUCT). */
  readonly maxConfigsPerProduct: number;
  /** Longest an impersonation session may live (IMPERSONATION_MAX_SECONDS). */
  readonly impersonationMaxSeconds: number;
  readonly logger: Logger;
  /** Delivers session events to subscriptions. */
  readonly events: EventBus;
  /** Batches the activity log and the metrics rollups. */
  readonly activity: ActivityRecorder;
  /** Request limits for every rate class of operation. */
  readonly rateLimits: RateLimits;
  /** Called before a refresh token is rotated: stops clients refreshing in a loop. */
  readonly refreshGuard: (sessionId: string) => Promise<void>;
  /** Resolves when the database answers; rejects when it does not. */
  readonly ping: () => Promise<void>;
  /** Who a bearer key is, from the cache or the database. */
  readonly authenticate: (bearer: string | undefined) => Promise<Caller>;
  /** Recently seen keys; revokeApiKey forgets a key here at once. */
  readonly callers: CallerCache;
  /** Session configs for starts; dropped on every instance when a config changes (NOTIFY). */
  readonly sessionConfigs: SessionConfigCache;
  /** What refreshing the pairs this instance issued needs, so that they need no read. */
  readonly refreshSnapshots: RefreshSnapshots;
  /** Prometheus metrics, served at /metrics. */
  readonly metrics: Metrics;
  /**
   * Session rows for verify, batched across concurrent requests: one query serves every verify
   * that arrived in the same turn of the event loop. `cache: false`, so nothing is ever served
   * from memory: each row is read after the request that needs it arrived.
   */
  readonly sessionRecords: DataLoader<string, SessionRecord | undefined>;
  /** The sweep's retention periods, which bound what a local verifier may judge. */
  readonly verifierHorizons?: VerifierHorizons;
  /** Verifier feeds open here: their shared heartbeat reads and the cap per key. */
  readonly verifierFeeds: VerifierFeeds;
  /** Dashboards (a scan of a tag's sessions each) running at once on this instance. */
  readonly insightGate: ConcurrencyGate;
  /** Webhook endpoints' database, sealed secrets and settings (src/domain/webhooks/). */
  readonly webhooks: WebhookDeps;
  /** Delivers webhooks from this instance (absent with WEBHOOK_DELIVERY=false). */
  readonly webhookWorker: WebhookWorker | undefined;
}

/**
 * INSIGHT_CONCURRENCY's default: a tenth of the default pool of 10. A dashboard's scan keeps a
 * Postgres core busy: two at once on a 2-core database left the victim's verify at 4.1× its idle
 * p99 in the isolation bench.
 */
export const DEFAULT_INSIGHT_CONCURRENCY = 1;

/** Limits high enough never to be met by ordinary use; production sets its own from config. */
export const UNLIMITED: RateLimitOptions = {
  windowSeconds: 60,
  perKey: Object.fromEntries(RATE_CLASSES.map((c) => [c, 1e9])) as Record<RateClass, number>,
  perIp: Object.fromEntries(RATE_CLASSES.map((c) => [c, 1e9])) as Record<RateClass, number>,
  refreshesPerSession: 1e9,
};

/**
 * What {@link startServices} needs beside the database: main.ts fills it from the configuration,
 * the tests with their own values. An absent option takes the default it names.
 */
export interface ServiceOptions {
  readonly sessionSecret: string;
  /** Token key ids, newest first (default: one, `k1`). */
  readonly tokenKeyIds?: readonly string[];
  readonly rateLimits?: RateLimitOptions;
  /** Where rate limits count (default: this process's memory). */
  readonly rateLimitStore?: RateLimitStore;
  readonly adminKeys: AdminKeySource;
  readonly refreshGraceSeconds: number;
  /** Most live session configs per product (default: the configuration's default, 100). */
  readonly maxConfigsPerProduct?: number;
  /** Longest an impersonation session may live (default 3600 s). */
  readonly impersonationMaxSeconds?: number;
  readonly logger: Logger;
  /** Subscriptions per key and the slow-consumer timeout (default: no per-key cap, 30 s). */
  readonly subscriptionLimits?: SubscriptionLimits;
  /** The sweep's retention periods (default: the configuration's defaults). */
  readonly verifierHorizons?: VerifierHorizons;
  /** How the event sequencer polls (default: `DEFAULT_SEQUENCER_OPTIONS`). */
  readonly sequencer?: SequencerOptions;
  /** Webhook settings (default: the configuration's defaults). */
  readonly webhooks?: WebhookSettings;
  /** Open verifier feeds per key on one instance (default 64). */
  readonly maxVerifierFeedsPerKey?: number;
  /** Dashboards running at once on one instance (default 1); the others wait their turn. */
  readonly insightConcurrency?: number;
}

/** Builds the services on an open database and starts listening for events. */
export async function startServices(
  database: DatabaseHandle,
  options: ServiceOptions,
): Promise<Services> {
  const callers = new CallerCache();
  const sessionConfigs = new SessionConfigCache();
  const metrics = new Metrics();
  metrics.countStatements(database.statementsSent);
  const sequencer = new EventSequencer(database.db, options.logger, options.sequencer);
  database.onEventsWritten(() => sequencer.poke());
  const events = new EventBus(
    database.db,
    database.listen.bind(database),
    options.logger,
    {
      onKeyRevoked: (keyId) => callers.forgetKey(keyId),
      onConfigChanged: (productId) => sessionConfigs.forgetProduct(productId),
      onReconnect: () => {
        callers.clear();
        sessionConfigs.clear();
      },
      onDelivered: (event) => metrics.eventDelivered(event.at),
    },
    options.subscriptionLimits,
    sequencer,
  );
  await events.start();
  const rateLimits = new RateLimits(options.rateLimits ?? UNLIMITED, options.rateLimitStore);
  const keyring = new Keyring(options.sessionSecret, options.tokenKeyIds);
  const webhookSettings = options.webhooks ?? DEFAULT_WEBHOOK_SETTINGS;
  const webhooks: WebhookDeps = {
    db: database.db,
    boxes: (productId, env) => keyring.webhookSecretBox(productId, env),
    settings: webhookSettings,
  };
  let webhookWorker: WebhookWorker | undefined;
  if (webhookSettings.deliver) {
    webhookWorker = new WebhookWorker(
      database.db,
      database.listen.bind(database),
      webhooks.boxes,
      webhookSettings,
      options.logger,
      new WebhookMetrics(metrics.registry),
    );
    await webhookWorker.start();
  }
  return {
    db: database.db,
    webhooks,
    webhookWorker,
    keyring,
    rateLimits,
    refreshGuard: (sessionId) => rateLimits.consumeSessionRefresh(sessionId),
    adminKeys: options.adminKeys,
    refreshGraceSeconds: options.refreshGraceSeconds,
    maxConfigsPerProduct: options.maxConfigsPerProduct ?? DEFAULT_MAX_CONFIGS_PER_PRODUCT,
    impersonationMaxSeconds: options.impersonationMaxSeconds ?? DEFAULT_IMPERSONATION_MAX_SECONDS,
    logger: options.logger,
    verifierHorizons: options.verifierHorizons,
    verifierFeeds: new VerifierFeeds(database.db, options.maxVerifierFeedsPerKey),
    insightGate: new ConcurrencyGate({
      limit: options.insightConcurrency ?? DEFAULT_INSIGHT_CONCURRENCY,
      maxQueue: 100,
      maxWaitMs: 10_000,
      what: 'dashboards',
    }),
    events,
    activity: new ActivityRecorder(database.db, options.logger),
    ping: () => database.ping(),
    callers,
    sessionConfigs,
    refreshSnapshots: new RefreshSnapshots(),
    metrics,
    sessionRecords: new DataLoader(
      async (ids) => {
        const rows = await loadSessionRecords(database.db, ids);
        const byId = new Map(rows.map((r) => [r.id, r]));
        return ids.map((id) => byId.get(id.toLowerCase()));
      },
      { cache: false, maxBatchSize: 200, batchScheduleFn: (run) => setImmediate(run) },
    ),
    authenticate: async (bearer) => {
      if (bearer === undefined || bearer === '') return { kind: 'anonymous' };
      const hash = hashSecret(bearer);
      const cached = callers.get(hash);
      if (cached) return cached;
      const caller = await authenticate(database.db, options.adminKeys, bearer);
      callers.set(hash, caller);
      return caller;
    },
  };
}

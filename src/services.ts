import type { Logger } from 'pino';
import { ActivityRecorder } from './activity/recorder.js';
import type { Database, DatabaseHandle } from './db/client.js';
import type { AdminKeySource } from './domain/keys.js';
import { EventBus } from './events/bus.js';
import { RateLimits, type RateLimitOptions } from './security/rate-limits.js';
import { Keyring } from './tokens/keyring.js';

/** What the process holds for the life of the server and hands to every request. */
export interface Services {
  readonly db: Database;
  readonly keyring: Keyring;
  readonly adminKeys: AdminKeySource;
  readonly refreshGraceSeconds: number;
  readonly logger: Logger;
  /** Delivers session events to subscriptions. */
  readonly events: EventBus;
  /** Batches the activity log and the metrics rollups. */
  readonly activity: ActivityRecorder;
  /** Request limits on start, verify and refresh. */
  readonly rateLimits: RateLimits;
  /** Called before a refresh token is rotated: stops clients refreshing in a loop. */
  readonly refreshGuard: (sessionId: string) => Promise<void>;
  /** Resolves when the database answers; rejects when it does not. */
  readonly ping: () => Promise<void>;
}

/** Limits high enough never to be met by ordinary use; production sets its own from config. */
export const UNLIMITED: RateLimitOptions = {
  windowSeconds: 60,
  perWindow: { start: 1e9, verify: 1e9, refresh: 1e9 },
  refreshesPerSession: 1e9,
};

export interface ServiceOptions {
  readonly sessionSecret: string;
  /** Token key ids, newest first (default: one, `k1`). */
  readonly tokenKeyIds?: readonly string[];
  readonly rateLimits?: RateLimitOptions;
  readonly adminKeys: AdminKeySource;
  readonly refreshGraceSeconds: number;
  readonly logger: Logger;
}

/** Builds the services on an open database and starts listening for events. */
export async function startServices(
  database: DatabaseHandle,
  options: ServiceOptions,
): Promise<Services> {
  const events = new EventBus(database.db, database.listen.bind(database), options.logger);
  await events.start();
  const rateLimits = new RateLimits(options.rateLimits ?? UNLIMITED);
  return {
    db: database.db,
    keyring: new Keyring(options.sessionSecret, options.tokenKeyIds),
    rateLimits,
    refreshGuard: (sessionId) => rateLimits.consumeSessionRefresh(sessionId),
    adminKeys: options.adminKeys,
    refreshGraceSeconds: options.refreshGraceSeconds,
    logger: options.logger,
    events,
    activity: new ActivityRecorder(database.db, options.logger),
    ping: () => database.ping(),
  };
}

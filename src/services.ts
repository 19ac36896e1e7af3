import type { Logger } from 'pino';
import { ActivityRecorder } from './activity/recorder.js';
import type { Database, DatabaseHandle } from './db/client.js';
import type { AdminKeySource } from './domain/keys.js';
import { EventBus } from './events/bus.js';
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
  /** Resolves when the database answers; rejects when it does not. */
  readonly ping: () => Promise<void>;
}

export interface ServiceOptions {
  readonly sessionSecret: string;
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
  return {
    db: database.db,
    keyring: new Keyring(options.sessionSecret),
    adminKeys: options.adminKeys,
    refreshGraceSeconds: options.refreshGraceSeconds,
    logger: options.logger,
    events,
    activity: new ActivityRecorder(database.db, options.logger),
    ping: () => database.ping(),
  };
}

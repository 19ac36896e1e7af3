import type { Logger } from 'pino';
import type { Database } from './db/client.js';
import type { AdminKeySource } from './domain/keys.js';
import type { Keyring } from './tokens/keyring.js';

/** What the process holds for the life of the server and hands to every request. */
export interface Services {
  readonly db: Database;
  readonly keyring: Keyring;
  readonly adminKeys: AdminKeySource;
  readonly refreshGraceSeconds: number;
  readonly logger: Logger;
  /** Resolves when the database answers; rejects when it does not. */
  readonly ping: () => Promise<void>;
}

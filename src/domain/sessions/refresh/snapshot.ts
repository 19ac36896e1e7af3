/**
 * Refresh in one statement (issue #14): what minting a session's next token needs, kept by the
 * instance that issued the session's current pair, so that the refresh of that pair here needs
 * no read. The snapshot never decides anything: the rotation statement runs only if every check
 * the read path makes still holds in the database (from-snapshot.ts), and anything else goes the
 * read path.
 */
import { sql } from 'drizzle-orm';
import { sessionConfigs, sessions, type SessionRow } from '../../../db/schema.js';
import { configOfSession } from './usable.js';

/**
 * What the one-statement and the locked path read of a session and its config (joined on
 * `sessions.config_id`): the row, the config's lifetimes, the config's columns the rule reads
 * (usable.ts), and the config row's version.
 */
export const sessionWithConfig = {
  session: sessions,
  config: {
    expiry: sessionConfigs.expiry,
    period: sessionConfigs.period,
    refreshExpirySeconds: sessionConfigs.refreshExpirySeconds,
  },
  configRow: configOfSession,
  /** The config row's version (`xmin`), which a refresh from a snapshot requires unchanged. */
  configVersion: sql<string>`session_configs.xmin::text`,
};

/** What minting the next token of a session needs, as of the pair this instance issued. */
export interface RefreshSnapshot {
  readonly sessionId: string;
  readonly productId: string;
  readonly env: string;
  readonly tag: string;
  readonly identifier: string;
  readonly actor: string | null;
  readonly data: Record<string, unknown>;
  /** The data's serialized length (what the memory bound counts). */
  readonly dataBytes: number;
  readonly version: number;
  readonly tokenLifetimeSeconds: number;
  readonly idleTimeoutSeconds: number | null;
  readonly createdAt: Date;
  /** To the millisecond, as tokens carry it. */
  readonly authenticatedAt: Date;
  /** The impersonation cap; null: none. */
  readonly endsAt: Date | null;
  readonly configId: string;
  /** The config row's `xmin` when read: any change to the config (lifetimes, tag, env, delete) moves it. */
  readonly configVersion: string;
  /** The config's refresh lifetime, seconds (`refreshLifetimeSeconds`). */
  readonly configRefreshSeconds: number;
}

/** The snapshot of a session row as read with its config (the read and the locked path). */
export function snapshotOfRow(
  session: SessionRow,
  data: Record<string, unknown>,
  dataBytes: number,
  config: { readonly version: string; readonly refreshSeconds: number },
): RefreshSnapshot {
  return {
    sessionId: session.id,
    productId: session.productId,
    env: session.env,
    tag: session.tag,
    identifier: session.identifier,
    actor: session.actor,
    data,
    dataBytes,
    version: session.version,
    tokenLifetimeSeconds: session.tokenLifetimeSeconds,
    idleTimeoutSeconds: session.idleTimeoutSeconds,
    createdAt: session.createdAt,
    authenticatedAt: session.authenticatedAt,
    endsAt: session.endsAt,
    configId: session.configId,
    configVersion: config.version,
    configRefreshSeconds: config.refreshSeconds,
  };
}

/** Fixed cost of an entry besides its data, bytes (a rough upper bound of the strings and dates). */
const ENTRY_OVERHEAD_BYTES = 1024;

/**
 * The snapshots of one instance, by the hash of the refresh token they go with: bounded in
 * entries and in bytes (the data is bounded by the config limits, 16 KiB each; the byte budget
 * keeps 10,000 large ones from holding 160 MiB), the least recently issued forgotten first.
 * Never shared between instances: another instance's refresh spends the token, and the
 * statement finds nothing to rotate.
 */
export class RefreshSnapshots {
  readonly #entries = new Map<string, RefreshSnapshot>();
  #bytes = 0;

  constructor(
    readonly maxEntries = 10_000,
    readonly maxBytes = 32 * 1024 * 1024,
  ) {}

  /** Keeps the snapshot of the pair whose refresh token hashes to `tokenHash`. */
  remember(tokenHash: string, snapshot: RefreshSnapshot): void {
    const size = snapshot.dataBytes + ENTRY_OVERHEAD_BYTES;
    if (size > this.maxBytes) return;
    this.take(tokenHash);
    while (
      this.#entries.size > 0 &&
      (this.#entries.size >= this.maxEntries || this.#bytes + size > this.maxBytes)
    ) {
      const oldest = this.#entries.keys().next().value!;
      this.take(oldest);
    }
    this.#entries.set(tokenHash, snapshot);
    this.#bytes += size;
  }

  /** Removes and returns the snapshot of a token: a token is exchanged once. */
  take(tokenHash: string): RefreshSnapshot | undefined {
    const entry = this.#entries.get(tokenHash);
    if (entry === undefined) return undefined;
    this.#entries.delete(tokenHash);
    this.#bytes -= entry.dataBytes + ENTRY_OVERHEAD_BYTES;
    return entry;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }
}

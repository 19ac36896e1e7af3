import { randomBytes } from 'node:crypto';
import postgres from 'postgres';

/** The channel of the notification round trip (startup check and heartbeat). */
const PROBE_CHANNEL = 'session_service_probe';
/** The first wait before listening again after the connection was lost; doubles up to the max. */
const FIRST_RELISTEN_MS = 100;
const MAX_RELISTEN_MS = 2_000;

interface Channel {
  readonly onNotify: (payload: string) => void;
  readonly onListen: () => void;
}

/**
 * What a {@link NotificationListener} listens on and how it proves that notifications reach it.
 * client.ts makes one for Postgres only (PGlite, in this process, listens with its own `listen`).
 */
export interface NotificationListenerOptions {
  /** The connection that listens: a direct one, never a transaction-mode pooler. */
  readonly url: string;
  /** Options of the listening client (timeouts, keepalive, backoff). */
  readonly clientOptions: postgres.Options<Record<string, never>>;
  /**
   * Sends a NOTIFY through the service's pool (`pg_notify(channel, payload)`): the probe that
   * proves notifications sent there reach this listener.
   */
  readonly notify: (channel: string, payload: string) => Promise<void>;
  /** Longest wait for the probe, in ms. */
  readonly probeTimeoutMs: number;
  /** Said when the listener is lost and when it is back (never a payload). */
  readonly onState?: (state: 'lost' | 'relistened', detail?: string) => void;
}

/** Thrown when a NOTIFY sent through the pool never reached the listener. */
export class NotificationsNotDeliveredError extends Error {
  constructor(readonly waitedMs: number) {
    super(`a NOTIFY sent through the pool did not reach the listener within ${waitedMs} ms`);
    this.name = 'NotificationsNotDeliveredError';
  }
}

/**
 * LISTEN on a connection of its own, kept for the life of the process. postgres.js's own
 * `listen` gives up on a channel when re-listening after a drop fails once (the database still
 * away after its connect timeout: a failover), and says nothing; this one listens again, backing
 * off, until it succeeds, then runs every channel's `onListen` so that what was notified
 * meanwhile is caught up from tables. A heartbeat sends a probe through the pool now and then:
 * when it does not arrive (a listener left on a server that no longer takes the writes, a
 * half-open connection), the connection is replaced.
 */
export class NotificationListener {
  readonly #options: NotificationListenerOptions;
  /** Every listener of each channel (several services may share one database handle). */
  readonly #channels = new Map<string, Channel[]>();
  readonly #probes = new Map<string, () => void>();
  #sql: postgres.Sql | undefined;
  #listening: Promise<void> | undefined;
  #relisten: NodeJS.Timeout | undefined;
  #relistenMs = FIRST_RELISTEN_MS;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: NotificationListenerOptions) {
    this.#options = options;
  }

  /** Listens to `channel`; resolves once it is listened to. */
  async listen(
    channel: string,
    onNotify: (payload: string) => void,
    onListen: () => void,
  ): Promise<void> {
    const listeners = this.#channels.get(channel) ?? [];
    listeners.push({ onNotify, onListen });
    this.#channels.set(channel, listeners);
    await this.#client().unsafe(`listen ${quoteIdentifier(channel)}`);
    onListen();
  }

  /**
   * Sends a probe through the pool and waits for it here: rejects with
   * {@link NotificationsNotDeliveredError} when it does not arrive in time (a transaction-mode
   * pooler, a listener on another server than the writes), or with the pool's error.
   */
  async probe(): Promise<void> {
    const timeoutMs = this.#options.probeTimeoutMs;
    await withTimeout(this.#listenToProbes(this.#client()), timeoutMs, () => {
      const error = new Error(`the listening connection did not answer within ${timeoutMs} ms`);
      return Object.assign(error, { code: 'DATABASE_DEADLINE' });
    });
    const nonce = randomBytes(12).toString('base64url');
    let arrive!: () => void;
    const arrived = new Promise<void>((resolve) => (arrive = resolve));
    this.#probes.set(nonce, arrive);
    try {
      await this.#options.notify(PROBE_CHANNEL, nonce);
      // Timed from the NOTIFY's commit: a slow pool is not taken for a lost listener.
      await withTimeout(arrived, timeoutMs, () => new NotificationsNotDeliveredError(timeoutMs));
    } finally {
      this.#probes.delete(nonce);
    }
  }

  /** Probes every `intervalMs`; a probe that does not arrive replaces the listening connection. */
  startHeartbeat(intervalMs: number): void {
    if (this.#heartbeat || this.#closed) return;
    let beating = false;
    const beat = async () => {
      if (beating) return;
      beating = true;
      try {
        await this.probe();
      } catch (error) {
        if (this.#closed) return;
        const listenerHung = (error as { code?: unknown }).code === 'DATABASE_DEADLINE';
        if (error instanceof NotificationsNotDeliveredError || listenerHung) {
          this.#options.onState?.(
            'lost',
            listenerHung
              ? 'the listening connection did not answer'
              : 'the heartbeat notification did not arrive',
          );
          await this.#replaceClient();
        }
        // Anything else is the pool's failure (the database away): the listener's own
        // connection says so itself, when it closes.
      } finally {
        beating = false;
      }
    };
    this.#heartbeat = setInterval(() => void beat(), intervalMs);
    this.#heartbeat.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#relisten);
    await this.#sql?.end({ timeout: 1 });
  }

  #client(): postgres.Sql {
    if (this.#closed) throw new Error('the listener is closed');
    if (this.#sql) return this.#sql;
    // onnotify and onclose are options of postgres.js that its types do not declare.
    let sql: postgres.Sql | undefined = undefined;
    const options: postgres.Options<Record<string, never>> & {
      onnotify: (channel: string, payload: string) => void;
      onclose: () => void;
    } = {
      ...this.#options.clientOptions,
      max: 1,
      // 0: never ended for being idle or old; it is the one connection that must stay.
      idle_timeout: 0,
      max_lifetime: 0,
      onnotify: (channel: string, payload: string) => this.#notified(channel, payload),
      // Only the current client's close counts: a replaced one's comes late.
      onclose: () => {
        if (sql !== undefined && sql === this.#sql) this.#lost();
      },
    };
    sql = postgres(this.#options.url, options);
    this.#sql = sql;
    return sql;
  }

  async #listenToProbes(sql: postgres.Sql): Promise<void> {
    this.#listening ??= sql.unsafe(`listen ${quoteIdentifier(PROBE_CHANNEL)}`).then(
      () => {},
      (error: unknown) => {
        this.#listening = undefined;
        throw error;
      },
    );
    await this.#listening;
  }

  #notified(channel: string, payload: string): void {
    if (channel === PROBE_CHANNEL) {
      this.#probes.get(payload)?.();
      return;
    }
    for (const listener of this.#channels.get(channel) ?? []) listener.onNotify(payload);
  }

  /** The listening connection closed: listen again, backing off, until it works. */
  #lost(): void {
    this.#listening = undefined;
    if (this.#closed || this.#relisten) return;
    this.#options.onState?.('lost', 'the listening connection closed');
    this.#scheduleRelisten();
  }

  #scheduleRelisten(): void {
    const wait = this.#relistenMs;
    this.#relistenMs = Math.min(this.#relistenMs * 2, MAX_RELISTEN_MS);
    this.#relisten = setTimeout(() => {
      this.#relisten = undefined;
      void this.#listenAgain();
    }, wait);
    this.#relisten.unref();
  }

  async #listenAgain(): Promise<void> {
    if (this.#closed) return;
    try {
      const sql = this.#client();
      const channels = [PROBE_CHANNEL, ...this.#channels.keys()];
      await sql.unsafe(channels.map((c) => `listen ${quoteIdentifier(c)};`).join(' '));
      this.#listening = Promise.resolve();
    } catch {
      if (!this.#closed && !this.#relisten) this.#scheduleRelisten();
      return;
    }
    this.#relistenMs = FIRST_RELISTEN_MS;
    this.#options.onState?.('relistened');
    for (const listeners of this.#channels.values())
      for (const listener of listeners) listener.onListen();
  }

  /** Ends the listening connection and listens again on a new one. */
  async #replaceClient(): Promise<void> {
    const old = this.#sql;
    this.#sql = undefined;
    this.#listening = undefined;
    // The old client's close schedules nothing (it is no longer the current one).
    await old?.end({ timeout: 0 }).catch(() => {});
    await this.#listenAgain();
  }
}

/** `pending`, or the error `expired` makes after `ms`. */
function withTimeout<T>(pending: Promise<T>, ms: number, expired: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(expired()), ms);
  });
  pending.catch(() => {});
  return Promise.race([pending, timeout]).finally(() => clearTimeout(timer));
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

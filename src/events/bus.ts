import { setImmediate as yieldToRequests } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Database, DatabaseHandle } from '../db/client.js';
import type { SessionEventRow } from '../db/schema.js';
import { ServiceError } from '../domain/errors.js';
import {
  EVENTS_CHANNEL,
  eventsAfter,
  latestEventId,
  matchesFilter,
  type EventFilter,
  type EventsSignal,
} from '../domain/events.js';
import { KEY_REVOKED_CHANNEL } from '../domain/keys.js';
import { EventQueue } from './queue.js';

/** Rows read per query when catching up; a burst larger than this is read in several pages. */
const PAGE = 500;
/** Wait before retrying a feed whose read failed (the database may be briefly away). */
const RETRY_MS = 1_000;

/** What else wants to hear the notifications the bus listens to. */
export interface BusHooks {
  /** A key was revoked (on any instance). */
  readonly onKeyRevoked?: (keyId: string) => void;
  /** The listening connection was (re)established: anything notified meanwhile was missed. */
  readonly onReconnect?: () => void;
  /** An event was handed to a subscriber. */
  readonly onDelivered?: (event: SessionEventRow) => void;
}

export interface SubscribeOptions {
  readonly filter: EventFilter;
  /** Replay the scope's events after this id first, then continue live. */
  readonly after?: number | null;
  /** The key that opened the subscription: revoking it ends the subscription. */
  readonly keyId?: string | null;
}

interface Subscriber {
  readonly queue: EventQueue<SessionEventRow>;
  readonly filter: EventFilter;
  readonly keyId: string | null;
  /** Highest id handed to this subscriber; nothing at or below it is handed again. */
  lastEmitted: number;
  /** While replaying from the table, live events wait here. */
  buffer: SessionEventRow[] | null;
}

interface Feed {
  readonly scope: EventsSignal;
  readonly subscribers: Set<Subscriber>;
  /** Highest id read from the table for this scope. */
  lastId: number;
  reading: boolean;
  readAgain: boolean;
  retry: NodeJS.Timeout | undefined;
}

/**
 * Delivers session events to subscribers, on every instance, with no gap and no duplicate.
 *
 * The table is the source of truth. A NOTIFY (sent in the same transaction as the events) only
 * says "this scope has new events"; each instance then reads the scope's rows after the last id
 * it read, once for all its subscribers of that scope. When the listening connection comes back
 * after a drop, every feed reads again, so what was committed meanwhile is delivered late but
 * never lost. Sequence numbers follow commit order within a scope (see `recordEvents`), so "after the
 * last one" is exact.
 */
export class EventBus {
  readonly #db: Database;
  readonly #listen: DatabaseHandle['listen'];
  readonly #logger: Logger;
  readonly #feeds = new Map<string, Feed>();
  readonly #opening = new Map<string, Promise<Feed>>();
  #stopped = false;

  readonly #hooks: BusHooks;

  constructor(
    db: Database,
    listen: DatabaseHandle['listen'],
    logger: Logger,
    hooks: BusHooks = {},
  ) {
    this.#db = db;
    this.#listen = listen;
    this.#logger = logger;
    this.#hooks = hooks;
  }

  /** Starts listening; resolves once notifications flow. */
  async start(): Promise<void> {
    await this.#listen(
      EVENTS_CHANNEL,
      (payload) => {
        try {
          const signal = JSON.parse(payload) as EventsSignal;
          const feed = this.#feeds.get(feedKey(signal));
          if (feed) this.#read(feed);
        } catch {
          this.#logger.warn('ignored a malformed events notification');
        }
      },
      () => {
        // (Re)connected: catch up every feed from the table, and drop what may be stale.
        this.#hooks.onReconnect?.();
        for (const feed of this.#feeds.values()) this.#read(feed);
      },
    );
    await this.#listen(
      KEY_REVOKED_CHANNEL,
      (keyId) => {
        this.#hooks.onKeyRevoked?.(keyId);
        this.#endSubscriptionsOfKey(keyId);
      },
      () => {},
    );
  }

  /** Ends every subscription; new ones are refused. */
  stop(): void {
    this.#stopped = true;
    for (const feed of this.#feeds.values()) {
      clearTimeout(feed.retry);
      for (const sub of feed.subscribers) sub.queue.end();
    }
    this.#feeds.clear();
  }

  /** How many subscriptions are open on this instance. */
  get subscriberCount(): number {
    let n = 0;
    for (const feed of this.#feeds.values()) n += feed.subscribers.size;
    return n;
  }

  /**
   * Subscribes to a scope's events. With `after`, the events after that id are replayed from
   * the table first, in order, then live ones follow with no gap and no duplicate.
   */
  async subscribe(
    scope: EventsSignal,
    options: SubscribeOptions,
  ): Promise<AsyncIterableIterator<SessionEventRow>> {
    if (this.#stopped)
      throw new ServiceError('SERVICE_UNAVAILABLE', 'The server is shutting down.');
    const feed = await this.#feedFor(scope);
    const sub: Subscriber = {
      queue: new EventQueue<SessionEventRow>(() => this.#unsubscribe(feed, sub)),
      filter: options.filter,
      keyId: options.keyId ?? null,
      lastEmitted: 0,
      buffer: options.after != null ? [] : null,
    };
    feed.subscribers.add(sub);
    if (options.after != null) void this.#replay(feed, sub, options.after);
    return sub.queue;
  }

  async #replay(feed: Feed, sub: Subscriber, after: number): Promise<void> {
    try {
      let cursor = after;
      for (;;) {
        const rows = await eventsAfter(this.#db, feed.scope, cursor, PAGE, sub.filter);
        for (const row of rows) sub.queue.push(row);
        if (rows.length > 0) cursor = rows[rows.length - 1]!.seq!;
        if (rows.length < PAGE || sub.queue.closed) break;
      }
      sub.lastEmitted = cursor;
      const buffered = sub.buffer ?? [];
      sub.buffer = null;
      for (const row of buffered) this.#deliver(sub, row);
    } catch (error) {
      this.#logger.error({ err: errorSummary(error) }, 'event replay failed');
      sub.queue.fail(
        new ServiceError(
          'SERVICE_UNAVAILABLE',
          'Replaying events failed; resubscribe with `after`.',
        ),
      );
    }
  }

  #deliver(sub: Subscriber, row: SessionEventRow): void {
    if (sub.buffer) {
      sub.buffer.push(row);
      return;
    }
    const seq = row.seq!;
    if (seq <= sub.lastEmitted || !matchesFilter(row, sub.filter)) return;
    sub.lastEmitted = seq;
    sub.queue.push(row);
    this.#hooks.onDelivered?.(row);
  }

  async #feedFor(scope: EventsSignal): Promise<Feed> {
    const key = feedKey(scope);
    const existing = this.#feeds.get(key);
    if (existing) return existing;
    let opening = this.#opening.get(key);
    if (!opening) {
      opening = latestEventId(this.#db, scope)
        .then((lastId) => {
          const feed: Feed = {
            scope: { productId: scope.productId, env: scope.env },
            subscribers: new Set(),
            lastId,
            reading: false,
            readAgain: false,
            retry: undefined,
          };
          this.#feeds.set(key, feed);
          // Anything committed between reading lastId and registering the feed is read now.
          this.#read(feed);
          return feed;
        })
        .finally(() => this.#opening.delete(key));
      this.#opening.set(key, opening);
    }
    return opening;
  }

  /** Reads the feed's new rows; one read at a time per feed, repeated if signalled meanwhile. */
  #read(feed: Feed): void {
    if (feed.reading) {
      feed.readAgain = true;
      return;
    }
    feed.reading = true;
    void (async () => {
      try {
        do {
          feed.readAgain = false;
          for (;;) {
            const rows = await eventsAfter(this.#db, feed.scope, feed.lastId, PAGE);
            for (const row of rows) {
              feed.lastId = row.seq!;
              for (const sub of feed.subscribers) this.#deliver(sub, row);
            }
            if (rows.length < PAGE) break;
            await yieldToRequests();
          }
        } while (feed.readAgain);
      } catch (error) {
        this.#logger.error({ err: errorSummary(error) }, 'reading events failed; retrying');
        clearTimeout(feed.retry);
        feed.retry = setTimeout(() => this.#read(feed), RETRY_MS);
        feed.retry.unref();
      } finally {
        feed.reading = false;
      }
    })();
  }

  #unsubscribe(feed: Feed, sub: Subscriber): void {
    feed.subscribers.delete(sub);
    if (feed.subscribers.size === 0 && this.#feeds.get(feedKey(feed.scope)) === feed) {
      clearTimeout(feed.retry);
      this.#feeds.delete(feedKey(feed.scope));
    }
  }

  #endSubscriptionsOfKey(keyId: string): void {
    for (const feed of this.#feeds.values()) {
      for (const sub of feed.subscribers) {
        if (sub.keyId === keyId) {
          sub.queue.fail(
            new ServiceError('UNAUTHENTICATED', 'The key of this subscription has been revoked.'),
          );
        }
      }
    }
  }
}

const feedKey = (scope: EventsSignal) => `${scope.productId}|${scope.env}`;

function errorSummary(error: unknown): { name?: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message.replace(/\nparams: .*$/s, '') }
    : { message: String(error) };
}

import { setImmediate as yieldToRequests } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Database, DatabaseHandle } from '../db/client.js';
import type { SessionEventRow } from '../db/schema.js';
import { ServiceError } from '../domain/errors.js';
import { redactedMessage } from '../observability/errors.js';
import {
  eventsAfter,
  listenForEvents,
  latestEventId,
  matchesFilter,
  type EventFilter,
  type EventsSignal,
} from '../domain/events.js';
import { CONFIG_CHANGED_CHANNEL } from '../domain/configs.js';
import { KEY_REVOKED_CHANNEL } from '../domain/keys.js';
import { EventQueue } from './event-queue.js';
import type { EventSequencer } from './event-sequencer.js';

/** Rows read per query by a feed; a burst larger than this is read in several pages. */
const PAGE = 500;
/**
 * Rows read per query for one subscriber that replays or catches up, and the most it holds
 * queued: the next page is read only once the client has taken the previous one.
 */
export const SUBSCRIBER_PAGE = 100;
/** Live events a subscriber may have queued before it falls back to reading the table. */
export const SUBSCRIBER_QUEUE_MAX = 256;
/** Wait before retrying a feed whose read failed (the database may be briefly away). */
const RETRY_MS = 1_000;

/** What else wants to hear the notifications the bus listens to. */
export interface BusHooks {
  /** A key was revoked (on any instance). */
  readonly onKeyRevoked?: (keyId: string) => void;
  /** A product's session configs changed (on any instance; payload: the product's id). */
  readonly onConfigChanged?: (productId: string) => void;
  /** The listening connection was (re)established: anything notified meanwhile was missed. */
  readonly onReconnect?: () => void;
  /** An event was handed to a subscriber. */
  readonly onDelivered?: (event: SessionEventRow) => void;
}

/**
 * What one subscription asks of {@link EventBus.subscribe}: which events, from which id, for which
 * key, and the transport's backpressure.
 */
export interface SubscribeOptions {
  readonly filter: EventFilter;
  /** Replay the scope's events after this id first, then continue live. */
  readonly after?: number | null;
  /** The key that opened the subscription: revoking it ends the subscription. */
  readonly keyId?: string | null;
  /**
   * The transport's backpressure: resolves when its connection can take more (a WebSocket
   * whose unsent bytes are below a threshold). Pages are read from the table only then.
   */
  readonly ready?: () => Promise<void>;
  /**
   * Called when the client took nothing for `slowConsumerMs` while events waited for it; the
   * transport closes the connection. Without it the subscription ends with LIMIT_EXCEEDED.
   */
  readonly onSlow?: () => void;
}

/** What a transport (a WebSocket) tells the bus about its connection. */
export type SubscriptionTransport = Pick<SubscribeOptions, 'ready' | 'onSlow'>;

/** Limits on subscriptions, counted on this instance. */
export interface SubscriptionLimits {
  /** Open subscriptions per key, over every transport (WebSocket and SSE). */
  readonly maxPerKey: number;
  /** How long a subscription may leave events waiting, unread, before it is ended. */
  readonly slowConsumerMs: number;
}

const NO_SUBSCRIPTION_LIMITS: SubscriptionLimits = {
  maxPerKey: Number.POSITIVE_INFINITY,
  slowConsumerMs: 30_000,
};

interface Subscriber {
  readonly queue: EventQueue<SessionEventRow>;
  readonly filter: EventFilter;
  readonly keyId: string | null;
  /** Highest id handed to this subscriber; nothing at or below it is handed again. */
  lastEmitted: number;
  /**
   * Reading from the table (a replay with `after`, or catching up after falling behind): live
   * events are not queued, only the highest matching one is noted in `missed`.
   */
  catchingUp: boolean;
  missed: number;
  /** Waiting for the client to take what it has (for tests and metrics). */
  waiting: boolean;
  readonly ready: () => Promise<void>;
  readonly onSlow: () => void;
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
 * The table is the source of truth. A NOTIFY (sent by the sweep that numbered the events, see
 * `EventSequencer`) only says "this scope has new events"; each instance then reads the scope's rows after the last id
 * it read, once for all its subscribers of that scope. When the listening connection comes back
 * after a drop, every feed reads again, so what was committed meanwhile is delivered late but
 * never lost. Sequence numbers follow commit order within a scope and are visible in order (see
 * `sequencePendingEvents`), so "after the last one" is exact.
 */
export class EventBus {
  readonly #db: Database;
  readonly #listen: DatabaseHandle['listen'];
  readonly #logger: Logger;
  readonly #feeds = new Map<string, Feed>();
  readonly #opening = new Map<string, Promise<Feed>>();
  #stopped = false;

  readonly #hooks: BusHooks;
  readonly #limits: SubscriptionLimits;
  readonly #sequencer: EventSequencer | undefined;
  /** Open subscriptions per key id. */
  readonly #perKey = new Map<string, number>();

  constructor(
    db: Database,
    listen: DatabaseHandle['listen'],
    logger: Logger,
    hooks: BusHooks = {},
    limits: SubscriptionLimits = NO_SUBSCRIPTION_LIMITS,
    /** Numbers this instance's events after their commit (started and stopped with the bus). */
    sequencer?: EventSequencer,
  ) {
    this.#sequencer = sequencer;
    this.#db = db;
    this.#listen = listen;
    this.#logger = logger;
    this.#hooks = hooks;
    this.#limits = limits;
  }

  /** Starts listening; resolves once notifications flow. */
  async start(): Promise<void> {
    await listenForEvents(this.#listen, {
      onSignal: (signal) => {
        const feed = this.#feeds.get(feedKey(signal));
        if (feed) this.#read(feed);
      },
      onMalformed: () => this.#logger.warn('ignored a malformed events notification'),
      onListen: () => {
        // (Re)connected: catch up every feed from the table, and drop what may be stale.
        this.#hooks.onReconnect?.();
        for (const feed of this.#feeds.values()) this.#read(feed);
      },
    });
    await this.#listen(
      KEY_REVOKED_CHANNEL,
      (keyId) => {
        this.#hooks.onKeyRevoked?.(keyId);
        this.#endSubscriptionsOfKey(keyId);
      },
      () => {},
    );
    await this.#listen(
      CONFIG_CHANGED_CHANNEL,
      (productId) => this.#hooks.onConfigChanged?.(productId),
      // (Re)connected: a change may have been missed.
      () => this.#hooks.onReconnect?.(),
    );
    this.#sequencer?.start();
  }

  /** Ends every subscription; new ones are refused. */
  stop(): void {
    this.#stopped = true;
    void this.#sequencer?.stop();
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

  /** Events queued for subscribers and not yet taken by their clients, on this instance. */
  get pendingEvents(): number {
    let n = 0;
    for (const feed of this.#feeds.values())
      for (const sub of feed.subscribers) n += sub.queue.length;
    return n;
  }

  /** Subscriptions waiting for their client to take what they hold before reading more. */
  get waitingSubscribers(): number {
    let n = 0;
    for (const feed of this.#feeds.values())
      for (const sub of feed.subscribers) if (sub.waiting) n++;
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
    const keyId = options.keyId ?? null;
    if (keyId !== null) {
      const open = this.#perKey.get(keyId) ?? 0;
      if (open >= this.#limits.maxPerKey) {
        throw new ServiceError(
          'LIMIT_EXCEEDED',
          `This key has ${open} open subscriptions, the most allowed (MAX_SUBSCRIPTIONS_PER_KEY); end one first.`,
          undefined,
          { limit: this.#limits.maxPerKey },
        );
      }
      // Counted before the feed opens, so concurrent subscribes cannot overshoot.
      this.#perKey.set(keyId, open + 1);
    }
    let feed: Feed;
    try {
      feed = await this.#feedFor(scope);
    } catch (error) {
      this.#release(keyId);
      throw error;
    }
    const sub: Subscriber = {
      queue: new EventQueue<SessionEventRow>(() => {
        this.#release(keyId);
        this.#unsubscribe(feed, sub);
      }),
      filter: options.filter,
      keyId,
      lastEmitted: options.after ?? 0,
      catchingUp: options.after != null,
      missed: 0,
      waiting: false,
      ready: options.ready ?? (() => Promise.resolve()),
      onSlow:
        options.onSlow ??
        (() =>
          sub.queue.fail(
            new ServiceError(
              'LIMIT_EXCEEDED',
              'This subscription left events unread for too long; resubscribe with `after`.',
            ),
          )),
    };
    feed.subscribers.add(sub);
    if (sub.catchingUp) void this.#catchUp(feed, sub);
    return sub.queue;
  }

  #release(keyId: string | null): void {
    if (keyId === null) return;
    const open = (this.#perKey.get(keyId) ?? 1) - 1;
    if (open <= 0) this.#perKey.delete(keyId);
    else this.#perKey.set(keyId, open);
  }

  /**
   * Reads the subscriber's events from the table, a page at a time, each page only once the
   * client has taken the previous one and its connection can take more; then goes live. Memory
   * per subscriber stays at one page, however far behind it starts or falls.
   */
  async #catchUp(feed: Feed, sub: Subscriber): Promise<void> {
    try {
      for (;;) {
        if (!(await this.#waitForClient(sub))) return;
        const rows = await eventsAfter(
          this.#db,
          feed.scope,
          sub.lastEmitted,
          SUBSCRIBER_PAGE,
          sub.filter,
        );
        if (sub.queue.closed) return;
        for (const row of rows) {
          sub.lastEmitted = row.seq!;
          sub.queue.push(row);
        }
        // Caught up when the page was short and every live event offered meanwhile is in it.
        if (rows.length < SUBSCRIBER_PAGE && sub.missed <= sub.lastEmitted) {
          sub.catchingUp = false;
          return;
        }
      }
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

  /**
   * Resolves true once the client has taken everything queued and its transport is ready;
   * false if the subscription ended, or the client stayed too slow (it is then ended).
   */
  async #waitForClient(sub: Subscriber): Promise<boolean> {
    if (sub.queue.length === 0 && sub.queue.closed === false) {
      await sub.ready();
      return !sub.queue.closed;
    }
    sub.waiting = true;
    let timer: NodeJS.Timeout | undefined;
    const slow = new Promise<'slow'>((resolve) => {
      timer = setTimeout(() => resolve('slow'), this.#limits.slowConsumerMs);
      timer.unref();
    });
    try {
      const outcome = await Promise.race([sub.queue.drained().then(() => sub.ready()), slow]);
      if (outcome === 'slow' && !sub.queue.closed) {
        sub.onSlow();
        sub.queue.end();
        return false;
      }
      return !sub.queue.closed;
    } finally {
      clearTimeout(timer);
      sub.waiting = false;
    }
  }

  #deliver(feed: Feed, sub: Subscriber, row: SessionEventRow): void {
    const seq = row.seq!;
    if (seq <= sub.lastEmitted || !matchesFilter(row, sub.filter)) return;
    if (sub.catchingUp) {
      sub.missed = Math.max(sub.missed, seq);
      return;
    }
    if (sub.queue.length >= SUBSCRIBER_QUEUE_MAX) {
      // The client is not keeping up: stop queueing, and read from the table as it drains.
      sub.catchingUp = true;
      sub.missed = seq;
      void this.#catchUp(feed, sub);
      return;
    }
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
              for (const sub of feed.subscribers) this.#deliver(feed, sub, row);
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
    ? { name: error.name, message: redactedMessage(error) }
    : { message: redactedMessage(error) };
}

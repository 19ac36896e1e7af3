import { createClient, type Client, type ClientOptions } from 'graphql-ws';
import { documentIdOf } from './document-id.js';
import { SessionServiceError, type GraphQLErrorPayload } from './errors.js';
import { timeoutOf, urlsOf, webSocketUrlsOf } from './transport.js';
import type { SessionEvent } from './types.js';

/** A live subscription; it reconnects by itself and resumes after the last event received. */
export interface EventSubscription {
  /** The id of the last event delivered: where a reconnect resumes (`after`). */
  readonly lastEventId: string | undefined;
  /** Ends the subscription; no event is delivered afterwards. */
  unsubscribe(): void;
}

export interface SubscribeOptions {
  /** Called once when the subscription ends on an error it cannot recover from. */
  readonly onError?: (error: SessionServiceError) => void;
}

/** The WebSocket close codes the server refuses a connection with. */
const REFUSED = { 4401: 'UNAUTHENTICATED', 4403: 'FORBIDDEN' } as const;

/** How often the client pings the server, and how long it waits for the pong. */
const KEEP_ALIVE_MS = 10_000;
const PONG_TIMEOUT_MS = 5_000;
/** Reconnect backoff: 1, 2, 4... seconds, never more than this, plus up to 1 s of jitter. */
const MAX_RETRY_WAIT_MS = 30_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const jitter = () => Math.floor(Math.random() * 1000);

/** A WebSocket constructor: the global one (browsers, Node 22+) or the `ws` package's. */
export type WebSocketConstructor = unknown;

export interface SubscriptionTransportOptions {
  /**
   * The `ws://` or `wss://` URL of the GraphQL endpoint, or several: each connection attempt
   * after a closed or failed one goes to the next.
   */
  readonly url: string | readonly string[];
  readonly key: string;
  /** How long opening a connection may take, until the server's ack (default 5000). */
  readonly timeoutMs?: number;
  readonly webSocketImpl?: WebSocketConstructor;
  /** More graphql-ws client options (retryAttempts, retryWait, keepAlive...). */
  readonly options?: Partial<Omit<ClientOptions, 'url' | 'connectionParams' | 'webSocketImpl'>>;
}

/** Which URL the next connection attempt goes to: it moves on each time a connection closes. */
interface UrlCursor {
  next: number;
}

type Socket = { readyState: number; close(code: number, reason: string): void; terminate?(): void };

/**
 * The client's event handlers, wrapping the caller's: a connection that stops answering pings
 * is closed (and so reopened), since a half-open TCP connection would otherwise keep a
 * subscriber deaf for many minutes; a closed connection moves the cursor to the next URL.
 */
function keepAliveHandlers(
  on: ClientOptions['on'],
  urls: readonly string[],
  cursor: UrlCursor,
): NonNullable<ClientOptions['on']> {
  let socket: Socket | undefined;
  let pongTimer: ReturnType<typeof setTimeout> | undefined;
  return {
    ...on,
    connected: (...args) => {
      socket = args[0] as typeof socket;
      on?.connected?.(...args);
    },
    ping: (received, payload) => {
      if (!received) {
        clearTimeout(pongTimer);
        pongTimer = setTimeout(() => {
          if (socket?.readyState !== 1) return;
          // Node's `ws` can drop the connection at once; a closing handshake would wait for
          // the server that stopped answering.
          if (socket.terminate) socket.terminate();
          else socket.close(4408, 'no pong from the server');
        }, PONG_TIMEOUT_MS);
      }
      on?.ping?.(received, payload);
    },
    pong: (received, payload) => {
      if (received) clearTimeout(pongTimer);
      on?.pong?.(received, payload);
    },
    closed: (event) => {
      clearTimeout(pongTimer);
      // This server closed or never opened the connection: the next attempt tries another.
      cursor.next = (cursor.next + 1) % urls.length;
      on?.closed?.(event);
    },
  };
}

/** Makes the graphql-ws client: lazy, retrying until the key is refused, kept alive by pings. */
async function openClient(
  options: SubscriptionTransportOptions,
  urls: readonly string[],
  timeoutMs: number,
  cursor: UrlCursor,
): Promise<Client> {
  const webSocketImpl = withOpenTimeout(
    (options.webSocketImpl ??
      (globalThis as { WebSocket?: unknown }).WebSocket ??
      // Node 20 has no global WebSocket: use the `ws` package, a dependency of this package.
      (await import('ws')).default) as WebSocketClass,
    timeoutMs,
  );
  const extra = options.options ?? {};
  return createClient({
    url: () => urls[cursor.next % urls.length]!,
    webSocketImpl,
    // A server that accepts the socket but never acknowledges it is left for the next try.
    connectionAckWaitTimeout: timeoutMs,
    connectionParams: { authorization: `Bearer ${options.key}` },
    lazy: true,
    // A service that must hear revocations keeps trying; a refused key (4401, 4403) stops.
    retryAttempts: Number.POSITIVE_INFINITY,
    // A connection that could not be made (an error event: refused, reset, timed out) is
    // tried again too; an Error is the client's own fault and is not.
    shouldRetry: (event) =>
      isCloseEvent(event) ? !(event.code in REFUSED) : !(event instanceof Error),
    retryWait: (retries) => sleep(Math.min(1000 * 2 ** retries, MAX_RETRY_WAIT_MS) + jitter()),
    keepAlive: KEEP_ALIVE_MS,
    ...extra,
    on: keepAliveHandlers(extra.on, urls, cursor),
  });
}

/** Calls the listener with the event, its own throw surfaced apart from the socket's handling. */
function deliver(listener: (event: SessionEvent) => void, event: SessionEvent): void {
  try {
    listener(event);
  } catch (error) {
    // The listener's own fault: surface it as a listener of an EventEmitter would,
    // without breaking the socket's message handling.
    queueMicrotask(() => {
      throw error;
    });
  }
}

/** One subscription on the shared client: see the transport's `subscribe`. */
function subscribeOn(
  client: Promise<Client>,
  live: Set<() => void>,
  query: string,
  field: string,
  variables: Record<string, unknown>,
  listener: (event: SessionEvent) => void,
  subscribeOptions: SubscribeOptions,
): EventSubscription {
  let lastEventId = variables.after == null ? undefined : String(variables.after);
  let stopped = false;
  let dispose: (() => void) | undefined;
  const stop = () => {
    stopped = true;
    live.delete(stop);
    dispose?.();
  };
  live.add(stop);
  const fail = (error: SessionServiceError) => {
    if (stopped) return;
    stop();
    subscribeOptions.onError?.(error);
  };
  // The trusted-document id beside the text (src/client/document-id.ts): graphql-ws servers
  // from before trusted documents ignore it.
  let documentId: string | undefined;
  const payload = {
    query,
    get documentId() {
      return documentId;
    },
    get variables() {
      return { ...variables, after: lastEventId ?? null };
    },
  };
  Promise.all([client, documentIdOf(query)]).then(
    ([ws, id]) => {
      documentId = id;
      if (stopped) return;
      dispose = ws.subscribe<Record<string, SessionEvent>>(payload, {
        next: (result) => {
          if (stopped) return;
          if (result.errors?.length) {
            fail(SessionServiceError.fromGraphQLErrors(result.errors as GraphQLErrorPayload[]));
            return;
          }
          const event = result.data?.[field];
          if (!event) return;
          lastEventId = event.id;
          deliver(listener, event);
        },
        error: (error) => fail(toServiceError(error)),
        complete: () => {
          if (!stopped)
            fail(new SessionServiceError('NETWORK_ERROR', 'The server ended the subscription.'));
        },
      });
    },
    (error: unknown) => fail(toServiceError(error)),
  );
  return {
    get lastEventId() {
      return lastEventId;
    },
    unsubscribe: stop,
  };
}

/**
 * GraphQL over WebSocket (graphql-ws), opened with the first subscription and shared by all.
 * graphql-ws reconnects with backoff when the socket drops, and sends each subscription again.
 */
export function subscriptionTransport(options: SubscriptionTransportOptions) {
  const urls = urlsOf(options.url, 'wsUrl', ['ws:', 'wss:']);
  const timeoutMs = timeoutOf(options.timeoutMs);
  const cursor: UrlCursor = { next: 0 };
  let client: Promise<Client> | undefined;
  /** Stops each live subscription quietly, for close(). */
  const live = new Set<() => void>();

  return {
    /**
     * Subscribes to `field` of `query` and calls `listener` with each event. The payload is
     * read again every time graphql-ws sends it, so a reconnect asks for what came after the
     * last event delivered (`after`): nothing missed, nothing twice.
     */
    subscribe(
      query: string,
      field: string,
      variables: Record<string, unknown>,
      listener: (event: SessionEvent) => void,
      subscribeOptions: SubscribeOptions = {},
    ): EventSubscription {
      client ??= openClient(options, urls, timeoutMs, cursor);
      return subscribeOn(client, live, query, field, variables, listener, subscribeOptions);
    },
    /** Closes the socket; subscriptions end without their onError. */
    async close(): Promise<void> {
      for (const stop of [...live]) stop();
      const opened = client;
      client = undefined;
      const ws = await opened?.catch(() => undefined);
      await ws?.dispose();
    },
  };
}

/** What a WebSocket constructor makes, as far as the open timeout needs it. */
interface WebSocketLike {
  readonly readyState: number;
  close(): void;
  addEventListener(type: 'open' | 'close', listener: () => void): void;
}
type WebSocketClass = new (url: string, protocols?: string | string[]) => WebSocketLike;

/**
 * The constructor, with a socket still connecting after `ms` closed (a server that accepted the
 * TCP connection but never answers the upgrade): graphql-ws sees it close and tries again.
 */
function withOpenTimeout(Impl: WebSocketClass, ms: number): WebSocketClass {
  return class extends Impl {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      const timer = setTimeout(() => {
        if (this.readyState === 0) this.close();
      }, ms);
      timer.unref?.();
      this.addEventListener('open', () => clearTimeout(timer));
      this.addEventListener('close', () => clearTimeout(timer));
    }
  };
}

function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'number'
  );
}

function toServiceError(error: unknown): SessionServiceError {
  if (error instanceof SessionServiceError) return error;
  if (Array.isArray(error))
    return SessionServiceError.fromGraphQLErrors(error as GraphQLErrorPayload[]);
  if (isCloseEvent(error)) {
    const code = REFUSED[error.code as keyof typeof REFUSED] ?? 'NETWORK_ERROR';
    return new SessionServiceError(
      code,
      error.reason || `The subscription's connection closed (code ${error.code}).`,
      { cause: error },
    );
  }
  return new SessionServiceError(
    'NETWORK_ERROR',
    `The subscription failed: ${error instanceof Error ? error.message : String(error)}`,
    { cause: error },
  );
}

/** What {@link subscriptionTransport} returns: `subscribe` and `close`. */
export type SubscriptionTransport = ReturnType<typeof subscriptionTransport>;

/**
 * The subscription transport of a client or verifier made with `options`: its `wsUrl`, else
 * each `url` with `ws:` or `wss:`, and its key, timeout and WebSocket constructor.
 */
export function liveTransportOf(
  options: {
    readonly url: string | readonly string[];
    readonly wsUrl?: string | readonly string[];
    readonly key: string;
    readonly timeoutMs?: number;
    readonly webSocketImpl?: WebSocketConstructor;
  },
  wsOptions: SubscriptionTransportOptions['options'],
): SubscriptionTransport {
  return subscriptionTransport({
    url: options.wsUrl ?? webSocketUrlsOf(options.url),
    key: options.key,
    timeoutMs: options.timeoutMs,
    webSocketImpl: options.webSocketImpl,
    options: wsOptions,
  });
}

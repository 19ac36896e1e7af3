import { createServer, type Server } from 'node:http';
import { GraphQLError, type DocumentNode, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocket, WebSocketServer } from 'ws';
import { documentResolverOf, requestIp, type App } from './app.js';
import { loadConfig, type WebSocketLimits } from './config.js';
import type { SubscriptionTransport } from './workers/event-bus.js';
import { authorizationParam, bearerKey } from './graphql/context.js';
import { contractErrors } from './http/error-contract.js';
import type { Services } from './services.js';

/** WebSocket close codes sent when a connection is refused or the server stops. */
export const CLOSE_CODES = {
  unauthenticated: 4401,
  forbidden: 4403,
  /** A connection cap (per key, per IP, unauthenticated per IP) is reached. */
  limitExceeded: 4430,
  /** The client left events unread for too long (SLOW_CONSUMER_SECONDS). */
  slowConsumer: 4431,
  goingAway: 1001,
  /** A frame larger than BODY_LIMIT_BYTES (sent by `ws` itself, before buffering it). */
  messageTooBig: 1009,
} as const;

/** How {@link createHttpServer} bounds WebSockets and finds the client's address. */
export interface HttpServerOptions {
  /** Largest WebSocket message, as for HTTP bodies (default 128 KiB). */
  readonly bodyLimitBytes?: number;
  /** Trusted reverse proxies in front (default 0), as for HTTP: see `clientIp`. */
  readonly trustProxyHops?: number;
  /** Connection limits (defaults: the configuration's). */
  readonly websocket?: Partial<WebSocketLimits>;
}

/** What is counted for one open socket. */
interface SocketState {
  readonly ip: string;
  /** The key it authenticated with (key id, or `admin`); undefined before connection_init. */
  key: string | undefined;
}

/** Counts per name (IP or key); a name at zero is forgotten. */
class Counter {
  readonly #counts = new Map<string, number>();
  get(name: string): number {
    return this.#counts.get(name) ?? 0;
  }
  add(name: string, delta: number): void {
    const n = this.get(name) + delta;
    if (n <= 0) this.#counts.delete(name);
    else this.#counts.set(name, n);
  }
}

/** How often a paused replay looks again at a socket's unsent bytes. */
const DRAIN_POLL_MS = 25;

/** Resolves once the socket holds at most `maxBuffered` unsent bytes, or is no longer open. */
function drained(socket: WebSocket, maxBuffered: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (socket.readyState !== WebSocket.OPEN || socket.bufferedAmount <= maxBuffered) resolve();
      else setTimeout(check, DRAIN_POLL_MS).unref();
    };
    check();
  });
}

/** The listening-ready server and its graceful shutdown, as `src/main.ts` uses them. */
export interface HttpServer {
  readonly server: Server;
  /**
   * Stops accepting, ends subscriptions (WebSocket close 1001), lets requests in flight finish
   * for up to `graceMs`, then closes what is left.
   */
  shutdown(graceMs: number): Promise<void>;
}

interface Enveloped {
  execute: (args: ExecutionArgs) => unknown;
  subscribe: (args: ExecutionArgs) => unknown;
}

/** The open sockets' states, and the counts the connection caps are checked against. */
interface ConnectionCounts {
  readonly states: WeakMap<WebSocket, SocketState>;
  readonly openPerIp: Counter;
  readonly unauthenticatedPerIp: Counter;
  readonly openPerKey: Counter;
}

/** Closes a socket that a connection cap refuses. */
const refuse = (socket: WebSocket, reason: string) =>
  socket.close(CLOSE_CODES.limitExceeded, `LIMIT_EXCEEDED: ${reason}`);

/**
 * Upgrades requests to the GraphQL path to WebSockets (others: 404), within the per-IP caps,
 * and counts each socket until it closes.
 */
function acceptUpgrades(
  server: Server,
  wss: WebSocketServer,
  app: App,
  services: Services,
  limits: WebSocketLimits,
  hops: number,
  counts: ConnectionCounts,
): void {
  const { states, openPerIp, unauthenticatedPerIp, openPerKey } = counts;
  server.on('upgrade', (req, socket, head) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== app.graphqlEndpoint) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      // The same client address as HTTP (X-Forwarded-For behind TRUST_PROXY_HOPS proxies).
      const ip = requestIp(req, undefined, hops) ?? 'unknown';
      if (openPerIp.get(ip) >= limits.maxConnectionsPerIp) {
        refuse(ws, `WS_MAX_CONNECTIONS_PER_IP (${limits.maxConnectionsPerIp}) reached`);
        return;
      }
      if (unauthenticatedPerIp.get(ip) >= limits.maxUnauthenticatedPerIp) {
        refuse(ws, `WS_MAX_UNAUTHENTICATED_PER_IP (${limits.maxUnauthenticatedPerIp}) reached`);
        return;
      }
      const state: SocketState = { ip, key: undefined };
      states.set(ws, state);
      openPerIp.add(ip, 1);
      unauthenticatedPerIp.add(ip, 1);
      ws.once('close', () => {
        openPerIp.add(ip, -1);
        if (state.key === undefined) unauthenticatedPerIp.add(ip, -1);
        else openPerKey.add(state.key, -1);
      });
      quietSendsAfterDestroy(ws);
      wss.emit('connection', ws, req);
      // graphql-ws prints socket errors with console.error; an oversized frame (closed 1009 by
      // `ws`) or a reset is the client's doing: log it quietly, without its content.
      ws.removeAllListeners('error');
      ws.on('error', (error: Error & { code?: string }) =>
        services.logger.debug({ code: error.code }, 'websocket closed on a protocol error'),
      );
    });
  });
}

/**
 * graphql-ws's `onConnect`: authenticates the connection's key (closing the socket when it is
 * missing, unknown or publishable) and applies the per-key cap.
 */
async function admitConnection(
  services: Services,
  limits: WebSocketLimits,
  counts: ConnectionCounts,
  socket: WebSocket,
  connectionParams: Readonly<Record<string, unknown>> | undefined,
): Promise<boolean> {
  const caller = await services.authenticate(bearerKey(authorizationParam(connectionParams)));
  if (caller.kind === 'anonymous' || caller.kind === 'unknown-key') {
    socket.close(
      CLOSE_CODES.unauthenticated,
      caller.kind === 'anonymous'
        ? 'UNAUTHENTICATED: pass connectionParams { authorization: "Bearer <key>" }'
        : 'UNAUTHENTICATED: this key is unknown or has been revoked',
    );
    return false;
  }
  if (caller.kind === 'publishable') {
    socket.close(CLOSE_CODES.forbidden, 'FORBIDDEN: a publishable key cannot subscribe');
    return false;
  }
  const state = counts.states.get(socket);
  if (!state || socket.readyState !== WebSocket.OPEN) return false;
  const key = caller.kind === 'secret' ? caller.keyId : caller.kind;
  if (counts.openPerKey.get(key) >= limits.maxConnectionsPerKey) {
    refuse(socket, `WS_MAX_CONNECTIONS_PER_KEY (${limits.maxConnectionsPerKey}) reached`);
    return false;
  }
  state.key = key;
  counts.openPerKey.add(key, 1);
  counts.unauthenticatedPerIp.add(state.ip, -1);
  return true;
}

/** Why an operation may not open on this connection (closing, or too many open), if it may not. */
function operationRefusal(
  socket: WebSocket,
  subscriptions: Readonly<Record<string, unknown>>,
  limits: WebSocketLimits,
): GraphQLError[] | undefined {
  if (socket.readyState !== WebSocket.OPEN) {
    return [
      new GraphQLError('This connection is closing.', {
        extensions: { code: 'SERVICE_UNAVAILABLE' },
      }),
    ];
  }
  // graphql-ws has registered this operation already: it counts itself.
  const open = Object.keys(subscriptions).length;
  if (open > limits.maxSubscriptionsPerConnection) {
    return [
      new GraphQLError(
        `This connection has ${open - 1} operations open, the most allowed (MAX_SUBSCRIPTIONS_PER_CONNECTION); end one first.`,
        {
          extensions: {
            code: 'LIMIT_EXCEEDED',
            limit: limits.maxSubscriptionsPerConnection,
          },
        },
      ),
    ];
  }
  return undefined;
}

/**
 * How a subscription's events reach this socket: `ready` waits for its unsent bytes to drain;
 * `onSlow` closes a connection that leaves events unread and ends its subscriptions.
 */
function socketTransport(
  socket: WebSocket,
  subscriptions: Readonly<Record<string, unknown>>,
  limits: WebSocketLimits,
): SubscriptionTransport {
  return {
    ready: () => drained(socket, limits.maxBufferedBytes),
    onSlow: () => {
      if (socket.readyState === WebSocket.OPEN) {
        socket.close(
          CLOSE_CODES.slowConsumer,
          'SLOW_CONSUMER: events were left unread too long; reconnect and resume with `after`',
        );
      }
      // The close handshake waits on a client that does not read: end the connection's
      // subscriptions now rather than when its TCP connection finally goes.
      for (const operation of Object.values(subscriptions)) {
        const iterator = operation as AsyncIterator<unknown> | null;
        void iterator?.return?.();
      }
    },
  };
}

/**
 * The text a graphql-ws subscribe message runs: its `documentId` and `query` resolved as over
 * HTTP (src/graphql/trusted-documents.ts), or the refusal. graphql-ws requires a `query`
 * string: an empty one sent with a `documentId` is none.
 */
function trustedQuery(
  app: App,
  payload: { query: string; documentId?: unknown },
): string | GraphQLError {
  const { mode, documents } = documentResolverOf(app);
  if (mode === 'off' || (mode === 'allow' && payload.documentId == null)) return payload.query;
  return documents.resolve(mode, payload.documentId, payload.query) ?? payload.query;
}

/** Serves GraphQL over WebSocket (graphql-ws) on `wss`, through the app's envelop. */
function serveGraphqlWs(
  wss: WebSocketServer,
  app: App,
  services: Services,
  limits: WebSocketLimits,
  counts: ConnectionCounts,
): void {
  useServer(
    {
      connectionInitWaitTimeout: limits.connectionInitTimeoutMs,
      execute: (args) => (args.rootValue as Enveloped).execute(args) as never,
      subscribe: (args) => (args.rootValue as Enveloped).subscribe(args) as never,
      onConnect: (ctx) =>
        admitConnection(services, limits, counts, ctx.extra.socket, ctx.connectionParams),
      // graphql-ws sends these itself, past Yoga's result processing: same contract codes, and
      // no value quoted from the request (src/http/error-contract.ts).
      onError: (_ctx, _id, _payload, errors) =>
        contractErrors(errors, 'before-execution').map((e) => e.toJSON()),
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors
          ? {
              ...result,
              errors: contractErrors(result.errors, 'execution').map((e) => e.toJSON()),
            }
          : undefined,
      onSubscribe: async (ctx, _id, payload) => {
        const socket = ctx.extra.socket;
        const refusal = operationRefusal(socket, ctx.subscriptions, limits);
        if (refusal) return refusal;
        const enveloped = app.getEnveloped({
          req: ctx.extra.request,
          connectionParams: ctx.connectionParams,
          subscriptionTransport: socketTransport(socket, ctx.subscriptions, limits),
          params: payload,
        });
        // A refused operation (syntax, limits, validation) ends that subscription only, not the
        // connection and the client's other subscriptions with it.
        const query = trustedQuery(app, payload);
        if (query instanceof GraphQLError) return [query];
        let document: DocumentNode;
        try {
          document = enveloped.parse(query);
          const errors = enveloped.validate(enveloped.schema, document);
          if (errors.length > 0) return errors;
        } catch (error) {
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        return {
          schema: enveloped.schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await enveloped.contextFactory(),
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
        };
      },
    },
    wss,
    limits.keepAliveMs,
  );
}

/**
 * The server's shutdown: stops accepting, ends subscriptions (close 1001), closes keep-alive
 * connections as they go idle, and past `graceMs` closes what is left.
 */
async function shutdown(
  server: Server,
  wss: WebSocketServer,
  services: Services,
  graceMs: number,
): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  services.events.stop();
  for (const client of wss.clients) client.close(CLOSE_CODES.goingAway, 'server shutting down');
  wss.close();
  server.closeIdleConnections();
  // Responses ending now (SSE streams, requests in flight) leave keep-alive connections idle:
  // close those as they appear instead of waiting out the grace period.
  const sweepIdle = setInterval(() => server.closeIdleConnections(), 50);
  const force = setTimeout(() => {
    for (const client of wss.clients) client.terminate();
    server.closeAllConnections();
  }, graceMs);
  force.unref();
  await closed;
  clearInterval(sweepIdle);
  clearTimeout(force);
}

/**
 * The HTTP server: Yoga for HTTP and SSE, and GraphQL over WebSocket (graphql-ws) on the same
 * path, authenticated with `connectionParams.authorization` when the connection opens.
 */
export function createHttpServer(
  app: App,
  services: Services,
  options: HttpServerOptions = {},
): HttpServer {
  const limits: WebSocketLimits = { ...loadConfig({}).websocket, ...options.websocket };
  const server = createServer(app);
  // Frames are capped like HTTP bodies: `ws` reads a frame's length from its header and closes
  // with 1009 before buffering more. No per-message deflate, so nothing inflates past the cap.
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.bodyLimitBytes ?? 131_072,
    perMessageDeflate: false,
  });
  const counts: ConnectionCounts = {
    states: new WeakMap(),
    openPerIp: new Counter(),
    unauthenticatedPerIp: new Counter(),
    openPerKey: new Counter(),
  };
  acceptUpgrades(server, wss, app, services, limits, options.trustProxyHops ?? 0, counts);
  serveGraphqlWs(wss, app, services, limits, counts);
  return { server, shutdown: (graceMs) => shutdown(server, wss, services, graceMs) };
}

/**
 * A send to a client whose connection went away before its close event (the socket destroyed
 * mid-send) fails with ERR_STREAM_DESTROYED, which graphql-ws prints on stderr as an internal
 * error of the implementation. The client is gone and the close event cleans up: such a send
 * settles as done; any other send error is passed on.
 */
function quietSendsAfterDestroy(ws: WebSocket): void {
  const send = ws.send.bind(ws) as (data: unknown, ...rest: unknown[]) => void;
  ws.send = ((data: unknown, ...rest: unknown[]) => {
    const last = rest.at(-1);
    if (typeof last !== 'function') return send(data, ...rest);
    const callback = last as (error?: Error) => void;
    return send(data, ...rest.slice(0, -1), (error?: Error & { code?: string }) =>
      callback(error?.code === 'ERR_STREAM_DESTROYED' ? undefined : error),
    );
  }) as WebSocket['send'];
}

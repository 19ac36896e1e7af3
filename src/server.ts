import { createServer, type Server } from 'node:http';
import { GraphQLError, type DocumentNode, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocket, WebSocketServer } from 'ws';
import { requestIp, type App } from './app.js';
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
  const hops = options.trustProxyHops ?? 0;
  const server = createServer(app);
  // Frames are capped like HTTP bodies: `ws` reads a frame's length from its header and closes
  // with 1009 before buffering more. No per-message deflate, so nothing inflates past the cap.
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.bodyLimitBytes ?? 131_072,
    perMessageDeflate: false,
  });
  const states = new WeakMap<WebSocket, SocketState>();
  const openPerIp = new Counter();
  const unauthenticatedPerIp = new Counter();
  const openPerKey = new Counter();

  const refuse = (socket: WebSocket, reason: string) =>
    socket.close(CLOSE_CODES.limitExceeded, `LIMIT_EXCEEDED: ${reason}`);

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

  useServer(
    {
      connectionInitWaitTimeout: limits.connectionInitTimeoutMs,
      execute: (args) => (args.rootValue as Enveloped).execute(args) as never,
      subscribe: (args) => (args.rootValue as Enveloped).subscribe(args) as never,
      onConnect: async (ctx) => {
        const caller = await services.authenticate(
          bearerKey(authorizationParam(ctx.connectionParams)),
        );
        const socket = ctx.extra.socket;
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
        const state = states.get(socket);
        if (!state || socket.readyState !== WebSocket.OPEN) return false;
        const key = caller.kind === 'secret' ? caller.keyId : caller.kind;
        if (openPerKey.get(key) >= limits.maxConnectionsPerKey) {
          refuse(socket, `WS_MAX_CONNECTIONS_PER_KEY (${limits.maxConnectionsPerKey}) reached`);
          return false;
        }
        state.key = key;
        openPerKey.add(key, 1);
        unauthenticatedPerIp.add(state.ip, -1);
        return true;
      },
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
        if (ctx.extra.socket.readyState !== WebSocket.OPEN) {
          return [
            new GraphQLError('This connection is closing.', {
              extensions: { code: 'SERVICE_UNAVAILABLE' },
            }),
          ];
        }
        // graphql-ws has registered this operation already: it counts itself.
        const open = Object.keys(ctx.subscriptions).length;
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
        const socket = ctx.extra.socket;
        const subscriptionTransport: SubscriptionTransport = {
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
            for (const operation of Object.values(ctx.subscriptions)) {
              const iterator = operation as AsyncIterator<unknown> | null;
              void iterator?.return?.();
            }
          },
        };
        const enveloped = app.getEnveloped({
          req: ctx.extra.request,
          connectionParams: ctx.connectionParams,
          subscriptionTransport,
          params: payload,
        });
        // A refused operation (syntax, limits, validation) ends that subscription only, not the
        // connection and the client's other subscriptions with it.
        let document: DocumentNode;
        try {
          document = enveloped.parse(payload.query);
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

  return {
    server,
    async shutdown(graceMs) {
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
    },
  };
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

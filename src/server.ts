import { createServer, type Server } from 'node:http';
import { GraphQLError, type DocumentNode, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { App } from './app.js';
import { bearerKey } from './graphql/context.js';
import type { Services } from './services.js';

/** WebSocket close codes sent when a connection is refused or the server stops. */
export const CLOSE_CODES = {
  unauthenticated: 4401,
  forbidden: 4403,
  goingAway: 1001,
} as const;

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
export function createHttpServer(app: App, services: Services): HttpServer {
  const server = createServer(app);
  const wss = new WebSocketServer({ server, path: app.graphqlEndpoint });
  useServer(
    {
      execute: (args) => (args.rootValue as Enveloped).execute(args) as never,
      subscribe: (args) => (args.rootValue as Enveloped).subscribe(args) as never,
      onConnect: async (ctx) => {
        const authorization = ctx.connectionParams?.authorization;
        const caller = await services.authenticate(
          bearerKey(typeof authorization === 'string' ? authorization : undefined),
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
        return true;
      },
      onSubscribe: async (ctx, _id, payload) => {
        const enveloped = app.getEnveloped({
          req: ctx.extra.request,
          connectionParams: ctx.connectionParams,
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

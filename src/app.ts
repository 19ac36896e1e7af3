import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { EnvelopArmor } from '@escape.tech/graphql-armor';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { GraphQLError, NoSchemaIntrospectionCustomRule } from 'graphql';
import {
  createYoga,
  maskError as yogaMaskError,
  type MaskError,
  type Plugin,
  type YogaServerInstance,
} from 'graphql-yoga';
import { isDatabaseUnavailable } from './db/errors.js';
import type { SubscriptionTransport } from './workers/event-bus.js';
import { graphiqlOptions, isLocalRequest, type GraphiQLSetup } from './graphiql.js';
import { authorizationParam, createContext, type Context } from './graphql/context.js';
import { useCostLimit } from './graphql/cost.js';
import { schema } from './graphql/index.js';
import { useBodyLimit } from './http/body-limit.js';
import { createStaticPages, isPageRequest } from './http/console.js';
import { useResponseLimit } from './http/response-limit.js';
import { useErrorContract } from './http/error-contract.js';
import { useInputGuard } from './graphql/input-guard.js';
import {
  TrustedDocuments,
  useTrustedDocuments,
  type TrustedDocumentsMode,
} from './graphql/trusted-documents.js';
import { findServiceError, yogaLogging } from './observability/errors.js';
import {
  useMetricsEndpoint,
  useRequestHistogram,
  type MetricsExposure,
} from './http/metrics-endpoint.js';
import { RequestLogs } from './observability/request-log.js';
import type { Services } from './services.js';

/** What Node's HTTP server hands Yoga with each request. */
export interface ServerContext {
  req?: IncomingMessage;
  /** Over WebSocket: the `connectionParams` of graphql-ws's connection_init. */
  connectionParams?: Readonly<Record<string, unknown>>;
  /** Over WebSocket: the socket's backpressure, for subscriptions. */
  subscriptionTransport?: SubscriptionTransport;
}

/** The Yoga instance {@link createApp} makes: a Node request handler with `fetch` for tests. */
export type App = YogaServerInstance<ServerContext, Context>;

/** What {@link createApp} serves and how strictly: pages, introspection, limits, metrics. */
export interface AppOptions {
  /** Serve GraphiQL at GET /graphql in a browser. */
  readonly graphiql: boolean;
  /** What GraphiQL opens with: example tabs, and the demo key when known (src/graphiql.ts). */
  readonly graphiqlSetup?: GraphiQLSetup;
  /** Answer introspection queries (default true; production turns it off). */
  readonly introspection?: boolean;
  /** Suggest field names in validation errors (default true; production turns it off). */
  readonly fieldSuggestions?: boolean;
  /** Largest request body, in bytes (default 128 KiB). */
  readonly bodyLimitBytes?: number;
  /** Largest response sent; a larger result becomes a LIMIT_EXCEEDED error (default 8 MiB). */
  readonly maxResponseBytes?: number;
  /** Trusted reverse proxies in front (default 0: the TCP peer is the client). */
  readonly trustProxyHops?: number;
  /** Where `/metrics` is served and whether it needs a token (default: here, no token). */
  readonly metrics?: MetricsExposure;
  /** Serve the web console at /console (default false; src/http/console.ts). */
  readonly console?: boolean;
  /**
   * Compress the console and GraphiQL once this settles (the server listens: the start is not
   * slowed by it) rather than on their first request.
   */
  readonly precompressAfter?: PromiseLike<unknown>;
  /**
   * Trusted documents (TRUSTED_DOCUMENTS, src/graphql/trusted-documents.ts): `off`, `allow`
   * (default) or `require`; over HTTP, SSE and WebSocket alike.
   */
  readonly trustedDocuments?: TrustedDocumentsMode;
}

/** How an app resolves a request's `documentId` and `query` (its mode and manifest). */
export interface DocumentResolver {
  readonly mode: TrustedDocumentsMode;
  readonly documents: TrustedDocuments;
}

const resolvers = new WeakMap<object, DocumentResolver>();

/** The trusted documents of an app made by {@link createApp}: for graphql-ws (src/server.ts). */
export function documentResolverOf(app: App): DocumentResolver {
  return resolvers.get(app) ?? { mode: 'allow', documents: new TrustedDocuments() };
}

/** Limits on an operation's shape, checked before anything executes. */
export const QUERY_LIMITS = {
  depth: 12,
  aliases: 20,
  tokens: 2_000,
  directives: 20,
} as const;

/**
 * The client's address: the TCP peer, or, behind `hops` trusted proxies, the address the
 * outermost of them saw (that many entries from the right of X-Forwarded-For). Entries a
 * client wrote itself, further left, are never believed.
 */
export function clientIp(
  peer: string | null,
  forwardedFor: string | null,
  hops: number,
): string | null {
  if (hops === 0 || forwardedFor === null) return peer;
  const chain = forwardedFor
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
  const candidate = chain[chain.length - hops];
  return candidate !== undefined && isIP(candidate) !== 0 ? candidate : peer;
}

/**
 * The client IP of an HTTP request or of a WebSocket's upgrade request: the same rule for both
 * (`clientIp`), so rate limits, device records and per-IP caps agree.
 */
export function requestIp(
  req: IncomingMessage | undefined,
  request: Request | undefined,
  hops: number,
): string | null {
  const header = req?.headers['x-forwarded-for'];
  const forwardedFor =
    request?.headers.get('x-forwarded-for') ??
    (Array.isArray(header) ? header.join(', ') : (header ?? null));
  return clientIp(req?.socket?.remoteAddress ?? null, forwardedFor, hops);
}

/** The same error without graphql-js's "Did you mean …?" hints. */
function withoutSuggestions(error: GraphQLError): GraphQLError {
  const message = error.message.replace(/ ?Did you mean [^?]*\?/g, '');
  if (message === error.message) return error;
  return new GraphQLError(message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    extensions: error.extensions,
  });
}

/**
 * GraphiQL and the console, compressed (once `options.precompressAfter` settles). The demo key
 * goes only into a page served to this machine itself (src/graphiql.ts). Assets come from the
 * installed packages and the repository: the pages work with no network.
 */
function staticPagesOf(logger: Services['logger'], options: AppOptions) {
  const staticPages = createStaticPages({
    console: options.console ?? false,
    graphiql: options.graphiql
      ? (local) =>
          graphiqlOptions({
            ...options.graphiqlSetup,
            demoKey: local ? options.graphiqlSetup?.demoKey : undefined,
          })
      : undefined,
    isLocal: (request, serverContext) =>
      isLocalRequest(
        (serverContext as ServerContext | undefined)?.req?.socket?.remoteAddress,
        request,
      ),
  });
  if (options.precompressAfter) {
    const warm = () =>
      staticPages
        .warm()
        .catch((error: unknown) => logger.error({ err: error }, 'static pages failed'));
    options.precompressAfter.then(warm, () => {});
  }
  return staticPages;
}

/**
 * Yoga's `maskError`: a service error with its code, a request error as it is (without
 * suggestions when they are off), the database unavailable as SERVICE_UNAVAILABLE, and any
 * other fault as INTERNAL_SERVER_ERROR with nothing of its content.
 */
function maskErrorFor(options: AppOptions): MaskError {
  return (error, message, isDev) => {
    const serviceError = findServiceError(error);
    if (serviceError) {
      const original = error instanceof GraphQLError ? error : undefined;
      return new GraphQLError(serviceError.message, {
        nodes: original?.nodes,
        path: original?.path,
        extensions: {
          code: serviceError.code,
          ...(serviceError.field ? { field: serviceError.field } : {}),
          ...serviceError.details,
        },
      });
    }
    const masked = yogaMaskError(error, message, isDev);
    if (masked === error) {
      // A request error (syntax, validation, variables): safe to show, but without naming
      // the schema's fields or values when suggestions are off.
      return options.fieldSuggestions === false && masked instanceof GraphQLError
        ? withoutSuggestions(masked)
        : masked;
    }
    // (Yoga logs the original error itself, through `logging` above.)
    if (isDatabaseUnavailable(error)) {
      // Fail closed, and say it is worth retrying: never an answer the database did not give.
      return new GraphQLError('The service is temporarily unavailable; retry shortly.', {
        nodes: masked instanceof GraphQLError ? masked.nodes : undefined,
        path: masked instanceof GraphQLError ? masked.path : undefined,
        extensions: { code: 'SERVICE_UNAVAILABLE', retriable: true, http: { status: 503 } },
      });
    }
    return new GraphQLError(message, {
      nodes: masked instanceof GraphQLError ? masked.nodes : undefined,
      path: masked instanceof GraphQLError ? masked.path : undefined,
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
  };
}

/**
 * The plugins that bound a document: depth, aliases, tokens, directives (graphql-armor), cost,
 * the response's size, field suggestions and introspection when they are off.
 */
function documentLimitPlugins(options: AppOptions, logger: Services['logger']) {
  return [
    ...new EnvelopArmor({
      maxDepth: { n: QUERY_LIMITS.depth },
      maxAliases: { n: QUERY_LIMITS.aliases },
      maxTokens: { n: QUERY_LIMITS.tokens },
      maxDirectives: { n: QUERY_LIMITS.directives },
      // The cost model weighs pages and JSON sizes (src/graphql/cost.ts): armor's cannot.
      costLimit: { enabled: false },
      blockFieldSuggestion: { enabled: options.fieldSuggestions === false },
    }).protect().plugins,
    useCostLimit(),
    useResponseLimit(options.maxResponseBytes ?? 8 * 1024 * 1024, logger),
    // graphql-armor misses some hints ("Did you mean the enum value …?"): strip them all.
    ...(options.fieldSuggestions === false
      ? [
          {
            onValidate:
              () =>
              ({ result, setResult }) => {
                if (result.length > 0) {
                  setResult(
                    result.map((e: Error) =>
                      e instanceof GraphQLError ? withoutSuggestions(e) : e,
                    ),
                  );
                }
              },
          } satisfies Plugin,
        ]
      : []),
    // A validation rule, not a check of the HTTP request: it holds over WebSocket too.
    ...(options.introspection === false
      ? [
          {
            onValidate: ({ addValidationRule }) =>
              addValidationRule(NoSchemaIntrospectionCustomRule),
          } satisfies Plugin,
        ]
      : []),
  ];
}

/**
 * `/ready`: 200 when the database answers a ping within 2 s, else 503 (no body either way). Yoga's
 * `useReadinessCheck` says the same, but matches every request's URL against a URLPattern.
 */
function readinessPlugin(services: Services): Plugin {
  return {
    onRequest({ url, fetchAPI, endResponse }) {
      if (url.pathname !== '/ready') return;
      return withTimeout(services.ping(), 2_000).then(
        () => endResponse(new fetchAPI.Response(null, { status: 200 })),
        () => endResponse(new fetchAPI.Response(null, { status: 503 })),
      );
    },
  };
}

/**
 * The Yoga instance: schema, per-request context, error masking and readiness. It does not
 * listen; `src/main.ts` does. Tests call `app.fetch` directly.
 */
export function createApp(services: Services, options: AppOptions): App {
  const logger = services.logger;
  const requestLogs = new RequestLogs(logger);
  const staticPages = staticPagesOf(logger, options);
  const trusted: DocumentResolver = {
    mode: options.trustedDocuments ?? 'allow',
    documents: new TrustedDocuments(),
  };
  const app = createYoga<ServerContext, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    landingPage: false,
    // The API answers browsers on any origin (a key travels in a header, never a cookie); the
    // pages (GraphiQL, the console) answer no CORS headers: no other origin may read them.
    cors: (request) => (isPageRequest(request, new URL(request.url).pathname) ? false : {}),
    // GraphiQL and the console are served, compressed, by staticPages' plugin below.
    graphiql: false,
    // Yoga logs every error it masks: through the one error path (src/observability/errors.ts),
    // which keeps client errors at debug level and redacts what faults carry.
    logging: yogaLogging(logger, requestLogs),
    context: ({ request, req, connectionParams, subscriptionTransport }) => {
      // Over WebSocket there is no Fetch request: the key comes from connectionParams, the
      // client's address from the upgrade request.
      return createContext(
        services,
        request?.headers.get('authorization') ?? authorizationParam(connectionParams),
        {
          userAgent: request?.headers.get('user-agent') ?? req?.headers['user-agent'] ?? null,
          ip: requestIp(req, request, options.trustProxyHops ?? 0),
        },
        () => requestLogs.loggerFor(request),
        subscriptionTransport,
      );
    },
    maskedErrors: { maskError: maskErrorFor(options) },
    // Yoga's own limit streams every body through a counting transform; useBodyLimit checks
    // Content-Length before anything is read instead.
    maxRequestBodySize: false,
    batching: false,
    // Read (and removed) by useTrustedDocuments before Yoga checks the parameters.
    extraParamNames: ['documentId'],
    plugins: [
      requestLogs.plugin(),
      staticPages.plugin,
      useErrorContract(),
      useMetricsEndpoint(services.metrics.registry, options.metrics ?? { onMainPort: true }),
      useBodyLimit(options.bodyLimitBytes ?? 131_072),
      useCSRFPrevention({ requestHeaders: ['x-graphql-yoga-csrf', 'authorization'] }),
      useTrustedDocuments(trusted.mode, trusted.documents),
      ...documentLimitPlugins(options, logger),
      useInputGuard(),
      useRequestHistogram(services.metrics.registry, schema),
      readinessPlugin(services),
    ],
  });
  resolvers.set(app, trusted);
  return app;
}

/** `promise`, or a rejection after `ms` (the readiness ping must not hang `/ready`). */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

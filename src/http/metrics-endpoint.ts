import { timingSafeEqual, createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { getOperationAST, Kind, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { Histogram, type Registry } from 'prom-client';
import { errorResponse, ROUTES } from './error-contract.js';

/** Where /metrics is served, and whether it needs a bearer token. */
export interface MetricsExposure {
  /** Serve `/metrics` on the GraphQL port (false when it has a listener of its own). */
  readonly onMainPort: boolean;
  /** When set, `/metrics` answers only `Authorization: Bearer <token>`. */
  readonly token?: string;
}

/**
 * The operation label: the root field an operation selects, when it is one of the schema's
 * (a fixed set), else `multiple`, `introspection`, `typename` or `other`. Never client text:
 * operation names and URLs are the client's to vary, and would make a series each.
 */
export function operationLabel(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | undefined,
): string {
  const operation = getOperationAST(document, operationName);
  if (!operation) return 'other';
  const root =
    operation.operation === 'query'
      ? schema.getQueryType()
      : operation.operation === 'mutation'
        ? schema.getMutationType()
        : schema.getSubscriptionType();
  const names = new Set<string>();
  for (const selection of operation.selectionSet.selections) {
    if (selection.kind !== Kind.FIELD) return 'other';
    names.add(selection.name.value);
  }
  names.delete('__typename');
  if (names.size === 0) return 'typename';
  if (names.has('__schema') || names.has('__type')) return 'introspection';
  if (names.size > 1) return 'multiple';
  const [name] = names as unknown as [string];
  return root?.getFields()[name] ? name : 'other';
}

/** The route label of a path: one of the server's routes, or `other`. */
function routeOf(path: string): string {
  return (ROUTES as readonly string[]).includes(path) ? path : 'other';
}

const HTTP_LABELS = ['route', 'operation', 'operationType', 'method', 'statusCode'] as const;

/** What a request's labels take from its document: computed once per document and operation. */
interface OperationLabels {
  readonly operation: string;
  readonly operationType: string;
}

/**
 * The request histogram (`graphql_yoga_http_duration`) with bounded labels: route (never the URL
 * or its query string), operation ({@link operationLabel}), operation type, method and status.
 * Like Yoga's Prometheus plugin, a request is observed once its document parsed, from its
 * arrival to its response; unlike it, the labels a document gives are worked out once per
 * document (Yoga's parser cache hands the same document back for the same text) and nothing
 * else runs per request: that plugin's envelop hooks cost more than a whole trivial request.
 */
export function useRequestHistogram(registry: Registry, schema: GraphQLSchema): Plugin {
  const histogram = new Histogram({
    name: 'graphql_yoga_http_duration',
    help: 'Time spent on HTTP requests, by route, operation, method and status.',
    labelNames: HTTP_LABELS,
    registers: [registry],
  });
  const byDocument = new WeakMap<DocumentNode, Map<string | undefined, OperationLabels>>();
  const labelsOf = (document: DocumentNode, operationName: string | undefined) => {
    let byName = byDocument.get(document);
    if (!byName) byDocument.set(document, (byName = new Map()));
    let labels = byName.get(operationName);
    if (!labels) {
      labels = {
        operation: operationLabel(schema, document, operationName),
        operationType: getOperationAST(document, operationName)?.operation ?? 'unknown',
      };
      // Operation names are the client's: a document sent with many keeps a bounded map.
      if (byName.size < 16) byName.set(operationName, labels);
    }
    return labels;
  };
  const started = new WeakMap<Request, { at: number; route: string }>();
  const operations = new WeakMap<Request, OperationLabels>();
  return {
    onRequest({ request, url }) {
      started.set(request, { at: performance.now(), route: routeOf(url.pathname) });
    },
    onParse({ context }) {
      const request = (context as { request?: Request }).request;
      if (!request) return;
      return ({ result, context: { params } }) => {
        // Parse errors (and errors as parse results) are not observed, as in Yoga's plugin.
        if (result instanceof Error) return;
        operations.set(request, labelsOf(result, params.operationName ?? undefined));
      };
    },
    onResponse({ request, response }) {
      const start = started.get(request);
      const operation = operations.get(request);
      if (!start || !operation) return;
      histogram.observe(
        {
          route: start.route,
          operation: operation.operation,
          operationType: operation.operationType,
          method: request.method === 'GET' || request.method === 'POST' ? request.method : 'other',
          statusCode: response.status,
        },
        (performance.now() - start.at) / 1000,
      );
    },
  };
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Whether an Authorization header carries the token (compared in constant time). */
function authorized(header: string | null, token: string | undefined): boolean {
  if (token === undefined) return true;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match !== null && timingSafeEqual(digest(match[1]!), digest(token));
}

async function metricsResponse(
  registry: Registry,
  fetchAPI: { Response: typeof Response },
  authorization: string | null,
  token: string | undefined,
): Promise<Response> {
  if (!authorized(authorization, token)) {
    return errorResponse(
      fetchAPI,
      401,
      'UNAUTHENTICATED',
      'Send the metrics token: "Bearer <token>".',
      {
        'www-authenticate': 'Bearer',
      },
    );
  }
  return new fetchAPI.Response(await registry.metrics(), {
    headers: { 'content-type': registry.contentType },
  });
}

/**
 * `/metrics` on the GraphQL port, as {@link MetricsExposure} says: behind the token when one is
 * set, and a 404 when metrics have a listener of their own.
 */
export function useMetricsEndpoint(registry: Registry, exposure: MetricsExposure): Plugin {
  return {
    onRequest({ url, request, fetchAPI, endResponse }) {
      if (url.pathname !== '/metrics') return;
      if (!exposure.onMainPort) {
        endResponse(errorResponse(fetchAPI, 404, 'NOT_FOUND', 'No such route.'));
        return;
      }
      return metricsResponse(
        registry,
        fetchAPI,
        request.headers.get('authorization'),
        exposure.token,
      ).then(endResponse);
    },
  };
}

/**
 * A listener of its own for `/metrics` (METRICS_PORT), meant for an interface only the scraper
 * reaches (METRICS_HOST, 127.0.0.1 by default); the token, when set, is asked here too.
 */
export function createMetricsServer(registry: Registry, token: string | undefined): Server {
  return createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://metrics').pathname;
    const respond = (response: Response) =>
      response.text().then((body) => {
        res.writeHead(response.status, Object.fromEntries(response.headers));
        res.end(body);
      });
    if (req.method !== 'GET' || path !== '/metrics') {
      void respond(errorResponse(globalThis, 404, 'NOT_FOUND', 'No such route.'));
      return;
    }
    metricsResponse(registry, globalThis, req.headers.authorization ?? null, token)
      .then(respond)
      .catch(() => {
        res.writeHead(500).end();
      });
  });
}

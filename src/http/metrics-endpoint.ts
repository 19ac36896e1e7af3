import { timingSafeEqual, createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createHistogram, type FillLabelsFnParams } from '@graphql-yoga/plugin-prometheus';
import { getOperationAST, Kind, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Registry } from 'prom-client';
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

/** Labels worked out, per parsed document and operation name (the document's own, once). */
const operationLabels = new WeakMap<DocumentNode, Map<string, string>>();

function cachedOperationLabel(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | undefined,
): string {
  let labels = operationLabels.get(document);
  if (!labels) operationLabels.set(document, (labels = new Map()));
  const key = operationName ?? '';
  let label = labels.get(key);
  if (label === undefined) {
    label = operationLabel(schema, document, operationName);
    // Operation names are the client's: a document keeps a few labels, never one per name sent.
    if (labels.size < 16) labels.set(key, label);
  }
  return label;
}

/** The route label: one of the server's routes, or `other`. */
export function routeLabel(url: string): string {
  const path = new URL(url).pathname;
  return (ROUTES as readonly string[]).includes(path) ? path : 'other';
}

/** What Yoga's plugin hands the request histogram's label function. */
type HTTPFillLabelParams = FillLabelsFnParams & {
  document: DocumentNode;
  request: Request;
  response: Response;
};

const HTTP_LABELS = ['route', 'operation', 'operationType', 'method', 'statusCode'] as const;

/**
 * Yoga's request histogram with bounded labels: route (never the URL or its query string),
 * operation ({@link operationLabel}), operation type, method and status.
 */
export function httpDurationHistogram(registry: Registry, schema: GraphQLSchema) {
  return createHistogram<'request', (typeof HTTP_LABELS)[number], HTTPFillLabelParams>({
    registry,
    phases: ['request'],
    histogram: {
      name: 'graphql_yoga_http_duration',
      help: 'Time spent on HTTP requests, by route, operation, method and status.',
      labelNames: HTTP_LABELS,
    },
    fillLabelsFn: (params, { request, response }) => ({
      route: routeLabel(request.url),
      operation: params.document
        ? cachedOperationLabel(schema, params.document, params.operationName)
        : 'invalid',
      operationType: params.operationType ?? 'unknown',
      method: ['GET', 'POST'].includes(request.method) ? request.method : 'other',
      statusCode: response.status,
    }),
  });
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

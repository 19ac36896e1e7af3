import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { redact } from '../observability/errors.js';

/** The routes this server answers; anything else is a 404 with a JSON error. */
export const ROUTES = ['/graphql', '/health', '/ready', '/metrics'] as const;

/** A JSON error response in the shape of a GraphQL one, with a code from the contract. */
export function errorResponse(
  fetchAPI: { Response: typeof Response },
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return new fetchAPI.Response(JSON.stringify({ errors: [{ message, extensions: { code } }] }), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
  });
}

/** The contract code for a transport-level error Yoga or a plugin raised without one. */
function codeFor(error: GraphQLError): string {
  const http = error.extensions?.http as { status?: number } | undefined;
  const status = http?.status;
  if (status === 404) return 'NOT_FOUND';
  if (status !== undefined && status >= 500) return 'INTERNAL_SERVER_ERROR';
  // Variables that do not fit their types, CSRF, missing query, wrong method...
  return 'BAD_REQUEST';
}

/** Codes of errors whose message graphql-js or Yoga wrote, possibly quoting the request. */
const ECHOING_CODES = new Set(['BAD_REQUEST', 'GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED']);

/** graphql-js's coercion messages, whatever code they were given on the way. */
const QUOTING_MESSAGE = /got invalid value|cannot represent|Expected value of type/;

/**
 * The message without the values it quotes from the request: graphql-js writes a variable's or
 * literal's value into coercion errors (`got invalid value "…"`, `cannot represent …: "…"`), and
 * a token sent in the wrong place would come back in the answer (and in any proxy's log).
 */
export function withoutEchoedValues(message: string): string {
  return redact(
    message
      .replace(/(got invalid value) [\s\S]*?(;|$)/, '$1$2')
      .replace(/(cannot represent[^:;]*?)(?:: [\s\S]*?)?(;|$)/g, '$1$2')
      .replace(/(Expected value of type "[^"]+"), found [\s\S]*?(;|$)/, '$1$2'),
  );
}

function withCode(error: unknown, fallback: (error: GraphQLError) => string = codeFor): unknown {
  if (!(error instanceof GraphQLError)) return error;
  const code = typeof error.extensions?.code === 'string' ? error.extensions.code : fallback(error);
  const echoes = ECHOING_CODES.has(code) || QUOTING_MESSAGE.test(error.message);
  if (code === error.extensions?.code && !echoes && !('originalError' in error.extensions)) {
    return error;
  }
  // Yoga puts the JSON parser's error (which quotes the body) under extensions.originalError;
  // it goes. The status Yoga would answer stays: a spec error (`http.spec`: a document that does
  // not parse or validate, variables that do not coerce) is 200 to a client that accepts
  // application/json and 400 to one that accepts application/graphql-response+json, as the
  // GraphQL-over-HTTP spec asks; a body that is not JSON (Yoga tells it by that originalError,
  // not a GraphQLError) is 400 to both.
  const { originalError: dropped, ...extensions } = error.extensions;
  const http = extensions.http as { status?: number; spec?: boolean } | undefined;
  if (http?.spec && dropped !== undefined && !(dropped instanceof GraphQLError)) {
    extensions.http = { ...http, spec: false };
  }
  return new GraphQLError(echoes ? withoutEchoedValues(error.message) : error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    extensions: { ...extensions, code },
  });
}

/**
 * The same rules for errors that do not pass through Yoga's result processing (graphql-ws sends
 * its own): a contract code on each (a syntax error is GRAPHQL_PARSE_FAILED, anything else
 * refused before execution GRAPHQL_VALIDATION_FAILED, an execution-time request error such as
 * a variable of the wrong type BAD_REQUEST), and no value quoted from the request.
 */
export function contractErrors(
  errors: readonly GraphQLError[],
  phase: 'before-execution' | 'execution',
): GraphQLError[] {
  const fallback = (error: GraphQLError) =>
    phase === 'execution'
      ? 'BAD_REQUEST'
      : error.message.startsWith('Syntax Error')
        ? 'GRAPHQL_PARSE_FAILED'
        : 'GRAPHQL_VALIDATION_FAILED';
  return errors.map((error) => withCode(error, fallback) as GraphQLError);
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** A result with errors and no `data` (nothing ran) as request errors: `http.spec` on each. */
function asRequestErrors<T>(result: T): T {
  if (typeof result !== 'object' || result === null || Symbol.asyncIterator in result) {
    return result;
  }
  const { errors } = result as { errors?: unknown };
  if ('data' in result || !Array.isArray(errors) || errors.length === 0) return result;
  return {
    ...result,
    errors: errors.map((error: unknown) => {
      if (!(error instanceof GraphQLError)) return error;
      const http = error.extensions?.http as Record<string, unknown> | undefined;
      return new GraphQLError(error.message, {
        nodes: error.nodes,
        source: error.source,
        positions: error.positions,
        path: error.path,
        originalError: error.originalError,
        extensions: { ...error.extensions, http: { ...http, status: 400, spec: true } },
      });
    }),
  };
}

/**
 * What a PUT to the GraphQL endpoint is told: graphql-sse's single connection mode reserves its
 * stream with one, and this server serves the distinct connections mode only
 * (docs/guides/subscriptions.md).
 */
export const SINGLE_CONNECTION_REFUSED =
  "graphql-sse's single connection mode (a PUT reserving a stream) is not served: use its distinct connections mode (singleConnection: false, the default) on this URL, or GraphQL over WebSocket (graphql-ws).";

/**
 * Every failure the server sends carries `extensions.code` (docs/reference/errors.md): request errors
 * Yoga and its plugins raise without one (bad variables, CSRF, missing query…) get BAD_REQUEST,
 * and a path that is no route is a JSON NOT_FOUND.
 */
export function useErrorContract(): Plugin {
  const known = new Set<string>(ROUTES);
  return {
    onRequest({ request, url, fetchAPI, endResponse }) {
      if (!known.has(url.pathname)) {
        endResponse(errorResponse(fetchAPI, 404, 'NOT_FOUND', 'No such route.'));
      } else if (url.pathname === '/graphql' && request.method === 'PUT') {
        endResponse(
          errorResponse(fetchAPI, 405, 'BAD_REQUEST', SINGLE_CONNECTION_REFUSED, {
            allow: 'GET, POST',
          }),
        );
      }
    },
    onExecute({ executeFn, setExecuteFn }) {
      // The executor's own request errors (variables that do not coerce, no such operation)
      // come as a result with no `data`, before anything ran; it gives them a plain 400. They
      // are request errors as a syntax error is: per media type, as the spec asks.
      setExecuteFn((args) => {
        const result = executeFn(args);
        return isPromiseLike(result) ? result.then(asRequestErrors) : asRequestErrors(result);
      });
    },
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result) || typeof result !== 'object' || result === null) return;
      if (!('errors' in result) || !Array.isArray(result.errors)) return;
      setResult({ ...result, errors: result.errors.map((e) => withCode(e)) as GraphQLError[] });
    },
  };
}

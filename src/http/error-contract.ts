import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

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

function withCode(error: unknown): unknown {
  if (!(error instanceof GraphQLError) || typeof error.extensions?.code === 'string') return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...error.extensions, code: codeFor(error) },
  });
}

/**
 * Every failure the server sends carries `extensions.code` (README, Errors): request errors
 * Yoga and its plugins raise without one (bad variables, CSRF, missing query…) get BAD_REQUEST,
 * and a path that is no route is a JSON NOT_FOUND.
 */
export function useErrorContract(): Plugin {
  const known = new Set<string>(ROUTES);
  return {
    onRequest({ url, fetchAPI, endResponse }) {
      if (!known.has(url.pathname)) {
        endResponse(errorResponse(fetchAPI, 404, 'NOT_FOUND', 'No such route.'));
      }
    },
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result) || typeof result !== 'object' || result === null) return;
      if (!('errors' in result) || !Array.isArray(result.errors)) return;
      if (!result.errors.some((e) => !(e instanceof GraphQLError) || !e.extensions?.code)) return;
      setResult({ ...result, errors: result.errors.map(withCode) as GraphQLError[] });
    },
  };
}

import { SessionServiceError, type GraphQLErrorPayload } from './errors.js';

/** Sends one GraphQL operation and returns its data, or throws a {@link SessionServiceError}. */
export type Request = <T>(query: string, variables?: Record<string, unknown>) => Promise<T>;

/** GraphQL over HTTP: a POST of JSON to the endpoint, the key in the Authorization header. */
export function httpTransport(options: {
  readonly url: string;
  readonly key: string;
  readonly fetch?: typeof fetch;
  readonly headers?: Readonly<Record<string, string>>;
}): Request {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  return async function request<T>(query: string, variables?: Record<string, unknown>) {
    let response: Response;
    try {
      response = await fetchImpl(options.url, {
        method: 'POST',
        headers: {
          ...options.headers,
          'content-type': 'application/json',
          accept: 'application/graphql-response+json, application/json;q=0.9',
          authorization: `Bearer ${options.key}`,
        },
        body: JSON.stringify({ query, variables }),
      });
    } catch (error) {
      throw new SessionServiceError(
        'NETWORK_ERROR',
        `Could not reach the session service at ${options.url}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    const text = await response.text();
    let body: { data?: unknown; errors?: GraphQLErrorPayload[] } | undefined;
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = undefined;
    }
    if (body?.errors?.length) {
      throw SessionServiceError.fromGraphQLErrors(body.errors, response.status);
    }
    if (!body || body.data == null) {
      throw new SessionServiceError(
        'BAD_RESPONSE',
        `The session service answered HTTP ${response.status} without GraphQL data: ${text.slice(0, 200)}`,
        { status: response.status },
      );
    }
    return body.data as T;
  };
}

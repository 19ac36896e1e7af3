import { documentIdOf, refusedDocumentId } from './document-id.js';
import { badUserInput } from './ductape.js';
import { SessionServiceError, type GraphQLErrorPayload } from './errors.js';

/** What one call may add: a signal of the caller's that abandons it. */
export interface CallOptions {
  /** Aborting it abandons the call; it then rejects with the signal's reason, as fetch does. */
  readonly signal?: AbortSignal;
}

/** Sends one GraphQL operation and returns its data, or throws a {@link SessionServiceError}. */
export type Request = <T>(
  query: string,
  variables?: Record<string, unknown>,
  options?: CallOptions,
) => Promise<T>;

/** How long one HTTP attempt may take, whole answer read, by default. */
export const DEFAULT_TIMEOUT_MS = 5_000;
/** The longest `timeoutMs` taken. */
export const MAX_TIMEOUT_MS = 120_000;
/** The most server URLs taken. */
export const MAX_URLS = 10;

/** `timeoutMs` as given (default {@link DEFAULT_TIMEOUT_MS}), or BAD_USER_INPUT. */
export function timeoutOf(value: unknown, field = 'timeoutMs'): number {
  if (value === undefined) return DEFAULT_TIMEOUT_MS;
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 1 ||
    value > MAX_TIMEOUT_MS
  ) {
    throw badUserInput(field, `expected whole milliseconds from 1 to ${MAX_TIMEOUT_MS}`);
  }
  return value;
}

/**
 * One URL or a list (1 to {@link MAX_URLS}, no repeats) of `protocols` URLs, or BAD_USER_INPUT.
 */
export function urlsOf(
  value: unknown,
  field: string,
  protocols: readonly string[] = ['http:', 'https:'],
): string[] {
  const list: unknown[] = Array.isArray(value) ? value : [value];
  if (list.length === 0 || list.length > MAX_URLS) {
    throw badUserInput(field, `expected 1 to ${MAX_URLS} URLs`);
  }
  for (const url of list) {
    let parsed: URL | undefined;
    try {
      parsed = typeof url === 'string' ? new URL(url) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!parsed || !protocols.includes(parsed.protocol)) {
      throw badUserInput(field, `expected ${protocols.join(' or ')} URLs`);
    }
  }
  if (new Set(list).size !== list.length) throw badUserInput(field, 'a URL is listed twice');
  return list as string[];
}

/**
 * Error codes of a connection that was never made: nothing of the request reached a server, so
 * even a mutation may go to the next URL.
 */
const NOT_CONNECTED = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Whether fetch's error says the connection was never made (its `cause`, or all of them). */
function neverConnected(error: unknown): boolean {
  const cause = (error as { cause?: unknown } | null)?.cause;
  if (cause instanceof AggregateError && cause.errors.length > 0) {
    return cause.errors.every((e) => NOT_CONNECTED.has((e as { code?: string }).code ?? ''));
  }
  return NOT_CONNECTED.has((cause as { code?: string } | null)?.code ?? '');
}

/** `work`, or a rejection with the signal's reason as soon as it aborts (whatever `work` does). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

/** An attempt that got no answer: why, and whether the request may have reached the server. */
class NoAnswer {
  constructor(
    readonly error: SessionServiceError,
    readonly mayHaveArrived: boolean,
  ) {}
}

/** One HTTP attempt at one URL: the whole answer within `timeoutMs`, or a {@link NoAnswer}. */
function attemptOf(
  fetchImpl: typeof fetch,
  options: { readonly key: string; readonly headers?: Readonly<Record<string, string>> },
  timeoutMs: number,
) {
  return async (
    url: string,
    body: string,
    callerSignal: AbortSignal | undefined,
  ): Promise<{ response: Response; text: string }> => {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = callerSignal ? AbortSignal.any([callerSignal, timeout]) : timeout;
    try {
      // The signal bounds the body's reading too; untilAborted, a fetch that ignores it.
      return await untilAborted(
        (async () => {
          const response = await fetchImpl(url, {
            method: 'POST',
            headers: {
              ...options.headers,
              'content-type': 'application/json',
              accept: 'application/graphql-response+json, application/json;q=0.9',
              authorization: `Bearer ${options.key}`,
            },
            body,
            signal,
          });
          return { response, text: await response.text() };
        })(),
        signal,
      );
    } catch (error) {
      if (callerSignal?.aborted) throw callerSignal.reason;
      if (timeout.aborted) {
        throw new NoAnswer(
          new SessionServiceError(
            'SERVICE_UNAVAILABLE',
            `The session service at ${url} did not answer within ${timeoutMs} ms; retry.`,
            { cause: error },
          ),
          true,
        );
      }
      throw new NoAnswer(
        new SessionServiceError(
          'NETWORK_ERROR',
          `Could not reach the session service at ${url}: ${error instanceof Error ? error.message : String(error)}`,
          { cause: error },
        ),
        !neverConnected(error),
      );
    }
  };
}

/**
 * GraphQL over HTTP: a POST of JSON to the endpoint, the key in the Authorization header. Each
 * attempt has `timeoutMs` for the whole answer (SERVICE_UNAVAILABLE past it). With several
 * URLs, a call starts at the last one that answered; a query moves to the next on a connection
 * failure or a timeout, a mutation only when its connection was never made (it may otherwise
 * have been applied). Each operation carries its trusted-document id (`documentId`) beside its
 * text; a server from before trusted documents refuses the parameter, and is then sent the text
 * alone (src/client/document-id.ts).
 */
export function httpTransport(options: {
  readonly url: string | readonly string[];
  readonly key: string;
  readonly fetch?: typeof fetch;
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
}): Request {
  const urls = urlsOf(options.url, 'url');
  const timeoutMs = timeoutOf(options.timeoutMs);
  const fetchImpl = options.fetch ?? globalThis.fetch;
  /** Where the next call starts: the last URL that answered. */
  let preferred = 0;
  /** Set once a server refused `documentId` (one from before trusted documents). */
  let sendIds = true;

  const attempt = attemptOf(fetchImpl, options, timeoutMs);

  /** One request's body to the first URL that answers (see above), or the failures thrown. */
  const send = async (
    body: string,
    mutation: boolean,
    signal: AbortSignal | undefined,
  ): Promise<{ response: Response; text: string }> => {
    const failures: SessionServiceError[] = [];
    const first = preferred;
    for (let i = 0; i < urls.length; i++) {
      const index = (first + i) % urls.length;
      try {
        const answer = await attempt(urls[index]!, body, signal);
        preferred = index;
        return answer;
      } catch (error) {
        if (!(error instanceof NoAnswer)) throw error;
        failures.push(error.error);
        // The next call starts at the next URL, whatever this one does now.
        if (preferred === index) preferred = (index + 1) % urls.length;
        if (mutation && error.mayHaveArrived) break;
      }
    }
    const last = failures[failures.length - 1]!;
    if (failures.length === 1) throw last;
    throw new SessionServiceError(
      last.code,
      `No session service answered: ${failures.map((f) => f.message).join(' ')}`,
      { cause: last.cause },
    );
  };

  return async function request<T>(
    query: string,
    variables?: Record<string, unknown>,
    callOptions: CallOptions = {},
  ) {
    const mutation = /^\s*mutation\b/.test(query);
    const documentId = sendIds ? await documentIdOf(query) : undefined;
    let { response, text } = await send(
      JSON.stringify({ documentId, query, variables }),
      mutation,
      callOptions.signal,
    );
    if (documentId !== undefined && refusedDocumentId(response.status, text)) {
      // Refused before anything ran: the same request without the id, and none from now on.
      sendIds = false;
      ({ response, text } = await send(
        JSON.stringify({ query, variables }),
        mutation,
        callOptions.signal,
      ));
    }
    let parsed: { data?: unknown; errors?: GraphQLErrorPayload[] } | undefined;
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      parsed = undefined;
    }
    if (parsed?.errors?.length) {
      throw SessionServiceError.fromGraphQLErrors(parsed.errors, response.status);
    }
    if (!parsed || parsed.data == null) {
      throw new SessionServiceError(
        'BAD_RESPONSE',
        `The session service answered HTTP ${response.status} without GraphQL data: ${text.slice(0, 200)}`,
        { status: response.status },
      );
    }
    return parsed.data as T;
  };
}

/** The WebSocket URLs of HTTP endpoint URLs: `http` becomes `ws`, `https` `wss`. */
export function webSocketUrlsOf(url: string | readonly string[]): string[] {
  return (typeof url === 'string' ? [url] : [...url]).map((u) => u.replace(/^http/, 'ws'));
}

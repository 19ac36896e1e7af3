/** The codes the API puts in `extensions.code` (the README's Errors table). */
export type ApiErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'BAD_USER_INPUT'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'SESSION_REVOKED'
  /** The session is valid but its login is older than the `maxAge` asked: sign in again (step-up). */
  | 'REAUTHENTICATION_REQUIRED'
  | 'REFRESH_TOKEN_REUSED'
  | 'RATE_LIMITED'
  /** A quota or size limit of the server was reached (configs per product, subscriptions...). */
  | 'LIMIT_EXCEEDED'
  | 'SERVICE_UNAVAILABLE'
  /** An unexpected fault on the server; its log has the details. */
  | 'INTERNAL_SERVER_ERROR';

/** Failures the client itself reports, when no GraphQL answer arrived. */
export type ClientErrorCode =
  /** The server could not be reached, or the connection dropped and retries ran out. */
  | 'NETWORK_ERROR'
  /** The server answered something that is not a GraphQL response (a proxy's error page...). */
  | 'BAD_RESPONSE';

/**
 * Every code a {@link SessionServiceError} may carry. A code this client does not know yet
 * (a newer server) arrives as it is.
 */
// `string & {}` keeps editors completing the known codes.
export type SessionErrorCode = ApiErrorCode | ClientErrorCode | (string & {});

/** One GraphQL error as the server sent it. */
export interface GraphQLErrorPayload {
  readonly message: string;
  readonly path?: readonly (string | number)[];
  readonly extensions?: Readonly<Record<string, unknown>>;
}

/**
 * A failed call. `code` is the API's `extensions.code` (`TOKEN_EXPIRED`, `NOT_FOUND`, ...) or
 * one of the client's own (`NETWORK_ERROR`, `BAD_RESPONSE`); `field` names the input at fault
 * for `BAD_USER_INPUT`.
 */
export class SessionServiceError extends Error {
  override readonly name = 'SessionServiceError';
  /** The input at fault, as a dotted path (`input.data.userId`), for BAD_USER_INPUT. */
  readonly field?: string;
  /** How long to wait before trying again, for RATE_LIMITED. */
  readonly retryAfterSeconds?: number;
  /** The HTTP status of the answer, when there was one. */
  readonly status?: number;
  /** Every GraphQL error of the answer (the first one gave `code` and `message`). */
  readonly errors: readonly GraphQLErrorPayload[];

  constructor(
    readonly code: SessionErrorCode,
    message: string,
    details: {
      field?: string;
      retryAfterSeconds?: number;
      status?: number;
      errors?: readonly GraphQLErrorPayload[];
      cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    if (details.field !== undefined) this.field = details.field;
    if (details.retryAfterSeconds !== undefined) this.retryAfterSeconds = details.retryAfterSeconds;
    if (details.status !== undefined) this.status = details.status;
    this.errors = details.errors ?? [];
  }

  /** The error for a GraphQL answer's errors: the first one's code, message and field. */
  static fromGraphQLErrors(
    errors: readonly GraphQLErrorPayload[],
    status?: number,
  ): SessionServiceError {
    const first = errors[0];
    const extensions = first?.extensions ?? {};
    const code = typeof extensions.code === 'string' ? extensions.code : 'INTERNAL_SERVER_ERROR';
    return new SessionServiceError(code, first?.message ?? 'The request failed.', {
      field: typeof extensions.field === 'string' ? extensions.field : undefined,
      retryAfterSeconds:
        typeof extensions.retryAfterSeconds === 'number' ? extensions.retryAfterSeconds : undefined,
      status,
      errors,
    });
  }
}

/** Whether `error` is a {@link SessionServiceError}, with one of `codes` if any are given. */
export function isSessionServiceError(
  error: unknown,
  ...codes: SessionErrorCode[]
): error is SessionServiceError {
  return error instanceof SessionServiceError && (codes.length === 0 || codes.includes(error.code));
}

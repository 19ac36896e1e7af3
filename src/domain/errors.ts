/** The error codes of the API contract (`extensions.code`). One list, used everywhere. */
export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'BAD_USER_INPUT'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'SESSION_REVOKED'
  | 'REAUTHENTICATION_REQUIRED'
  | 'REFRESH_TOKEN_REUSED'
  | 'RATE_LIMITED'
  | 'LIMIT_EXCEEDED'
  | 'SERVICE_UNAVAILABLE';

/**
 * An expected failure with a stable code and a message a person can act on. The transport shows
 * it as it is; anything that is not a ServiceError is masked. Messages never carry tokens, keys
 * or session data.
 */
export class ServiceError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The input field at fault, as a dotted path (for BAD_USER_INPUT, and a refused rename). */
    readonly field?: string,
    /** More for the client to act on, such as `retryAfterSeconds`. */
    readonly details?: Readonly<Record<string, string | number | boolean>>,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

/** BAD_USER_INPUT naming the field at fault. */
export function badInput(field: string, message: string): ServiceError {
  return new ServiceError('BAD_USER_INPUT', `${field}: ${message}`, field);
}

export function notFound(message: string): ServiceError {
  return new ServiceError('NOT_FOUND', message);
}

export function forbidden(message: string): ServiceError {
  return new ServiceError('FORBIDDEN', message);
}

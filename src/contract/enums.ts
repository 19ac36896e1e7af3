/**
 * The API contract's lists of values, written once. The server derives its GraphQL enums, its
 * database column's allowed values and its TypeScript types from these lists, and the client
 * (`src/client/`, published as built JS) its types: so this module imports nothing, and the
 * client imports nothing else from the server's side (eslint.config.js enforces both).
 */

/** What can happen to a session: the `SessionEventType` enum of the API, in that order. */
export const SESSION_EVENT_TYPES = [
  'STARTED',
  'REFRESHED',
  'REVOKED',
  'EXPIRED',
  'REUSE_DETECTED',
  'EXTENDED',
  'DATA_UPDATED',
] as const;

/** What happened to a session. */
export type SessionEventType = (typeof SESSION_EVENT_TYPES)[number];

/**
 * The codes of the server's expected failures (a `ServiceError`), as `extensions.code` carries
 * them: each is in docs/reference/errors.md.
 */
export const SERVICE_ERROR_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'CONFLICT',
  'TOKEN_INVALID',
  'TOKEN_EXPIRED',
  'SESSION_REVOKED',
  /** The session is valid but its login is older than the `maxAge` asked: sign in again (step-up). */
  'REAUTHENTICATION_REQUIRED',
  'REFRESH_TOKEN_REUSED',
  'RATE_LIMITED',
  /** A quota or size limit of the server was reached (configs per product, subscriptions...). */
  'LIMIT_EXCEEDED',
  /** The database is unreachable: nothing was decided; worth retrying. */
  'SERVICE_UNAVAILABLE',
] as const;

/** The code of an expected failure. */
export type ServiceErrorCode = (typeof SERVICE_ERROR_CODES)[number];

/**
 * Every code the API puts in a resolver error's `extensions.code`: the expected ones, and
 * `INTERNAL_SERVER_ERROR` for an unexpected fault (masked; the server's log has the details).
 */
export const API_ERROR_CODES = [...SERVICE_ERROR_CODES, 'INTERNAL_SERVER_ERROR'] as const;

/** A code of {@link API_ERROR_CODES}. */
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

import type { ServiceErrorCode } from '../contract/enums.js';

/** The error codes of the API contract (`extensions.code`): the one list is src/contract/enums.ts. */
export type ErrorCode = ServiceErrorCode;

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

/** NOT_FOUND: thrown through the named constructors below, one per kind of thing. */
function notFound(message: string): ServiceError {
  return new ServiceError('NOT_FOUND', message);
}

/**
 * FORBIDDEN: the caller is known but may not do this (another env's config; a product-wide config
 * without the admin key). The message says who may.
 */
export function forbidden(message: string): ServiceError {
  return new ServiceError('FORBIDDEN', message);
}

/*
 * Named errors: each message is written here once (tests pin them), and thrown by name.
 */

/** A constructor for one error of a fixed code and message. */
const named = (code: ErrorCode, message: string) => (): ServiceError =>
  new ServiceError(code, message);

/** A session token that does not open, or is not for this tag or scope. */
export const tokenInvalid = named(
  'TOKEN_INVALID',
  'The session token is malformed, altered, or not for this tag.',
);
/** A session token past its expiry (or its session's). */
export const tokenExpired = named(
  'TOKEN_EXPIRED',
  'The session token has expired; refresh the session.',
);
/** A refresh token that matches nothing usable here. */
export const refreshTokenInvalid = named(
  'TOKEN_INVALID',
  'The refresh token is malformed, unknown, or not for this tag.',
);
/** A refresh token past its expiry, or of a session that is over. */
export const refreshTokenExpired = named(
  'TOKEN_EXPIRED',
  'The refresh token has expired; sign in again.',
);
/** A rotated refresh token presented after the grace window: its session is now revoked. */
export const refreshTokenReused = named(
  'REFRESH_TOKEN_REUSED',
  'This refresh token was already used; the session has been revoked as a precaution.',
);
/** A revoked session: tokens no longer verify or refresh. */
export const sessionRevoked = named('SESSION_REVOKED', 'This session was revoked; sign in again.');
/** A revoked session asked to change (data, expiry, activity). */
export const revokedSessionUnchangeable = named(
  'SESSION_REVOKED',
  'This session was revoked; it cannot change.',
);
/** An over session asked to change (data, expiry, activity). */
export const expiredSessionUnchangeable = named(
  'TOKEN_EXPIRED',
  'This session has expired; it cannot change.',
);

/**
 * TOKEN_EXPIRED of a session that sat unused longer than its idle timeout, from verify and
 * refresh: `reason: idle_timeout` in extensions, since refreshing will not help.
 */
export const idleTimeout = (): ServiceError =>
  new ServiceError(
    'TOKEN_EXPIRED',
    'The session was idle for longer than its idle timeout; sign in again.',
    undefined,
    { reason: 'idle_timeout' },
  );

/** REAUTHENTICATION_REQUIRED: the session is valid, but its login is older than `maxAge` asks. */
export const reauthenticationRequired = (maxAgeSeconds: number): ServiceError =>
  new ServiceError(
    'REAUTHENTICATION_REQUIRED',
    'The user signed in longer ago than this operation allows; ask them to sign in again, then mark the session fresh.',
    undefined,
    { maxAge: maxAgeSeconds },
  );

/** An operator acting as the user cannot prove the user's identity (markSessionFresh). */
export const impersonationNotFreshenable = named(
  'FORBIDDEN',
  'An impersonation session cannot be marked freshly authenticated.',
);

/** No product with that tag (the admin key naming a product). */
export const productNotFound = (tag: string): ServiceError =>
  notFound(`No product with tag "${tag}".`);

/** A product that has no environment of that name. */
export const environmentNotFound = (product: string, env: string): ServiceError =>
  notFound(`Product "${product}" has no environment "${env}".`);

/**
 * A tag (of the right shape) that names no session config the caller's env has or had: NOT_FOUND,
 * with the tag in `extensions.tag`. `within` is where it was looked for: the caller's environment
 * (a tag asked for), its product (a config gone while a session started), or none said (a config
 * gone while it was updated).
 */
export const configNotFound = (
  tag: string,
  within: 'environment' | 'product' | null = 'environment',
): ServiceError =>
  new ServiceError(
    'NOT_FOUND',
    `No session config with tag "${tag}"${within ? ` in this ${within}` : ''}.`,
    undefined,
    { tag },
  );

/** No session with that id in the caller's scope under that tag. */
export const sessionNotFound = (tag: string): ServiceError =>
  notFound(`No session with that id for tag "${tag}".`);
/** A session read by id (a field of another object) that has been deleted since. */
export const sessionGone = named('NOT_FOUND', 'The session no longer exists.');

/** No API key of the caller's product with that id. */
export const apiKeyNotFound = named('NOT_FOUND', 'No API key with that id.');
/** No webhook endpoint of the caller's env with that id. */
export const webhookEndpointNotFound = named('NOT_FOUND', 'No webhook endpoint with this id.');
/** No webhook delivery of the caller's env with that id. */
export const webhookDeliveryNotFound = named('NOT_FOUND', 'No webhook delivery with this id.');

/** A session id argument that is not a UUID. */
export const badSessionId = (field: string): ServiceError =>
  badInput(field, 'expected a session id (a UUID)');

/** An `after` this API could not have returned. */
export const badCursor = (): ServiceError => badInput('after', 'is not a cursor this API returned');

/** A `first` outside 0 to `max`. */
export const badPageSize = (max: number): ServiceError =>
  badInput('first', `expected a whole number from 0 to ${max}`);

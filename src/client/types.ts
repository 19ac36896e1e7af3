/**
 * The shapes the client sends and receives, written to match `schema.graphql` (the client's
 * tests run every call against the real server). Instants are ISO 8601 strings, as the API's
 * `DateTime` sends them.
 */
import type { PeriodSpelling } from './ductape.js';

import type { SessionEventType } from '../contract/enums.js';

/** What happened to a session (the list: `SESSION_EVENT_TYPES`). */
export type { SessionEventType };

/** An instant as the API sends it: an ISO 8601 string (`new Date(value)` reads it). */
export type DateTimeString = string;

/** Session data: a JSON object; pass your own type to the generic calls for a typed `data`. */
export type SessionData = Record<string, unknown>;

/** The unit of a session config's `expiry`. */
export type ExpiryPeriod = 'SECONDS' | 'MINUTES' | 'HOURS' | 'DAYS' | 'WEEKS';

/** Where a session stands. */
export type SessionStatus = 'ACTIVE' | 'EXPIRED' | 'REVOKED';

/** A session type of the product (Ductape's session config). */
export interface SessionConfig {
  readonly name: string;
  readonly tag: string;
  /** The environment that owns the config; null: product-wide (changed only with the admin key). */
  readonly env: string | null;
  readonly description: string;
  /** A sample of the session data; started sessions must match the types of its keys. */
  readonly schema: SessionData;
  /** Where the identifier is in the data: `$Session{userId}`, `$Session{details}{username}`. */
  readonly selector: string;
  /** The session token's lifetime, in `period` units. */
  readonly expiry: number;
  readonly period: ExpiryPeriod;
  /** Seconds a refresh token stays usable. */
  readonly refreshExpiresIn: number;
  /** Seconds of inactivity after which a session is over; null: none. */
  readonly idleTimeout: number | null;
  /** Most live sessions per identifier (starting one more revokes the oldest); null: no cap. */
  readonly maxSessionsPerIdentifier: number | null;
  /** Live sessions of this type in the key's environment. */
  readonly activeSessionCount: number;
  readonly createdAt: DateTimeString;
  readonly updatedAt: DateTimeString;
}

/** A new session type, as Ductape's `sessions.create` takes it. */
export interface CreateSessionConfigInput {
  readonly name: string;
  /** Unique in the product: `^[a-z0-9][a-z0-9_-]{0,63}$`. */
  readonly tag: string;
  readonly description: string;
  /** A sample JSON object of the session data. */
  readonly schema: SessionData;
  readonly selector: string;
  readonly expiry: number;
  /** `HOURS`, or Ductape's `'hours'` (any case, singular too): the client maps it. */
  readonly period: PeriodSpelling;
  /** Refresh token lifetime in seconds (default 30 days). */
  readonly refreshExpiresIn?: number;
  readonly idleTimeout?: number;
  readonly maxSessionsPerIdentifier?: number;
}

/** The fields to change; the others keep their value. `tag` here is a new tag. */
export type UpdateSessionConfigInput = Partial<CreateSessionConfigInput>;

/** The client a session was started from. */
export interface Device {
  readonly userAgent: string | null;
  readonly ip: string | null;
}

/** One started session of a user (identifier) under a session type (tag). */
export interface Session<TData = SessionData> {
  readonly id: string;
  readonly tag: string;
  /** Who the session is for: what the selector picked out of the data, or the identifier given. */
  readonly identifier: string;
  readonly data: TData;
  readonly status: SessionStatus;
  readonly device: Device;
  readonly createdAt: DateTimeString;
  /** When its latest session token expires. */
  readonly expiresAt: DateTimeString;
  /** When its latest refresh token expires; after that the session is over. */
  readonly refreshExpiresAt: DateTimeString;
  readonly lastActiveAt: DateTimeString;
  /** When it ends if unused; null without an idle timeout. */
  readonly idleExpiresAt: DateTimeString | null;
  /** Whole seconds until `expiresAt`, 0 once past (session.do answers milliseconds). */
  readonly timeRemaining: number;
  /** Version of the data; pass it as `expectedVersion` to write only if nobody changed it. */
  readonly version: number;
  readonly revokedAt: DateTimeString | null;
  /**
   * revoked, revoked_all, config_deleted, refresh_token_reused, session_limit,
   * signed_out_everywhere or not_before.
   */
  readonly revokeReason: string | null;
  /** The environment the session lives in. */
  readonly env: string;
  /** When the user last proved who they are (start or `markFresh`); kept across refreshes. */
  readonly authenticatedAt: DateTimeString;
  /** Impersonation: the operator acting as the user; null for the user's own session. */
  readonly actor: string | null;
  /** The display name a client gave the device. */
  readonly deviceName: string | null;
  /** Earlier devices, newest first (at most 5). */
  readonly deviceHistory: readonly PastDevice[];
}

/** A device a session was used from before its current one. */
export interface PastDevice {
  readonly userAgent: string | null;
  readonly ip: string | null;
  /** When the session moved off it (at a refresh). */
  readonly until: DateTimeString;
}

/** A session in a list: a {@link Session} with Ductape's name for its id too. */
export interface ListedSession<TData = SessionData> extends Session<TData> {
  /** The same as `id` (Ductape's list calls it `sessionId`). */
  readonly sessionId: string;
}

/** A session token with its refresh token (Ductape's `sessions.start` and `refresh` answer). */
export interface SessionTokens {
  /** The session token: send it with every request; verify it. */
  readonly token: string;
  /** Single use: exchange it for a new pair before the token expires. */
  readonly refreshToken: string;
  readonly sessionId: string;
  /** When the session token expires. */
  readonly expiresAt: DateTimeString;
}

/** What a valid session token says (Ductape's `sessions.verify` answer). */
export interface VerifiedSession<TData = SessionData> {
  readonly sessionId: string;
  readonly tag: string;
  readonly identifier: string;
  /** The session's current data, decrypted. */
  readonly data: TData;
  readonly version: number;
  readonly expiresAt: DateTimeString;
  /** When the user last proved who they are (start or `markFresh`). */
  readonly authenticatedAt: DateTimeString;
  /** Impersonation: the operator acting as the user; null otherwise. */
  readonly actor: string | null;
}

/** A page of a user's active sessions (Ductape's `sessions.list` answer, with paging). */
export interface SessionList<TData = SessionData> {
  /** Every active session of the user under the tag, on all pages. */
  readonly count: number;
  /** This page's sessions, newest first. */
  readonly sessions: readonly ListedSession<TData>[];
  /** Pass as `after` for the next page; null on the last one. */
  readonly endCursor: string | null;
  readonly hasNextPage: boolean;
}

/** Something that happened to a session. */
export interface SessionEvent {
  /** Increases in commit order; pass the last one as `after` to resume. */
  readonly id: string;
  readonly type: SessionEventType;
  readonly sessionId: string;
  readonly tag: string;
  readonly identifier: string;
  readonly at: DateTimeString;
  /** Why, for revocations and reuse. */
  readonly reason: string | null;
  /** Impersonation: the operator acting as the user. */
  readonly actor: string | null;
}

/** A session to start (Ductape's `ISessionStartInput`). */
export interface StartSessionInput<TData = SessionData> {
  /** The session type. */
  readonly tag: string;
  /** The session data (a JSON object matching the config's schema), encrypted in the token. */
  readonly data: TData;
  /** Who the session is for; default: what the config's selector picks from `data`. */
  readonly identifier?: string;
  /** Session token lifetime in seconds; default: the config's expiry. */
  readonly expiresIn?: number;
  /**
   * Your end user's client; left out, none is recorded. `fromRequest: true` takes the parts left
   * out from this client's own request (its User-Agent and IP), which is rarely the end user's.
   */
  readonly device?: {
    readonly userAgent?: string;
    readonly ip?: string;
    readonly fromRequest?: boolean;
  };
  /** Instead of `expiresIn`: when the session token expires (10 s to 365 days from now). */
  readonly expiresAt?: Date | DateTimeString;
  /** Impersonation: the operator starting the session as the user (capped lifetime). */
  readonly actor?: string;
  /** Ductape's spelling: the product (admin key; a secret key must name its own). */
  readonly product?: string;
  /** Ductape's spelling: the environment (admin key; a secret key must name its own). */
  readonly env?: string;
}

/** A session token to check under its tag. */
export interface TokenInput {
  readonly tag: string;
  readonly token: string;
  /** Ductape's spelling: the product (admin key; a secret key must name its own). */
  readonly product?: string;
  /** Ductape's spelling: the environment. */
  readonly env?: string;
}

/** One session, addressed by its tag and id. */
export interface SessionAddress {
  readonly tag: string;
  readonly sessionId: string;
}

/** A session to write to; with `expectedVersion`, only if its data is still at that version. */
export interface SessionWrite extends SessionAddress {
  readonly expectedVersion?: number;
}

/** The types shared by the session operations. */
import type { Database } from '../../db/client.js';
import type { SessionRow } from '../../db/schema.js';
import type { Keyring } from '../../tokens/keyring.js';
import type { SessionConfigCache } from '../config-cache.js';
import type { RefreshSnapshots } from './refresh/snapshot.js';
import type { ConfigOfSession } from './refresh/usable.js';

/** What the session rules need from the process. */
export interface SessionDeps {
  readonly db: Database;
  readonly keyring: Keyring;
  /** Seconds during which a rotated refresh token still yields the pair it was exchanged for. */
  readonly refreshGraceSeconds: number;
  /** Called before each rotation; may throw (RATE_LIMITED) to refuse it. */
  readonly refreshGuard?: (sessionId: string) => Promise<void>;
  /** Longest an impersonation session may live, in seconds (default 3600). */
  readonly impersonationMaxSeconds?: number;
  /** Session configs kept between starts (without it, every start reads its config). */
  readonly sessionConfigs?: SessionConfigCache;
  /**
   * What minting needs of the sessions this instance issued pairs for (without it, every refresh
   * reads its session first).
   */
  readonly refreshSnapshots?: RefreshSnapshots;
}

/**
 * A session row as read for checks, with the database clock at the time of reading, and its
 * config's columns that say whether the config still accepts it (refresh/usable.ts).
 */
export type SessionRecord = SessionRow & {
  readonly dbNow: Date;
  /** The session's config as read with it (null: none): tokens verify only while it accepts it. */
  readonly config: ConfigOfSession | null;
  /** The not-before watermark of its tag or env (null: none): started before it, it is revoked. */
  readonly notBefore: Date | null;
};

/** Loads session rows by id; batched by the caller (DataLoader), `undefined` for a missing one. */
export type SessionLoader = (id: string) => Promise<SessionRecord | undefined>;

/**
 * The client a session is used from, as stored with it: its User-Agent and IP, null when unknown.
 */
export interface Device {
  readonly userAgent?: string | null;
  readonly ip?: string | null;
}

/**
 * The device a caller passes for its end user. Start and refresh come from backends, so the
 * request's own User-Agent and IP are the backend's: they fill the parts not given only when
 * `fromRequest` says so.
 */
export interface DeviceInput extends Device {
  readonly fromRequest?: boolean | null;
}

/**
 * A session to start, as the caller gives it, unchecked. Without `identifier`, the config's
 * selector picks it out of `data`; `expiresIn` (seconds) or `expiresAt` replaces the config's token
 * lifetime, not both.
 */
export interface StartSessionInput {
  readonly tag: string;
  readonly data?: unknown;
  readonly identifier?: string | null;
  readonly expiresIn?: number | null;
  /** An absolute expiry instead of `expiresIn`. */
  readonly expiresAt?: Date | null;
  readonly device?: DeviceInput | null;
  /** Impersonation: the operator starting the session as the user. */
  readonly actor?: string | null;
}

/** A session token with its refresh token, as start and refresh return them. */
export interface SessionTokens {
  readonly token: string;
  readonly refreshToken: string;
  readonly sessionId: string;
  /** Who the session is for (not part of the API's SessionTokens; used by the activity log). */
  readonly identifier: string;
  readonly expiresAt: Date;
  /** The operator of an impersonation (for the activity log); absent otherwise. */
  readonly actor?: string | null;
}

/**
 * What verify answers for a valid session token: the session as it stands now (its current data,
 * not the data at minting) and its row, for the fields that read more of it.
 */
export interface VerifiedSession {
  readonly sessionId: string;
  readonly tag: string;
  readonly identifier: string;
  readonly data: Record<string, unknown>;
  /** The data's version: bumped by every change of the data. */
  readonly version: number;
  readonly expiresAt: Date;
  readonly session: SessionRow;
  /** When the user last proved who they are (start or step-up). */
  readonly authenticatedAt: Date;
  /** The operator acting as the user (impersonation); null otherwise. */
  readonly actor: string | null;
}

/**
 * Where a session stands (`sessionStatus` decides): usable or refreshable, over for good, or
 * revoked.
 */
export type SessionStatus = 'ACTIVE' | 'EXPIRED' | 'REVOKED';

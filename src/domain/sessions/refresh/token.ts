/** The refresh token's format, its hash (taken once per request), and what an exchange answers. */
import { hashSecret, randomSecret } from '../../../tokens/secrets.js';
import type { SessionTokens } from '../types.js';

/**
 * What every refresh token starts with, telling it apart from the other secrets the service hands
 * out.
 */
export const REFRESH_TOKEN_PREFIX = 'rt_';
/**
 * The length of every refresh token, in characters: the prefix and 32 random bytes in base64url.
 */
export const REFRESH_TOKEN_LENGTH = REFRESH_TOKEN_PREFIX.length + 43; // 32 random bytes, base64url

/** Shaped like a refresh token this service issues (anything else matches nothing). */
export function isRefreshTokenShaped(token: string): boolean {
  return token.length === REFRESH_TOKEN_LENGTH && token.startsWith(REFRESH_TOKEN_PREFIX);
}

/**
 * A new refresh token: {@link REFRESH_TOKEN_PREFIX} and 256 random bits. Stored only as its hash.
 */
export function newRefreshToken(): string {
  return `${REFRESH_TOKEN_PREFIX}${randomSecret(32)}`;
}

/**
 * The hash a refresh token is stored and looked up by; undefined for a token not shaped like one
 * (it matches nothing, so nothing is hashed or read for it). A refresh takes it once and hands it
 * to whichever path runs.
 */
export function refreshTokenHash(token: string): string | undefined {
  return isRefreshTokenShaped(token) ? hashSecret(token) : undefined;
}

/** A refresh token presented by the caller, with its hash. */
export interface PresentedToken {
  readonly token: string;
  readonly hash: string;
}

/**
 * What an exchange answers: a new pair, or why not. `expired` with `idle_timeout` is told apart
 * (the user is told why); `reused` is a rotated token presented after the grace window, and the
 * session is revoked for it. `refreshSession` turns each refusal into its error.
 */
export type RefreshOutcome =
  | { readonly kind: 'ok'; readonly tokens: SessionTokens }
  | { readonly kind: 'expired'; readonly reason?: 'idle_timeout' }
  | { readonly kind: 'invalid' | 'revoked' | 'reused' };

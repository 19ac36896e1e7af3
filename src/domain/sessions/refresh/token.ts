/** The refresh token's format, its hash (taken once per request), and what an exchange answers. */
import { hashSecret, randomSecret } from '../../../tokens/secrets.js';
import type { SessionTokens } from '../types.js';

export const REFRESH_TOKEN_PREFIX = 'rt_';
export const REFRESH_TOKEN_LENGTH = REFRESH_TOKEN_PREFIX.length + 43; // 32 random bytes, base64url

/** Shaped like a refresh token this service issues (anything else matches nothing). */
export function isRefreshTokenShaped(token: string): boolean {
  return token.length === REFRESH_TOKEN_LENGTH && token.startsWith(REFRESH_TOKEN_PREFIX);
}

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

export type RefreshOutcome =
  | { readonly kind: 'ok'; readonly tokens: SessionTokens }
  | { readonly kind: 'expired'; readonly reason?: 'idle_timeout' }
  | { readonly kind: 'invalid' | 'revoked' | 'reused' };

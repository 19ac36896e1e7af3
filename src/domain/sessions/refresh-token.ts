/** The refresh token's format, and the box its successor pair is sealed in. */
import { SealedBox } from '../../tokens/sealed-box.js';
import { randomSecret } from '../../tokens/secrets.js';
import type { SessionTokens } from './types.js';

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
 * The box a spent refresh token's successor pair is sealed in: its key derives from the spent
 * token itself, so only a holder of that token (not a reader of the database) can open it.
 */
export function successorBox(refreshToken: string): SealedBox {
  return SealedBox.derive(refreshToken, 'refresh-successor', 'successor-pair');
}

export type RefreshOutcome =
  | { readonly kind: 'ok'; readonly tokens: SessionTokens }
  | { readonly kind: 'expired'; readonly reason?: 'idle_timeout' }
  | { readonly kind: 'invalid' | 'revoked' | 'reused' };

import { createHash } from 'node:crypto';
import { EncryptJWT, errors as joseErrors, jwtDecrypt } from 'jose';
import { tokenExpired, tokenInvalid } from '../domain/errors.js';
import type { Keyring } from './keyring.js';

const ISSUER = 'session-service';
const KEY_ALGORITHM = 'A256KW';
const CONTENT_ALGORITHM = 'A256GCM';
/** Clock skew accepted by the first, local check; the database clock then decides exactly. */
const CLOCK_TOLERANCE_SECONDS = 30;
/** No session token we mint comes near this; a larger input is refused before any parsing. */
export const MAX_SESSION_TOKEN_LENGTH = 65_536;

/** What a session token says, once opened and checked. */
export interface SessionTokenClaims {
  readonly sessionId: string;
  readonly tag: string;
  readonly identifier: string;
  readonly data: Record<string, unknown>;
  readonly issuedAt: Date;
  readonly expiresAt: Date;
}

/** Where a token belongs: a token minted for one scope is invalid in every other. */
export interface TokenScope {
  readonly productId: string;
  readonly env: string;
}

const audienceOf = (scope: TokenScope) => `${scope.productId}:${scope.env}`;

/** Mints a session token: a JWE (A256KW + A256GCM) carrying the session data, bound to scope and tag. */
export async function mintSessionToken(
  keyring: Keyring,
  scope: TokenScope,
  claims: Omit<SessionTokenClaims, 'issuedAt'> & { issuedAt?: Date },
): Promise<string> {
  const kid = keyring.currentKid;
  const key = await keyring.tokenKey(scope.productId, scope.env, kid);
  return new EncryptJWT({ sid: claims.sessionId, tag: claims.tag, data: claims.data })
    .setProtectedHeader({ alg: KEY_ALGORITHM, enc: CONTENT_ALGORITHM, kid })
    .setIssuer(ISSUER)
    .setAudience(audienceOf(scope))
    .setSubject(claims.identifier)
    .setIssuedAt(Math.floor((claims.issuedAt ?? new Date()).getTime() / 1000))
    .setExpirationTime(Math.floor(claims.expiresAt.getTime() / 1000))
    .encrypt(key);
}

/**
 * Five base64url segments, each spelled exactly as we encode them: a token we minted has one
 * spelling only, so padding, whitespace or stray bits (which lenient decoders accept) make a
 * token invalid rather than a second spelling of a valid one.
 */
function isCanonicalJwe(token: string): boolean {
  const segments = token.split('.');
  if (segments.length !== 5) return false;
  return segments.every(
    (segment) =>
      /^[A-Za-z0-9_-]*$/.test(segment) &&
      Buffer.from(segment, 'base64url').toString('base64url') === segment,
  );
}

/**
 * Opens a session token and checks every claim in one place: algorithms pinned, issuer,
 * audience (product and env), tag, and expiry against the local clock with a small tolerance.
 * Throws TOKEN_INVALID or TOKEN_EXPIRED, never anything that says more.
 */
export async function openSessionToken(
  keyring: Keyring,
  scope: TokenScope,
  tag: string,
  token: string,
): Promise<SessionTokenClaims> {
  if (token.length === 0 || token.length > MAX_SESSION_TOKEN_LENGTH || !isCanonicalJwe(token)) {
    throw tokenInvalid();
  }
  const cacheKey = `${scope.productId}|${scope.env}|${createHash('sha256').update(token).digest('base64url')}`;
  let claims = keyring.openedTokens.get(cacheKey);
  if (claims) {
    // The same exact token opens to the same claims; only its expiry needs checking again.
    if (claims.expiresAt.getTime() + CLOCK_TOLERANCE_SECONDS * 1000 <= Date.now()) {
      keyring.openedTokens.delete(cacheKey);
      throw tokenExpired();
    }
  } else {
    claims = await decryptClaims(keyring, scope, token);
    keyring.openedTokens.set(cacheKey, claims);
  }
  if (claims.tag !== tag) throw tokenInvalid();
  return claims;
}

/** Decrypts a token and checks its claims, whatever its tag (the caller compares that). */
async function decryptClaims(
  keyring: Keyring,
  scope: TokenScope,
  token: string,
): Promise<SessionTokenClaims> {
  let payload: Record<string, unknown>;
  try {
    const result = await jwtDecrypt(
      token,
      async (header) => {
        // Only key ids still in service; an unknown or retired one opens nothing.
        if (!keyring.accepts(header.kid)) throw tokenInvalid();
        return keyring.tokenKey(scope.productId, scope.env, header.kid);
      },
      {
        issuer: ISSUER,
        audience: audienceOf(scope),
        keyManagementAlgorithms: [KEY_ALGORITHM],
        contentEncryptionAlgorithms: [CONTENT_ALGORITHM],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        // No compression: a `zip` header is refused, never inflated.
        maxDecompressedLength: 0,
        requiredClaims: ['exp', 'iat', 'sub'],
      },
    );
    payload = result.payload;
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired) {
      throw tokenExpired();
    }
    throw tokenInvalid();
  }
  const { sid, tag: tokenTag, data, sub, iat, exp } = payload;
  if (
    typeof sid !== 'string' ||
    typeof tokenTag !== 'string' ||
    typeof sub !== 'string' ||
    typeof iat !== 'number' ||
    typeof exp !== 'number' ||
    data === null ||
    typeof data !== 'object' ||
    Array.isArray(data)
  ) {
    throw tokenInvalid();
  }
  return {
    sessionId: sid,
    tag: tokenTag,
    identifier: sub,
    data: data as Record<string, unknown>,
    issuedAt: new Date(iat * 1000),
    expiresAt: new Date(exp * 1000),
  };
}

import { createHash } from 'node:crypto';
import {
  CompactEncrypt,
  EncryptJWT,
  SignJWT,
  compactDecrypt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtDecrypt,
  jwtVerify,
  type DecryptOptions,
  type JWTPayload,
} from 'jose';
import {
  isCanonicalJwe,
  signedTokenClaimsOf,
  tokenClaimsOf,
  type TokenClaims,
} from '../contract/token.js';
import type { Keyring } from './keyring.js';

/**
 * The `iss` of every token this service mints, required of every token it reads; local verifiers
 * are told it too.
 */
export const ISSUER = 'session-service';
const KEY_ALGORITHM = 'A256KW';
const CONTENT_ALGORITHM = 'A256GCM';
/** The signature inside a signed token (a JWS nested in the JWE: `cty: "JWT"`). */
export const SIGNATURE_ALGORITHM = 'EdDSA';
/** Clock skew accepted by the first, local check; the database clock then decides exactly. */
export const CLOCK_TOLERANCE_SECONDS = 30;
/**
 * A session token refused: `expired` past its expiry (or the cached claims' expiry), `invalid`
 * for anything else. The domain says it as TOKEN_EXPIRED or TOKEN_INVALID (tokens sit below the
 * domain and know nothing of the API's errors); the message says nothing of the token.
 */
export class TokenRefused extends Error {
  constructor(readonly reason: 'invalid' | 'expired') {
    super(`session token refused (${reason})`);
    this.name = 'TokenRefused';
  }
}

const tokenInvalid = () => new TokenRefused('invalid');
const tokenExpired = () => new TokenRefused('expired');

/** No session token we mint comes near this; a larger input is refused before any parsing. */
export const MAX_SESSION_TOKEN_LENGTH = 65_536;

/** What a session token says, once opened and checked. */
export interface SessionTokenClaims {
  readonly sessionId: string;
  readonly tag: string;
  readonly identifier: string;
  readonly data: Record<string, unknown>;
  readonly issuedAt: Date;
  /** The token's own expiry: its session's refresh expiry when it was minted. */
  readonly expiresAt: Date;
  /** Signed tokens: the session's data version when the token was minted. */
  readonly version?: number;
  /** Signed tokens: the session's expiry (verifySession's `expiresAt`) when it was minted. */
  readonly sessionExpiresAt?: Date;
  /** Signed tokens: whether the session has an idle timeout (a local verifier cannot judge it). */
  readonly idleTimeout?: boolean;
  /**
   * Signed tokens (minted, not read back): when the session started (`sst`, epoch milliseconds),
   * which a local verifier compares with the not-before watermarks.
   */
  readonly startedAt?: Date;
  /** Signed tokens: when the user last proved who they are as of minting (`auth_time`, OIDC). */
  readonly authenticatedAt?: Date;
  /** Signed tokens: the operator of an impersonation (`act.sub`, RFC 8693); absent otherwise. */
  readonly actor?: string | null;
}

/** Where a token belongs: a token minted for one scope is invalid in every other. */
export interface TokenScope {
  readonly productId: string;
  readonly env: string;
}

/**
 * The `aud` of a token of this scope, `<productId>:<env>`: a token is refused in any other product
 * or env.
 */
export const audienceOf = (scope: TokenScope) => `${scope.productId}:${scope.env}`;

const epochSeconds = (date: Date) => Math.floor(date.getTime() / 1000);

/** The registered claims of a token we mint, either format: issuer, audience, subject, times. */
function registeredClaims<T extends SignJWT | EncryptJWT>(
  jwt: T,
  scope: TokenScope,
  claims: Pick<SessionTokenClaims, 'identifier' | 'expiresAt'> & { issuedAt?: Date },
): T {
  jwt
    .setIssuer(ISSUER)
    .setAudience(audienceOf(scope))
    .setSubject(claims.identifier)
    .setIssuedAt(epochSeconds(claims.issuedAt ?? new Date()))
    .setExpirationTime(epochSeconds(claims.expiresAt));
  return jwt;
}

/** The claims a token is minted with: its issue time is now unless given. */
export type ClaimsToMint = Omit<SessionTokenClaims, 'issuedAt'> & { issuedAt?: Date };

/** The private claims of both formats: the session, its tag and its data. */
function sessionClaims(claims: Pick<SessionTokenClaims, 'sessionId' | 'tag' | 'data'>) {
  return { sid: claims.sessionId, tag: claims.tag, data: claims.data };
}

/**
 * Mints a session token: claims signed with the tag's Ed25519 key (a JWS), encrypted with its
 * AES key (a JWE, A256KW + A256GCM, `cty: "JWT"`), bound to scope and tag. A local verifier
 * holds the AES key and the public key: it can open and check, never make, such a token.
 */
export async function mintSessionToken(
  keyring: Keyring,
  scope: TokenScope,
  claims: ClaimsToMint,
): Promise<string> {
  const kid = keyring.currentKid;
  const keys = await keyring.signedKeys(scope.productId, scope.env, claims.tag, kid);
  const extra: Record<string, unknown> = {};
  if (claims.version !== undefined) extra.ver = claims.version;
  if (claims.sessionExpiresAt !== undefined) extra.sexp = epochSeconds(claims.sessionExpiresAt);
  if (claims.idleTimeout !== undefined) extra.idle = claims.idleTimeout;
  if (claims.startedAt !== undefined) extra.sst = claims.startedAt.getTime();
  // A NumericDate may be fractional (RFC 7519): to the millisecond, as the server keeps it.
  if (claims.authenticatedAt !== undefined)
    extra.auth_time = claims.authenticatedAt.getTime() / 1000;
  if (claims.actor != null) extra.act = { sub: claims.actor };
  const jws = new SignJWT({ ...sessionClaims(claims), ...extra }).setProtectedHeader({
    alg: SIGNATURE_ALGORITHM,
    kid,
  });
  const signed = await registeredClaims(jws, scope, claims).sign(keys.signingKey);
  return new CompactEncrypt(new TextEncoder().encode(signed))
    .setProtectedHeader({ alg: KEY_ALGORITHM, enc: CONTENT_ALGORITHM, kid, cty: 'JWT' })
    .encrypt(keys.encryptionKey);
}

/**
 * Mints a token of the first format (claims encrypted, not signed), which every instance still
 * opens: tokens minted before the signed format keep verifying. Kept for tests and benchmarks.
 */
export async function mintLegacySessionToken(
  keyring: Keyring,
  scope: TokenScope,
  claims: ClaimsToMint,
): Promise<string> {
  const kid = keyring.currentKid;
  const key = await keyring.tokenKey(scope.productId, scope.env, kid);
  const jwe = new EncryptJWT(sessionClaims(claims)).setProtectedHeader({
    alg: KEY_ALGORITHM,
    enc: CONTENT_ALGORITHM,
    kid,
  });
  return registeredClaims(jwe, scope, claims).encrypt(key);
}

/**
 * Opens a session token and checks every claim in one place: algorithms pinned, issuer,
 * audience (product and env), tag, and expiry against the local clock with a small tolerance.
 * Throws {@link TokenRefused} (invalid or expired), never anything that says more.
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
    claims = isSignedFormat(token)
      ? await openSignedClaims(keyring, scope, tag, token)
      : await decryptClaims(keyring, scope, token);
    keyring.openedTokens.set(cacheKey, claims);
  }
  if (claims.tag !== tag) throw tokenInvalid();
  return claims;
}

/** How both formats are decrypted: the algorithms pinned, and no compression. */
const DECRYPTION: DecryptOptions = {
  keyManagementAlgorithms: [KEY_ALGORITHM],
  contentEncryptionAlgorithms: [CONTENT_ALGORITHM],
  // No compression: a `zip` header is refused, never inflated.
  maxDecompressedLength: 0,
};

/** The claims both formats must carry and pass: issuer, audience, expiry (with tolerance). */
function claimChecks(scope: TokenScope) {
  return {
    issuer: ISSUER,
    audience: audienceOf(scope),
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    requiredClaims: ['exp', 'iat', 'sub'],
  };
}

/** A token jose refused: expired past its expiry, else invalid. */
function joseFailure(error: unknown): Error {
  return error instanceof joseErrors.JWTExpired ? tokenExpired() : tokenInvalid();
}

/** Whether the token's protected header announces a nested (signed) token. */
function isSignedFormat(token: string): boolean {
  try {
    return decodeProtectedHeader(token).cty === 'JWT';
  } catch {
    return false;
  }
}

/**
 * Opens a signed token: decrypts it with the tag's key for its kid, then checks the signature
 * with the same kid's public key, and every claim as for the first format.
 */
async function openSignedClaims(
  keyring: Keyring,
  scope: TokenScope,
  tag: string,
  token: string,
): Promise<SessionTokenClaims> {
  let payload: JWTPayload;
  try {
    let kid = '';
    const { plaintext } = await compactDecrypt(
      token,
      async (header) => {
        if (!keyring.accepts(header.kid)) throw tokenInvalid();
        kid = header.kid;
        return (await keyring.signedKeys(scope.productId, scope.env, tag, header.kid))
          .encryptionKey;
      },
      DECRYPTION,
    );
    const keys = await keyring.signedKeys(scope.productId, scope.env, tag, kid);
    const verified = await jwtVerify(new TextDecoder().decode(plaintext), keys.verificationKey, {
      algorithms: [SIGNATURE_ALGORITHM],
      ...claimChecks(scope),
    });
    if (verified.protectedHeader.kid !== kid) throw tokenInvalid();
    payload = verified.payload;
  } catch (error) {
    throw joseFailure(error);
  }
  const claims = signedTokenClaimsOf(payload);
  if (claims === undefined) throw tokenInvalid();
  const { ver, sexp, idle } = claims;
  return {
    ...serverClaimsOf(claims),
    ...(ver !== undefined ? { version: ver } : {}),
    ...(sexp !== undefined ? { sessionExpiresAt: new Date(sexp * 1000) } : {}),
    ...(idle !== undefined ? { idleTimeout: idle } : {}),
  };
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
      { ...DECRYPTION, ...claimChecks(scope) },
    );
    payload = result.payload;
  } catch (error) {
    throw joseFailure(error);
  }
  const claims = tokenClaimsOf(payload);
  if (claims === undefined) throw tokenInvalid();
  return serverClaimsOf(claims);
}

/** The claims both formats carry, as the server names them. */
function serverClaimsOf({ sid, tag, sub, iat, exp, data }: TokenClaims): SessionTokenClaims {
  return {
    sessionId: sid,
    tag,
    identifier: sub,
    data,
    issuedAt: new Date(iat * 1000),
    expiresAt: new Date(exp * 1000),
  };
}

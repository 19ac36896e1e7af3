import {
  compactDecrypt,
  decodeProtectedHeader,
  errors as joseErrors,
  importJWK,
  jwtVerify,
  type JWK,
} from 'jose';
import { isCanonicalJwe, signedTokenClaimsOf } from '../contract/token.js';
import { SessionServiceError } from './errors.js';

/** What the server's `verifierKeys` gives, as a local verifier keeps it. */
export interface LoadedKeys {
  readonly issuer: string;
  readonly audience: string;
  readonly clockToleranceSeconds: number;
  readonly maxTokenAgeSeconds: number;
  /** By `${tag}\u0000${kid}`. */
  readonly keys: ReadonlyMap<string, { encryption: CryptoKey | Uint8Array; verification: unknown }>;
}

/** What the verifier reads from a signed token, once opened and checked. */
export interface OpenedToken {
  readonly sessionId: string;
  readonly tag: string;
  readonly identifier: string;
  readonly data: Readonly<Record<string, unknown>>;
  /** Seconds since the epoch. */
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly version: number | undefined;
  readonly sessionExpiresAt: number | undefined;
  readonly idleTimeout: boolean | undefined;
  /** When the session started, epoch milliseconds (`sst`): compared with not-before marks. */
  readonly startedAt: number | undefined;
  /** When the user last proved who they are as of minting, epoch seconds to the ms (`auth_time`). */
  readonly authenticatedAt: number | undefined;
  /** The operator of an impersonation (`act.sub`); undefined for the user's own session. */
  readonly actor: string | undefined;
}

/** A token the verifier cannot open itself: the server decides. */
export class NotLocal {
  constructor(readonly reason: 'LEGACY_TOKEN' | 'UNKNOWN_KEY') {}
}

export const MAX_TOKEN_LENGTH = 65_536;
const ALG = 'A256KW';
const ENC = 'A256GCM';
const SIG = 'EdDSA';

export const tokenInvalid = () =>
  new SessionServiceError(
    'TOKEN_INVALID',
    'The session token is malformed, altered, or not for this tag.',
  );
export const tokenExpired = () =>
  new SessionServiceError('TOKEN_EXPIRED', 'The session token has expired; refresh the session.');

/** Imports one key pair of a `verifierKeys` answer. */
export async function importVerifierKey(
  encryption: JWK,
  verification: JWK,
): Promise<{ encryption: CryptoKey | Uint8Array; verification: unknown }> {
  // The AES key as a CryptoKey (jose would take the raw bytes and import them on every open).
  const encryptionKey =
    typeof globalThis.crypto?.subtle?.importKey === 'function'
      ? await globalThis.crypto.subtle.importKey('jwk', encryption as JsonWebKey, 'AES-KW', false, [
          'unwrapKey',
        ])
      : await importJWK(encryption, ALG);
  return { encryption: encryptionKey, verification: await importJWK(verification, SIG) };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/**
 * Opens a signed session token with the verifier's keys: decrypts it with the tag's key for its
 * kid, checks the Ed25519 signature inside, issuer, audience, tag and the token's own expiry,
 * with the checks and answers of the server. A token of the first format (no `cty: "JWT"`), or
 * under a kid the verifier has no key for, is {@link NotLocal}.
 */
export async function openLocally(
  keys: LoadedKeys,
  tag: string,
  token: string,
): Promise<OpenedToken | NotLocal> {
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH || !isCanonicalJwe(token)) {
    throw tokenInvalid();
  }
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw tokenInvalid();
  }
  if (header.cty !== 'JWT') return new NotLocal('LEGACY_TOKEN');
  if (typeof header.kid !== 'string') throw tokenInvalid();
  const pair = keys.keys.get(`${tag}\u0000${header.kid}`);
  if (!pair) return new NotLocal('UNKNOWN_KEY');
  let payload: Record<string, unknown>;
  try {
    const { plaintext } = await compactDecrypt(token, pair.encryption, {
      keyManagementAlgorithms: [ALG],
      contentEncryptionAlgorithms: [ENC],
      maxDecompressedLength: 0,
    });
    const verified = await jwtVerify(
      new TextDecoder().decode(plaintext),
      pair.verification as CryptoKey,
      {
        algorithms: [SIG],
        issuer: keys.issuer,
        audience: keys.audience,
        clockTolerance: keys.clockToleranceSeconds,
        requiredClaims: ['exp', 'iat', 'sub'],
      },
    );
    if (verified.protectedHeader.kid !== header.kid) throw tokenInvalid();
    payload = verified.payload;
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired) throw tokenExpired();
    throw tokenInvalid();
  }
  const claims = signedTokenClaimsOf(payload);
  const { sst, auth_time, act } = payload;
  const actor =
    act !== null && typeof act === 'object' && !Array.isArray(act)
      ? (act as { sub?: unknown }).sub
      : undefined;
  if (
    claims === undefined ||
    (sst !== undefined && typeof sst !== 'number') ||
    (auth_time !== undefined && typeof auth_time !== 'number') ||
    (act !== undefined && typeof actor !== 'string') ||
    claims.tag !== tag
  ) {
    throw tokenInvalid();
  }
  const { sid, tag: tokenTag, data, sub, iat, exp, ver, sexp, idle } = claims;
  return {
    sessionId: sid,
    tag: tokenTag,
    identifier: sub,
    data: deepFreeze(data),
    issuedAt: iat,
    expiresAt: exp,
    version: ver,
    sessionExpiresAt: sexp,
    idleTimeout: idle,
    startedAt: sst,
    authenticatedAt: auth_time,
    actor: actor as string | undefined,
  };
}

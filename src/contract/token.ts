/**
 * The format of a session token, checked once for the server (src/tokens/session-token.ts) and
 * the local verifier of the published client (src/client/local-token.ts): so, like the rest of
 * src/contract/, this module imports nothing. Each side answers a refusal with its own error.
 */

/**
 * Five base64url segments, each spelled exactly as the server encodes them: a token it minted has
 * one spelling only, so padding, whitespace or stray bits (which lenient decoders accept) make a
 * token invalid rather than a second spelling of a valid one.
 */
export function isCanonicalJwe(token: string): boolean {
  const segments = token.split('.');
  if (segments.length !== 5) return false;
  return segments.every(
    (segment) =>
      /^[A-Za-z0-9_-]*$/.test(segment) &&
      Buffer.from(segment, 'base64url').toString('base64url') === segment,
  );
}

/** The claims both token formats carry, each of the expected type. */
export interface TokenClaims {
  sid: string;
  tag: string;
  sub: string;
  iat: number;
  exp: number;
  data: Record<string, unknown>;
}

/** The claims of the signed format: those of {@link TokenClaims} and its optional ones. */
export interface SignedTokenClaims extends TokenClaims {
  ver: number | undefined;
  sexp: number | undefined;
  idle: boolean | undefined;
}

/** The claims both formats carry, or undefined when one is missing or of another type. */
export function tokenClaimsOf(payload: Record<string, unknown>): TokenClaims | undefined {
  const { sid, tag, data, sub, iat, exp } = payload;
  if (
    typeof sid !== 'string' ||
    typeof tag !== 'string' ||
    typeof sub !== 'string' ||
    typeof iat !== 'number' ||
    typeof exp !== 'number' ||
    data === null ||
    typeof data !== 'object' ||
    Array.isArray(data)
  ) {
    return undefined;
  }
  return { sid, tag, sub, iat, exp, data: data as Record<string, unknown> };
}

/** The claims of a signed token, or undefined when one is missing or of another type. */
export function signedTokenClaimsOf(
  payload: Record<string, unknown>,
): SignedTokenClaims | undefined {
  const claims = tokenClaimsOf(payload);
  const { ver, sexp, idle } = payload;
  if (
    claims === undefined ||
    (ver !== undefined && typeof ver !== 'number') ||
    (sexp !== undefined && typeof sexp !== 'number') ||
    (idle !== undefined && typeof idle !== 'boolean')
  ) {
    return undefined;
  }
  return { ...claims, ver, sexp, idle };
}

/**
 * `createSessionAuth`: the framework-agnostic core of the middleware. It reads a request's
 * session token (an `Authorization: Bearer` header, or the HttpOnly session cookie), verifies
 * it (the local verifier by default), refreshes an expired one from the refresh cookie once per
 * refresh token in this process, checks the Origin of unsafe cookie-authenticated requests
 * (CSRF), and hands back the Set-Cookie values to send. The adapters (`./express`, `./fastify`,
 * `./hono`, `./next`) only translate requests and answers.
 */
import { createHash } from 'node:crypto';
import { clientOptionsOf, type SessionClient } from '../client.js';
import { isSessionServiceError, SessionServiceError } from '../errors.js';
import { createLocalVerifier, type LocalVerifier } from '../local-verifier.js';
import type { SessionData, SessionTokens, VerifiedSession } from '../types.js';
import {
  clearSessionCookies,
  readSessionCookies,
  resolveCookieOptions,
  serializeSessionCookies,
  type ResolvedCookieOptions,
  type SessionCookieOptions,
} from './cookies.js';

/** The headers of a request: the Fetch API's `Headers`, or anything with its `get`. */
export interface HeadersLike {
  get(name: string): string | null | undefined;
}

/**
 * What the core reads of a request: a Fetch API `Request` fits, and the adapters build one from
 * their framework's request. `url` is absolute (its origin is the request's own, for CSRF).
 */
export interface RequestLike {
  readonly method: string;
  readonly url: string;
  readonly headers: HeadersLike;
}

/** A verified session, as `verifySession` answers, and who decided. */
export type AuthSession<TData = SessionData> = VerifiedSession<TData> & {
  /** `local`: decided in this process by the local verifier; `server`: by `verifySession`. */
  readonly verifiedBy: 'local' | 'server';
};

/**
 * Why a request is not authenticated:
 * - 401 `UNAUTHENTICATED` (no token), `TOKEN_INVALID`, `TOKEN_EXPIRED` (and no usable refresh
 *   cookie), `SESSION_REVOKED`, `REFRESH_TOKEN_REUSED` (a spent refresh token after the grace
 *   window: the session is revoked);
 * - 403 `CSRF_ORIGIN_MISMATCH`: an unsafe method authenticated by cookie from another origin;
 * - 503 `SERVICE_UNAVAILABLE`, `NETWORK_ERROR`, `RATE_LIMITED`: the session service could not
 *   decide; the cookies are left as they are (try again).
 */
export type AuthFailureCode =
  | 'UNAUTHENTICATED'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'SESSION_REVOKED'
  | 'REFRESH_TOKEN_REUSED'
  | 'CSRF_ORIGIN_MISMATCH'
  | 'SERVICE_UNAVAILABLE'
  | 'NETWORK_ERROR'
  | 'RATE_LIMITED';

/** A request that is not authenticated; send `setCookie` (it may clear the cookies). */
export interface AuthFailure {
  readonly ok: false;
  readonly status: 401 | 403 | 503;
  readonly code: AuthFailureCode;
  /**
   * Set-Cookie values to send: the cookies cleared after a 401 on a cookie; the new pair when a
   * refresh was done but its token could not be verified (503: the old refresh token is spent);
   * else none.
   */
  readonly setCookie: string[];
}

/** An authenticated request. */
export interface AuthSuccess<TData = SessionData> {
  readonly ok: true;
  readonly session: AuthSession<TData>;
  /** Where the token came from. */
  readonly via: 'cookie' | 'header';
  /** True when the session token had expired and was refreshed for this request. */
  readonly refreshed: boolean;
  /** Set-Cookie values to send: the new pair after a refresh, else none. */
  readonly setCookie: string[];
}

export type AuthResult<TData = SessionData> = AuthSuccess<TData> | AuthFailure;

/** A session to start at sign-in. */
export interface SignInInput<TData = SessionData> {
  /** The session data (it must match the session type's schema; it travels in the token). */
  readonly data: TData;
  /** Who the session is for; default: what the session type's selector picks from `data`. */
  readonly identifier?: string;
  /** Session token lifetime in seconds; default: the session type's expiry. */
  readonly expiresIn?: number;
  /** The end user's client; default: the request's User-Agent (no IP: see the README). */
  readonly device?: { readonly userAgent?: string; readonly ip?: string };
}

export type SignInResult =
  | {
      readonly ok: true;
      /** The new pair, for API clients; a browser gets the cookies only. */
      readonly tokens: SessionTokens;
      readonly setCookie: string[];
    }
  | AuthFailure;

export type SignOutResult =
  | {
      readonly ok: true;
      /** Sessions revoked (0 when the request had none that verified). */
      readonly revoked: number;
      /** The cookies, cleared. */
      readonly setCookie: string[];
    }
  | AuthFailure;

export interface SessionAuthOptions {
  /** The session client (a secret key): used to start, refresh and revoke sessions. */
  readonly client: SessionClient;
  /** The session type (config tag) this app's sessions are of. */
  readonly tag: string;
  /**
   * How tokens are verified: `local` (default) with a local verifier in this process, no
   * network call per request; `server` with `verifySession` on each request.
   */
  readonly verify?: 'local' | 'server';
  /**
   * The local verifier to use (it must follow `tag`); `close()` leaves it open. Default: one
   * made from the client's URL and key with `tags: [tag]`, closed by `close()`.
   */
  readonly verifier?: LocalVerifier;
  readonly cookies?: SessionCookieOptions;
  /**
   * Other origins (`https://app.example.com`) whose pages may send unsafe requests with the
   * cookies, beside the request's own origin (as the adapter sees it: behind a TLS proxy, list
   * the public origin here or make the framework trust the proxy's headers).
   */
  readonly trustedOrigins?: readonly string[];
  /**
   * The cookies' Max-Age in seconds. Default: the session type's `refreshExpiresIn`, read once
   * (and again every 10 minutes) with `client.configs.fetch`.
   */
  readonly maxAgeSeconds?: number;
  /**
   * How long a refresh's new pair keeps answering requests that still carry the spent refresh
   * token, in this process, in ms (default 5000). Keep it below the server's grace window
   * (`REFRESH_GRACE_SECONDS`, 10 s): past the window the server's reuse detection must see them.
   */
  readonly refreshReuseMs?: number;
}

export interface SessionAuth {
  /** Resolves when the local verifier has synced (at once with `verify: 'server'`). */
  readonly ready: Promise<void>;
  /** The local verifier in use (undefined with `verify: 'server'`). */
  readonly verifier: LocalVerifier | undefined;
  /** The cookie options in force (names, attributes). */
  readonly cookies: ResolvedCookieOptions;
  /**
   * Authenticates a request: a token from `Authorization: Bearer` (no CSRF check, no refresh)
   * or from the session cookie. An expired cookie token with a refresh cookie is refreshed
   * (once per refresh token in this process; across processes the server's grace window gives
   * them the same pair) and the new cookies are in `setCookie`. A failed refresh or an invalid
   * or revoked cookie token clears both cookies. Tokens never appear in errors or results.
   */
  authenticate<TData = SessionData>(request: RequestLike): Promise<AuthResult<TData>>;
  /**
   * Starts a session and gives the cookies that hold it. With a request of an unsafe method,
   * its Origin is checked as for a cookie (login CSRF): 403 `CSRF_ORIGIN_MISMATCH` otherwise.
   */
  signIn<TData = SessionData>(
    request: RequestLike | undefined,
    input: SignInInput<TData>,
  ): Promise<SignInResult>;
  /** Revokes the request's session (if one verifies) and clears the cookies. */
  signOut(request: RequestLike): Promise<SignOutResult>;
  /**
   * Revokes every session of the request's user in the key's environment, across all session
   * types (`client.sessions.revokeEverywhere`), and clears the cookies. Needs a session: 401
   * otherwise.
   */
  signOutEverywhere(request: RequestLike): Promise<SignOutResult>;
  /** Closes the local verifier it made (not one passed in). */
  close(): Promise<void>;
}

/** The longest session token taken from a header (cookie values are bounded at 4096 bytes). */
const MAX_HEADER_TOKEN_CHARS = 16_384;
/** Refreshes remembered at once, at most (pending ones are never dropped). */
const MAX_FLIGHTS = 10_000;
const CONFIG_TTL_MS = 10 * 60_000;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Codes of a token the end user holds that is no good: 401. */
const REFUSALS = new Set<string>([
  'TOKEN_INVALID',
  'TOKEN_EXPIRED',
  'SESSION_REVOKED',
  'REFRESH_TOKEN_REUSED',
]);
/** Codes of a service that could not decide: 503, cookies kept. */
const TRANSIENT = new Set<string>([
  'SERVICE_UNAVAILABLE',
  'NETWORK_ERROR',
  'RATE_LIMITED',
  'BAD_RESPONSE',
]);

type Outcome<TData> =
  | { ok: true; session: AuthSession<TData>; token: string; setCookie: string[] }
  | { ok: false; code: AuthFailureCode; transient: boolean; setCookie?: string[] };

/**
 * The failure code of a verify or refresh error, or the error itself again when it is not
 * about the end user's token (a wrong key, an unknown tag: the app's fault, thrown).
 */
function failureOf(error: unknown): { code: AuthFailureCode; transient: boolean } {
  if (isSessionServiceError(error)) {
    if (REFUSALS.has(error.code)) return { code: error.code as AuthFailureCode, transient: false };
    // A token the server will not even read (too long, empty) is an invalid one.
    if (
      error.code === 'BAD_USER_INPUT' &&
      (error.field === 'token' || error.field === 'refreshToken')
    ) {
      return { code: 'TOKEN_INVALID', transient: false };
    }
    if (TRANSIENT.has(error.code)) {
      const code = error.code === 'BAD_RESPONSE' ? 'SERVICE_UNAVAILABLE' : error.code;
      return { code: code as AuthFailureCode, transient: true };
    }
  }
  throw error;
}

/** The origin of a URL (`https://host:port`), or undefined when it is not an http(s) URL. */
function originOf(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.origin : undefined;
  } catch {
    return undefined;
  }
}

/** `options` checked: the tag, the cookies, the trusted origins and the refresh reuse window. */
function checkedOptions(options: SessionAuthOptions) {
  const { tag } = options;
  if (typeof tag !== 'string' || tag.length === 0) {
    throw new SessionServiceError('BAD_USER_INPUT', 'tag: expected a non-empty string', {
      field: 'tag',
    });
  }
  const cookieOptions = options.cookies ?? {};
  const cookies = resolveCookieOptions(cookieOptions);
  const trusted = new Set<string>();
  for (const origin of options.trustedOrigins ?? []) {
    const normalized = originOf(origin);
    if (normalized === undefined) {
      throw new SessionServiceError(
        'BAD_USER_INPUT',
        'trustedOrigins: expected http(s) origins such as https://app.example.com',
        { field: 'trustedOrigins' },
      );
    }
    trusted.add(normalized);
  }
  const reuseMs = options.refreshReuseMs ?? 5_000;
  if (!Number.isInteger(reuseMs) || reuseMs < 0 || reuseMs > 60_000) {
    throw new SessionServiceError(
      'BAD_USER_INPUT',
      'refreshReuseMs: expected whole ms, 0 to 60000',
      {
        field: 'refreshReuseMs',
      },
    );
  }
  return { tag, cookieOptions, cookies, trusted, reuseMs };
}

/**
 * The local verifier auth verifies on: `options.verifier`, else one made from the client's URL
 * and key following `tag` (`own`: closed by auth's `close`); none with `verify: 'server'`.
 */
function verifierOf(
  options: SessionAuthOptions,
  tag: string,
): { verifier: LocalVerifier | undefined; own: boolean } {
  if ((options.verify ?? 'local') !== 'local') return { verifier: undefined, own: false };
  if (options.verifier) return { verifier: options.verifier, own: false };
  const clientOptions = clientOptionsOf(options.client);
  if (!clientOptions) {
    throw new SessionServiceError(
      'BAD_USER_INPUT',
      'client: expected a client made by createSessionClient (or pass verifier)',
      { field: 'client' },
    );
  }
  const verifier = createLocalVerifier({
    url: clientOptions.url,
    key: clientOptions.key,
    tags: [tag],
    timeoutMs: clientOptions.timeoutMs,
    fetch: clientOptions.fetch,
    wsUrl: clientOptions.wsUrl,
    webSocketImpl: clientOptions.webSocketImpl,
    ws: clientOptions.ws,
  });
  return { verifier, own: true };
}

/** A failure result: its status, code and Set-Cookie values. */
const fail = (status: 401 | 403 | 503, code: AuthFailureCode, setCookie: string[] = []) =>
  ({ ok: false, status, code, setCookie }) as const;

/** Whether an unsafe request's Origin (else Referer) is its own origin or a trusted one. */
function originAllowed(request: RequestLike, trusted: ReadonlySet<string>): boolean {
  const origin = request.headers.get('origin');
  const referer = request.headers.get('referer');
  // `Origin: null` (sandboxed frames, some redirects) is a mismatch, never a fallback.
  const claimed =
    origin !== null && origin !== undefined
      ? originOf(origin)
      : referer
        ? originOf(referer)
        : undefined;
  if (claimed === undefined) return false;
  return claimed === originOf(request.url) || trusted.has(claimed);
}

/** Whether a request's method may change state (and so needs the origin check). */
const unsafe = (request: RequestLike) => !SAFE_METHODS.has(request.method.toUpperCase());

/** The token of an `Authorization: Bearer` header, if the request has one. */
function bearerOf(request: RequestLike): string | undefined {
  const header = request.headers.get('authorization');
  if (!header) return undefined;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}

/** A refresh in flight, or done within the reuse window (`doneAt`). */
type Flight = { outcome: Promise<Outcome<unknown>>; doneAt?: number };

/**
 * Refreshes shared by a hash of their refresh token (never the token): the requests of one
 * page load that all carry the same expired pair share one refresh, and a new pair keeps
 * answering for `reuseMs`.
 */
function refreshFlights(
  reuseMs: number,
  refresh: <TData>(refreshToken: string, request: RequestLike) => Promise<Outcome<TData>>,
  verifyRefreshed: <TData>(token: string, setCookie: string[]) => Promise<Outcome<TData>>,
) {
  const flights = new Map<string, Flight>();
  const forgetOld = () => {
    const now = Date.now();
    for (const [key, flight] of flights) {
      if (flight.doneAt !== undefined && now - flight.doneAt >= reuseMs) flights.delete(key);
    }
    if (flights.size < MAX_FLIGHTS) return;
    for (const [key, flight] of flights) {
      if (flight.doneAt !== undefined) flights.delete(key);
      if (flights.size < MAX_FLIGHTS) return;
    }
  };
  return <TData>(refreshToken: string, request: RequestLike): Promise<Outcome<TData>> => {
    forgetOld();
    const key = createHash('sha256').update(refreshToken).digest('base64url');
    const known = flights.get(key);
    if (known) {
      const shared = known.outcome as Promise<Outcome<TData>>;
      if (known.doneAt === undefined) return shared;
      // A pair refreshed earlier: its session may have been revoked since (sign out).
      return shared.then(async (done) => {
        if (!done.ok) return done;
        const again = await verifyRefreshed<TData>(done.token, done.setCookie);
        return !again.ok && again.code === 'TOKEN_EXPIRED' ? done : again;
      });
    }
    const outcome = refresh<TData>(refreshToken, request);
    const flight: Flight = { outcome };
    flights.set(key, flight);
    outcome.then(
      (result) => {
        // A new pair keeps answering for `reuseMs`; a failure is not remembered.
        if (result.ok && reuseMs > 0) flight.doneAt = Date.now();
        else flights.delete(key);
      },
      () => flights.delete(key),
    );
    return outcome;
  };
}

/**
 * The Max-Age of the session cookies: `options.maxAgeSeconds`, else the session type's refresh
 * lifetime (fetched, then kept for 10 minutes).
 */
function cookieMaxAgeOf(options: SessionAuthOptions, tag: string): () => Promise<number> {
  let maxAge: { seconds: number; until: number } | undefined;
  return async () => {
    if (options.maxAgeSeconds !== undefined) return options.maxAgeSeconds;
    if (maxAge && maxAge.until > Date.now()) return maxAge.seconds;
    const config = await options.client.configs.fetch(tag);
    if (!config) {
      throw new SessionServiceError('NOT_FOUND', `No session type with tag ${tag}.`);
    }
    maxAge = { seconds: config.refreshExpiresIn, until: Date.now() + CONFIG_TTL_MS };
    return maxAge.seconds;
  };
}

/** What signing in and out use of one auth. */
interface SignParts {
  readonly client: SessionAuthOptions['client'];
  readonly tag: string;
  readonly cookieOptions: SessionCookieOptions;
  readonly trusted: ReadonlySet<string>;
  readonly cookieMaxAge: () => Promise<number>;
  readonly cleared: () => string[];
}

/** {@link SessionAuth.signIn}: starts a session and sets its cookies. */
async function signIn<TData>(
  parts: SignParts,
  request: RequestLike | undefined,
  input: SignInInput<TData>,
): Promise<SignInResult> {
  if (request && unsafe(request) && !originAllowed(request, parts.trusted)) {
    return fail(403, 'CSRF_ORIGIN_MISMATCH');
  }
  const maxAgeSeconds = await parts.cookieMaxAge();
  const userAgent = request?.headers.get('user-agent') ?? undefined;
  const device = input.device ?? (userAgent ? { userAgent: userAgent.slice(0, 512) } : {});
  const tokens = await parts.client.sessions.start<TData>({
    tag: parts.tag,
    data: input.data,
    ...(input.identifier === undefined ? {} : { identifier: input.identifier }),
    ...(input.expiresIn === undefined ? {} : { expiresIn: input.expiresIn }),
    ...(device.userAgent === undefined && device.ip === undefined ? {} : { device }),
  });
  const setCookie = serializeSessionCookies(tokens, { ...parts.cookieOptions, maxAgeSeconds });
  return { ok: true, tokens, setCookie };
}

/** {@link SessionAuth.signOut}: revokes the request's session, if one verifies; clears the cookies. */
async function signOut(
  parts: SignParts,
  authenticate: SessionAuth['authenticate'],
  request: RequestLike,
): Promise<SignOutResult> {
  const result = await authenticate(request);
  if (!result.ok) {
    // Not signed in (any more): clearing the cookies is all there is to do.
    return result.status === 401 ? { ok: true, revoked: 0, setCookie: parts.cleared() } : result;
  }
  try {
    await parts.client.sessions.revoke({ tag: parts.tag, sessionId: result.session.sessionId });
  } catch (error) {
    if (!isSessionServiceError(error, 'SESSION_REVOKED', 'NOT_FOUND', 'TOKEN_EXPIRED')) {
      throw error;
    }
    return { ok: true, revoked: 0, setCookie: parts.cleared() };
  }
  return { ok: true, revoked: 1, setCookie: parts.cleared() };
}

/**
 * A request's `Authorization: Bearer` token, verified: a header no other site can make a
 * browser send, so no CSRF check; never refreshed (its holder refreshes).
 */
async function authenticateBearer<TData>(
  bearer: string,
  verifyToken: (token: string) => Promise<AuthSession<TData>>,
): Promise<AuthResult<TData>> {
  if (bearer.length > MAX_HEADER_TOKEN_CHARS) return fail(401, 'TOKEN_INVALID');
  try {
    const session = await verifyToken(bearer);
    return { ok: true, session, via: 'header', refreshed: false, setCookie: [] };
  } catch (error) {
    const { code, transient } = failureOf(error);
    return fail(transient ? 503 : 401, code);
  }
}

/**
 * The authentication core for one session type; see {@link SessionAuth}. Verification runs on
 * a local verifier by default (made from the client's URL and key, following `tag`), or on the
 * server with `verify: 'server'`.
 */
export function createSessionAuth(options: SessionAuthOptions): SessionAuth {
  const { client } = options;
  const { tag, cookieOptions, cookies, trusted, reuseMs } = checkedOptions(options);
  const { verifier, own: ownVerifier } = verifierOf(options, tag);
  const ready = verifier ? verifier.ready : Promise.resolve();
  // An app that never awaits `ready` must not see an unhandled rejection from it.
  ready.catch(() => {});

  const verifyToken = async <TData>(token: string): Promise<AuthSession<TData>> => {
    if (verifier) return verifier.verify<TData>({ tag, token });
    const verified = await client.sessions.verify<TData>({ tag, token });
    return { ...verified, verifiedBy: 'server' };
  };

  const cookieMaxAge = cookieMaxAgeOf(options, tag);
  const cleared = () => clearSessionCookies(cookieOptions);

  /**
   * The session of a refreshed pair's token. A transient failure keeps the pair in the answer:
   * the old refresh token is spent, and a browser that never gets the new pair presents the old
   * one again, which past the grace window is reuse (the session revoked).
   */
  const verifyRefreshed = async <TData>(
    token: string,
    setCookie: string[],
  ): Promise<Outcome<TData>> => {
    try {
      return { ok: true, session: await verifyToken<TData>(token), token, setCookie };
    } catch (error) {
      const failure = failureOf(error);
      return { ok: false, ...failure, ...(failure.transient ? { setCookie } : {}) };
    }
  };
  const refresh = async <TData>(
    refreshToken: string,
    request: RequestLike,
  ): Promise<Outcome<TData>> => {
    const userAgent = request.headers.get('user-agent') ?? undefined;
    let tokens: SessionTokens;
    let maxAgeSeconds: number;
    try {
      // Before the refresh: once it is done, the old refresh token is spent.
      maxAgeSeconds = await cookieMaxAge();
      tokens = await client.sessions.refresh({
        tag,
        refreshToken,
        ...(userAgent ? { device: { userAgent: userAgent.slice(0, 512) } } : {}),
      });
    } catch (error) {
      return { ok: false, ...failureOf(error) };
    }
    const setCookie = serializeSessionCookies(tokens, { ...cookieOptions, maxAgeSeconds });
    return verifyRefreshed<TData>(tokens.token, setCookie);
  };
  const refreshOnce = refreshFlights(reuseMs, refresh, verifyRefreshed);

  async function authenticate<TData = SessionData>(
    request: RequestLike,
  ): Promise<AuthResult<TData>> {
    const bearer = bearerOf(request);
    if (bearer !== undefined)
      return authenticateBearer<TData>(bearer, (t) => verifyToken<TData>(t));
    const { token, refreshToken } = readSessionCookies(request.headers.get('cookie'), cookies);
    if (token === undefined && refreshToken === undefined) return fail(401, 'UNAUTHENTICATED');
    if (unsafe(request) && !originAllowed(request, trusted))
      return fail(403, 'CSRF_ORIGIN_MISMATCH');
    if (token !== undefined) {
      try {
        const session = await verifyToken<TData>(token);
        return { ok: true, session, via: 'cookie', refreshed: false, setCookie: [] };
      } catch (error) {
        const { code, transient } = failureOf(error);
        if (transient) return fail(503, code);
        if (code !== 'TOKEN_EXPIRED' || refreshToken === undefined) {
          return fail(401, code, cleared());
        }
      }
    }
    // An expired session token (or none left) and a refresh cookie: one refresh.
    const outcome = await refreshOnce<TData>(refreshToken!, request);
    if (outcome.ok) {
      return {
        ok: true,
        session: outcome.session,
        via: 'cookie',
        refreshed: true,
        setCookie: outcome.setCookie,
      };
    }
    return outcome.transient
      ? fail(503, outcome.code, outcome.setCookie)
      : fail(401, outcome.code, cleared());
  }

  const parts: SignParts = { client, tag, cookieOptions, trusted, cookieMaxAge, cleared };
  return {
    ready,
    verifier,
    cookies,
    authenticate,
    signIn: <TData = SessionData>(request: RequestLike | undefined, input: SignInInput<TData>) =>
      signIn(parts, request, input),
    signOut: (request: RequestLike) => signOut(parts, authenticate, request),
    async signOutEverywhere(request: RequestLike): Promise<SignOutResult> {
      const result = await authenticate(request);
      if (!result.ok) return result;
      const { count } = await client.sessions.revokeEverywhere({
        identifier: result.session.identifier,
      });
      return { ok: true, revoked: count, setCookie: cleared() };
    },
    async close() {
      if (ownVerifier) await verifier?.close();
    },
  };
}

/** The JSON body of a failure: `{ "error": { "code": "…" } }`. */
export function failureBody(failure: Pick<AuthFailure, 'code'>): { error: { code: string } } {
  return { error: { code: failure.code } };
}

/** A Fetch API `Response` for a failure: its status, the JSON body, its Set-Cookie values. */
export function failureResponse(failure: AuthFailure): Response {
  const headers = new Headers({ 'content-type': 'application/json' });
  for (const value of failure.setCookie) headers.append('set-cookie', value);
  if (failure.status === 401) headers.set('www-authenticate', 'Bearer');
  return new Response(JSON.stringify(failureBody(failure)), { status: failure.status, headers });
}

/**
 * A Fetch API `Response` with more Set-Cookie values (the response's headers may be immutable,
 * e.g. `Response.redirect`: then a copy).
 */
export function withSetCookie(response: Response, setCookie: readonly string[]): Response {
  if (setCookie.length === 0) return response;
  try {
    for (const value of setCookie) response.headers.append('set-cookie', value);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    for (const value of setCookie) copy.headers.append('set-cookie', value);
    return copy;
  }
}

/**
 * An adapter's `applyResult`: a success's Set-Cookie values go on the response (true: answer as
 * you like), a failure is answered (false: the response is sent).
 */
export type ApplyResult<TResponse> = <
  T extends { readonly ok: boolean; readonly setCookie: string[] },
>(
  response: TResponse,
  result: T,
) => result is Extract<T, { readonly ok: true }>;

/**
 * The adapters' `applyResult` (internal: not exported from the package's entries), made of the
 * adapter's own ways to add Set-Cookie values to a response and to answer a failure.
 */
export function resultApplier<TResponse>(
  appendSetCookie: (response: TResponse, values: readonly string[]) => void,
  sendFailure: (response: TResponse, failure: AuthFailure) => unknown,
): ApplyResult<TResponse> {
  return <T extends { readonly ok: boolean; readonly setCookie: string[] }>(
    response: TResponse,
    result: T,
  ): result is Extract<T, { readonly ok: true }> => {
    if (result.ok) {
      appendSetCookie(response, result.setCookie);
      return true;
    }
    sendFailure(response, result as unknown as AuthFailure);
    return false;
  };
}

/**
 * The adapters' middleware decision (internal: not exported from the package's entries): a
 * success goes on to `admit` with its session, and so does a 401 when the session is not
 * `required` (with session null); both with their Set-Cookie values. Any other failure (a 401
 * when required, a 403 CSRF mismatch, a 503) goes to `refuse`.
 */
export function admitWith<TData, TAnswer>(
  result: AuthResult<TData>,
  required: boolean,
  admit: (session: AuthSession<TData> | null, setCookie: string[]) => TAnswer,
  refuse: (failure: AuthFailure) => TAnswer,
): TAnswer {
  if (result.ok) return admit(result.session, result.setCookie);
  if (!required && result.status === 401) return admit(null, result.setCookie);
  return refuse(result);
}

/**
 * `@session-service/client/express`: Express middleware over `createSessionAuth` (Express 4 and
 * 5; no runtime dependency on Express: the request and response are typed by what is used).
 *
 * The verified session goes to `res.locals.session` (read it with `sessionOf(res)`): Express's
 * own place for request-scoped values, which neither express-session (`req.session`) nor
 * express-jwt (`req.auth`) uses.
 *
 * ```ts
 * app.use('/api', sessionMiddleware(auth)); // 401 { error: { code } } without a session
 * app.get('/api/me', (req, res) => res.json({ user: sessionOf(res)!.identifier }));
 * ```
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  admitWith,
  failureBody,
  resultApplier,
  type ApplyResult,
  type AuthFailure,
  type AuthSession,
  type RequestLike,
  type SessionAuth,
} from './server/auth.js';
import type { SessionData } from './types.js';

/** What the middleware reads of an Express request. */
export interface ExpressRequestLike {
  readonly method: string;
  /** The path and query (`req.originalUrl` when mounted). */
  readonly url: string;
  readonly originalUrl?: string;
  readonly headers: IncomingHttpHeaders;
  /** `http` or `https` (with `trust proxy`, from X-Forwarded-Proto). */
  readonly protocol?: string;
  /** The app, for its `trust proxy` setting (compiled: `trust proxy fn`). */
  readonly app?: { get(name: string): unknown };
  /** The connection, for the `trust proxy` check of its peer. */
  readonly socket?: { readonly remoteAddress?: string };
}

/** What the middleware uses of an Express response. */
export interface ExpressResponseLike {
  locals: Record<string, unknown>;
  headersSent?: boolean;
  getHeader(name: string): number | string | readonly string[] | undefined;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
  status(code: number): this;
  json(body: unknown): unknown;
}

export interface ExpressSessionOptions {
  /**
   * True (default): a request without a valid session is answered 401 (403 for a CSRF
   * mismatch, 503 when the service cannot decide). False: it goes on with
   * `res.locals.session = null` (but a CSRF mismatch is still 403).
   */
  readonly required?: boolean;
}

/**
 * The request's host with its port, as Express 5's `req.host` gives it: X-Forwarded-Host (its
 * first value) when `trust proxy` trusts the peer, else the Host header. Not `req.host` itself:
 * on Express 4 it drops the port, and every cookie POST on a non-default port would fail the
 * origin check.
 */
function hostOf(req: ExpressRequestLike): string | null {
  const trust = req.app?.get('trust proxy fn');
  const forwarded = headerOf(req.headers, 'x-forwarded-host');
  if (
    forwarded &&
    typeof trust === 'function' &&
    (trust as (address: string | undefined, hop: number) => boolean)(req.socket?.remoteAddress, 0)
  ) {
    return forwarded.split(',')[0]!.trim() || null;
  }
  return headerOf(req.headers, 'host');
}

/** The request as the core reads it: absolute URL from the protocol and host Express sees. */
export function requestOf(req: ExpressRequestLike): RequestLike {
  const host = hostOf(req) ?? 'localhost';
  const protocol = req.protocol ?? 'http';
  return {
    method: req.method,
    url: `${protocol}://${host}${req.originalUrl ?? req.url}`,
    headers: { get: (name) => headerOf(req.headers, name) },
  };
}

function headerOf(headers: IncomingHttpHeaders, name: string): string | null {
  const value = headers[name.toLowerCase()];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(name.toLowerCase() === 'cookie' ? '; ' : ', ') : value;
}

/** Adds Set-Cookie values to a Node.js response (keeping those already set). */
export function appendSetCookie(res: ExpressResponseLike, values: readonly string[]): void {
  if (values.length === 0) return;
  const current = res.getHeader('set-cookie');
  const list =
    current === undefined ? [] : Array.isArray(current) ? [...current] : [String(current)];
  res.setHeader('set-cookie', [...list, ...values]);
}

/** Answers a failure: its status, `{ error: { code } }` and its Set-Cookie values. */
export function sendFailure(res: ExpressResponseLike, failure: AuthFailure): void {
  appendSetCookie(res, failure.setCookie);
  if (failure.status === 401) res.setHeader('www-authenticate', 'Bearer');
  res.status(failure.status).json(failureBody(failure));
}

/** The session the middleware put on `res.locals.session` (null or undefined: none). */
export function sessionOf<TData = SessionData>(res: {
  locals: Record<string, unknown>;
}): AuthSession<TData> | null | undefined {
  return res.locals.session as AuthSession<TData> | null | undefined;
}

/**
 * Middleware that authenticates each request (see `SessionAuth.authenticate`), sends the
 * refreshed cookies, and puts the session on `res.locals.session`.
 */
export function sessionMiddleware(auth: SessionAuth, options: ExpressSessionOptions = {}) {
  const required = options.required ?? true;
  return (req: ExpressRequestLike, res: ExpressResponseLike, next: (error?: unknown) => void) => {
    auth.authenticate(requestOf(req)).then(
      (result) =>
        admitWith(
          result,
          required,
          (session, setCookie) => {
            appendSetCookie(res, setCookie);
            res.locals.session = session;
            next();
          },
          (failure) => sendFailure(res, failure),
        ),
      (error: unknown) => next(error),
    );
  };
}

/**
 * Sends what a result of `auth.signIn`, `auth.signOut` or `auth.signOutEverywhere` asks: on
 * success its Set-Cookie values (then answer as you like: true is returned), on failure the
 * failure's status and body (false is returned: the response is sent).
 *
 * ```ts
 * app.post('/sign-out', async (req, res) => {
 *   if (applyResult(res, await auth.signOut(requestOf(req)))) res.redirect(303, '/');
 * });
 * ```
 */
export const applyResult: ApplyResult<ExpressResponseLike> = resultApplier(
  appendSetCookie,
  sendFailure,
);

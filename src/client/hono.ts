/**
 * `@session-service/client/hono`: Hono middleware over `createSessionAuth`. Hono's types only
 * are imported (`import type`): nothing of Hono is loaded at run time. The verified session is
 * `c.get('session')`; type your app with {@link SessionEnv}.
 *
 * ```ts
 * const app = new Hono<SessionEnv>();
 * app.use('/api/*', sessionMiddleware(auth));
 * app.get('/api/me', (c) => c.json({ user: c.get('session')!.identifier }));
 * ```
 *
 * The local verifier holds a WebSocket and uses `node:crypto`: run on Node.js
 * (`@hono/node-server`), or pass `verify: 'server'` to `createSessionAuth` elsewhere.
 */
import type { Context, MiddlewareHandler } from 'hono';
import {
  admitWith,
  failureBody,
  type AuthFailure,
  type AuthSession,
  type SessionAuth,
} from './server/auth.js';

/** The variables the middleware sets: `session` (null when none and not required). */
export interface SessionEnv {
  Variables: { session: AuthSession | null };
}

export interface HonoSessionOptions {
  /**
   * True (default): a request without a valid session is answered 401 (403 for a CSRF
   * mismatch, 503 when the service cannot decide). False: it goes on with `session` null
   * (a CSRF mismatch is still 403).
   */
  readonly required?: boolean;
}

/** Adds Set-Cookie values to the context's response. */
export function appendSetCookie(c: Context, values: readonly string[]): void {
  for (const value of values) c.header('set-cookie', value, { append: true });
}

/**
 * Adds Set-Cookie values to the response the handlers answered with (after `next()`): Hono
 * drops `c.header` values when a handler returns its own `Response` (`new Response`,
 * `Response.redirect`), and a refreshed pair that never reaches the browser makes its next
 * refresh a reuse, which revokes the session.
 */
function appendToResponse(c: Context, values: readonly string[]): void {
  if (values.length === 0) return;
  try {
    for (const value of values) c.res.headers.append('set-cookie', value);
  } catch {
    // Immutable headers (`Response.redirect`): a copy, which Hono's `c.res` setter makes mutable.
    c.res = new Response(c.res.body, c.res);
    for (const value of values) c.res.headers.append('set-cookie', value);
  }
}

/** The failure's response: its status, `{ error: { code } }` and its Set-Cookie values. */
export function failureOf(c: Context, failure: AuthFailure): Response {
  appendSetCookie(c, failure.setCookie);
  if (failure.status === 401) c.header('www-authenticate', 'Bearer');
  return c.json(failureBody(failure), failure.status);
}

/**
 * Middleware that authenticates each request (see `SessionAuth.authenticate`) on `c.req.raw`,
 * sends the refreshed cookies and sets `session`.
 */
export function sessionMiddleware(
  auth: SessionAuth,
  options: HonoSessionOptions = {},
): MiddlewareHandler<SessionEnv> {
  const required = options.required ?? true;
  return async (c, next) => {
    const result = await auth.authenticate(c.req.raw);
    return admitWith(
      result,
      required,
      async (session, setCookie): Promise<Response | void> => {
        c.set('session', session);
        await next();
        appendToResponse(c, setCookie);
      },
      async (failure) => failureOf(c, failure),
    );
  };
}

/**
 * Applies a result of `auth.signIn`, `auth.signOut` or `auth.signOutEverywhere`: on success its
 * Set-Cookie values go on the context's response and undefined is returned (answer as you
 * like); on failure, the failure's response is returned.
 *
 * ```ts
 * app.post('/sign-out', async (c) => applyResult(c, await auth.signOut(c.req.raw)) ?? c.redirect('/', 303));
 * ```
 */
export function applyResult(
  c: Context,
  result: { readonly ok: true; readonly setCookie: string[] } | AuthFailure,
): Response | undefined {
  if (result.ok) {
    appendSetCookie(c, result.setCookie);
    return undefined;
  }
  return failureOf(c, result);
}

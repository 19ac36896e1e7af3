/**
 * `@session-service/client/next`: Next.js App Router helpers over `createSessionAuth`, on the
 * Fetch API only (nothing of Next.js is imported).
 *
 * Route handlers (`app/api/me/route.ts`):
 *
 * ```ts
 * export const GET = withSession(auth, async (request, { session }) =>
 *   Response.json({ user: session.identifier }),
 * );
 * ```
 *
 * Middleware (`middleware.ts`): the local verifier holds a WebSocket and uses `node:crypto`, so
 * it needs the Node.js runtime (`export const config = { runtime: 'nodejs' }`, Next.js 15.5+);
 * on the Edge runtime, pass `verify: 'server'` to `createSessionAuth` (one `verifySession` call
 * per request) — `node:crypto` must still be available.
 *
 * ```ts
 * const protect = sessionMiddleware(auth, { next: () => NextResponse.next() });
 * export const middleware = (request: NextRequest) => protect(request);
 * export const config = { matcher: ['/account/:path*'], runtime: 'nodejs' };
 * ```
 */
import {
  admitWith,
  failureResponse,
  withSetCookie,
  type AuthFailure,
  type AuthSession,
  type SessionAuth,
} from './server/auth.js';
import type { SessionData } from './types.js';

export interface NextSessionOptions {
  /**
   * True (default): a request without a valid session is answered 401 (403 for a CSRF
   * mismatch, 503 when the service cannot decide) with `{ error: { code } }`. False: the
   * handler runs with `session` null (a CSRF mismatch is still 403).
   */
  readonly required?: boolean;
  /** The answer to a failure (default: {@link failureResponse}); its cookies are added. */
  readonly onFailure?: (request: Request, failure: AuthFailure) => Response | Promise<Response>;
}

/** The answer to a failure: `onFailure`'s or {@link failureResponse}, with its cookies. */
async function failureAnswer(
  options: Pick<NextSessionOptions, 'onFailure'>,
  request: Request,
  failure: AuthFailure,
): Promise<Response> {
  const answer = options.onFailure
    ? await options.onFailure(request, failure)
    : failureResponse({ ...failure, setCookie: [] });
  return withSetCookie(answer, failure.setCookie);
}

/** A route handler's second argument (`{ params }`), with the session. */
export type WithSession<TContext, TSession> = TContext & { readonly session: TSession };

/** A route handler that gets the session (null with `required: false` and no session). */
type SessionHandler<TContext, TSession> = (
  request: Request,
  context: WithSession<TContext, TSession>,
) => Response | Promise<Response>;

/** The route handler `withSession` makes, as Next.js calls it. */
type RouteHandler<TContext> = (request: Request, context?: TContext) => Promise<Response>;

/**
 * Wraps an App Router route handler: the request is authenticated first (a refreshed pair's
 * Set-Cookie values are added to the handler's response), and the handler gets the session in
 * its second argument.
 */
export function withSession<TContext = unknown, TData = SessionData>(
  auth: SessionAuth,
  handler: SessionHandler<TContext, AuthSession<TData>>,
  options?: NextSessionOptions & { readonly required?: true },
): RouteHandler<TContext>;
export function withSession<TContext = unknown, TData = SessionData>(
  auth: SessionAuth,
  handler: SessionHandler<TContext, AuthSession<TData> | null>,
  options: NextSessionOptions & { readonly required: false },
): RouteHandler<TContext>;
export function withSession<TContext = unknown, TData = SessionData>(
  auth: SessionAuth,
  handler: SessionHandler<TContext, AuthSession<TData> | null>,
  options: NextSessionOptions = {},
): RouteHandler<TContext> {
  const required = options.required ?? true;
  return async (request, context) => {
    const result = await auth.authenticate<TData>(request);
    return admitWith(
      result,
      required,
      async (session, setCookie) => {
        const response = await handler(request, {
          ...(context as object),
          session,
        } as WithSession<TContext, AuthSession<TData> | null>);
        return withSetCookie(response, setCookie);
      },
      (failure) => failureAnswer(options, request, failure),
    );
  };
}

export interface NextMiddlewareOptions extends Omit<NextSessionOptions, 'required'> {
  /**
   * The answer that lets the request through: pass `() => NextResponse.next()` (this module
   * does not import Next.js). The refreshed pair's Set-Cookie values are added to it, so the
   * browser gets them; the route handlers of this same request still see the old cookies and
   * refresh with the same refresh token, which this process answers with the same pair.
   */
  readonly next: (request: Request) => Response | Promise<Response>;
}

/**
 * A Next.js middleware function (Node.js runtime) that lets through only requests with a valid
 * session, and answers the others with `onFailure` (default 401/403 JSON; for pages, redirect
 * to your sign-in page there).
 */
export function sessionMiddleware(
  auth: SessionAuth,
  options: NextMiddlewareOptions,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const result = await auth.authenticate(request);
    if (!result.ok) return failureAnswer(options, request, result);
    return withSetCookie(await options.next(request), result.setCookie);
  };
}

export { failureResponse, withSetCookie };

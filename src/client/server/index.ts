/**
 * `@session-service/client/server`: protect routes of a web app with the session service,
 * whatever the framework. `createSessionAuth` reads the session token from an
 * `Authorization: Bearer` header or an HttpOnly cookie, verifies it (local verifier by default),
 * refreshes an expired one from the refresh cookie (once per refresh token in this process),
 * checks the Origin of unsafe cookie-authenticated requests (CSRF) and hands back the
 * Set-Cookie values to send. The cookie helpers write and read the two cookies (`__Host-`,
 * HttpOnly, Secure, SameSite=Lax, Path=/ by default). See the README's "Protecting routes in
 * your web app"; the adapters are `@session-service/client/express`, `/fastify`, `/hono` and
 * `/next`.
 *
 * ```ts
 * const auth = createSessionAuth({ client, tag: 'user-session' });
 * const result = await auth.authenticate(request); // a Fetch API Request, or like one
 * if (!result.ok) return failureResponse(result); // 401/403 { error: { code } }, cookies cleared
 * result.session.identifier; // and send result.setCookie (a refreshed pair) with the answer
 * ```
 */
export {
  createSessionAuth,
  failureBody,
  failureResponse,
  withSetCookie,
  type AuthFailure,
  type AuthFailureCode,
  type AuthResult,
  type AuthSession,
  type AuthSuccess,
  type HeadersLike,
  type RequestLike,
  type SessionAuth,
  type SessionAuthOptions,
  type SignInInput,
  type SignInResult,
  type SignOutResult,
} from './auth.js';
export {
  clearSessionCookies,
  MAX_COOKIE_BYTES,
  readSessionCookies,
  resolveCookieOptions,
  serializeSessionCookies,
  type CookieTokens,
  type ResolvedCookieOptions,
  type SessionCookieOptions,
} from './cookies.js';

/**
 * `@session-service/client/fastify`: a Fastify 5 preHandler hook and plugin over
 * `createSessionAuth`. Fastify's types only are imported (`import type`): nothing of Fastify is
 * loaded at run time. The verified session goes to `request.authSession` (`request.session` is
 * @fastify/session's).
 *
 * ```ts
 * await app.register(async (api) => {
 *   await api.register(sessionPlugin, { auth }); // this scope's routes need a session
 *   api.get('/api/me', async (request) => ({ user: request.authSession!.identifier }));
 * });
 * ```
 */
import type {
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  preHandlerAsyncHookHandler,
} from 'fastify';
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

declare module 'fastify' {
  interface FastifyRequest {
    /** The session `sessionHook` verified; null when none and not required. */
    authSession: AuthSession | null;
  }
}

export interface FastifySessionOptions {
  /**
   * True (default): a request without a valid session is answered 401 (403 for a CSRF
   * mismatch, 503 when the service cannot decide). False: it goes on with
   * `request.authSession = null` (a CSRF mismatch is still 403).
   */
  readonly required?: boolean;
}

/** The request as the core reads it: absolute URL from the protocol and host Fastify sees. */
export function requestOf(request: FastifyRequest): RequestLike {
  const headers = request.headers;
  return {
    method: request.method,
    url: `${request.protocol}://${request.host}${request.url}`,
    headers: {
      get(name) {
        const value = headers[name.toLowerCase()];
        if (value === undefined) return null;
        return Array.isArray(value) ? value.join(', ') : value;
      },
    },
  };
}

/** Adds Set-Cookie values to a reply (Fastify appends repeated `set-cookie` headers). */
export function appendSetCookie(reply: FastifyReply, values: readonly string[]): void {
  for (const value of values) reply.header('set-cookie', value);
}

/** Answers a failure: its status, `{ error: { code } }` and its Set-Cookie values. */
export function sendFailure(reply: FastifyReply, failure: AuthFailure): FastifyReply {
  appendSetCookie(reply, failure.setCookie);
  if (failure.status === 401) reply.header('www-authenticate', 'Bearer');
  return reply.code(failure.status).send(failureBody(failure));
}

/**
 * A preHandler hook that authenticates each request (see `SessionAuth.authenticate`), sends the
 * refreshed cookies and puts the session on `request.authSession`.
 */
export function sessionHook(
  auth: SessionAuth,
  options: FastifySessionOptions = {},
): preHandlerAsyncHookHandler {
  const required = options.required ?? true;
  return async function (request, reply) {
    const result = await auth.authenticate(requestOf(request));
    return admitWith(
      result,
      required,
      (session, setCookie) => {
        appendSetCookie(reply, setCookie);
        request.authSession = session;
      },
      (failure) => sendFailure(reply, failure),
    );
  };
}

/**
 * A plugin that decorates requests with `authSession` and adds {@link sessionHook} to the scope
 * it is registered in (like a `fastify-plugin` plugin: not encapsulated).
 */
export const sessionPlugin: FastifyPluginAsync<FastifySessionOptions & { auth: SessionAuth }> =
  Object.assign(
    async function sessionPlugin(
      fastify: Parameters<FastifyPluginAsync>[0],
      options: FastifySessionOptions & { auth: SessionAuth },
    ) {
      if (!fastify.hasRequestDecorator('authSession')) fastify.decorateRequest('authSession', null);
      fastify.addHook('preHandler', sessionHook(options.auth, options));
    },
    { [Symbol.for('skip-override')]: true },
  );

/**
 * Sends what a result of `auth.signIn`, `auth.signOut` or `auth.signOutEverywhere` asks: on
 * success its Set-Cookie values (true: answer as you like), on failure the failure (false: the
 * reply is sent).
 */
export const applyResult: ApplyResult<FastifyReply> = resultApplier(appendSetCookie, sendFailure);

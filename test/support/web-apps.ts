/**
 * One small web app per framework, built on the client's middleware, listening on 127.0.0.1:
 * the routes the middleware tests drive (test/middleware-*.test.ts).
 *
 * - `GET|POST /api/me`: needs a session; answers `{ identifier, sessionId, verifiedBy, via }`.
 * - `GET /api/optional`: `{ identifier }` or `{ identifier: null }` without a session.
 * - `GET /api/raw` (`raw`), `GET /api/redirect` (303 to `/`): need a session; answered with the
 *   framework's plainest own answer (Hono, Next.js: a `Response` of the handler's own).
 * - `POST /sign-in` (JSON `{ userId, expiresIn? }`): starts a session, sets the cookies.
 * - `POST /sign-out`, `POST /sign-out-everywhere`.
 */
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import express from 'express';
import fastify from 'fastify';
import { Hono } from 'hono';
import * as ex from 'session-service/client/express';
import * as fy from 'session-service/client/fastify';
import * as hn from 'session-service/client/hono';
import * as nx from 'session-service/client/next';
import type { AuthSession, SessionAuth } from 'session-service/client/server';

export type Framework = 'express' | 'fastify' | 'hono' | 'next';

export interface WebApp {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  close(): Promise<void>;
}

const me = (session: AuthSession, via?: string) => ({
  identifier: session.identifier,
  sessionId: session.sessionId,
  verifiedBy: session.verifiedBy,
  ...(via ? { via } : {}),
});

const signInData = (userId: string) => ({
  userId,
  details: { username: userId, email: `${userId}@example.com` },
});

interface SignInBody {
  userId: string;
  expiresIn?: number;
}

export async function startWebApp(framework: Framework, auth: SessionAuth): Promise<WebApp> {
  switch (framework) {
    case 'express':
      return expressApp(auth);
    case 'fastify':
      return fastifyApp(auth);
    case 'hono':
      return honoApp(auth);
    case 'next':
      return nextApp(auth);
  }
}

async function expressApp(auth: SessionAuth): Promise<WebApp> {
  const app = express();
  app.use(express.json());
  app.get('/api/optional', ex.sessionMiddleware(auth, { required: false }), (_req, res) => {
    res.json({ identifier: ex.sessionOf(res)?.identifier ?? null });
  });
  app.use('/api', ex.sessionMiddleware(auth));
  app.all('/api/me', (_req, res) => {
    res.json(me(ex.sessionOf(res)!));
  });
  app.get('/api/raw', (_req, res) => {
    res.end('raw');
  });
  app.get('/api/redirect', (_req, res) => {
    res.redirect(303, '/');
  });
  app.post('/sign-in', async (req, res) => {
    const body = req.body as SignInBody;
    const result = await auth.signIn(ex.requestOf(req), {
      data: signInData(body.userId),
      expiresIn: body.expiresIn,
    });
    if (ex.applyResult(res, result)) res.json({ sessionId: result.tokens.sessionId });
  });
  app.post('/sign-out', async (req, res) => {
    const result = await auth.signOut(ex.requestOf(req));
    if (ex.applyResult(res, result)) res.json({ revoked: result.revoked });
  });
  app.post('/sign-out-everywhere', async (req, res) => {
    const result = await auth.signOutEverywhere(ex.requestOf(req));
    if (ex.applyResult(res, result)) res.json({ revoked: result.revoked });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function fastifyApp(auth: SessionAuth): Promise<WebApp> {
  const app = fastify();
  await app.register(async (api) => {
    await api.register(fy.sessionPlugin, { auth });
    const handler = async (request: { authSession: AuthSession | null }) =>
      me(request.authSession!);
    api.get('/api/me', handler);
    api.post('/api/me', handler);
    api.get('/api/raw', async (_request, reply) => reply.send('raw'));
    api.get('/api/redirect', async (_request, reply) => reply.redirect('/', 303));
  });
  await app.register(async (open) => {
    open.addHook('preHandler', fy.sessionHook(auth, { required: false }));
    open.get('/api/optional', async (request) => ({
      identifier: request.authSession?.identifier ?? null,
    }));
  });
  app.post('/sign-in', async (request, reply) => {
    const body = request.body as SignInBody;
    const result = await auth.signIn(fy.requestOf(request), {
      data: signInData(body.userId),
      expiresIn: body.expiresIn,
    });
    if (fy.applyResult(reply, result)) return { sessionId: result.tokens.sessionId };
    return reply;
  });
  app.post('/sign-out', async (request, reply) => {
    const result = await auth.signOut(fy.requestOf(request));
    if (fy.applyResult(reply, result)) return { revoked: result.revoked };
    return reply;
  });
  app.post('/sign-out-everywhere', async (request, reply) => {
    const result = await auth.signOutEverywhere(fy.requestOf(request));
    if (fy.applyResult(reply, result)) return { revoked: result.revoked };
    return reply;
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, close: () => app.close() };
}

/** A fetch handler served by @hono/node-server (Hono's, or the Next.js-style router's). */
async function serveFetch(fetch: (request: Request) => Promise<Response>): Promise<WebApp> {
  let server!: ReturnType<typeof serve>;
  const port = await new Promise<number>((resolve) => {
    server = serve({ fetch, port: 0, hostname: '127.0.0.1' }, (info) => resolve(info.port));
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

async function honoApp(auth: SessionAuth): Promise<WebApp> {
  const app = new Hono<hn.SessionEnv>();
  app.get('/api/optional', hn.sessionMiddleware(auth, { required: false }), (c) =>
    c.json({ identifier: c.get('session')?.identifier ?? null }),
  );
  app.use('/api/*', hn.sessionMiddleware(auth));
  app.on(['GET', 'POST'], '/api/me', (c) => c.json(me(c.get('session')!)));
  app.get('/api/raw', () => new Response('raw'));
  app.get('/api/redirect', (c) => Response.redirect(new URL('/', c.req.url), 303));
  app.post('/sign-in', async (c) => {
    const body = await c.req.json<SignInBody>();
    const result = await auth.signIn(c.req.raw, {
      data: signInData(body.userId),
      expiresIn: body.expiresIn,
    });
    return hn.applyResult(c, result) ?? c.json({ sessionId: result.ok && result.tokens.sessionId });
  });
  app.post('/sign-out', async (c) => {
    const result = await auth.signOut(c.req.raw);
    return hn.applyResult(c, result) ?? c.json({ revoked: result.ok && result.revoked });
  });
  app.post('/sign-out-everywhere', async (c) => {
    const result = await auth.signOutEverywhere(c.req.raw);
    return hn.applyResult(c, result) ?? c.json({ revoked: result.ok && result.revoked });
  });
  return serveFetch((request) => Promise.resolve(app.fetch(request)));
}

/**
 * Next.js App Router route handlers (Request → Response) behind a tiny router, as Next.js
 * calls them (the middleware helper is tested in test/middleware-core.test.ts).
 */
async function nextApp(auth: SessionAuth): Promise<WebApp> {
  const routes: Record<string, Partial<Record<string, (r: Request) => Promise<Response>>>> = {
    '/api/me': {
      GET: nx.withSession(auth, async (_request, { session }) => Response.json(me(session))),
      POST: nx.withSession(auth, async (_request, { session }) => Response.json(me(session))),
    },
    '/api/raw': { GET: nx.withSession(auth, async () => new Response('raw')) },
    '/api/redirect': {
      GET: nx.withSession(auth, async (request) =>
        Response.redirect(new URL('/', request.url), 303),
      ),
    },
    '/api/optional': {
      GET: nx.withSession(
        auth,
        async (_request, { session }) => Response.json({ identifier: session?.identifier ?? null }),
        { required: false },
      ),
    },
    '/sign-in': {
      POST: async (request) => {
        const body = (await request.clone().json()) as SignInBody;
        const result = await auth.signIn(request, {
          data: signInData(body.userId),
          expiresIn: body.expiresIn,
        });
        if (!result.ok) return nx.failureResponse(result);
        return nx.withSetCookie(
          Response.json({ sessionId: result.tokens.sessionId }),
          result.setCookie,
        );
      },
    },
    '/sign-out': {
      POST: async (request) => {
        const result = await auth.signOut(request);
        if (!result.ok) return nx.failureResponse(result);
        return nx.withSetCookie(Response.json({ revoked: result.revoked }), result.setCookie);
      },
    },
    '/sign-out-everywhere': {
      POST: async (request) => {
        const result = await auth.signOutEverywhere(request);
        if (!result.ok) return nx.failureResponse(result);
        return nx.withSetCookie(Response.json({ revoked: result.revoked }), result.setCookie);
      },
    },
  };
  return serveFetch(async (request) => {
    const handler = routes[new URL(request.url).pathname]?.[request.method];
    return handler ? handler(request) : new Response('not found', { status: 404 });
  });
}

/**
 * The middleware tests, the same for every framework adapter: a real session server (the
 * file's `server`), a real framework app on 127.0.0.1 (test/support/web-apps.ts) on the
 * client's `createSessionAuth` with its local verifier, and plain `fetch` with a cookie jar as
 * the browser. Each test signs in users of its own, so the tests run concurrently.
 */
import { randomBytes } from 'node:crypto';
import { parseSetCookie } from 'cookie';
import { expect } from 'vitest';
import {
  createSessionClient,
  isSessionServiceError,
  type SessionClient,
} from 'session-service/client';
import { createSessionAuth, type SessionAuth } from 'session-service/client/server';
import { eventTypesOf, newConfig, newProduct } from './fixtures.js';
import { waitUntil } from './live.js';
import { afterAll, beforeAll, describe, it } from './test.js';
import type { TestApp } from './app.js';
import { gql } from './graphql.js';
import { startWebApp, type Framework, type WebApp } from './web-apps.js';

/** A browser's cookie store for one site, from the Set-Cookie headers it is sent. */
export class Jar {
  readonly cookies = new Map<string, string>();
  /** Takes a response's Set-Cookie headers; returns them parsed. */
  take(response: Response) {
    const parsed = response.headers.getSetCookie().map((raw) => ({ raw, ...parseSetCookie(raw) }));
    for (const c of parsed) {
      if (c.maxAge === 0 || !c.value) this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
    return parsed;
  }
  get header(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
  copy(): Jar {
    const jar = new Jar();
    for (const [name, value] of this.cookies) jar.cookies.set(name, value);
    return jar;
  }
}

const SESSION = '__Host-session';
const REFRESH = '__Host-refresh';
const EVIL = 'http://evil.example';
const TRUSTED = 'https://app.example.test';

export function middlewareSuite(framework: Framework) {
  let t: TestApp;
  let client: SessionClient;
  let auth: SessionAuth;
  let app: WebApp;
  let tag: string;
  let refreshExpiresIn: number;
  let key: string;

  beforeAll(async ({ t: testApp, server }) => {
    t = testApp;
    const product = await newProduct(t);
    key = product.secret.dev;
    tag = await newConfig(t, key);
    client = createSessionClient({ url: server.url, key: product.secret.dev });
    auth = createSessionAuth({ client, tag, trustedOrigins: [TRUSTED] });
    await auth.ready;
    app = await startWebApp(framework, auth);
    refreshExpiresIn = (await client.configs.fetch(tag))!.refreshExpiresIn;
  }, 180_000);
  afterAll(async () => {
    await app?.close();
    await auth?.close();
    await client?.close();
  });

  const newUser = () => `u-${randomBytes(5).toString('hex')}`;

  /** A request to the app as a browser on the app's own origin would send it. */
  const send = (
    path: string,
    init: { method?: string; jar?: Jar; headers?: Record<string, string>; body?: unknown } = {},
  ) => {
    const method = init.method ?? 'GET';
    const headers: Record<string, string> = { ...init.headers };
    if (init.jar && init.jar.cookies.size > 0) headers.cookie = init.jar.header;
    if (method !== 'GET' && !('origin' in headers) && !('referer' in headers)) {
      headers.origin = app.origin;
    }
    let body: string | undefined;
    if (init.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.body);
    }
    return fetch(`${app.origin}${path}`, { method, headers, body, redirect: 'manual' });
  };

  const signIn = async (userId: string, expiresIn?: number) => {
    const jar = new Jar();
    const response = await send('/sign-in', {
      method: 'POST',
      body: { userId, ...(expiresIn ? { expiresIn } : {}) },
    });
    expect(response.status).toBe(200);
    const cookies = jar.take(response);
    const { sessionId } = (await response.json()) as { sessionId: string };
    return { jar, cookies, sessionId };
  };

  /** Waits (bounded) until the server says the session token has expired. */
  const expired = async (jar: Jar) => {
    const token = jar.cookies.get(SESSION)!;
    await waitUntil(
      () =>
        client.sessions.verify({ tag, token }).then(
          () => false,
          (error: unknown) => isSessionServiceError(error, 'TOKEN_EXPIRED'),
        ),
      'the session token to expire',
      60_000,
    );
  };

  const statusOf = async (sessionId: string) => (await client.sessions.get({ sessionId }))!.status;

  const expectCleared = (cookies: ReturnType<Jar['take']>) => {
    expect(cookies.map((c) => [c.name, c.value, c.maxAge])).toEqual([
      [SESSION, '', 0],
      [REFRESH, '', 0],
    ]);
  };

  describe.concurrent(`${framework} middleware`, () => {
    it('no token: 401 with the code as JSON; an optional route goes on without a session', async () => {
      const response = await send('/api/me');
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: { code: 'UNAUTHENTICATED' } });
      expect(response.headers.getSetCookie()).toEqual([]);
      const optional = await send('/api/optional');
      expect(optional.status).toBe(200);
      expect(await optional.json()).toEqual({ identifier: null });
    });

    it('sign-in sets __Host- cookies, HttpOnly, Secure, SameSite=Lax, Path=/, living as long as the refresh token; the cookie authenticates', async () => {
      const user = newUser();
      const { jar, cookies, sessionId } = await signIn(user);
      expect(cookies.map((c) => c.name)).toEqual([SESSION, REFRESH]);
      for (const c of cookies) {
        const attributes = c.raw
          .split(';')
          .slice(1)
          .map((a) => a.trim())
          .sort();
        expect(attributes).toEqual(
          [`Max-Age=${refreshExpiresIn}`, 'Path=/', 'HttpOnly', 'Secure', 'SameSite=Lax'].sort(),
        );
      }
      const response = await send('/api/me', { jar });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        identifier: user,
        sessionId,
        verifiedBy: 'local',
      });
      expect(response.headers.getSetCookie()).toEqual([]);
      const optional = await send('/api/optional', { jar });
      expect(await optional.json()).toEqual({ identifier: user });
    });

    it('an Authorization: Bearer token works without cookies', async () => {
      const user = newUser();
      const { jar, sessionId } = await signIn(user);
      const response = await send('/api/me', {
        headers: { authorization: `Bearer ${jar.cookies.get(SESSION)}` },
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ identifier: user, sessionId });
      const bad = await send('/api/me', { headers: { authorization: 'Bearer not-a-token' } });
      expect(bad.status).toBe(401);
      expect(await bad.json()).toEqual({ error: { code: 'TOKEN_INVALID' } });
    });

    it('an expired token with the refresh cookie: refreshed, both cookies replaced, the old refresh token spent', async ({
      instance,
    }) => {
      const user = newUser();
      const { jar, sessionId } = await signIn(user, 10);
      const before = jar.copy();
      await expired(jar);
      const response = await send('/api/me', { jar });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ identifier: user, sessionId });
      const set = jar.take(response);
      expect(set.map((c) => c.name)).toEqual([SESSION, REFRESH]);
      expect(set.every((c) => c.maxAge === refreshExpiresIn && c.httpOnly && c.secure)).toBe(true);
      expect(jar.cookies.get(SESSION)).not.toBe(before.cookies.get(SESSION));
      expect(jar.cookies.get(REFRESH)).not.toBe(before.cookies.get(REFRESH));
      // The new pair works as it is: no further refresh.
      const again = await send('/api/me', { jar });
      expect(again.status).toBe(200);
      expect(again.headers.getSetCookie()).toEqual([]);
      expect(await eventTypesOf(t, sessionId)).toEqual(['STARTED', 'REFRESHED']);
      // The old refresh token is spent: on an instance with a 1 s grace window, presenting it
      // once that window has passed is reuse (which revokes the session).
      const short = await instance({ refreshGraceSeconds: 1 });
      let code: unknown;
      await waitUntil(
        async () => {
          const answer = await gql(short.app, {
            key,
            query: `mutation($tag: String!, $refreshToken: String!) { refreshSession(tag: $tag, refreshToken: $refreshToken) { sessionId } }`,
            variables: { tag, refreshToken: before.cookies.get(REFRESH) },
          });
          code = answer.errors?.[0]?.extensions?.code;
          return code !== undefined;
        },
        'the grace window to pass',
        30_000,
      );
      expect(code).toBe('REFRESH_TOKEN_REUSED');
    });

    it('a refreshed pair reaches the browser whatever the handler answers with (its own Response, a redirect)', async () => {
      const [raw, redirect] = await Promise.all([signIn(newUser(), 10), signIn(newUser(), 10)]);
      await Promise.all([expired(raw.jar), expired(redirect.jar)]);
      for (const [path, { jar }, status] of [
        ['/api/raw', raw, 200],
        ['/api/redirect', redirect, 303],
      ] as const) {
        const before = jar.copy();
        const response = await send(path, { jar });
        expect(response.status, path).toBe(status);
        const set = jar.take(response);
        expect(
          set.map((c) => c.name),
          path,
        ).toEqual([SESSION, REFRESH]);
        expect(jar.cookies.get(REFRESH), path).not.toBe(before.cookies.get(REFRESH));
        // The new pair is the one the session goes on with.
        const again = await send('/api/me', { jar });
        expect(again.status, path).toBe(200);
        expect(again.headers.getSetCookie(), path).toEqual([]);
      }
    });

    it('20 concurrent requests with the same expired pair: all succeed with one new pair, one refresh, the session not revoked', async () => {
      const user = newUser();
      const { jar, sessionId } = await signIn(user, 10);
      await expired(jar);
      const responses = await Promise.all(
        Array.from({ length: 20 }, () => send('/api/me', { jar })),
      );
      expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
      const pairs = new Set<string>();
      for (const response of responses) {
        expect(await response.json()).toMatchObject({ identifier: user, sessionId });
        const set = response.headers.getSetCookie().map((raw) => parseSetCookie(raw));
        if (set.length > 0) pairs.add(set.map((c) => `${c.name}=${c.value}`).join('|'));
      }
      // Every response that refreshed carries the same pair (a request whose verify reached
      // the server after the refresh may pass with the old token, within its clock tolerance).
      expect(pairs.size).toBe(1);
      const events = await eventTypesOf(t, sessionId);
      expect(events.filter((e) => e === 'REFRESHED')).toHaveLength(1);
      expect(events).not.toContain('REUSE_DETECTED');
      expect(await statusOf(sessionId)).toBe('ACTIVE');
      const next = new Jar();
      for (const pair of pairs) {
        for (const part of pair.split('|')) {
          const [name, value] = part.split('=') as [string, string];
          next.cookies.set(name, value);
        }
      }
      expect((await send('/api/me', { jar: next })).status).toBe(200);
    });

    it('a revoked session: 401 SESSION_REVOKED and the cookies cleared; expired and revoked, the refresh fails too', async () => {
      const [live, short] = await Promise.all([signIn(newUser()), signIn(newUser(), 10)]);
      await client.sessions.revoke({ tag, sessionId: live.sessionId });
      await waitUntil(
        async () => (await send('/api/me', { jar: live.jar.copy() })).status === 401,
        'the revocation to reach the verifier',
        10_000,
      );
      const refused = await send('/api/me', { jar: live.jar });
      expect(refused.status).toBe(401);
      expect(await refused.json()).toEqual({ error: { code: 'SESSION_REVOKED' } });
      expectCleared(live.jar.take(refused));
      expect(live.jar.cookies.size).toBe(0);

      await expired(short.jar);
      await client.sessions.revoke({ tag, sessionId: short.sessionId });
      const response = await send('/api/me', { jar: short.jar });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: { code: 'SESSION_REVOKED' } });
      expectCleared(short.jar.take(response));
      // The refresh token itself is refused by the server.
      const direct = await client.sessions
        .refresh({ tag, refreshToken: short.cookies[1]!.value! })
        .catch((error: unknown) => error);
      expect(isSessionServiceError(direct, 'SESSION_REVOKED')).toBe(true);
    });

    it('sign out revokes the session and clears the cookies', async () => {
      const { jar, sessionId } = await signIn(newUser());
      const old = jar.copy();
      const response = await send('/sign-out', { method: 'POST', jar });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ revoked: 1 });
      expectCleared(jar.take(response));
      expect(await statusOf(sessionId)).toBe('REVOKED');
      await waitUntil(
        async () => (await send('/api/me', { jar: old })).status === 401,
        'the old cookies to be refused',
        10_000,
      );
      // Signing out again (no session) still answers, and clears.
      const twice = await send('/sign-out', { method: 'POST', jar: old });
      expect(await twice.json()).toEqual({ revoked: 0 });
    });

    it('sign out everywhere revokes all of the user’s sessions; the other browser is refused by the local verifier', async () => {
      const user = newUser();
      const [a, b] = await Promise.all([signIn(user), signIn(user)]);
      const other = await signIn(newUser());
      expect((await send('/api/me', { jar: b.jar })).status).toBe(200);
      const response = await send('/sign-out-everywhere', { method: 'POST', jar: a.jar });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ revoked: 2 });
      expectCleared(a.jar.take(response));
      const signedOutAt = performance.now();
      let code: unknown;
      await waitUntil(
        async () => {
          const answer = await send('/api/me', { jar: b.jar.copy() });
          if (answer.status === 200) return false;
          code = ((await answer.json()) as { error: { code: string } }).error.code;
          return true;
        },
        'the second browser to be refused',
        10_000,
      );
      const refusedAfterMs = performance.now() - signedOutAt;
      expect(code).toBe('SESSION_REVOKED');
      expect(await statusOf(b.sessionId)).toBe('REVOKED');
      // The same user's sessions only.
      expect((await send('/api/me', { jar: other.jar })).status).toBe(200);
      // Reported, not asserted (the machine may be busy): usually a few ms.
      console.info(`${framework}: second browser refused ${Math.round(refusedAfterMs)} ms after`);
    });

    it('CSRF: a cross-origin unsafe request with the cookie is 403; same origin, a trusted origin, Bearer and GET pass', async () => {
      const { jar } = await signIn(newUser());
      const token = jar.cookies.get(SESSION)!;
      const post = (headers: Record<string, string>, withJar = true) =>
        send('/api/me', { method: 'POST', jar: withJar ? jar : undefined, headers });

      const crossSite: Record<string, string>[] = [
        { origin: EVIL },
        { origin: 'null' },
        { referer: `${EVIL}/page` },
        { origin: EVIL, referer: `${app.origin}/page` },
      ];
      for (const headers of crossSite) {
        const response = await post(headers);
        expect(response.status, JSON.stringify(headers)).toBe(403);
        expect(await response.json()).toEqual({ error: { code: 'CSRF_ORIGIN_MISMATCH' } });
        expect(response.headers.getSetCookie()).toEqual([]); // the cookies are left alone
      }
      // Neither Origin nor Referer (a browser sends one of them on every POST): refused.
      const bare = await fetch(`${app.origin}/api/me`, {
        method: 'POST',
        headers: { cookie: jar.header },
      });
      expect(bare.status).toBe(403);
      expect(await bare.json()).toEqual({ error: { code: 'CSRF_ORIGIN_MISMATCH' } });
      expect((await post({ origin: app.origin })).status).toBe(200);
      expect((await post({ referer: `${app.origin}/form` })).status).toBe(200);
      expect((await post({ origin: TRUSTED })).status).toBe(200);
      expect((await post({ origin: EVIL, authorization: `Bearer ${token}` }, false)).status).toBe(
        200,
      );
      expect(
        (await send('/api/me', { jar, headers: { origin: EVIL } })).status, // GET: safe
      ).toBe(200);
      // Signing out from another site is refused too, and changes nothing.
      const signOut = await send('/sign-out', { method: 'POST', jar, headers: { origin: EVIL } });
      expect(signOut.status).toBe(403);
      expect((await send('/api/me', { jar })).status).toBe(200);
    });
  });
}

// The framework-agnostic core (session-service/client/server): cookie helpers, refresh across
// processes (the grace window), server verification, sign-in CSRF, the Next.js middleware helper.
import { parseSetCookie } from 'cookie';
import { expect } from 'vitest';
import {
  createSessionClient,
  isSessionServiceError,
  type SessionClient,
} from 'session-service/client';
import { sessionMiddleware } from 'session-service/client/next';
import {
  clearSessionCookies,
  createSessionAuth,
  readSessionCookies,
  serializeSessionCookies,
  type SessionAuth,
} from 'session-service/client/server';
import { eventTypesOf, newConfig, newProduct } from './support/fixtures.js';
import { waitUntil } from './support/live.js';
import { afterAll, beforeAll, describe, it } from './support/test.js';

const tokens = { token: 'eyJ.a.b.c.d', refreshToken: 'rt_abc' };

describe('cookie helpers', () => {
  it('write __Host- cookies with HttpOnly, Secure, SameSite=Lax, Path=/ and the Max-Age given', () => {
    expect(serializeSessionCookies(tokens, { maxAgeSeconds: 600 })).toEqual([
      '__Host-session=eyJ.a.b.c.d; Max-Age=600; Path=/; HttpOnly; Secure; SameSite=Lax',
      '__Host-refresh=rt_abc; Max-Age=600; Path=/; HttpOnly; Secure; SameSite=Lax',
    ]);
    expect(clearSessionCookies()).toEqual([
      '__Host-session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax',
      '__Host-refresh=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax',
    ]);
  });

  it('without Secure the default names drop the __Host- prefix; a __Host- name with a domain or without Secure is refused', () => {
    expect(
      serializeSessionCookies(tokens, { secure: false, sameSite: 'Strict', maxAgeSeconds: 60 }),
    ).toEqual([
      'session=eyJ.a.b.c.d; Max-Age=60; Path=/; HttpOnly; SameSite=Strict',
      'refresh=rt_abc; Max-Age=60; Path=/; HttpOnly; SameSite=Strict',
    ]);
    const refused = (options: Parameters<typeof clearSessionCookies>[0]) => {
      try {
        clearSessionCookies(options);
      } catch (error) {
        expect(isSessionServiceError(error, 'BAD_USER_INPUT')).toBe(true);
        return (error as Error).message;
      }
      throw new Error('accepted');
    };
    expect(refused({ domain: 'example.com' })).toMatch(/__Host-.*no domain/);
    expect(refused({ secure: false, names: { session: '__Host-s' } })).toMatch(/__Host-/);
    expect(refused({ path: '/app' })).toMatch(/__Host-/);
    expect(refused({ secure: false, sameSite: 'None' })).toMatch(/SameSite=None/);
    expect(refused({ names: { session: 'a b' } })).toMatch(/cookie name/);
    // Without the prefix, a domain and a path are allowed.
    expect(
      clearSessionCookies({ names: { session: 's', refresh: 'r' }, domain: 'example.com' })[0],
    ).toBe('s=; Max-Age=0; Domain=example.com; Path=/; HttpOnly; Secure; SameSite=Lax');
  });

  it('refuse a cookie over 4096 bytes (COOKIE_TOO_LARGE) without putting the token in the message', () => {
    const big = { token: `eyJ${'x'.repeat(4100)}`, refreshToken: 'rt_abc' };
    let error: unknown;
    try {
      serializeSessionCookies(big, { maxAgeSeconds: 60 });
    } catch (e) {
      error = e;
    }
    expect(isSessionServiceError(error, 'COOKIE_TOO_LARGE')).toBe(true);
    expect((error as Error).message).toMatch(/__Host-session cookie would be \d+ bytes/);
    expect((error as Error).message).not.toContain('xxxx');
  });

  it('read both tokens from a Cookie header, ignoring others, duplicates after the first, and oversized values', () => {
    expect(
      readSessionCookies('a=1; __Host-session=eyJ.t; __Host-refresh=rt_1; __Host-session=later'),
    ).toEqual({ token: 'eyJ.t', refreshToken: 'rt_1' });
    expect(readSessionCookies('a=1')).toEqual({});
    expect(readSessionCookies(undefined)).toEqual({});
    expect(readSessionCookies(`__Host-session=${'x'.repeat(5000)}; __Host-refresh=rt_1`)).toEqual({
      refreshToken: 'rt_1',
    });
    expect(readSessionCookies('session=s', { secure: false })).toEqual({ token: 's' });
  });
});

describe('the core against a real server', () => {
  let client: SessionClient;
  let tag: string;
  let key: string;
  let serverUrl: string;
  const auths: SessionAuth[] = [];
  const origin = 'https://app.example.test';

  beforeAll(async ({ t, server }) => {
    const product = await newProduct(t);
    key = product.secret.dev;
    serverUrl = server.url;
    tag = await newConfig(t, key);
    client = createSessionClient({ url: server.url, key });
  }, 180_000);
  afterAll(async () => {
    for (const auth of auths) await auth.close();
    await client?.close();
  });

  const makeAuth = (options: Partial<Parameters<typeof createSessionAuth>[0]> = {}) => {
    const auth = createSessionAuth({ client, tag, ...options });
    auths.push(auth);
    return auth;
  };
  const request = (cookie: string, init: { method?: string; origin?: string } = {}) =>
    new Request(`${origin}/api/me`, {
      method: init.method ?? 'GET',
      headers: { cookie, ...(init.origin ? { origin: init.origin } : {}) },
    });
  const cookieHeader = (setCookie: readonly string[]) =>
    setCookie
      .map((raw) => parseSetCookie(raw))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  const data = (userId: string) => ({
    userId,
    details: { username: userId, email: `${userId}@example.com` },
  });
  const expired = (token: string) =>
    waitUntil(
      () =>
        client.sessions.verify({ tag, token }).then(
          () => false,
          (error: unknown) => isSessionServiceError(error, 'TOKEN_EXPIRED'),
        ),
      'the session token to expire',
      60_000,
    );

  it('two processes refreshing the same expired pair at once get the same new pair (grace window); the session stays active', async ({
    t,
  }) => {
    // Two auth instances, as two processes of the app would be: no shared single flight.
    const one = makeAuth({ verify: 'server' });
    const two = makeAuth({ verify: 'server' });
    const signedIn = await one.signIn(undefined, { data: data('ada-two'), expiresIn: 10 });
    if (!signedIn.ok) throw new Error('sign-in refused');
    await expired(signedIn.tokens.token);
    const cookie = cookieHeader(signedIn.setCookie);
    const [a, b] = await Promise.all([
      one.authenticate(request(cookie)),
      two.authenticate(request(cookie)),
    ]);
    expect(a.ok && b.ok).toBe(true);
    expect(a.ok && a.refreshed && a.session.verifiedBy).toBe('server');
    expect(a.setCookie).toHaveLength(2);
    expect(b.setCookie).toEqual(a.setCookie);
    const events = await eventTypesOf(t, signedIn.tokens.sessionId);
    expect(events).toContain('REFRESHED');
    expect(events).not.toContain('REUSE_DETECTED');
    const session = await client.sessions.get({ sessionId: signedIn.tokens.sessionId });
    expect(session!.status).toBe('ACTIVE');
  });

  it('a refresh whose new token cannot be verified (network error) answers 503 with the new pair, which then works', async () => {
    // A client whose verifySession calls fail once a refresh has been done.
    let refreshed = false;
    const flaky = createSessionClient({
      url: serverUrl,
      key,
      fetch: async (input, init) => {
        const body = typeof init?.body === 'string' ? init.body : '';
        if (refreshed && body.includes('verifySession')) throw new TypeError('fetch failed');
        const response = await fetch(input, init);
        if (body.includes('refreshSession')) refreshed = true;
        return response;
      },
    });
    try {
      const auth = createSessionAuth({ client: flaky, tag, verify: 'server' });
      const signedIn = await auth.signIn(undefined, { data: data('flaky'), expiresIn: 10 });
      if (!signedIn.ok) throw new Error('sign-in refused');
      await expired(signedIn.tokens.token);
      const result = await auth.authenticate(request(cookieHeader(signedIn.setCookie)));
      expect(result).toMatchObject({ ok: false, status: 503, code: 'NETWORK_ERROR' });
      // The old refresh token is spent: the browser must get the new pair all the same.
      const pair = result.setCookie.map((raw) => parseSetCookie(raw));
      expect(pair.map((c) => c.name)).toEqual(['__Host-session', '__Host-refresh']);
      expect(pair[1]!.value).not.toBe(signedIn.tokens.refreshToken);
      refreshed = false;
      const after = await auth.authenticate(request(cookieHeader(result.setCookie)));
      expect(after).toMatchObject({ ok: true, refreshed: false, setCookie: [] });
    } finally {
      await flaky.close();
    }
  });

  it('a pair reused from an earlier refresh (refreshReuseMs) is verified again: a session revoked since is refused', async () => {
    const auth = makeAuth({ verify: 'server', refreshReuseMs: 60_000 });
    const signedIn = await auth.signIn(undefined, { data: data('reuse'), expiresIn: 10 });
    if (!signedIn.ok) throw new Error('sign-in refused');
    await expired(signedIn.tokens.token);
    // The refresh cookie alone (the server may still take the old token, after a refresh,
    // within its clock tolerance): every request goes to the refresh.
    const old = cookieHeader(signedIn.setCookie.slice(1));
    const first = await auth.authenticate(request(old));
    expect(first).toMatchObject({ ok: true, refreshed: true });
    // Within the window, the old cookies get the same pair.
    const again = await auth.authenticate(request(old));
    expect(again).toMatchObject({ ok: true, refreshed: true, setCookie: first.setCookie });
    await client.sessions.revoke({ tag, sessionId: signedIn.tokens.sessionId });
    const revoked = await auth.authenticate(request(old));
    expect(revoked).toMatchObject({ ok: false, status: 401, code: 'SESSION_REVOKED' });
    expect(revoked.setCookie).toEqual(clearSessionCookies());
  });

  it('verify: server verifies each request with verifySession; a token of another tag is TOKEN_INVALID', async () => {
    const auth = makeAuth({ verify: 'server' });
    expect(auth.verifier).toBeUndefined();
    const signedIn = await auth.signIn(undefined, { data: data('grace') });
    if (!signedIn.ok) throw new Error('sign-in refused');
    const result = await auth.authenticate(request(cookieHeader(signedIn.setCookie)));
    expect(result).toMatchObject({
      ok: true,
      via: 'cookie',
      refreshed: false,
      setCookie: [],
      session: { identifier: 'grace', verifiedBy: 'server', tag },
    });
    const forged = await auth.authenticate(request('__Host-session=eyJhbGciOi.x.y.z.w'));
    expect(forged).toMatchObject({ ok: false, status: 401, code: 'TOKEN_INVALID' });
    expect(forged.setCookie).toEqual(clearSessionCookies());
  });

  it('sign-in checks the Origin of an unsafe request (login CSRF); a trusted origin passes', async () => {
    const auth = makeAuth({ verify: 'server', trustedOrigins: ['https://other.example.test'] });
    const post = (from: string) =>
      new Request(`${origin}/sign-in`, { method: 'POST', headers: { origin: from } });
    expect(await auth.signIn(post('https://evil.example'), { data: data('x') })).toEqual({
      ok: false,
      status: 403,
      code: 'CSRF_ORIGIN_MISMATCH',
      setCookie: [],
    });
    for (const from of [origin, 'https://other.example.test']) {
      const result = await auth.signIn(post(from), { data: data('y') });
      expect(result.ok).toBe(true);
    }
  });

  it('the Next.js middleware helper: lets a session through with next(), answers 401 JSON otherwise', async () => {
    const auth = makeAuth();
    await auth.ready;
    const middleware = sessionMiddleware(auth, {
      next: () => new Response(null, { headers: { 'x-middleware-next': '1' } }),
    });
    const refused = await middleware(request(''));
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ error: { code: 'UNAUTHENTICATED' } });
    const signedIn = await auth.signIn(undefined, { data: data('mid') });
    if (!signedIn.ok) throw new Error('sign-in refused');
    const passed = await middleware(request(cookieHeader(signedIn.setCookie)));
    expect(passed.headers.get('x-middleware-next')).toBe('1');
  });
});

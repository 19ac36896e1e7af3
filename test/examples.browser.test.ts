/**
 * The example apps (examples/express, examples/hono), each run as a user runs it (a child
 * process with the env vars of its README, importing `@session-service/client/*`, which the
 * repo's tsconfig maps to src/client), against a real session service over HTTP, driven by
 * Debian's Chromium: sign in, the protected page, an expired token refreshed, sign out everywhere
 * from a second browser and the first refused within 1 s, sign out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { newConfig } from './support/fixtures.js';
import { describe, it } from './support/test.js';

/** Debian's `chromium` package; `.ci/run` installs it when it is missing. */
const CHROMIUM = '/usr/bin/chromium';
/** Where CI picks up what the browser saw (ignored by git). */
const ARTIFACTS = path.resolve(import.meta.dirname, 'artifacts');
const ROOT = path.resolve(import.meta.dirname, '..');
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Without Chromium the test is skipped on a developer's machine, but never in CI.
const runs = existsSync(CHROMIUM) || Boolean(process.env.CI);

/** The session type's token lifetime: the smallest the service allows (configs.ts). */
const TOKEN_SECONDS = 10;
/** How soon after the sign-out everywhere's answer the other browser must be refused. */
const REVOCATION_BOUND_MS = 1_000;
const SESSION_COOKIE = '__Host-session';
const REFRESH_COOKIE = '__Host-refresh';

async function shot(page: Page, app: string, step: string) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({
    path: path.join(ARTIFACTS, `examples-${app}-${step}.png`),
    fullPage: true,
  });
}

interface ExampleProcess {
  readonly child: ChildProcess;
  /** `http://localhost:<port>`: a potentially trustworthy origin, where Secure cookies work. */
  readonly origin: string;
  output(): string;
  stop(): Promise<void>;
}

/** Runs `examples/<app>/server.ts` as its README says, from the repo root, on a free port. */
async function startExample(app: string, env: Record<string, string>): Promise<ExampleProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', `examples/${app}/server.ts`], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const origin = await new Promise<string>((resolve, reject) => {
    // A liveness bound, generous: tsx transpiles the app and the client at start.
    const timer = setTimeout(() => reject(new Error(`${app} did not start:\n${out}`)), 60_000);
    const check = () => {
      const match = /Example app at (http:\/\/localhost:\d+)\//.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', check);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${app} exited:\n${out}`));
    });
  });
  return {
    child,
    origin,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** The session cookies the browser holds for the app (HttpOnly: no page script sees them). */
async function sessionCookies(context: BrowserContext, origin: string) {
  const cookies = await context.cookies(origin);
  return {
    session: cookies.find((c) => c.name === SESSION_COOKIE),
    refresh: cookies.find((c) => c.name === REFRESH_COOKIE),
  };
}

/**
 * GET `/api/me` with a copy of the session cookies, sent from outside the browser (as whoever
 * kept a copy would send them): its status and body.
 */
async function apiMeWith(cookies: Awaited<ReturnType<typeof sessionCookies>>, origin: string) {
  // The app listens on 127.0.0.1; Node's fetch may try ::1 first for `localhost`.
  const response = await fetch(`${origin.replace('localhost', '127.0.0.1')}/api/me`, {
    headers: {
      cookie: `${SESSION_COOKIE}=${cookies.session!.value}; ${REFRESH_COOKIE}=${cookies.refresh!.value}`,
    },
  });
  return { status: response.status, body: (await response.json()) as unknown };
}

/** Fills the sign-in form and lands on the protected page. */
async function signIn(page: Page, origin: string, userId: string) {
  await page.goto(`${origin}/sign-in`);
  await page.getByLabel('User id').fill(userId);
  await Promise.all([
    page.waitForURL(`${origin}/`),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  await expect.poll(() => page.locator('#user').innerText()).toBe(userId);
}

describe.skipIf(!runs)('the example apps in a browser (headless Chromium)', () => {
  for (const app of ['express', 'hono']) {
    it(
      `${app}: signs in, refreshes an expired token, is refused within 1 s of a sign-out everywhere elsewhere, signs out`,
      { timeout: 300_000 },
      async ({ t, server, key, onTestFinished }) => {
        if (!existsSync(CHROMIUM)) {
          throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (as .ci/run does)`);
        }
        // A session type whose tokens live 10 s, the shortest allowed, so that the test sees one
        // expire and refresh.
        const tag = await newConfig(t, key, {
          schema: { userId: 'user-1' },
          selector: '$Session{userId}',
          expiry: TOKEN_SECONDS,
          period: 'SECONDS',
        });
        const example = await startExample(app, {
          SESSION_SERVICE_URL: server.url,
          SESSION_SERVICE_KEY: key,
          SESSION_TYPE: tag,
        });
        onTestFinished(() => example.stop());
        const { origin } = example;
        // The app's output never shows the key or a token.
        const secrets = [key];
        onTestFinished(() => {
          for (const secret of secrets) expect(example.output()).not.toContain(secret);
        });

        const browser: Browser = await chromium.launch({
          executablePath: CHROMIUM,
          headless: true,
          args: CHROMIUM_FLAGS,
        });
        onTestFinished(() => browser.close());
        const first = await browser.newContext({ viewport: { width: 900, height: 600 } });
        const page = await first.newPage();
        const userId = `ada-${randomBytes(4).toString('hex')}`;

        // Not signed in: the protected page sends the browser to the sign-in form.
        await page.goto(`${origin}/`);
        expect(new URL(page.url()).pathname).toBe('/sign-in');
        await shot(page, app, 'sign-in');

        // Sign in: the session's tokens go to two HttpOnly, Secure, SameSite=Lax cookies.
        await signIn(page, origin, userId);
        const signedIn = await sessionCookies(first, origin);
        secrets.push(signedIn.session!.value, signedIn.refresh!.value);
        for (const cookie of [signedIn.session, signedIn.refresh]) {
          expect(cookie).toMatchObject({
            httpOnly: true,
            secure: true,
            sameSite: 'Lax',
            path: '/',
          });
        }
        expect(await page.evaluate(() => document.cookie)).toBe('');
        const sessionId = await page.locator('#session').innerText();
        expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);

        // The protected page, loaded again: the same session.
        await page.reload();
        expect(await page.locator('#user').innerText()).toBe(userId);
        expect(await page.locator('#session').innerText()).toBe(sessionId);
        const expiresText = await page.locator('#expires').innerText();
        const expiresAt = Date.parse(expiresText);
        const before = await sessionCookies(first, origin);
        await shot(page, app, 'protected');

        // Wait on the clock for the expiry the service gave (the token carries it in whole
        // seconds, rounded down: one more second), then load the page again: the expired token
        // is refreshed, the cookies replaced, and the page still shows the user.
        const wait = expiresAt + 1_000 - Date.now();
        expect(wait).toBeLessThanOrEqual((TOKEN_SECONDS + 1) * 1_000);
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        await page.reload();
        expect(await page.locator('#user').innerText()).toBe(userId);
        expect(await page.locator('#session').innerText()).toBe(sessionId);
        const refreshedExpiry = Date.parse(await page.locator('#expires').innerText());
        expect(refreshedExpiry).toBeGreaterThan(expiresAt);
        const refreshed = await sessionCookies(first, origin);
        secrets.push(refreshed.session!.value, refreshed.refresh!.value);
        expect(refreshed.session?.value).toBeDefined();
        expect(refreshed.session!.value).not.toBe(before.session!.value);
        expect(refreshed.refresh!.value).not.toBe(before.refresh!.value);
        await shot(page, app, 'refreshed');

        // An unsafe request from another origin is refused (CSRF), its cookies notwithstanding.
        const forged = await first.request.post(`${origin}/sign-out-everywhere`, {
          headers: { origin: 'http://evil.example' },
          maxRedirects: 0,
        });
        expect(forged.status()).toBe(403);
        expect(await forged.json()).toEqual({ error: { code: 'CSRF_ORIGIN_MISMATCH' } });

        // A second browser signs in as the same user and signs out everywhere.
        const second = await browser.newContext({ viewport: { width: 900, height: 600 } });
        onTestFinished(() => second.close());
        const other = await second.newPage();
        await signIn(other, origin, userId);
        expect(await other.locator('#session').innerText()).not.toBe(sessionId);
        await shot(other, app, 'second-browser');
        const [answer] = await Promise.all([
          other.waitForResponse(
            (r) => r.request().method() === 'POST' && r.url() === `${origin}/sign-out-everywhere`,
          ),
          other.getByRole('button', { name: 'Sign out everywhere' }).click(),
        ]);
        const answeredAt = performance.now();

        // The first browser's next request is refused: the page sends it to the sign-in form
        // and clears its cookies. Polled (each load until its answer is in, `commit`) until
        // refused, with a liveness bound of 30 s; then the 1 s bound from the sign-out's answer
        // is asserted.
        let refusedAt: number | undefined;
        let loads = 0;
        let redirect: { status: number; setCookie: string[] } | undefined;
        while (refusedAt === undefined && performance.now() - answeredAt < 30_000) {
          const response = await page.goto(`${origin}/`, { waitUntil: 'commit' });
          loads += 1;
          if (new URL(page.url()).pathname === '/sign-in') {
            refusedAt = performance.now();
            const refusal = await response!.request().redirectedFrom()!.response();
            redirect = {
              status: refusal!.status(),
              setCookie: (await refusal!.headersArray())
                .filter((h) => h.name.toLowerCase() === 'set-cookie')
                .map((h) => h.value),
            };
          }
        }
        expect(refusedAt, 'the first browser was never refused').toBeDefined();
        const delay = Math.round(refusedAt! - answeredAt);
        console.log(`${app}: refused ${delay} ms after the sign-out's answer, on load ${loads}`);
        expect(refusedAt! - answeredAt).toBeLessThanOrEqual(REVOCATION_BOUND_MS);
        expect(redirect!.status).toBe(303);
        expect(redirect!.setCookie).toEqual(
          expect.arrayContaining([
            expect.stringMatching(/^__Host-session=; Max-Age=0;/),
            expect.stringMatching(/^__Host-refresh=; Max-Age=0;/),
          ]),
        );
        expect(await sessionCookies(first, origin)).toEqual({
          session: undefined,
          refresh: undefined,
        });
        await page.waitForLoadState();
        await shot(page, app, 'refused');
        // The second browser was signed out too, its cookies cleared.
        expect(answer.status()).toBe(303);
        await other.waitForURL(/\/sign-in\?signedOut=1$/);
        await expect.poll(() => other.getByRole('status').innerText()).toBe('You are signed out.');
        expect(await sessionCookies(second, origin)).toEqual({
          session: undefined,
          refresh: undefined,
        });
        await shot(other, app, 'signed-out-everywhere');
        // Its revoked cookies, sent again from a copy, are no better.
        expect(await apiMeWith(refreshed, origin)).toEqual({
          status: 401,
          body: { error: { code: 'SESSION_REVOKED' } },
        });

        // Sign out: the session is revoked, not only forgotten by this browser.
        await signIn(page, origin, userId);
        const last = await sessionCookies(first, origin);
        expect(await apiMeWith(last, origin)).toMatchObject({ status: 200, body: { userId } });
        await Promise.all([
          page.waitForURL(/\/sign-in\?signedOut=1$/),
          page.getByRole('button', { name: 'Sign out', exact: true }).click(),
        ]);
        expect(await sessionCookies(first, origin)).toEqual({
          session: undefined,
          refresh: undefined,
        });
        await shot(page, app, 'signed-out');
        expect(await apiMeWith(last, origin)).toEqual({
          status: 401,
          body: { error: { code: 'SESSION_REVOKED' } },
        });
      },
    );
  }
});

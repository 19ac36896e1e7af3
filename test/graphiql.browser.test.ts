import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Locator } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { post, startServerProcess, type ServerProcess } from './support/server-process.js';

/** Debian's `chromium` package; `.ci/run` installs it when it is missing. */
const CHROMIUM = '/usr/bin/chromium';
/** Where CI picks up what the browser saw (ignored by git). */
const ARTIFACTS = path.resolve(import.meta.dirname, 'artifacts');
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** What an element shows, with Monaco's non-breaking spaces as plain ones. */
const textOf = async (locator: Locator) => (await locator.innerText()).replace(/\u00a0/g, ' ');

// Without Chromium the test is skipped on a developer's machine, but never in CI.
const runs = existsSync(CHROMIUM) || Boolean(process.env.CI);

const cleanup: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

describe.skipIf(!runs)('GraphiQL in a browser (headless Chromium)', () => {
  it(
    'opens with the demo key prefilled, runs StartSession and shows the token, with no network',
    { timeout: 180_000 },
    async () => {
      if (!existsSync(CHROMIUM)) {
        throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (as .ci/run does)`);
      }
      const dataDir = mkdtempSync(path.join(tmpdir(), 'sessions-graphiql-'));
      const profile = mkdtempSync(path.join(tmpdir(), 'sessions-chromium-'));
      cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
      cleanup.push(() => rmSync(profile, { recursive: true, force: true }));

      // A first start on the embedded database: it creates the demo product and its key.
      const server: ServerProcess = await startServerProcess({ DATA_DIR: dataDir });
      cleanup.push(async () => {
        server.child.kill('SIGTERM');
        await server.exited;
      });
      const demoKey = /secret key \(shown once\): (sk_dev_\S+)/.exec(server.stdout())?.[1];
      expect(demoKey, server.stdout()).toBeDefined();

      const context: BrowserContext = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 1400, height: 900 },
      });
      cleanup.push(() => context.close());
      // Nothing but this machine: any other host would mean the page depends on the network.
      const leftTheMachine: string[] = [];
      await context.route('**', (route) => {
        const { hostname } = new URL(route.request().url());
        if (hostname === 'localhost' || hostname === '127.0.0.1') return route.continue();
        leftTheMachine.push(route.request().url());
        return route.abort('internetdisconnected');
      });
      const page = context.pages()[0] ?? (await context.newPage());
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));

      await page.goto(server.url);
      await page.locator('.graphiql-execute-button').waitFor({ timeout: 60_000 });
      const activeTab = page.locator('.graphiql-tab-active');
      await expect.poll(() => textOf(activeTab)).toContain('StartSession');

      // The headers editor holds the demo key this first start printed.
      await page.getByText('Headers', { exact: true }).click();
      await expect
        .poll(() => textOf(page.locator('.graphiql-editor-tool')))
        .toContain(`Bearer ${demoKey}`);

      const answer = page.waitForResponse(
        (r) =>
          r.url().endsWith('/graphql') && (r.request().postData() ?? '').includes('StartSession'),
      );
      await page.locator('.graphiql-execute-button').click();
      const body = (await (await answer).json()) as {
        data?: { startSession?: { token: string; sessionId: string } };
        errors?: unknown;
      };
      expect(body.errors).toBeUndefined();
      const started = body.data!.startSession!;

      // The result panel shows the token...
      const result = page.locator('.graphiql-response');
      await expect.poll(() => textOf(result), { timeout: 20_000 }).toContain('"token"');
      expect(await textOf(result)).toContain(started.token.slice(0, 24));
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql.png') });

      // ...and it is a real one: it verifies with the demo key.
      const verified = await post(
        server.url,
        demoKey!,
        'query($token: String!) { verifySession(tag: "user-session", token: $token) { sessionId identifier } }',
        { token: started.token },
      );
      expect(verified).toEqual({
        data: { verifySession: { sessionId: started.sessionId, identifier: 'user-123' } },
      });
      expect(leftTheMachine).toEqual([]);
      expect(pageErrors).toEqual([]);
    },
  );
});

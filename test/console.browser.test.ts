import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page, type WebSocketRoute } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from './support/app.js';
import { freshPostgresDatabase } from './support/databases.js';
import {
  newProductOverHttp,
  post,
  startServerProcess,
  type ServerProcess,
} from './support/server-process.js';
import { startReceiver, verified } from './support/webhook-receiver.js';
import { START } from './support/documents.js';

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

// Without Chromium the test is skipped on a developer's machine, but never in CI.
const runs = existsSync(CHROMIUM) || Boolean(process.env.CI);

const cleanup: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

const VERIFY = `query($tag: String!, $token: String!) { verifySession(tag: $tag, token: $token) { sessionId } }`;

const DEVICES = [
  { userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Firefox/128.0', ip: '203.0.113.10' },
  { userAgent: 'Mozilla/5.0 (Linux; Android 14) Chrome/126.0.0.0 Mobile', ip: '198.51.100.7' },
  { userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edg/126.0.0.0', ip: '192.0.2.44' },
];

/**
 * `expect.poll` with a liveness bound fit for a loaded 2-core machine (its default is 1 s): it
 * returns as soon as the assertion holds.
 */
const poll = <T>(read: () => T | Promise<T>) =>
  expect.poll(read, { timeout: 60_000, interval: 100 });

async function shot(page: Page, name: string) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `console-${name}.png`), fullPage: true });
}

/** How many pixels of a canvas are painted (not transparent). */
const paintedPixels = (page: Page, selector: string) =>
  page.locator(selector).evaluate((canvas: HTMLCanvasElement) => {
    const context = canvas.getContext('2d')!;
    const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) painted += 1;
    return painted;
  });

describe.skipIf(!runs)('the web console in a browser (headless Chromium)', () => {
  it(
    'signs in, charts real data, finds a user, revokes from the UI, shows it live, resumes after a drop, signs out; no other host',
    { timeout: 300_000 },
    async () => {
      if (!existsSync(CHROMIUM)) {
        throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (as .ci/run does)`);
      }
      const dataDir = mkdtempSync(path.join(tmpdir(), 'sessions-console-'));
      const profile = mkdtempSync(path.join(tmpdir(), 'sessions-chromium-'));
      cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
      cleanup.push(() => rmSync(profile, { recursive: true, force: true }));

      const adminKey = `ak_${randomBytes(32).toString('base64url')}`;
      const server: ServerProcess = await startServerProcess({
        DATA_DIR: dataDir,
        ADMIN_KEY: adminKey,
        LOG_LEVEL: 'debug',
        ...(TEST_DATABASE_URL ? { DATABASE_URL: TEST_DATABASE_URL } : {}),
      });
      cleanup.push(async () => {
        server.child.kill('SIGTERM');
        await server.exited;
      });
      expect(server.stdout()).toContain('Web console at http://localhost:');
      const origin = new URL(server.url).origin;

      // Real data: a product, a config, four sessions of two users, verifies (one failing).
      const { key, tag, productTag } = await newProductOverHttp(server.url, adminKey);
      const started: { token: string; sessionId: string }[] = [];
      for (const device of DEVICES) {
        const result = await post(server.url, key, START, {
          input: { tag, data: { userId: 'ada', details: { username: 'ada' } }, device },
        });
        started.push(
          (result.data as { startSession: { token: string; sessionId: string } }).startSession,
        );
      }
      await post(server.url, key, START, { input: { tag, data: { userId: 'bob' } } });
      for (const s of started)
        expect(
          (await post(server.url, key, VERIFY, { tag, token: s.token })).errors,
        ).toBeUndefined();
      expect(
        (await post(server.url, key, VERIFY, { tag, token: 'not-a-token' })).errors,
      ).toBeDefined();

      const context: BrowserContext = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 1400, height: 900 },
      });
      cleanup.push(() => context.close());
      // Nothing but this machine: any other host would mean the console depends on the network.
      const leftTheMachine: string[] = [];
      const requested: string[] = [];
      await context.route('**', (route) => {
        const url = route.request().url();
        requested.push(url);
        const { hostname } = new URL(url);
        if (hostname === 'localhost' || hostname === '127.0.0.1') return route.continue();
        leftTheMachine.push(url);
        return route.abort('internetdisconnected');
      });
      // The feed's WebSocket goes through here: its subscribe messages are recorded, and the
      // test can drop the connection to see the console resume with `after`.
      const sockets: WebSocketRoute[] = [];
      const subscribes: { after: string | null }[] = [];
      await context.routeWebSocket(
        (url) => url.pathname === '/graphql',
        (ws) => {
          requested.push(ws.url());
          sockets.push(ws);
          const upstream = ws.connectToServer();
          ws.onMessage((message) => {
            const parsed = JSON.parse(String(message)) as {
              type: string;
              payload?: { variables?: { after?: string | null } };
            };
            if (parsed.type === 'subscribe') {
              subscribes.push({ after: parsed.payload?.variables?.after ?? null });
            }
            upstream.send(message);
          });
        },
      );
      const page = context.pages()[0] ?? (await context.newPage());
      // Waits for an element or an action, generous on a loaded machine.
      page.setDefaultTimeout(60_000);
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
      // A CSP violation or a failed load shows as a console error.
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console: ${message.text()}`);
      });

      // Sign in with the secret key.
      await page.goto(`${origin}/console`);
      await page.getByPlaceholder('sk_… or ak_…').waitFor({ timeout: 60_000 });
      await shot(page, 'sign-in');
      await page.getByPlaceholder('sk_… or ak_…').fill('sk_not_a_known_key_at_all_0000000000');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await poll(() => page.getByRole('alert').innerText()).toContain('not known');
      await page.getByPlaceholder('sk_… or ak_…').fill(key);
      await page.getByRole('button', { name: 'Sign in' }).click();

      // The dashboard charts what the test made: 4 started, 4 active (now, and at the end of
      // the chart's active series), none revoked yet.
      const sessionsChart = page.locator('figure[data-chart="Sessions"]');
      await sessionsChart.locator('canvas').waitFor({ timeout: 30_000 });
      await poll(() => page.locator('[data-stat="activeSessions"]').innerText()).toBe('4');
      const series = (label: string) =>
        sessionsChart.locator(`[data-series="${label}"] strong`).innerText();
      await poll(() => series('started')).toBe('4');
      expect(await series('active')).toBe('4');
      expect(await series('revoked')).toBe('0');
      // uPlot's legend names the series it draws.
      expect(await sessionsChart.locator('.u-legend').innerText()).toMatch(/active/);
      const operations = page.locator('figure[data-chart="Operations and error rate"]');
      await poll(() => operations.locator('[data-series="verifies"] strong').innerText()).toBe('4');
      expect(await paintedPixels(page, 'figure[data-chart="Sessions"] canvas')).toBeGreaterThan(
        200,
      );
      await page.locator('select[name="groupBy"]').selectOption('DAY');
      await poll(() => series('started')).toBe('4');
      expect(await series('active')).toBe('4');
      expect(await paintedPixels(page, 'figure[data-chart="Sessions"] canvas')).toBeGreaterThan(
        200,
      );
      await shot(page, 'dashboard');

      // Configs: the API's own validation message, then a real create and an edit.
      await page.getByRole('link', { name: 'Configs' }).click();
      await page.getByRole('button', { name: 'New config' }).click();
      const editor = page.getByRole('form', { name: 'New config' });
      await editor.locator('input[name="name"]').fill('Checkout');
      await editor.locator('input[name="tag"]').fill('Bad Tag!');
      await editor.locator('input[name="description"]').fill('Between cart and payment');
      await editor.getByRole('button', { name: 'Create' }).click();
      const refused = await post(
        server.url,
        key,
        `mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input) { tag } }`,
        {
          input: {
            name: 'Checkout',
            tag: 'Bad Tag!',
            description: 'Between cart and payment',
            schema: { userId: 'user-123' },
            selector: '$Session{userId}',
            expiry: 1,
            period: 'HOURS',
          },
        },
      );
      const apiMessage = (refused.errors as { message: string }[])[0]!.message;
      await poll(() => editor.getByRole('alert').innerText()).toBe(apiMessage);
      // ...and it marks the field it names.
      expect(await editor.locator('label.invalid .field-error').innerText()).toBe(apiMessage);
      await shot(page, 'config-invalid');
      await editor.locator('input[name="tag"]').fill('checkout');
      await editor.getByRole('button', { name: 'Create' }).click();
      await page.locator('tr[data-tag="checkout"]').waitFor();
      await page.locator('tr[data-tag="checkout"]').getByRole('button', { name: 'Edit' }).click();
      const edit = page.getByRole('form', { name: 'Edit config' });
      await edit.locator('input[name="name"]').fill('Checkout flow');
      await edit.getByRole('button', { name: 'Save' }).click();
      await poll(() => page.locator('tr[data-tag="checkout"]').innerText()).toContain(
        'Checkout flow',
      );
      await shot(page, 'configs');

      // Users: find ada by identifier, open her sessions.
      await page.getByRole('link', { name: 'Users' }).click();
      await page.locator('select[name="tag"]').selectOption(tag);
      await page.locator('input[name="identifier"]').fill('ada');
      await page.getByRole('button', { name: 'Find' }).click();
      await page.getByRole('link', { name: 'ada', exact: true }).click();
      const rows = page.locator('table.sessions tbody tr');
      await poll(() => rows.count()).toBe(3);
      const firstRow = page.locator(`tr[data-session="${started[0]!.sessionId}"]`);
      expect(await firstRow.innerText()).toContain('Firefox');
      expect(await firstRow.innerText()).toContain('203.0.113.10');
      await shot(page, 'user');

      // Revoke one, asking first; then its token no longer verifies.
      await firstRow.getByRole('button', { name: 'Revoke', exact: true }).click();
      const dialog = page.locator('dialog.confirm');
      await poll(() => dialog.innerText()).toContain(started[0]!.sessionId);
      await dialog.getByRole('button', { name: 'Confirm' }).click();
      await poll(() => firstRow.innerText()).toContain('REVOKED');
      const refusedVerify = await post(server.url, key, VERIFY, { tag, token: started[0]!.token });
      expect(refusedVerify.errors).toMatchObject([{ extensions: { code: 'SESSION_REVOKED' } }]);

      // The revocation shows in the live feed.
      await page.getByRole('link', { name: 'Live feed' }).click();
      await page
        .locator(`table.feed tr[data-session="${started[0]!.sessionId}"][data-type="REVOKED"]`)
        .waitFor({ timeout: 30_000 });
      await shot(page, 'live');

      // Drop the feed's connection; a session revoked meanwhile still arrives, once, because the
      // console subscribes again with `after` = the last id it received.
      const lastShown = await page
        .locator('table.feed tbody tr td:first-child')
        .first()
        .innerText();
      const subscribesBefore = subscribes.length;
      await sockets.at(-1)!.close({ code: 1011, reason: 'test drop' });
      await post(
        server.url,
        key,
        `mutation($tag: String!, $sessionId: ID!) { revokeSession(tag: $tag, sessionId: $sessionId) { id } }`,
        { tag, sessionId: started[1]!.sessionId },
      );
      const resumed = page.locator(
        `table.feed tr[data-session="${started[1]!.sessionId}"][data-type="REVOKED"]`,
      );
      await resumed.waitFor({ timeout: 30_000 });
      expect(subscribes.length).toBeGreaterThan(subscribesBefore);
      expect(subscribes.at(-1)!.after).toBe(lastShown);
      expect(await resumed.count()).toBe(1);

      // "Revoke all but this" keeps only the third session.
      // Only the third session is still active: one more, so that "all but this" has work.
      const another = await post(server.url, key, START, {
        input: { tag, data: { userId: 'ada' }, device: DEVICES[0] },
      });
      const extra = (another.data as { startSession: { token: string; sessionId: string } })
        .startSession;
      await page.evaluate((hash) => (location.hash = hash), `#/users/${tag}/ada`);
      const third = page.locator(`tr[data-session="${started[2]!.sessionId}"]`);
      await third.waitFor();
      await poll(() => rows.count()).toBe(4);
      await third.getByRole('button', { name: 'Revoke all but this' }).click();
      await dialog.getByRole('button', { name: 'Confirm' }).click();
      await poll(() => page.getByRole('status').innerText()).toBe('1 session revoked.');
      expect(
        (await post(server.url, key, VERIFY, { tag, token: extra.token })).errors,
      ).toMatchObject([{ extensions: { code: 'SESSION_REVOKED' } }]);
      expect(
        (await post(server.url, key, VERIFY, { tag, token: started[2]!.token })).errors,
      ).toBeUndefined();

      // "Revoke all" for bob: cancelling changes nothing; confirming signs him out everywhere.
      await page.evaluate((hash) => (location.hash = hash), `#/users/${tag}/bob`);
      const revokeAll = page.getByRole('button', { name: 'Revoke all', exact: true });
      await poll(() => revokeAll.isEnabled()).toBe(true);
      await revokeAll.click();
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      expect(await page.locator('table.sessions').innerText()).not.toContain('REVOKED');
      await revokeAll.click();
      await poll(() => dialog.innerText()).toContain('Revoke every session of bob');
      await dialog.getByRole('button', { name: 'Confirm' }).click();
      await poll(() => page.getByRole('status').innerText()).toBe('1 session revoked.');
      await poll(() => revokeAll.isEnabled()).toBe(false);

      // Activity log, filtered to revocations.
      await page.getByRole('link', { name: 'Activity' }).click();
      await page.locator('select[name="operation"]').selectOption('REVOKE');
      const operationsShown = () => page.locator('table tbody tr td:nth-child(2)').allInnerTexts();
      await poll(async () => [...new Set(await operationsShown())]).toEqual(['REVOKE']);
      // The two single revocations (the UI's and the test's); "all but this" is REVOKE_ALL.
      expect((await operationsShown()).length).toBe(2);
      await shot(page, 'activity');

      // Sign out: the key leaves the tab, the sign-in form is back.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByPlaceholder('sk_… or ak_…').waitFor();
      expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
      await page.reload();
      await page.getByPlaceholder('sk_… or ak_…').waitFor();

      // The admin key works too, once a product and env are chosen.
      await page.getByPlaceholder('sk_… or ak_…').fill(adminKey);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('select').first().selectOption(productTag);
      await page.getByRole('button', { name: 'Open' }).click();
      await poll(() => page.locator('[data-stat="activeSessions"]').innerText()).toBe('1');
      // Five started, four revoked (two one by one, two by "revoke all"), one active now.
      await poll(() => series('revoked')).toBe('4');
      expect(await series('started')).toBe('5');
      expect(await series('active')).toBe('1');
      expect(await page.locator('.who').innerText()).toContain(`admin · ${productTag}/dev`);
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByPlaceholder('sk_… or ak_…').waitFor();
      expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

      expect(leftTheMachine).toEqual([]);
      expect(requested.length).toBeGreaterThan(0);
      // The key is never in a URL, nor in what the server logged.
      expect(requested.filter((url) => url.includes(key))).toEqual([]);
      expect(requested.filter((url) => url.includes(adminKey))).toEqual([]);
      for (const secret of [key, adminKey]) {
        expect(server.stdout()).not.toContain(secret);
        expect(server.stderr()).not.toContain(secret);
      }
      expect(problems).toEqual([]);
    },
  );

  it(
    'operator actions: webhooks (create, secret once, deliveries and attempts, redeliver, rotate, disable), devices, impersonation, sign out everywhere, not-before, API keys',
    { timeout: 400_000 },
    async () => {
      if (!existsSync(CHROMIUM)) {
        throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (as .ci/run does)`);
      }
      const dataDir = mkdtempSync(path.join(tmpdir(), 'sessions-console-ops-'));
      const profile = mkdtempSync(path.join(tmpdir(), 'sessions-chromium-ops-'));
      cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
      cleanup.push(() => rmSync(profile, { recursive: true, force: true }));
      // Webhooks are delivered by this server: on Postgres it gets a database of its own, so that
      // its worker serves this test's endpoint only (never another test file's).
      let databaseUrl: string | undefined;
      if (TEST_DATABASE_URL) {
        const own = await freshPostgresDatabase();
        cleanup.push(() => own.drop());
        databaseUrl = own.url;
      }
      // The first delivery attempt is refused (500), every later one accepted.
      const receiver = await startReceiver((_request, n) => (n === 1 ? 500 : 204));
      cleanup.push(() => receiver.close());

      const adminKey = `ak_${randomBytes(32).toString('base64url')}`;
      const server: ServerProcess = await startServerProcess({
        DATA_DIR: dataDir,
        ADMIN_KEY: adminKey,
        WEBHOOK_DELIVERY: 'true',
        WEBHOOK_ALLOW_PRIVATE_URLS: 'true',
        WEBHOOK_POLL_INTERVAL_MS: '100',
        WEBHOOK_RETRY_BASE_MS: '20',
        ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
      });
      cleanup.push(async () => {
        server.child.kill('SIGTERM');
        await server.exited;
      });
      const origin = new URL(server.url).origin;
      const api = async (query: string, variables?: unknown, as = key) => {
        const result = await post(server.url, as, query, variables);
        if (result.errors) throw new Error(JSON.stringify(result.errors));
        return result.data!;
      };

      // Data: cy has a session that moved from a laptop to a phone (one earlier device), an
      // impersonated one, and one of another session type; dan has one session.
      const { key, tag, productTag } = await newProductOverHttp(server.url, adminKey);
      await api(
        `mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input) { tag } }`,
        {
          input: {
            name: 'Staff',
            tag: 'staff',
            description: 'Back office',
            schema: { userId: 'u' },
            selector: '$Session{userId}',
            expiry: 1,
            period: 'HOURS',
          },
        },
      );
      const START_FULL = `mutation($input: StartSessionInput!) { startSession(input: $input) { token refreshToken sessionId } }`;
      type Started = { token: string; refreshToken: string; sessionId: string };
      const start = async (input: Record<string, unknown>) =>
        ((await api(START_FULL, { input })) as { startSession: Started }).startSession;
      const cyData = { userId: 'cy', details: { username: 'cy', email: 'cy@example.com' } };
      const moved = await start({ tag, data: cyData, device: DEVICES[0] });
      await api(
        `mutation($tag: String!, $refreshToken: String!, $device: DeviceInput) {
          refreshSession(tag: $tag, refreshToken: $refreshToken, device: $device) { token }
        }`,
        { tag, refreshToken: moved.refreshToken, device: DEVICES[1] },
      );
      const impersonated = await start({ tag, data: cyData, actor: 'support-7' });
      const staff = await start({ tag: 'staff', data: { userId: 'cy' } });
      const dan = await start({
        tag,
        data: { userId: 'dan', details: { username: 'dan', email: 'dan@example.com' } },
      });

      const context: BrowserContext = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 1400, height: 900 },
      });
      cleanup.push(() => context.close());
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
      const page = context.pages()[0] ?? (await context.newPage());
      page.setDefaultTimeout(60_000);
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console: ${message.text()}`);
      });
      const dialog = page.locator('dialog.confirm');
      const confirm = async (question: string) => {
        await poll(() => dialog.innerText()).toContain(question);
        await dialog.getByRole('button', { name: 'Confirm' }).click();
      };
      const status = page.getByRole('status');
      const alert = page.getByRole('alert');
      /** The code and message a direct call of the API gets, as the console must show them. */
      const refusal = async (query: string, variables: unknown, as = key) => {
        const result = await post(server.url, as, query, variables);
        const [first] = result.errors as { message: string; extensions: { code: string } }[];
        return { code: first!.extensions.code, message: first!.message };
      };

      await page.goto(`${origin}/console`);
      await page.getByPlaceholder('sk_… or ak_…').fill(key);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('link', { name: 'Webhooks' }).waitFor();
      // Keys are the admin key's: no such page in a secret key's menu.
      expect(await page.getByRole('link', { name: 'API keys' }).count()).toBe(0);

      // ---- Webhooks: a URL the API refuses shows its code and message.
      await page.getByRole('link', { name: 'Webhooks' }).click();
      await page.getByRole('button', { name: 'New endpoint' }).click();
      const form = page.getByRole('form', { name: 'New endpoint' });
      const badUrl = 'ftp://hooks.example.com/sessions';
      await form.locator('input[name="url"]').fill(badUrl);
      await form.locator('input[name="description"]').fill('SIEM');
      await form.getByRole('button', { name: 'Create' }).click();
      const badUrlRefusal = await refusal(
        `mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret } }`,
        { input: { url: badUrl } },
      );
      await poll(() => form.getByRole('alert').locator('.code').innerText()).toBe(
        badUrlRefusal.code,
      );
      expect(await form.getByRole('alert').locator('.message').innerText()).toBe(
        badUrlRefusal.message,
      );
      await shot(page, 'webhook-invalid');

      // Created: the signing secret is shown once, with a copy button.
      await form.locator('input[name="url"]').fill(receiver.url);
      await form.getByRole('button', { name: 'Create' }).click();
      const secretBox = page.getByRole('region', { name: /Signing secret of/ });
      const secret = await secretBox.locator('input[name="secret"]').inputValue();
      expect(secret).toMatch(/^whsec_/);
      expect(await secretBox.innerText()).toContain('Shown this once');
      await secretBox.getByRole('button', { name: 'Copy' }).click();
      await poll(() => secretBox.getByRole('status').innerText()).toContain('Copied');
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
      const endpointRow = page.locator('table.endpoints tbody tr');
      await poll(() => endpointRow.count()).toBe(1);
      expect(await endpointRow.innerText()).toContain(receiver.url);
      expect(await endpointRow.innerText()).toContain('enabled');
      await shot(page, 'webhook-created');
      await secretBox.getByRole('button', { name: 'I have stored it' }).click();
      await secretBox.waitFor({ state: 'detached' });
      expect(await page.content()).not.toContain(secret);
      const endpointId = (await endpointRow.getAttribute('data-endpoint'))!;

      // An event: its delivery is refused once (500), then accepted; the request verifies with
      // the secret the console showed.
      const eve = await start({
        tag,
        data: { userId: 'eve', details: { username: 'eve', email: 'eve@example.com' } },
      });
      await receiver.until(() => receiver.accepted.length >= 1);
      expect(receiver.requests).toHaveLength(2);
      const firstPayload = verified(secret, receiver.accepted[0]!);
      expect(firstPayload.data).toMatchObject({ type: 'STARTED', sessionId: eve.sessionId });

      // The endpoint's page: the delivery, with its two attempts.
      await endpointRow.getByRole('link').click();
      const delivery = page.locator(`table.deliveries tr[data-event="${firstPayload.data.id}"]`);
      await poll(() => delivery.locator('[data-status]').innerText()).toBe('DELIVERED');
      expect(await delivery.innerText()).toContain(receiver.accepted[0]!.id);
      expect(await delivery.locator('[data-attempts]').innerText()).toBe('2');
      await delivery.getByRole('button', { name: 'Attempts' }).click();
      const deliveryId = (await delivery.getAttribute('data-delivery'))!;
      const attempts = page.locator(`tr[data-attempts-of="${deliveryId}"] table.attempts tbody tr`);
      await poll(() => attempts.count()).toBe(2);
      expect(await attempts.nth(0).getAttribute('data-succeeded')).toBe('false');
      expect(await attempts.nth(0).innerText()).toContain('500');
      expect(await attempts.nth(1).getAttribute('data-succeeded')).toBe('true');
      expect(await attempts.nth(1).innerText()).toContain('204');
      await shot(page, 'webhook-deliveries');

      // Redeliver (asking first): sent again with the same webhook-id; a third attempt shows.
      await delivery.getByRole('button', { name: 'Redeliver' }).click();
      await confirm(`Send event ${firstPayload.data.id}`);
      await receiver.until(() => receiver.requests.length >= 3);
      expect(receiver.requests[2]!.id).toBe(receiver.accepted[0]!.id);
      expect(verified(secret, receiver.requests[2]!).data.id).toBe(firstPayload.data.id);
      await poll(() => attempts.count()).toBe(3);
      await poll(() => delivery.locator('[data-status]').innerText()).toBe('DELIVERED');

      // Rotate: a new secret, shown once; the next event verifies with it.
      await page.getByRole('button', { name: 'Rotate secret' }).click();
      await confirm('new signing secret');
      const rotatedBox = page.getByRole('region', { name: 'New signing secret' });
      const rotated = await rotatedBox.locator('input[name="secret"]').inputValue();
      expect(rotated).toMatch(/^whsec_/);
      expect(rotated).not.toBe(secret);
      await poll(() => page.locator('[data-fact="previous-secret"]').innerText()).not.toBe('—');
      await shot(page, 'webhook-rotated');
      await rotatedBox.getByRole('button', { name: 'I have stored it' }).click();
      await rotatedBox.waitFor({ state: 'detached' });
      expect(await page.content()).not.toContain(rotated);
      const afterRotation = receiver.accepted.length;
      await start({
        tag,
        data: { userId: 'eve', details: { username: 'eve', email: 'eve@example.com' } },
      });
      await receiver.until(() => receiver.accepted.length > afterRotation);
      expect(verified(rotated, receiver.accepted[afterRotation]!).data.type).toBe('STARTED');

      // Disable (asking first), enable again, disable: the API agrees each time.
      const enabledNow = async () =>
        (
          (await api(`query($id: ID!) { webhookEndpoint(id: $id) { enabled } }`, {
            id: endpointId,
          })) as { webhookEndpoint: { enabled: boolean } }
        ).webhookEndpoint.enabled;
      const state = page.locator('[data-fact="state"]');
      await page.getByRole('button', { name: 'Disable' }).click();
      await confirm(`Disable ${receiver.url}`);
      await poll(() => state.innerText()).toContain('disabled');
      expect(await enabledNow()).toBe(false);
      await page.getByRole('button', { name: 'Enable' }).click();
      await poll(() => state.innerText()).toBe('enabled');
      expect(await enabledNow()).toBe(true);
      await page.getByRole('button', { name: 'Disable' }).click();
      await confirm(`Disable ${receiver.url}`);
      await poll(() => state.innerText()).toContain('disabled');
      expect(await enabledNow()).toBe(false);
      await shot(page, 'webhook-disabled');

      // ---- A user's sessions: device history and names, impersonation.
      await page.evaluate((hash) => (location.hash = hash), `#/users/${tag}/cy`);
      const movedRow = page.locator(`tr[data-session="${moved.sessionId}"]`);
      const impersonatedRow = page.locator(`tr[data-session="${impersonated.sessionId}"]`);
      await movedRow.waitFor();
      expect(await movedRow.locator('td.device').innerText()).toContain('Chrome on Android');
      await movedRow.locator('.device-history summary').click();
      const history = await movedRow.locator('.device-history').innerText();
      expect(history).toContain('1 earlier device');
      expect(history).toContain('Firefox on macOS');
      expect(history).toContain(DEVICES[0]!.ip);
      expect(await impersonatedRow.innerText()).toContain('impersonated by support-7');
      expect(await movedRow.innerText()).not.toContain('impersonated');
      await movedRow.getByRole('button', { name: 'Name', exact: true }).click();
      await movedRow.locator('input[name="deviceName"]').fill('Cy’s phone');
      await movedRow.getByRole('button', { name: 'Save' }).click();
      await poll(() => movedRow.locator('.device-name').innerText()).toBe('Cy’s phone');
      const named = (await api(`query($id: ID!) { session(id: $id) { deviceName } }`, {
        id: moved.sessionId,
      })) as { session: { deviceName: string } };
      expect(named.session.deviceName).toBe('Cy’s phone');
      await shot(page, 'user-devices');

      // Sign out everywhere (asking first): every session of cy, the other type's included.
      await page.getByRole('button', { name: 'Sign out everywhere' }).click();
      await confirm('Sign cy out everywhere');
      await poll(() => status.innerText()).toContain('3 sessions revoked');
      for (const row of [movedRow, impersonatedRow]) {
        await poll(() => row.innerText()).toContain('REVOKED');
        expect(await row.innerText()).toContain('signed_out_everywhere');
      }
      expect(
        (await post(server.url, key, VERIFY, { tag: 'staff', token: staff.token })).errors,
      ).toMatchObject([{ extensions: { code: 'SESSION_REVOKED' } }]);
      await shot(page, 'user-signed-out-everywhere');

      // ---- Not-before: a future instant is the API's error, shown with its code; then a mark
      // for `web` revokes its sessions started until now (dan's and eve's two).
      await page.getByRole('link', { name: 'Not-before' }).click();
      const notBefore = page.getByRole('form', { name: 'New not-before mark' });
      await notBefore.locator('select[name="tag"]').selectOption(tag);
      const future = new Date(Date.now() + 3 * 24 * 3600_000);
      const local = (date: Date) =>
        new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString().slice(0, 19);
      await notBefore.locator('input[name="before"]').fill(local(future));
      await notBefore.getByRole('button', { name: 'Revoke sessions started before' }).click();
      await confirm(`every session of ${tag}`);
      const futureRefusal = await refusal(
        `mutation($tag: String, $before: DateTime) { revokeSessionsStartedBefore(tag: $tag, before: $before) { count } }`,
        { tag, before: future.toISOString() },
      );
      await poll(() => alert.locator('.code').innerText()).toBe(futureRefusal.code);
      // Cancelling changes nothing.
      await notBefore.locator('input[name="before"]').fill('');
      await notBefore.getByRole('button', { name: 'Revoke sessions started before' }).click();
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      expect(await page.locator('table.marks tbody tr').count()).toBe(0);
      expect(
        (await post(server.url, key, VERIFY, { tag, token: dan.token })).errors,
      ).toBeUndefined();
      await notBefore.getByRole('button', { name: 'Revoke sessions started before' }).click();
      await confirm(`every session of ${tag}`);
      await poll(() => status.innerText()).toContain('3 sessions revoked');
      await page.locator(`table.marks tr[data-mark="${tag}"]`).waitFor();
      expect((await post(server.url, key, VERIFY, { tag, token: dan.token })).errors).toMatchObject(
        [{ extensions: { code: 'SESSION_REVOKED' } }],
      );
      await shot(page, 'not-before');

      // ---- API keys, with the admin key: list, create (shown once), revoke.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByPlaceholder('sk_… or ak_…').fill(adminKey);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('select').first().selectOption(productTag);
      await page.getByRole('button', { name: 'Open' }).click();
      await page.getByRole('link', { name: 'API keys' }).click();
      const keyRows = page.locator('table.keys tbody tr');
      await poll(() => keyRows.count()).toBe(1);
      expect(await keyRows.innerText()).toContain('test');
      expect(await keyRows.innerText()).toContain(key.slice(0, 8));
      expect(await page.content()).not.toContain(key);
      const keyForm = page.getByRole('form', { name: 'New key' });
      await keyForm.locator('input[name="keyName"]').fill('ci');
      await keyForm.locator('select[name="kind"]').selectOption('SECRET');
      await keyForm.getByRole('button', { name: 'Create key' }).click();
      const keyBox = page.getByRole('region', { name: /New secret key “ci”/ });
      const newKey = await keyBox.locator('input[name="secret"]').inputValue();
      expect(newKey).toMatch(/^sk_/);
      await keyBox.getByRole('button', { name: 'Copy' }).click();
      await poll(() => keyBox.getByRole('status').innerText()).toContain('Copied');
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(newKey);
      await poll(() => keyRows.count()).toBe(2);
      // The new key works.
      expect(
        (await post(server.url, newKey, `query { sessionConfigs { tag } }`)).errors,
      ).toBeUndefined();
      await shot(page, 'key-created');
      await keyBox.getByRole('button', { name: 'I have stored it' }).click();
      await keyBox.waitFor({ state: 'detached' });
      expect(await page.content()).not.toContain(newKey);
      const ciRow = keyRows.filter({ has: page.locator('td:first-child', { hasText: /^ci$/ }) });
      await ciRow.getByRole('button', { name: 'Revoke' }).click();
      await confirm('Revoke the secret key “ci”');
      await poll(() => status.innerText()).toContain('revoked');
      await poll(() => keyRows.filter({ hasText: 'revoked' }).count()).toBe(1);
      expect(
        (await post(server.url, newKey, `query { sessionConfigs { tag } }`)).errors,
      ).toMatchObject([{ extensions: { code: 'UNAUTHENTICATED' } }]);
      // The other key still works.
      expect(
        (await post(server.url, key, `query { sessionConfigs { tag } }`)).errors,
      ).toBeUndefined();
      await shot(page, 'keys');

      // No secret in what the server logged.
      for (const value of [key, adminKey, newKey, secret, rotated]) {
        expect(server.stdout()).not.toContain(value);
        expect(server.stderr()).not.toContain(value);
      }
      expect(problems).toEqual([]);
    },
  );
});

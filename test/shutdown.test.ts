import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { randomSecret } from '../src/tokens/secrets.js';
import { TEST_DATABASE_URL } from './support/app.js';
import { nextCloseCode, subscribeSse, subscribeWs, wsClient, wsUrlOf } from './support/live.js';
import {
  acceptedRequest,
  newProductOverHttp,
  post,
  refusesConnections,
  startServerProcess,
  TEST_SESSION_SECRET,
  type ServerProcess,
} from './support/server-process.js';
import { START } from './support/documents.js';
import { documentText, type Document } from './support/graphql.js';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
});

const EVENTS_SUB = `subscription { sessionEvents { id type sessionId } }`;
const VERIFY = `query($tag: String!, $token: String!) { verifySession(tag: $tag, token: $token) { sessionId } }`;
const REFRESH = `mutation($tag: String!, $refreshToken: String!) { refreshSession(tag: $tag, refreshToken: $refreshToken) { token } }`;
const DATA = { userId: 'user-123', details: { username: 'ada', email: 'ada@example.com' } };

describe('graceful shutdown of the server process', () => {
  it('on SIGTERM: requests in flight finish, WebSockets close with 1001, SSE streams end, new connections are refused, exit 0', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sessions-term-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const adminKey = `ak_${randomSecret(30)}`;
    const server: ServerProcess = await startServerProcess({
      DATA_DIR: dataDir,
      ADMIN_KEY: adminKey,
      SESSION_SECRET: TEST_SESSION_SECRET,
      SWEEP_INTERVAL_SECONDS: '0',
      ...(TEST_DATABASE_URL ? { DATABASE_URL: TEST_DATABASE_URL } : {}),
    });
    cleanups.push(() => {
      if (server.child.exitCode === null && server.child.signalCode === null) {
        server.child.kill('SIGKILL');
      }
    });
    const { key } = await newProductOverHttp(server.url, adminKey);

    // Two live subscriptions, proven live by an event each receives.
    const client = wsClient(wsUrlOf(server.url), key);
    const closeCode = nextCloseCode(client);
    const ws = subscribeWs<{ type: string }>(client, EVENTS_SUB, {}, 'sessionEvents');
    const sse = subscribeSse<{ type: string }>(server.url, key, EVENTS_SUB, {}, 'sessionEvents');
    expect(await sse.status).toBe(200);
    // Both subscriptions register asynchronously: start sessions until both have heard one.
    let session: { token: string; refreshToken: string } | undefined;
    const deadline = Date.now() + 10_000;
    while ((ws.items.length === 0 || sse.items.length === 0) && Date.now() < deadline) {
      const started = await post(server.url, key, START, { input: { tag: 'web', data: DATA } });
      session = started.data!.startSession as { token: string; refreshToken: string };
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(ws.items.length).toBeGreaterThan(0);
    expect(sse.items.length).toBeGreaterThan(0);

    // Requests in flight at the signal: the server has parsed each one's headers (it answered
    // 100 Continue) and waits for its body.
    const request = (query: Document, variables: unknown) =>
      acceptedRequest(server.url, key, documentText(query), variables);
    const inFlight = {
      startSession: [1, 2, 3].map(() => request(START, { input: { tag: 'web', data: DATA } })),
      verifySession: [request(VERIFY, { tag: 'web', token: session!.token })],
      refreshSession: [request(REFRESH, { tag: 'web', refreshToken: session!.refreshToken })],
    };
    await Promise.all(Object.values(inFlight).flatMap((rs) => rs.map((r) => r.accepted)));

    const signalled = performance.now();
    server.child.kill('SIGTERM');
    // The subscriptions end at once.
    expect(await closeCode).toBe(1001);
    await ws.ended;
    await sse.ended;
    expect(sse.errors).toEqual([]);
    // New connections are refused while the old ones finish.
    expect(await refusesConnections(server.url)).toBe(true);
    // The requests in flight are still served, after the signal, with whole answers.
    for (const requests of Object.values(inFlight)) for (const r of requests) r.finish();
    for (const [field, requests] of Object.entries(inFlight)) {
      for (const { response } of requests) {
        const answer = await response;
        expect(answer.status, field).toBe(200);
        const parsed = JSON.parse(answer.body) as {
          data?: Record<string, Record<string, unknown>>;
          errors?: unknown;
        };
        expect(parsed.errors, field).toBeUndefined();
        expect(parsed.data?.[field], field).toBeTruthy();
      }
    }

    expect(await server.exited).toBe(0);
    const took = performance.now() - signalled;
    console.log(`stopped ${took.toFixed(0)} ms after SIGTERM`);
    expect(server.stdout()).toMatch(/"msg":"stopped"/);
    expect(server.stderr()).not.toMatch(/Error|unhandled/i);
    await client.dispose();
  }, 300_000);
});

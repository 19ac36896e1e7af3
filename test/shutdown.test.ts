import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { randomSecret } from '../src/tokens/secrets.js';
import { TEST_DATABASE_URL } from './support/app.js';
import { nextCloseCode, subscribeSse, subscribeWs, wsClient, wsUrlOf } from './support/live.js';
import {
  newProductOverHttp,
  post,
  startServerProcess,
  type ServerProcess,
} from './support/server-process.js';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
});

const EVENTS_SUB = `subscription { sessionEvents { id type sessionId } }`;
const START = `mutation($input: StartSessionInput!) { startSession(input: $input) { sessionId token refreshToken } }`;
const VERIFY = `query($tag: String!, $token: String!) { verifySession(tag: $tag, token: $token) { sessionId } }`;
const REFRESH = `mutation($tag: String!, $refreshToken: String!) { refreshSession(tag: $tag, refreshToken: $refreshToken) { token } }`;
const DATA = { userId: 'user-123', details: { username: 'ada', email: 'ada@example.com' } };

/**
 * A POST whose body is sent in two halves: the request is in flight (headers and half the body
 * received) until `finish()` sends the rest.
 */
function halfSentRequest(url: string, key: string, body: string) {
  let request!: ClientRequest;
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    request = httpRequest(
      url,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          authorization: `Bearer ${key}`,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    request.on('error', reject);
  });
  const half = Math.floor(body.length / 2);
  request.write(body.slice(0, half));
  request.flushHeaders();
  return { response, finish: () => request.end(body.slice(half)) };
}

describe('graceful shutdown of the server process', () => {
  it('on SIGTERM: requests in flight finish, WebSockets close with 1001, SSE streams end, new connections are refused, exit 0 within 10 s', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sessions-term-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const adminKey = `ak_${randomSecret(30)}`;
    const server: ServerProcess = await startServerProcess({
      DATA_DIR: dataDir,
      ADMIN_KEY: adminKey,
      SESSION_SECRET: randomSecret(48),
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

    // Requests in flight at the signal: each has sent its headers and half its body.
    const request = (query: string, variables: unknown) =>
      halfSentRequest(server.url, key, JSON.stringify({ query, variables }));
    const inFlight = {
      startSession: [1, 2, 3].map(() => request(START, { input: { tag: 'web', data: DATA } })),
      verifySession: [request(VERIFY, { tag: 'web', token: session!.token })],
      refreshSession: [request(REFRESH, { tag: 'web', refreshToken: session!.refreshToken })],
    };
    await new Promise((r) => setTimeout(r, 200)); // the server has read their headers

    const signalled = performance.now();
    server.child.kill('SIGTERM');
    // The subscriptions end at once.
    expect(await closeCode).toBe(1001);
    await ws.ended;
    await sse.ended;
    expect(sse.errors).toEqual([]);
    // New connections are refused while the old ones finish.
    const fresh = await new Promise<string | number>((resolve) => {
      const probe = httpRequest(server.url.replace('localhost', '127.0.0.1'), { agent: false });
      probe.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      probe.on('response', (res) => resolve(res.statusCode ?? 0));
      probe.end();
    });
    expect(fresh).toBe('ECONNREFUSED');
    // The half-sent requests are still served, after the signal, with whole answers.
    await new Promise((r) => setTimeout(r, 300));
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
    expect(took).toBeLessThan(10_000);
    expect(server.stdout()).toMatch(/"msg":"stopped"/);
    expect(server.stderr()).not.toMatch(/Error|unhandled/i);
    await client.dispose();
  });
});

import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { expect } from 'vitest';
import {
  createLocalVerifier,
  createSessionClient,
  SessionServiceError,
  type SessionEvent,
} from '../src/client/index.js';
import { newConfig, start } from './support/fixtures.js';
import { ok } from './support/graphql.js';
import { waitUntil } from './support/live.js';
import { describe, it } from './support/verifier.js';

const REVOKE = `mutation($tag: String!, $sessionId: ID!) { revokeSession(tag: $tag, sessionId: $sessionId) { id } }`;
/**
 * The timeout of clients that must also get answers from this machine's own server: ample even
 * when the machine is busy (a hung server then costs this much per attempt).
 */
const AMPLE_MS = 5_000;
const STATUS = `query($id: ID!) { session(id: $id) { status } }`;

interface HungServer {
  readonly url: string;
  /** HTTP requests it received (and never answered). */
  readonly requests: number;
  /** Resolves with the next request it receives. */
  nextRequest(): Promise<IncomingMessage>;
  close(): Promise<void>;
}

/**
 * A real HTTP server that accepts every connection, reads every request, and never answers:
 * `silent` sends nothing at all, `headers` sends the status and headers and a part of a body,
 * then nothing more. A WebSocket upgrade is accepted and never answered either.
 */
async function hungServer(mode: 'silent' | 'headers' = 'silent'): Promise<HungServer> {
  const sockets = new Set<Socket>();
  let requests = 0;
  const server = createServer((_request, response) => {
    requests += 1;
    if (mode === 'headers') {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.write('{"data":');
    }
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // A WebSocket upgrade: accepted, never answered.
  server.on('upgrade', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    get requests() {
      return requests;
    },
    nextRequest: async () => ((await once(server, 'request')) as [IncomingMessage])[0],
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The URL of a port nothing listens on (a server bound it, then closed). */
async function deadUrl(): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/graphql`;
}

/** A fetch that records the URL of every attempt, and the list it records to. */
function recordingFetch(): { fetch: typeof fetch; attempts: string[] } {
  const attempts: string[] = [];
  return {
    attempts,
    fetch: (input, init) => {
      attempts.push(String(input));
      return fetch(input, init);
    },
  };
}

/** The error a call rejects with; fails if it resolves. */
async function rejection(call: Promise<unknown>): Promise<unknown> {
  return call.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );
}

/** The SessionServiceError a call rejects with, and how long it took (ms). */
async function timed(call: () => Promise<unknown>): Promise<[SessionServiceError, number]> {
  const started = performance.now();
  const error = await rejection(call());
  const elapsed = performance.now() - started;
  expect(error).toBeInstanceOf(SessionServiceError);
  return [error as SessionServiceError, elapsed];
}

describe('client timeouts', () => {
  it('a server that accepts and never answers is SERVICE_UNAVAILABLE after timeoutMs, for queries and mutations', async ({
    onTestFinished,
    config: tag,
  }) => {
    const hung = await hungServer('silent');
    onTestFinished(() => hung.close());
    const client = createSessionClient({ url: hung.url, key: 'sk_dev_x', timeoutMs: 300 });
    onTestFinished(() => client.close());
    const [verify, elapsed] = await timed(() => client.sessions.verify({ tag, token: 'x' }));
    expect(verify.code).toBe('SERVICE_UNAVAILABLE');
    expect(verify.message).toContain(hung.url);
    expect(verify.message).toContain('300 ms');
    // Node's timers never fire early; a little slack for performance.now's rounding.
    expect(elapsed).toBeGreaterThanOrEqual(295);
    const [revoke] = await timed(() => client.sessions.revoke({ tag, sessionId: 'x' }));
    expect(revoke.code).toBe('SERVICE_UNAVAILABLE');
  });

  it('the timeout bounds reading the body too', async ({ onTestFinished, config: tag }) => {
    const hung = await hungServer('headers');
    onTestFinished(() => hung.close());
    let headersReceived = 0;
    const client = createSessionClient({
      url: hung.url,
      key: 'sk_dev_x',
      // Ample for headers from this machine, busy or not; the body never comes.
      timeoutMs: 3_000,
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        headersReceived += 1;
        return response;
      },
    });
    onTestFinished(() => client.close());
    const [error] = await timed(() => client.sessions.verify({ tag, token: 'x' }));
    expect(error.code).toBe('SERVICE_UNAVAILABLE');
    expect(headersReceived).toBe(1);
  });

  it('waits 5 s by default, in the client and in the local verifier’s fallback', async ({
    verifier,
    config: tag,
    onTestFinished,
  }) => {
    const hung = await hungServer();
    onTestFinished(() => hung.close());
    const client = createSessionClient({ url: hung.url, key: 'sk_dev_x' });
    onTestFinished(() => client.close());
    // The verifier's own keys request hangs too: it never gets ready, so it falls back.
    const v = verifier([tag], { url: hung.url, onStale: 'fallback' });
    const [[fromClient, clientElapsed], [fromVerifier, verifierElapsed]] = await Promise.all([
      timed(() => client.sessions.verify({ tag, token: 'x' })),
      timed(() => v.verify({ tag, token: 'x' })),
    ]);
    for (const [error, elapsed] of [
      [fromClient, clientElapsed],
      [fromVerifier, verifierElapsed],
    ] as const) {
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toContain('5000 ms');
      expect(elapsed).toBeGreaterThanOrEqual(4_995);
    }
  });

  it('the local verifier’s fallback to a server that never answers is SERVICE_UNAVAILABLE', async ({
    t,
    key,
    verifier,
    onTestFinished,
  }) => {
    const tag = await newConfig(t, key);
    const session = await start(t, key, tag);
    const hung = await hungServer();
    onTestFinished(() => hung.close());
    const v = verifier([tag], { url: hung.url, timeoutMs: 300, onStale: 'fallback' });
    const [error, elapsed] = await timed(() => v.verify({ tag, token: session.token }));
    expect(error.code).toBe('SERVICE_UNAVAILABLE');
    expect(elapsed).toBeGreaterThanOrEqual(295);
    // Its own keys request timed out too, and is tried again.
    await waitUntil(() => hung.requests >= 3, 'the keys request to be tried again');
  });

  it('timeoutMs and url are validated before any request', () => {
    // '5000': as JavaScript, or an untyped configuration, could pass it.
    for (const timeoutMs of [0, -1, 1.5, 120_001, Number.NaN, Infinity, '5000'] as number[]) {
      for (const make of [
        () => createSessionClient({ url: 'http://127.0.0.1:1/graphql', key: 'k', timeoutMs }),
        () =>
          createLocalVerifier({
            url: 'http://127.0.0.1:1/graphql',
            key: 'k',
            tags: ['a'],
            timeoutMs,
          }),
      ] as Array<() => unknown>) {
        let thrown: unknown;
        try {
          make();
        } catch (error) {
          thrown = error;
        }
        expect(thrown, `timeoutMs ${String(timeoutMs)}`).toMatchObject({
          code: 'BAD_USER_INPUT',
          field: 'timeoutMs',
        });
      }
    }
    const u = (port: number) => `http://127.0.0.1:${port}/graphql`;
    for (const url of [
      [],
      Array.from({ length: 11 }, (_, i) => u(i + 1)),
      'ftp://127.0.0.1/graphql',
      'not a url',
      [u(1), u(1)],
      [u(1), 42],
    ]) {
      expect(() => createSessionClient({ url: url as string[], key: 'k' })).toThrow(
        expect.objectContaining({ code: 'BAD_USER_INPUT', field: 'url' }),
      );
    }
    for (const ok of [1, 120_000]) {
      createSessionClient({ url: [u(1), u(2)], key: 'k', timeoutMs: ok });
    }
  });

  it('a caller’s signal abandons the call with its reason', async ({
    config: tag,
    onTestFinished,
  }) => {
    const hung = await hungServer();
    onTestFinished(() => hung.close());
    const client = createSessionClient({ url: hung.url, key: 'sk_dev_x', timeoutMs: 60_000 });
    onTestFinished(() => client.close());
    const controller = new AbortController();
    const arrived = hung.nextRequest();
    const call = rejection(
      client.sessions.verify({ tag, token: 'x' }, { signal: controller.signal }),
    );
    await arrived;
    const reason = new Error('the caller gave up');
    controller.abort(reason);
    expect(await call).toBe(reason);
  });
});

describe('several server URLs', () => {
  it('a query moves past a dead port and a hung server, and the next call starts where one answered', async ({
    t,
    server,
    key,
    onTestFinished,
  }) => {
    const tag = await newConfig(t, key);
    const session = await start(t, key, tag);
    const hung = await hungServer();
    onTestFinished(() => hung.close());
    const dead = await deadUrl();
    const recorded = recordingFetch();
    const client = createSessionClient({
      url: [dead, hung.url, server.url],
      key,
      timeoutMs: AMPLE_MS,
      fetch: recorded.fetch,
    });
    onTestFinished(() => client.close());
    expect((await client.sessions.verify({ tag, token: session.token })).sessionId).toBe(
      session.sessionId,
    );
    expect(recorded.attempts).toEqual([dead, hung.url, server.url]);
    expect(await client.sessions.isValid({ tag, token: session.token })).toBe(true);
    expect((await client.configs.fetch(tag))?.tag).toBe(tag);
    expect(recorded.attempts).toEqual([dead, hung.url, server.url, server.url, server.url]);

    // Nothing answers: the error names every URL tried, with the last one's code.
    const none = createSessionClient({ url: [await deadUrl(), hung.url], key, timeoutMs: 300 });
    onTestFinished(() => none.close());
    const [error] = await timed(() => none.sessions.verify({ tag, token: session.token }));
    expect(error.code).toBe('SERVICE_UNAVAILABLE');
    expect(error.message).toContain('Could not reach');
    expect(error.message).toContain(hung.url);
  });

  it('a mutation moves on only when its connection was never made, never after it may have arrived', async ({
    t,
    server,
    key,
    onTestFinished,
  }) => {
    const tag = await newConfig(t, key);
    const session = await start(t, key, tag);
    const hung = await hungServer();
    onTestFinished(() => hung.close());

    // The hung server got the revocation: it may have applied it, so it is not sent again.
    const recorded = recordingFetch();
    const first = createSessionClient({
      url: [hung.url, server.url],
      key,
      timeoutMs: AMPLE_MS,
      fetch: recorded.fetch,
    });
    onTestFinished(() => first.close());
    const [error] = await timed(() => first.sessions.revoke({ tag, sessionId: session.sessionId }));
    expect(error.code).toBe('SERVICE_UNAVAILABLE');
    expect(recorded.attempts).toEqual([hung.url]);
    const status = await ok<{ session: { status: string } }>(t.app, {
      key,
      query: STATUS,
      variables: { id: session.sessionId },
    });
    expect(status.session.status).toBe('ACTIVE');
    // The next call starts at the next URL.
    expect((await first.sessions.revoke({ tag, sessionId: session.sessionId })).status).toBe(
      'REVOKED',
    );
    expect(recorded.attempts).toEqual([hung.url, server.url]);

    // A refused connection sent nothing: the mutation goes to the next URL.
    const second = createSessionClient({
      url: [await deadUrl(), server.url],
      key,
      timeoutMs: AMPLE_MS,
    });
    onTestFinished(() => second.close());
    const started = await second.sessions.start({
      tag,
      data: { userId: 'user-1', details: { username: 'ada', email: 'ada@example.com' } },
    });
    expect(await second.sessions.isValid({ tag, token: started.token })).toBe(true);
  });

  it('subscriptions connect past a dead port and a hung server', async ({
    t,
    server,
    key,
    onTestFinished,
  }) => {
    const tag = await newConfig(t, key);
    const session = await start(t, key, tag);
    const hung = await hungServer();
    onTestFinished(() => hung.close());
    const client = createSessionClient({
      url: [await deadUrl(), hung.url, server.url],
      key,
      timeoutMs: AMPLE_MS,
      ws: { retryWait: () => Promise.resolve() },
    });
    onTestFinished(() => client.close());
    const events: SessionEvent[] = [];
    const errors: unknown[] = [];
    const after = await client.sessions.latestEventId();
    client.sessions.onRevoked({ tag, after }, (event) => events.push(event), {
      onError: (error) => errors.push(error),
    });
    await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: session.sessionId } });
    await waitUntil(() => events.length > 0 || errors.length > 0, 'the revocation', 30_000);
    expect(errors).toEqual([]);
    expect(events.map((e) => e.sessionId)).toEqual([session.sessionId]);
  });

  it('a local verifier syncs, follows its feed and falls back past a dead port and a hung server', async ({
    t,
    server,
    key,
    verifier,
    onTestFinished,
  }) => {
    const tag = await newConfig(t, key);
    const other = await newConfig(t, key);
    const hung = await hungServer();
    onTestFinished(() => hung.close());
    const v = verifier([tag], {
      url: [await deadUrl(), hung.url, server.url],
      timeoutMs: AMPLE_MS,
      // Not stale while the machine is busy: these verifies must be local.
      maxStalenessMs: 10_000,
      ws: { retryWait: () => Promise.resolve() },
    });
    await v.ready;
    const session = await start(t, key, tag);
    expect((await v.verify({ tag, token: session.token })).verifiedBy).toBe('local');
    // A tag it does not follow: the server decides, through the URL that answers.
    const elsewhere = await start(t, key, other);
    const fell = await v.verify({ tag: other, token: elsewhere.token });
    expect([fell.verifiedBy, fell.fallback]).toEqual(['server', 'TAG_NOT_FOLLOWED']);
    // The feed is live: the revocation arrives as an entry, and the token is refused.
    expect(v.stats().entries).toBe(0);
    await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: session.sessionId } });
    await waitUntil(() => v.stats().entries === 1, 'the revocation to reach the verifier');
    expect(await rejection(v.verify({ tag, token: session.token }))).toMatchObject({
      code: 'SESSION_REVOKED',
    });
  });
});

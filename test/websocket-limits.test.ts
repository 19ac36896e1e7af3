import { expect } from 'vitest';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { SUBSCRIBER_PAGE } from '../src/workers/event-bus.js';
import { createTestApp, type TestApp } from './support/app.js';
import { afterAll, afterEach, describe, it, test } from './support/test.js';
import { newConfig, newProduct, start } from './support/fixtures.js';
import { ok } from './support/graphql.js';
import { errorCodeOf, listen, subscribeSse, subscribeWs, waitUntil } from './support/live.js';

type Server = Awaited<ReturnType<typeof listen>>;

const PROTOCOL = 'graphql-transport-ws';
const EVENTS_SUB = `subscription($after: ID) { sessionEvents(after: $after) { id type } }`;

// Behind one trusted proxy: the client address is the last X-Forwarded-For entry.
test.override('appOptions', {
  appOptions: { trustProxyHops: 1 },
  subscriptionLimits: { maxPerKey: 4, slowConsumerMs: 30_000 },
});
const servers: Server[] = [];
// Each test ends what it opened; the next one counts from zero.
afterEach(async ({ t }) => {
  await waitUntil(() => t.services.events.subscriberCount === 0, 'subscriptions to end');
});
afterAll(async () => {
  for (const s of servers) await s.close();
});

async function serve(app: TestApp, options: Parameters<typeof listen>[1] = {}): Promise<Server> {
  const s = await listen(app, { trustProxyHops: 1, ...options });
  servers.push(s);
  return s;
}

interface Closed {
  code: number;
  reason: string;
}

/** A raw WebSocket speaking graphql-ws's subprotocol, open, with nothing sent yet. */
async function rawSocket(
  url: string,
  forwardedFor?: string,
  autoPong = true,
): Promise<WebSocket & { closed: Promise<Closed> }> {
  const ws = new WebSocket(url, PROTOCOL, {
    headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {},
    autoPong,
  });
  const closed = new Promise<Closed>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on('error', () => {}); // a refused or reset socket reports through `closed`
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('close', () => resolve());
    ws.once('unexpected-response', () => reject(new Error('upgrade refused')));
  });
  return Object.assign(ws, { closed });
}

/** Opens a socket and sends connection_init; resolves with it once acknowledged, or with its close. */
async function authed(
  url: string,
  key: string,
  forwardedFor?: string,
  autoPong = true,
): Promise<{ ws: WebSocket & { closed: Promise<Closed> }; refused?: Closed }> {
  const ws = await rawSocket(url, forwardedFor, autoPong);
  if (ws.readyState !== WebSocket.OPEN) return { ws, refused: await ws.closed };
  ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${key}` } }));
  const outcome = await Promise.race([
    new Promise<'ack'>((resolve) =>
      ws.on('message', (data) => {
        if ((JSON.parse(String(data)) as { type: string }).type === 'connection_ack')
          resolve('ack');
      }),
    ),
    ws.closed,
  ]);
  return outcome === 'ack' ? { ws } : { ws, refused: outcome };
}

describe('frame size', () => {
  it('closes with 1009 a frame over BODY_LIMIT_BYTES: a keyless connection_init, an authenticated subscribe, a fragmented message', async ({
    t,
  }) => {
    // A connection_init wait longer than any busy machine needs to read a 4 MiB frame's header:
    // the default 3 s would close the keyless socket with 4408 first.
    const server = await serve(t, {
      bodyLimitBytes: 65_536,
      websocket: { connectionInitTimeoutMs: 60_000 },
    });
    const product = await newProduct(t);
    const big = 'x'.repeat(4 * 1024 * 1024);

    // Before any key: refused on the frame's announced length, not after parsing it.
    const anonymous = await rawSocket(server.wsUrl);
    anonymous.send(JSON.stringify({ type: 'connection_init', payload: { pad: big } }));
    expect((await anonymous.closed).code).toBe(1009);

    // On an authenticated socket.
    const { ws } = await authed(server.wsUrl, product.secret.dev);
    ws.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: `subscription { sessionEvents { id } } # ${big}` },
      }),
    );
    expect((await ws.closed).code).toBe(1009);

    // Fragments count together: sixteen 8 KiB fragments make a 128 KiB message.
    const fragmented = (await authed(server.wsUrl, product.secret.dev)).ws;
    for (let i = 0; i < 16; i++) fragmented.send('y'.repeat(8192), { fin: i === 15 });
    expect((await fragmented.closed).code).toBe(1009);

    // Under the limit, a message is served as usual.
    const { ws: fine } = await authed(server.wsUrl, product.secret.dev);
    const answer = new Promise<string>((resolve) =>
      fine.on('message', (data) => resolve(String(data))),
    );
    fine.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: `{ latestSessionEventId } # ${'z'.repeat(30_000)}` },
      }),
    );
    expect(JSON.parse(await answer)).toMatchObject({ id: '1', type: 'next' });
    fine.close();
  });

  it('never negotiates per-message deflate, so no message inflates past the limit', async ({
    t,
  }) => {
    const server = await serve(t, { bodyLimitBytes: 65_536 });
    const ws = new WebSocket(server.wsUrl, PROTOCOL, { perMessageDeflate: true });
    await new Promise((resolve) => ws.once('open', resolve));
    expect(ws.extensions).toBe('');
    ws.close();
  });
});

describe('connection caps', () => {
  it('caps open sockets per key (4430, naming WS_MAX_CONNECTIONS_PER_KEY); other keys are unaffected; a closed one frees its slot', async ({
    t,
  }) => {
    const server = await serve(t, { websocket: { maxConnectionsPerKey: 3 } });
    const a = await newProduct(t);
    const b = await newProduct(t);
    const open = await Promise.all(
      [1, 2, 3].map(async (i) => (await authed(server.wsUrl, a.secret.dev, `192.0.2.${i}`)).ws),
    );
    const over = await authed(server.wsUrl, a.secret.dev, '192.0.2.9');
    expect(over.refused?.code).toBe(4430);
    expect(over.refused?.reason).toContain('WS_MAX_CONNECTIONS_PER_KEY');
    expect((await authed(server.wsUrl, b.secret.dev)).refused).toBeUndefined();
    open[0]!.close();
    await open[0]!.closed;
    await waitUntil(
      async () => (await authed(server.wsUrl, a.secret.dev)).refused === undefined,
      'a freed slot for the key',
    );
  });

  it('caps sockets per client IP, keyed by the forwarded address behind TRUST_PROXY_HOPS', async ({
    t,
  }) => {
    const server = await serve(t, {
      websocket: { maxConnectionsPerIp: 3, maxConnectionsPerKey: 100 },
    });
    const product = await newProduct(t);
    // The proxy (127.0.0.1) is the same for everyone: only the forwarded address counts.
    for (let i = 0; i < 3; i++) {
      const { refused } = await authed(
        server.wsUrl,
        product.secret.dev,
        `10.9.9.9, 203.0.113.5`, // a client-written entry, then what the proxy saw
      );
      expect(refused).toBeUndefined();
    }
    const over = await authed(server.wsUrl, product.secret.dev, '203.0.113.5');
    expect(over.refused?.code).toBe(4430);
    expect(over.refused?.reason).toContain('WS_MAX_CONNECTIONS_PER_IP');
    // A spoofed leftmost entry does not move a client into another bucket.
    const spoofed = await authed(server.wsUrl, product.secret.dev, '198.51.100.1, 203.0.113.5');
    expect(spoofed.refused?.code).toBe(4430);
    expect((await authed(server.wsUrl, product.secret.dev, '203.0.113.6')).refused).toBeUndefined();
  });

  it('terminates a socket that stops answering pings (WS_KEEP_ALIVE_MS), and keeps one that answers', async ({
    t,
  }) => {
    const server = await serve(t, { websocket: { keepAliveMs: 1_000 } });
    const product = await newProduct(t);
    // A peer that never answers a ping (a dead one, or one that stopped reading).
    const { ws: silent } = await authed(server.wsUrl, product.secret.dev, undefined, false);
    const { ws: live } = await authed(server.wsUrl, product.secret.dev);
    let pings = 0;
    live.on('ping', () => pings++);
    let silentPings = 0;
    silent.on('ping', () => silentPings++);
    const closed = await silent.closed;
    expect(silentPings).toBeGreaterThanOrEqual(1);
    // Terminated, not closed with a frame: the client sees an abnormal closure.
    expect(closed.code).toBe(1006);
    // The live socket (whose client answers pings) outlasts the silent one's termination by
    // at least two more pings: each ping came after the previous one's pong.
    const seen = pings;
    await waitUntil(() => pings >= seen + 2, 'two more pings');
    expect(live.readyState).toBe(WebSocket.OPEN);
    live.close();
  });

  it('caps sockets per IP that have not authenticated, and closes a socket that never sends connection_init', async ({
    t,
  }) => {
    const server = await serve(t, {
      websocket: { maxUnauthenticatedPerIp: 2, connectionInitTimeoutMs: 300 },
    });
    const product = await newProduct(t);
    const ip = '198.51.100.7';
    const first = await rawSocket(server.wsUrl, ip);
    // Once authenticated, a socket no longer counts against it.
    const { ws: signedIn, refused: notRefused } = await authed(
      server.wsUrl,
      product.secret.dev,
      ip,
    );
    expect(notRefused).toBeUndefined();
    const second = await rawSocket(server.wsUrl, ip);
    const third = await rawSocket(server.wsUrl, ip);
    const refused = await third.closed;
    expect(refused.code).toBe(4430);
    expect(refused.reason).toContain('WS_MAX_UNAUTHENTICATED_PER_IP');
    expect(signedIn.readyState).toBe(WebSocket.OPEN);
    // Sockets that send nothing are closed by the connection_init timeout, freeing their slots.
    expect((await first.closed).code).toBe(4408);
    expect((await second.closed).code).toBe(4408);
    const again = await rawSocket(server.wsUrl, ip);
    expect(again.readyState).toBe(WebSocket.OPEN);
    expect((await again.closed).code).toBe(4408);
    signedIn.close();
  });
});

describe('subscription caps', () => {
  it('caps operations per connection with LIMIT_EXCEEDED; the others go on', async ({ t }) => {
    const server = await serve(t, { websocket: { maxSubscriptionsPerConnection: 3 } });
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    const client = createClient({
      url: server.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${product.secret.dev}` },
      retryAttempts: 0,
      lazy: true,
    });
    const before = t.services.events.subscriberCount;
    const subs = [1, 2, 3].map(() =>
      subscribeWs<{ id: string }>(client, EVENTS_SUB, {}, 'sessionEvents'),
    );
    await waitUntil(() => t.services.events.subscriberCount === before + 3, '3 subscriptions');
    const over = subscribeWs<{ id: string }>(client, EVENTS_SUB, {}, 'sessionEvents');
    await over.ended;
    expect(errorCodeOf(over)).toBe('LIMIT_EXCEEDED');
    await start(t, product.secret.dev, tag);
    for (const sub of subs) expect(await sub.waitFor(1)).toHaveLength(1);
    for (const sub of subs) sub.stop();
    await client.dispose();
  });

  it('caps subscriptions per key over WebSocket and SSE together (MAX_SUBSCRIPTIONS_PER_KEY); other keys are unaffected', async ({
    t,
  }) => {
    const server = await serve(t, { websocket: { maxConnectionsPerKey: 10 } });
    const a = await newProduct(t);
    const b = await newProduct(t);
    const wsOf = (key: string) =>
      createClient({
        url: server.wsUrl,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${key}` },
        retryAttempts: 0,
        lazy: true,
      });
    const clients = [wsOf(a.secret.dev), wsOf(a.secret.dev)];
    const before = t.services.events.subscriberCount;
    const open = [
      subscribeWs(clients[0]!, EVENTS_SUB, {}, 'sessionEvents'),
      subscribeWs(clients[1]!, EVENTS_SUB, {}, 'sessionEvents'),
      subscribeSse(server.url, a.secret.dev, EVENTS_SUB, {}, 'sessionEvents'),
      subscribeSse(server.url, a.secret.dev, EVENTS_SUB, {}, 'sessionEvents'),
    ];
    await waitUntil(() => t.services.events.subscriberCount === before + 4, '4 subscriptions');
    const overSse = subscribeSse(server.url, a.secret.dev, EVENTS_SUB, {}, 'sessionEvents');
    await overSse.ended;
    expect(errorCodeOf(overSse)).toBe('LIMIT_EXCEEDED');
    const overWs = subscribeWs(clients[0]!, EVENTS_SUB, {}, 'sessionEvents');
    await overWs.ended;
    expect(errorCodeOf(overWs)).toBe('LIMIT_EXCEEDED');

    const otherClient = wsOf(b.secret.dev);
    const other = subscribeWs(otherClient, EVENTS_SUB, {}, 'sessionEvents');
    await waitUntil(() => t.services.events.subscriberCount === before + 5, 'the other key');

    // Ending one frees its place.
    open[2]!.stop();
    await waitUntil(() => t.services.events.subscriberCount === before + 4, 'one to end');
    const again = subscribeSse(server.url, a.secret.dev, EVENTS_SUB, {}, 'sessionEvents');
    await waitUntil(() => t.services.events.subscriberCount === before + 5, 'a new one');
    expect(again.errors).toEqual([]);
    for (const sub of [...open, other, again]) sub.stop();
    for (const client of [...clients, otherClient]) await client.dispose();
  });
});

describe('replay backpressure', () => {
  it('200 replays on a socket that never reads hold at most a page each, and a consumer that stays too slow is closed with 4431', async ({
    t,
  }) => {
    const app = await createTestApp({
      database: t.database,
      subscriptionLimits: { maxPerKey: 1_000, slowConsumerMs: 5_000 },
    });
    try {
      const server = await serve(app, {
        // Keep-alive would terminate this socket (it reads no ping) after 1-2 intervals; on a busy
        // machine the 200 replays can take longer than that to start. This test is about the
        // slow-consumer close; the keep-alive has a test of its own below.
        websocket: {
          maxSubscriptionsPerConnection: 500,
          maxBufferedBytes: 65_536,
          keepAliveMs: 600_000,
        },
      });
      const product = await newProduct(app);
      const key = product.secret.dev;
      const tag = await newConfig(app, key);
      const sessions = 150;
      for (let i = 0; i < sessions; i += 50) {
        await Promise.all(
          Array.from({ length: 50 }, (_, j) =>
            start(app, key, tag, {
              userId: 'one-user',
              details: { username: `u${i + j}`, email: 'u@x.io' },
            }),
          ),
        );
      }
      await ok(app.app, {
        key,
        query: `mutation($tag: String!) { revokeAllSessions(tag: $tag, identifier: "one-user") { count } }`,
        variables: { tag },
      });
      const total = sessions * 2; // STARTED and REVOKED each

      const { ws } = await authed(server.wsUrl, key);
      const received = new Map<string, number[]>();
      let closeCode = 0;
      ws.on('message', (data) => {
        const message = JSON.parse(String(data)) as {
          id?: string;
          type: string;
          payload?: { data?: { sessionEvents?: { id: string } } };
        };
        const event = message.payload?.data?.sessionEvents;
        if (message.type === 'next' && message.id && event) {
          received.set(message.id, [...(received.get(message.id) ?? []), Number(event.id)]);
        }
      });
      ws.on('close', (code) => (closeCode = code));
      // Stop reading: what the server sends piles up in the kernel, then on the server.
      (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
      const subscriptions = 200;
      for (let i = 0; i < subscriptions; i++) {
        ws.send(
          JSON.stringify({
            id: String(i),
            type: 'subscribe',
            payload: { query: EVENTS_SUB, variables: { after: '0' } },
          }),
        );
      }
      const bound = subscriptions * SUBSCRIBER_PAGE;
      let most = 0;
      let peak = 0;
      await waitUntil(
        () => {
          most = Math.max(most, app.services.events.pendingEvents);
          if (most > bound) throw new Error(`${most} events pending, more than ${bound}`);
          peak = Math.max(peak, app.services.events.subscriberCount);
          return peak === subscriptions;
        },
        'every replay to start',
        // A liveness bound: 200 replays read from the database at once, on a busy machine.
        120_000,
      );
      // Replays wait for the client; the slow-consumer timeout then ends them all.
      await waitUntil(
        () => {
          most = Math.max(most, app.services.events.pendingEvents);
          if (most > bound) throw new Error(`${most} events pending, more than ${bound}`);
          return app.services.events.subscriberCount === 0;
        },
        'the slow consumer to be dropped',
        60_000,
      );
      expect(most).toBeLessThanOrEqual(bound);
      expect(most).toBeLessThan(subscriptions * total);

      // Reading again, the client finds a prefix of the events per subscription, in order, and
      // the close code that says why it was dropped.
      (ws as unknown as { _socket: { resume(): void } })._socket.resume();
      await waitUntil(() => closeCode !== 0, 'the close frame');
      expect(closeCode).toBe(4431);
      for (const ids of received.values()) {
        for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1]!);
      }

      // A client that reads gets every event, across pages, each once, then live ones.
      const { ws: reader } = await authed(server.wsUrl, key);
      const got: number[] = [];
      reader.on('message', (data) => {
        const event = (
          JSON.parse(String(data)) as { payload?: { data?: { sessionEvents?: { id: string } } } }
        ).payload?.data?.sessionEvents;
        if (event) got.push(Number(event.id));
      });
      reader.send(
        JSON.stringify({
          id: 'r',
          type: 'subscribe',
          payload: { query: EVENTS_SUB, variables: { after: '0' } },
        }),
      );
      await start(app, key, tag, { userId: 'late', details: { username: 'l', email: 'l@x.io' } });
      await waitUntil(() => got.length === total + 1, `${total + 1} events`, 30_000);
      expect(new Set(got).size).toBe(got.length);
      for (let i = 1; i < got.length; i++) expect(got[i]).toBeGreaterThan(got[i - 1]!);
      reader.close();
    } finally {
      await app.close();
    }
  }, 240_000);
});

describe('TRUST_PROXY_HOPS over WebSocket', () => {
  it('a session started over WebSocket with device.fromRequest records the forwarded client address, as over HTTP', async ({
    t,
  }) => {
    const server = await serve(t);
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    class ProxiedWebSocket extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols, { headers: { 'x-forwarded-for': '10.0.0.1, 203.0.113.77' } });
      }
    }
    const client = createClient({
      url: server.wsUrl,
      webSocketImpl: ProxiedWebSocket,
      connectionParams: { authorization: `Bearer ${product.secret.dev}` },
      retryAttempts: 0,
    });
    const result = await new Promise<{ data?: { startSession?: { sessionId: string } } }>(
      (resolve, reject) => {
        let value: unknown;
        client.subscribe(
          {
            query: `mutation($input: StartSessionInput!) { startSession(input: $input) { sessionId } }`,
            variables: {
              input: {
                tag,
                data: { userId: 'ws-user', details: { username: 'u', email: 'e' } },
                device: { fromRequest: true },
              },
            },
          },
          { next: (v) => (value = v), error: reject, complete: () => resolve(value as never) },
        );
      },
    );
    await client.dispose();
    const sessionId = result.data!.startSession!.sessionId;
    const data = await ok<{ session: { device: { ip: string } } }>(t.app, {
      key: product.secret.dev,
      query: `query($id: ID!) { session(id: $id) { device { ip } } }`,
      variables: { id: sessionId },
    });
    expect(data.session.device.ip).toBe('203.0.113.77');
  });
});

import type { AddressInfo, Socket } from 'node:net';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { createHttpServer, type HttpServer, type HttpServerOptions } from '../../src/server.js';
import type { TestApp } from './app.js';

/** The test app behind a real HTTP server on a free port (for WebSocket and SSE clients). */
export async function listen(
  t: TestApp,
  options: HttpServerOptions = {},
): Promise<{ http: HttpServer; url: string; wsUrl: string; close(): Promise<void> }> {
  const http = createHttpServer(t.app, t.services, options);
  // Upgraded (WebSocket) sockets are not the HTTP server's to close: track every socket.
  const sockets = new Set<Socket>();
  http.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => http.server.listen(0, '127.0.0.1', resolve));
  const { port } = http.server.address() as AddressInfo;
  return {
    http,
    url: `http://127.0.0.1:${port}/graphql`,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    close: async () => {
      http.server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => http.server.close(() => resolve()));
    },
  };
}

export interface Received<T> {
  readonly items: T[];
  /** `performance.now()` when each item arrived (same index as `items`). */
  readonly times: number[];
  readonly errors: unknown[];
  /** Resolves when `n` items have arrived (rejects after `timeoutMs`). */
  waitFor(n: number, timeoutMs?: number): Promise<T[]>;
  /** Resolves when the subscription ends (complete or error). */
  readonly ended: Promise<void>;
  stop(): void;
}

function collector<T>() {
  const items: T[] = [];
  const times: number[] = [];
  const errors: unknown[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  let endResolve!: () => void;
  const ended = new Promise<void>((r) => (endResolve = r));
  const notify = () => {
    for (const w of [...waiters]) {
      if (items.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  return {
    items,
    times,
    errors,
    ended,
    push(item: T) {
      items.push(item);
      times.push(performance.now());
      notify();
    },
    end(error?: unknown) {
      if (error !== undefined) errors.push(error);
      endResolve();
    },
    waitFor(n: number, timeoutMs = 45_000): Promise<T[]> {
      if (items.length >= n) return Promise.resolve(items.slice(0, n));
      return new Promise<T[]>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `waited ${timeoutMs} ms for ${n} items, got ${items.length}; errors: ${JSON.stringify(errors)}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve(items.slice(0, n));
          },
        });
      });
    },
  };
}

/** A real graphql-ws client. */
export function wsClient(wsUrl: string, key: string | undefined): Client {
  return createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: key ? { authorization: `Bearer ${key}` } : {},
    retryAttempts: 0,
    lazy: true,
  });
}

/** Subscribes over WebSocket and collects the `field` of each payload. */
export function subscribeWs<T>(
  client: Client,
  query: string,
  variables: Record<string, unknown>,
  field: string,
): Received<T> {
  const c = collector<T>();
  const dispose = client.subscribe<Record<string, T>>(
    { query, variables },
    {
      next: (value) => {
        if (value.errors) c.end(value.errors);
        else if (value.data) c.push(value.data[field] as T);
      },
      error: (error) => c.end(error ?? 'error'),
      complete: () => c.end(),
    },
  );
  return { ...c, stop: dispose };
}

/** Subscribes over GraphQL over SSE (Yoga's native transport) and collects `field` of each payload. */
export function subscribeSse<T>(
  url: string,
  key: string | undefined,
  query: string,
  variables: Record<string, unknown>,
  field: string,
): Received<T> & { readonly status: Promise<number> } {
  const c = collector<T>();
  const abort = new AbortController();
  let statusResolve!: (n: number) => void;
  const status = new Promise<number>((r) => (statusResolve = r));
  void (async () => {
    try {
      const response = await fetch(url, {
        method: 'POST',
        signal: abort.signal,
        headers: {
          accept: 'text/event-stream',
          'content-type': 'application/json',
          ...(key ? { authorization: `Bearer ${key}` } : {}),
        },
        body: JSON.stringify({ query, variables }),
      });
      statusResolve(response.status);
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let split: number;
        while ((split = buffer.indexOf('\n\n')) >= 0) {
          const message = buffer.slice(0, split);
          buffer = buffer.slice(split + 2);
          const event = /^event: (.*)$/m.exec(message)?.[1];
          const data = message
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trimStart())
            .join('\n');
          if (event === 'complete') {
            c.end();
            return;
          }
          if (!data) continue;
          const payload = JSON.parse(data) as { data?: Record<string, T>; errors?: unknown[] };
          if (payload.errors) c.end(payload.errors);
          else if (payload.data) c.push(payload.data[field] as T);
        }
      }
      c.end();
    } catch (error) {
      if (!abort.signal.aborted) c.end(error);
      else c.end();
    }
  })();
  return { ...c, status, stop: () => abort.abort() };
}

/** The graphql-ws URL of a server's HTTP GraphQL URL (`localhost` pinned to IPv4). */
export function wsUrlOf(httpUrl: string): string {
  return httpUrl.replace(/^http/, 'ws').replace('//localhost:', '//127.0.0.1:');
}

/** Resolves with the close code of the client's next socket close. */
export function nextCloseCode(client: Client): Promise<number> {
  return new Promise<number>((resolve) => {
    const off = client.on('closed', (event) => {
      off();
      resolve((event as { code: number }).code);
    });
  });
}

/**
 * Polls `predicate` until it holds; fails with `what` after `timeoutMs`. The default is a liveness
 * bound, not an expectation of speed: on a quiet machine these waits end in milliseconds, and a
 * CI machine running every test file at once (PGlite serialising each file's statements) has
 * taken over 10 s to register a subscription.
 */
export async function waitUntil(
  predicate: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 45_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The `extensions.code` of the first GraphQL error a subscription ended with, if any. */
export function errorCodeOf(received: Received<unknown>): string | undefined {
  const first = received.errors[0];
  const error = Array.isArray(first) ? (first[0] as unknown) : first;
  const code = (error as { extensions?: { code?: unknown } } | undefined)?.extensions?.code;
  return typeof code === 'string' ? code : undefined;
}

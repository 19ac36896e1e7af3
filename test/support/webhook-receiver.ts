import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import {
  DEFAULT_WEBHOOK_SETTINGS,
  type WebhookSettings,
} from '../../src/domain/webhooks/settings.js';

/** One request the receiver got. */
export interface Received {
  readonly id: string;
  readonly timestamp: string;
  readonly signature: string;
  readonly body: string;
  readonly headers: IncomingMessage['headers'];
}

/**
 * What the receiver answers a request with: a status, or `'hang'` (never answer), decided per
 * request (`n` counts every request, from 1).
 */
export type Answer = (request: Received, n: number) => number | 'hang';

/** A real HTTP server receiving webhooks on 127.0.0.1, recording every request. */
export interface Receiver {
  readonly url: string;
  readonly requests: Received[];
  /** Requests answered 2xx, in arrival order. */
  readonly accepted: Received[];
  answer: Answer;
  /** Resolves once `predicate` holds (checked on every request), or rejects after `limitMs`. */
  until(predicate: () => boolean, limitMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(answer: Answer = () => 204): Promise<Receiver> {
  const requests: Received[] = [];
  const accepted: Received[] = [];
  const waiters = new Set<() => void>();
  const hanging = new Set<ServerResponse>();
  const receiver: Receiver = {
    url: '',
    requests,
    accepted,
    answer,
    until(predicate, limitMs = 120_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (predicate()) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        // A liveness bound, not a timing claim.
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`receiver: condition not met after ${requests.length} requests`));
        }, limitMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const received: Received = {
        id: String(req.headers['webhook-id']),
        timestamp: String(req.headers['webhook-timestamp']),
        signature: String(req.headers['webhook-signature']),
        body,
        headers: req.headers,
      };
      requests.push(received);
      const status = receiver.answer(received, requests.length);
      if (status === 'hang') {
        hanging.add(res);
      } else {
        if (status >= 200 && status < 300) accepted.push(received);
        res.statusCode = status;
        res.end();
      }
      for (const waiter of [...waiters]) waiter();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (receiver as { url: string }).url =
    `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  return receiver;
}

/** Verifies a received request with the official `standardwebhooks` library; returns its payload. */
export function verified(secret: string, request: Received): WebhookPayload {
  return new Webhook(secret).verify(request.body, {
    'webhook-id': request.id,
    'webhook-timestamp': request.timestamp,
    'webhook-signature': request.signature,
  }) as WebhookPayload;
}

export interface WebhookPayload {
  type: string;
  timestamp: string;
  data: {
    id: string;
    type: string;
    sessionId: string;
    tag: string;
    identifier: string;
    reason: string | null;
    at: string;
  };
}

/** The payload's event id of a request, as a number. */
export const eventIdOf = (request: Received) =>
  Number((JSON.parse(request.body) as WebhookPayload).data.id);

/**
 * The first arrival of each `webhook-id`, in arrival order: what an idempotent receiver keeps.
 */
export function firstArrivals(requests: readonly Received[]): Received[] {
  const seen = new Set<string>();
  return requests.filter((r) => (seen.has(r.id) ? false : (seen.add(r.id), true)));
}

/** Fast retries and polling, and loopback receivers allowed (the test's own HTTP servers). */
export const TEST_WEBHOOKS: WebhookSettings = {
  ...DEFAULT_WEBHOOK_SETTINGS,
  allowPrivateUrls: true,
  retryBaseMs: 20,
  pollIntervalMs: 100,
  // Long enough that a receiver in a busy test process is not taken for a failing one (each
  // timeout counts toward the disable and lengthens the backoff).
  timeoutMs: 10_000,
  maxAttempts: 50,
  // Every test instance disables at the same run (instances share their configuration).
  disableAfterFailures: 3,
};

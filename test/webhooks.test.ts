import { expect } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { pruneDeliveries } from '../src/domain/webhooks/deliveries.js';
import { sendWebhook } from '../src/workers/webhook-sender.js';
import type { TestApp } from './support/app.js';
import { TEST_SESSION_SECRET } from './support/server-process.js';
import { newConfig, newProduct, start, REVOKE } from './support/fixtures.js';
import { failure, gql, ok } from './support/graphql.js';
import {
  eventIdOf,
  firstArrivals,
  startReceiver,
  TEST_WEBHOOKS,
  verified,
} from './support/webhook-receiver.js';
import { describe, it, test } from './support/test.js';

const CREATE = `mutation($input: CreateWebhookEndpointInput!, $product: String, $env: String) {
  createWebhookEndpoint(input: $input, product: $product, env: $env) { secret endpoint { id url enabled eventTypes env } } }`;
const ENDPOINT = `query($id: ID!) { webhookEndpoint(id: $id) { id enabled disabledReason failureRun
  deliveries(first: 100) { id messageId eventId eventType status attempts nextAttemptAt lastResponseCode
    attemptLog { succeeded responseCode latencyMs error nextAttemptAt } } } }`;

async function createEndpoint(
  t: TestApp,
  key: string,
  input: Record<string, unknown>,
): Promise<{ id: string; secret: string }> {
  const data = await ok(t.app, { key, query: CREATE, variables: { input } });
  return { id: data.createWebhookEndpoint.endpoint.id, secret: data.createWebhookEndpoint.secret };
}

/** Starts `n` sessions, `parallel` at a time: one STARTED event each. */
async function startMany(t: TestApp, key: string, tag: string, n: number, parallel = 25) {
  const ids: string[] = [];
  for (let i = 0; i < n; i += parallel) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(parallel, n - i) }, (_, j) =>
        start(t, key, tag, { userId: `u-${i + j}`, details: { username: 'x', email: 'x@y.z' } }),
      ),
    );
    ids.push(...batch.map((s) => s.sessionId));
  }
  return ids;
}

/**
 * One secret for every instance on the test database, as production requires: every test
 * app's worker may serve any endpoint there (those of the other webhook test file too).
 */
const SECRET = TEST_SESSION_SECRET;
test.override('appOptions', { webhooks: TEST_WEBHOOKS, sessionSecret: SECRET });

const increasing = (ids: number[]) => ids.every((id, i) => i === 0 || id > ids[i - 1]!);

describe('webhooks', () => {
  it('signs every delivery so the standardwebhooks library verifies it; the payload is the event as the subscription shows it, with no token, key or session data', async ({
    t,
    product,
    config: tag,
  }) => {
    const receiver = await startReceiver();
    try {
      const endpoint = await createEndpoint(t, product.secret.dev, {
        url: receiver.url,
        description: 'audit',
      });
      expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      const session = await start(t, product.secret.dev, tag, {
        userId: 'ada',
        details: { username: 'ada-secret-name', email: 'ada@example.com' },
      });
      await ok(t.app, {
        key: product.secret.dev,
        query: REVOKE,
        variables: { tag, sessionId: session.sessionId },
      });
      await receiver.until(() => receiver.accepted.length >= 2);
      const payloads = receiver.accepted.map((r) => verified(endpoint.secret, r));
      expect(payloads.map((p) => p.type)).toEqual(['session.started', 'session.revoked']);
      const events = await ok(t.app, {
        key: product.secret.dev,
        query: `query { webhookEndpoint(id: "${endpoint.id}") { deliveries { eventId messageId } } }`,
      });
      expect(payloads[1]!.data).toMatchObject({
        type: 'REVOKED',
        sessionId: session.sessionId,
        tag,
        identifier: 'ada',
        reason: 'revoked',
      });
      expect(receiver.accepted.map((r) => r.id).sort()).toEqual(
        events.webhookEndpoint.deliveries.map((d: { messageId: string }) => d.messageId).sort(),
      );
      for (const request of receiver.requests) {
        expect(request.body).not.toContain(session.token);
        expect(request.body).not.toContain(session.refreshToken);
        expect(request.body).not.toContain('ada-secret-name');
        expect(request.body).not.toContain(product.secret.dev);
        // A forged signature fails.
        expect(() =>
          new Webhook(endpoint.secret).verify(request.body + ' ', {
            'webhook-id': request.id,
            'webhook-timestamp': request.timestamp,
            'webhook-signature': request.signature,
          }),
        ).toThrow();
      }
    } finally {
      await receiver.close();
    }
  });

  it('1,000 events across a receiver that fails its first tries and then recovers arrive exactly once each, in order', async ({
    t,
  }) => {
    const own = await newProduct(t);
    const ownTag = await newConfig(t, own.secret.dev);
    // Fails its first 2 requests (an outage), then each 7th event's first try: never 3 in a row.
    const tries = new Map<string, number>();
    const receiver = await startReceiver((request, n) => {
      const seen = (tries.get(request.id) ?? 0) + 1;
      tries.set(request.id, seen);
      if (n <= 2) return 503;
      return eventIdOf(request) % 7 === 0 && seen <= 1 ? 500 : 200;
    });
    try {
      const endpoint = await createEndpoint(t, own.secret.dev, { url: receiver.url });
      await startMany(t, own.secret.dev, ownTag, 1_000);
      await receiver.until(() => firstArrivals(receiver.accepted).length >= 1_000, 300_000);
      // Let anything extra arrive, then check: each webhook-id accepted once, events in order.
      await new Promise((r) => setTimeout(r, 500));
      // At least once: an answer that came after the attempt's timeout (a loaded machine) is
      // sent again. A receiver that keeps each webhook-id once has every event once, in order.
      const kept = firstArrivals(receiver.accepted);
      const ids = kept.map(eventIdOf);
      expect(ids).toHaveLength(1_000);
      expect(new Set(ids).size).toBe(1_000);
      expect(increasing(ids)).toBe(true);
      for (const r of receiver.accepted.slice(0, 5)) verified(endpoint.secret, r);
      expect(receiver.requests.length).toBeGreaterThan(1_000 + 140);
      const view = await ok(t.app, {
        key: own.secret.dev,
        query: `query { webhookEndpoint(id: "${endpoint.id}") { failureRun deliveries(first: 100, status: DELIVERED) { status } } }`,
      });
      expect(view.webhookEndpoint.failureRun).toBe(0);
      expect(view.webhookEndpoint.deliveries).toHaveLength(100);
    } finally {
      await receiver.close();
    }
  }, 600_000);

  it('records attempts per delivery (status, response code, latency, next retry), disables an endpoint after a run of failures, and redelivers on demand', async ({
    t,
    instance,
  }) => {
    const app = await instance({
      sessionSecret: SECRET,
      webhooks: { ...TEST_WEBHOOKS, disableAfterFailures: 3, retryBaseMs: 10 },
    });
    const receiver = await startReceiver(() => 500);
    try {
      const own = await newProduct(app);
      const ownTag = await newConfig(app, own.secret.dev);
      const endpoint = await createEndpoint(app, own.secret.dev, { url: receiver.url });
      await start(app, own.secret.dev, ownTag);
      await receiver.until(() => receiver.requests.length >= 3);
      let view = await ok(app.app, {
        key: own.secret.dev,
        query: ENDPOINT,
        variables: { id: endpoint.id },
      });
      for (let i = 0; i < 100 && view.webhookEndpoint.enabled; i++) {
        await new Promise((r) => setTimeout(r, 50));
        view = await ok(app.app, {
          key: own.secret.dev,
          query: ENDPOINT,
          variables: { id: endpoint.id },
        });
      }
      // (The suite's other instance, with a higher setting, may make some of the attempts.)
      expect(view.webhookEndpoint.enabled).toBe(false);
      const failures = view.webhookEndpoint.failureRun as number;
      expect(failures).toBeGreaterThanOrEqual(3);
      expect(view.webhookEndpoint.disabledReason).toBe(`${failures} failed attempts in a row`);
      const [delivery] = view.webhookEndpoint.deliveries;
      expect(delivery).toMatchObject({
        status: 'PENDING',
        attempts: failures,
        lastResponseCode: 500,
      });
      expect(delivery.attemptLog).toHaveLength(failures);
      for (const attempt of delivery.attemptLog) {
        expect(attempt).toMatchObject({ succeeded: false, responseCode: 500, error: 'HTTP 500' });
        expect(attempt.latencyMs).toBeGreaterThanOrEqual(0);
        expect(attempt.nextAttemptAt).not.toBeNull();
      }
      const metrics = (
        await Promise.all(
          [t, app].map(async (i) => (await i.app.fetch('http://test.local/metrics')).text()),
        )
      ).join('\n');
      // Said by whichever instance made the disabling attempt: a log line and a metric. Another
      // test file's instances with a delivery worker share this database and may have made it
      // (delivery is claimed across the whole database), so check what ours said when it was ours.
      if (/webhook_endpoints_disabled_total [1-9]/.test(metrics)) {
        expect([...t.logs, ...app.logs].join('')).toContain('webhook endpoint disabled');
      } else {
        expect(view.webhookEndpoint.enabled).toBe(false);
      }
      // No more attempts while disabled.
      const requestsWhenDisabled = receiver.requests.length;
      await new Promise((r) => setTimeout(r, 400));
      expect(receiver.requests.length).toBe(requestsWhenDisabled);

      // The receiver recovers; the endpoint is enabled again; the event is delivered, then
      // redelivered on demand with the same webhook-id.
      // Attempts are counted by the instance that made them, once it has the answer: wait for
      // both to count the two successes (a liveness bound).
      const successes = async () => {
        let n = 0;
        for (const instance of [t, app]) {
          const text = await (await instance.app.fetch('http://test.local/metrics')).text();
          n += Number(/webhook_attempts_total\{outcome="success"\} (\d+)/.exec(text)?.[1] ?? 0);
        }
        return n;
      };
      const before = await successes();
      receiver.answer = () => 200;
      await ok(app.app, {
        key: own.secret.dev,
        query: `mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: { enabled: true }) { enabled failureRun } }`,
        variables: { id: endpoint.id },
      });
      await receiver.until(() => receiver.accepted.length === 1);
      for (let i = 0; i < 100 && view.webhookEndpoint.deliveries[0].status !== 'DELIVERED'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        view = await ok(app.app, {
          key: own.secret.dev,
          query: ENDPOINT,
          variables: { id: endpoint.id },
        });
      }
      expect(view.webhookEndpoint.deliveries[0]).toMatchObject({
        status: 'DELIVERED',
        attempts: failures + 1,
        lastResponseCode: 200,
        nextAttemptAt: null,
      });
      const redelivered = await ok(app.app, {
        key: own.secret.dev,
        query: `mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id status attemptLog { succeeded } } }`,
        variables: { id: delivery.id },
      });
      expect(redelivered.redeliverWebhook.status).toBe('PENDING');
      expect(redelivered.redeliverWebhook.attemptLog).toHaveLength(failures + 1);
      expect(redelivered.redeliverWebhook.attemptLog.at(-1).succeeded).toBe(true);
      await receiver.until(() => receiver.accepted.length === 2);
      expect(receiver.accepted[1]!.id).toBe(receiver.accepted[0]!.id);
      for (let i = 0; i < 100 && (await successes()) < before + 2; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await successes()).toBe(before + 2);
    } finally {
      await receiver.close();
    }
  }, 300_000);

  it('a hanging endpoint never holds back another endpoint, nor starts and verifies', async ({
    t,
  }) => {
    const own = await newProduct(t);
    const ownTag = await newConfig(t, own.secret.dev);
    const stuck = await startReceiver(() => 'hang');
    const healthy = await startReceiver();
    try {
      await createEndpoint(t, own.secret.dev, { url: stuck.url });
      await createEndpoint(t, own.secret.dev, { url: healthy.url });
      await startMany(t, own.secret.dev, ownTag, 20, 10);
      await stuck.until(() => stuck.requests.length >= 1);
      // While the first request to the stuck endpoint has no answer, the other gets them all.
      await healthy.until(() => healthy.accepted.length >= 20);
      expect(increasing(firstArrivals(healthy.accepted).map(eventIdOf))).toBe(true);
      expect(stuck.accepted).toHaveLength(0);
      const session = await start(t, own.secret.dev, ownTag);
      await ok(t.app, {
        key: own.secret.dev,
        query: `query($tag: String!, $token: String!) { verifySession(tag: $tag, token: $token) { sessionId } }`,
        variables: { tag: ownTag, token: session.token },
      });
    } finally {
      await stuck.close();
      await healthy.close();
    }
  });

  it('sends only the event types of its filter', async ({ t }) => {
    const own = await newProduct(t);
    const ownTag = await newConfig(t, own.secret.dev);
    const receiver = await startReceiver();
    try {
      await createEndpoint(t, own.secret.dev, { url: receiver.url, eventTypes: ['REVOKED'] });
      const a = await start(t, own.secret.dev, ownTag);
      await start(t, own.secret.dev, ownTag);
      await ok(t.app, {
        key: own.secret.dev,
        query: REVOKE,
        variables: { tag: ownTag, sessionId: a.sessionId },
      });
      await receiver.until(() => receiver.accepted.length >= 1);
      await new Promise((r) => setTimeout(r, 300));
      expect(firstArrivals(receiver.accepted).map((r) => JSON.parse(r.body).type)).toEqual([
        'session.revoked',
      ]);
    } finally {
      await receiver.close();
    }
  });

  it('deletes finished deliveries after their retention, keeping pending ones', async ({ t }) => {
    const own = await newProduct(t);
    const ownTag = await newConfig(t, own.secret.dev);
    const receiver = await startReceiver();
    try {
      const endpoint = await createEndpoint(t, own.secret.dev, { url: receiver.url });
      await start(t, own.secret.dev, ownTag);
      await receiver.until(() => receiver.accepted.length >= 1);
      const deliveries = async () =>
        (
          await ok(t.app, {
            key: own.secret.dev,
            query: ENDPOINT,
            variables: { id: endpoint.id },
          })
        ).webhookEndpoint.deliveries as { status: string }[];
      for (let i = 0; i < 100 && (await deliveries())[0]?.status !== 'DELIVERED'; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await deliveries()).toHaveLength(1);
      await pruneDeliveries(t.database.db, 3_600, 1_000); // (older deliveries of other runs may go)
      expect(await deliveries()).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 1_500));
      // (Other tests' finished deliveries on this database go too, a batch at a time.)
      let pruned = 0;
      for (;;) {
        const batch = await pruneDeliveries(t.database.db, 1, 1_000);
        if (batch === 0) break;
        pruned += batch;
      }
      expect(pruned).toBeGreaterThanOrEqual(1);
      expect(await deliveries()).toHaveLength(0);
    } finally {
      await receiver.close();
    }
  });

  it('a rotated secret signs beside the previous one during the overlap, and alone after it', async ({
    t,
  }) => {
    const own = await newProduct(t);
    const ownTag = await newConfig(t, own.secret.dev);
    const receiver = await startReceiver();
    try {
      const endpoint = await createEndpoint(t, own.secret.dev, { url: receiver.url });
      const rotate = async (overlapSeconds: number) =>
        (
          await ok(t.app, {
            key: own.secret.dev,
            query: `mutation($id: ID!, $o: Int) { rotateWebhookSecret(id: $id, overlapSeconds: $o) { secret endpoint { previousSecretExpiresAt } } }`,
            variables: { id: endpoint.id, o: overlapSeconds },
          })
        ).rotateWebhookSecret;
      const second = await rotate(3_600);
      expect(second.secret).not.toBe(endpoint.secret);
      expect(second.endpoint.previousSecretExpiresAt).not.toBeNull();
      await start(t, own.secret.dev, ownTag);
      await receiver.until(() => receiver.accepted.length >= 1);
      const during = receiver.accepted[0]!;
      expect(during.signature.split(' ')).toHaveLength(2);
      // Receivers on the old secret and on the new one both verify it.
      verified(endpoint.secret, during);
      verified(second.secret, during);

      const third = await rotate(0);
      expect(third.endpoint.previousSecretExpiresAt).toBeNull();
      await start(t, own.secret.dev, ownTag);
      await receiver.until(() => firstArrivals(receiver.accepted).length >= 2);
      const after = firstArrivals(receiver.accepted)[1]!;
      expect(after.signature.split(' ')).toHaveLength(1);
      verified(third.secret, after);
      expect(() => verified(second.secret, after)).toThrow();
      expect(() => verified(endpoint.secret, after)).toThrow();
    } finally {
      await receiver.close();
    }
  });

  it('refuses a publishable key, another env’s or product’s key, and inputs past their limits; the admin key manages any env', async ({
    t,
    product,
  }) => {
    const other = await newProduct(t);
    const endpoint = await createEndpoint(t, product.secret.dev, { url: 'http://127.0.0.1:9/x' });
    const input = { url: 'http://127.0.0.1:9/x' };
    expect(
      (await failure(t.app, { key: product.publishable, query: CREATE, variables: { input } }))
        .code,
    ).toBe('FORBIDDEN');
    expect(
      (
        await failure(t.app, {
          key: product.publishable,
          query: `query { webhookEndpoints { id } }`,
        })
      ).code,
    ).toBe('FORBIDDEN');
    // Another env's and another product's keys do not see it.
    for (const key of [product.secret.prd, other.secret.dev]) {
      expect(
        (
          await failure(t.app, {
            key,
            query: `query($id: ID!) { webhookEndpoint(id: $id) { id } }`,
            variables: { id: endpoint.id },
          })
        ).code,
      ).toBe('NOT_FOUND');
      expect(
        (
          await failure(t.app, {
            key,
            query: `mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }`,
            variables: { id: endpoint.id },
          })
        ).code,
      ).toBe('NOT_FOUND');
      expect(
        (
          await failure(t.app, {
            key,
            query: `mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }`,
            variables: { id: endpoint.id },
          })
        ).code,
      ).toBe('NOT_FOUND');
      const listed = await ok(t.app, { key, query: `query { webhookEndpoints { id } }` });
      expect(listed.webhookEndpoints.map((e: { id: string }) => e.id)).not.toContain(endpoint.id);
    }
    // A secret key naming another product or env.
    expect(
      (
        await failure(t.app, {
          key: product.secret.dev,
          query: CREATE,
          variables: { input, product: other.tag, env: 'dev' },
        })
      ).code,
    ).toBe('FORBIDDEN');
    expect(
      (
        await failure(t.app, {
          key: product.secret.dev,
          query: CREATE,
          variables: { input, product: product.tag, env: 'prd' },
        })
      ).code,
    ).toBe('FORBIDDEN');
    // The admin key, naming the product and env.
    const byAdmin = await ok(t.app, {
      key: t.adminKey,
      query: CREATE,
      variables: { input, product: other.tag, env: 'prd' },
    });
    expect(byAdmin.createWebhookEndpoint.endpoint.env).toBe('prd');
    const listedPrd = await ok(t.app, {
      key: other.secret.prd,
      query: `query { webhookEndpoints { id } }`,
    });
    expect(listedPrd.webhookEndpoints).toHaveLength(1);
    // Limits on every input.
    const bad = async (fields: Record<string, unknown>) =>
      failure(t.app, {
        key: product.secret.dev,
        query: CREATE,
        variables: { input: { ...input, ...fields } },
      });
    expect((await bad({ url: `http://127.0.0.1/${'a'.repeat(2_100)}` })).field).toBe('input.url');
    expect((await bad({ description: 'd'.repeat(501) })).field).toBe('input.description');
    expect((await bad({ eventTypes: Array(21).fill('STARTED') })).field).toBe('input.eventTypes');
    expect((await bad({ url: 'ftp://example.com/' })).field).toBe('input.url');
    expect((await bad({ url: 'https://user:pw@example.com/' })).field).toBe('input.url');
    const overlap = await failure(t.app, {
      key: product.secret.dev,
      query: `mutation($id: ID!) { rotateWebhookSecret(id: $id, overlapSeconds: 999999999) { secret } }`,
      variables: { id: endpoint.id },
    });
    expect(overlap.field).toBe('overlapSeconds');
  });

  it('caps endpoints per env, even under concurrent creates', async ({ instance }) => {
    const app = await instance({
      sessionSecret: SECRET,
      webhooks: { ...TEST_WEBHOOKS, maxEndpointsPerEnv: 3 },
    });
    const own = await newProduct(app);
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        gql(app.app, {
          key: own.secret.dev,
          query: CREATE,
          variables: { input: { url: 'http://127.0.0.1:9/' } },
        }),
      ),
    );
    expect(results.filter((r) => !r.errors).length).toBe(3);
    expect(results.filter((r) => r.errors?.[0]?.extensions?.code === 'LIMIT_EXCEEDED').length).toBe(
      5,
    );
    const listed = await ok(app.app, {
      key: own.secret.dev,
      query: `query { webhookEndpoints { id } }`,
    });
    expect(listed.webhookEndpoints).toHaveLength(3);
  });
});

describe('webhook URL safety', () => {
  /**
   * `strict`: an instance that allows no private webhook URL. It delivers nothing: its worker
   * would refuse the private receivers of the file's other tests.
   */
  const it = test.extend('strict', async ({ instance }): Promise<TestApp> =>
    instance({
      webhooks: { ...TEST_WEBHOOKS, allowPrivateUrls: false, deliver: false },
      sessionSecret: SECRET,
    }),
  );

  it.for([
    'http://127.0.0.1:8080/hook',
    'http://localhost/hook',
    'http://10.1.2.3/hook',
    'http://172.16.0.1/hook',
    'http://192.168.1.1/hook',
    'http://169.254.169.254/latest/meta-data/',
    'http://100.100.100.200/',
    'http://[::1]/hook',
    'http://[fd00:ec2::254]/',
    'http://[fe80::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://0.0.0.0/',
    'http://2130706433/',
    // IPv4 in the forms the URL parser reads: hex, octal, one or two parts.
    'http://0x7f.0.0.1/',
    'http://0x7f000001/',
    'http://0177.0.0.1/',
    'http://017700000001/',
    'http://127.1/',
    'http://0xa9.0xfe.0xa9.0xfe/',
    'http://10.0x10.1/',
    'http://255.255.255.255/',
    // IPv4 inside IPv6: mapped (in each spelling), compatible (::/96), translated
    // (::ffff:0:0:0/96), NAT64 (well-known and local-use), 6to4, Teredo.
    'http://[::ffff:7f00:1]/',
    'http://[0:0:0:0:0:ffff:169.254.169.254]/',
    'http://[::ffff:10.0.0.1]/',
    'http://[::127.0.0.1]/',
    'http://[::7f00:1]/',
    'http://[::169.254.169.254]/',
    'http://[::8.8.8.8]/',
    'http://[::ffff:0:127.0.0.1]/',
    'http://[::ffff:0:8.8.8.8]/',
    'http://[64:ff9b::127.0.0.1]/',
    'http://[64:ff9b::169.254.169.254]/',
    'http://[64:ff9b:1::7f00:1]/',
    'http://[2002:7f00:1::]/',
    'http://[2002:a9fe:a9fe::1]/',
    'http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/',
    'http://[2001::7f00:1]/',
    // The other special-purpose IPv6 ranges, and what lies outside global unicast (2000::/3).
    'http://[::]/',
    'http://[0::1]/',
    'http://[::1:0:0:1]/',
    'http://[100::1]/',
    'http://[2001:2::1]/',
    'http://[2001:db8::1]/',
    'http://[2001:20::1]/',
    'http://[3fff::1]/',
    'http://[5f00::1]/',
    'http://[fc00::1]/',
    'http://[fec0::1]/',
    'http://[ff02::1]/',
    'http://[4000::1]/',
  ])('refuses an endpoint at %s', async (url, { strict }) => {
    const product = await newProduct(strict);
    const refused = await failure(strict.app, {
      key: product.secret.dev,
      query: CREATE,
      variables: { input: { url } },
    });
    expect(refused).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.url' });
  });

  it.for([
    'http://8.8.8.8/',
    'https://1.1.1.1:8443/hooks',
    'http://[2606:4700:4700::1111]/',
    'http://[2a00:1450:4001:82b::200e]/',
    // IPv4-mapped and NAT64 (64:ff9b::/96) addresses are judged by the IPv4 address they carry.
    'http://[::ffff:8.8.8.8]/',
    'http://[64:ff9b::8.8.8.8]/',
  ])('accepts an endpoint at the public address %s', async (url, { strict }) => {
    const product = await newProduct(strict);
    const created = await ok(strict.app, {
      key: product.secret.dev,
      query: CREATE,
      variables: { input: { url } },
    });
    expect(created.createWebhookEndpoint.endpoint.url).toBe(new URL(url).toString());
  });

  it('refuses https-less URLs when http is not allowed (production)', async ({ instance }) => {
    const app = await instance({
      sessionSecret: SECRET,
      webhooks: { ...TEST_WEBHOOKS, allowPrivateUrls: true, allowHttp: false },
    });
    const own = await newProduct(app);
    const refused = await failure(app.app, {
      key: own.secret.dev,
      query: CREATE,
      variables: { input: { url: 'http://127.0.0.1/' } },
    });
    expect(refused.message).toContain('https');
  });

  it('the sender connects only to addresses it checked: a name resolving to loopback is refused at connect time, as is a literal private address', async () => {
    const receiver = await startReceiver();
    try {
      const port = new URL(receiver.url).port;
      const settings = { allowPrivateUrls: false, timeoutMs: 2_000 };
      const byName = await sendWebhook(`http://localhost:${port}/hooks`, {}, '{}', settings);
      expect(byName).toMatchObject({ succeeded: false, reason: 'address_refused' });
      const byAddress = await sendWebhook(receiver.url, {}, '{}', settings);
      expect(byAddress).toMatchObject({ succeeded: false, reason: 'address_refused' });
      expect(receiver.requests).toHaveLength(0);
      // Allowed, the same request goes through.
      const allowed = await sendWebhook(receiver.url, {}, '{}', {
        ...settings,
        allowPrivateUrls: true,
      });
      expect(allowed).toMatchObject({ succeeded: true, responseCode: 204 });
    } finally {
      await receiver.close();
    }
  });

  it('the sender refuses, before dialling, a literal address that carries a blocked IPv4 address or lies in a special-purpose IPv6 range', async () => {
    const receiver = await startReceiver();
    try {
      const port = new URL(receiver.url).port;
      const settings = { allowPrivateUrls: false, timeoutMs: 2_000 };
      for (const host of [
        '[::127.0.0.1]',
        '[::ffff:0:127.0.0.1]',
        '[::ffff:7f00:1]',
        '[64:ff9b::127.0.0.1]',
        '[2002:7f00:1::]',
        '[2001:0:4136:e378:8000:63bf:80ff:fffe]',
        '0x7f.1',
      ]) {
        const sent = await sendWebhook(`http://${host}:${port}/hooks`, {}, '{}', settings);
        expect(sent, host).toMatchObject({
          succeeded: false,
          reason: 'address_refused',
          error: 'address refused',
        });
      }
      expect(receiver.requests).toHaveLength(0);
    } finally {
      await receiver.close();
    }
  });

  it('follows no redirect, reads a large answer only up to its limit, and times out a silent endpoint', async () => {
    const { createServer } = await import('node:http');
    const hits: string[] = [];
    const server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/redirect') {
        res.writeHead(307, { location: '/target' }).end();
      } else if (req.url === '/large') {
        res.writeHead(200);
        // 64 MiB it will never read.
        const chunk = Buffer.alloc(1 << 20, 97);
        let sent = 0;
        const write = () => {
          while (sent < 64 && res.write(chunk)) sent++;
          if (sent < 64) res.once('drain', write);
          else res.end();
        };
        res.on('close', () => (sent = 64));
        write();
      } else if (req.url === '/silent') {
        // never answers
      } else res.writeHead(204).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    // The endpoints that answer get a timeout no busy machine reaches; the silent one a short one.
    const settings = { allowPrivateUrls: true, timeoutMs: 30_000 };
    try {
      const redirected = await sendWebhook(`${base}/redirect`, {}, '{}', settings);
      expect(redirected).toMatchObject({
        succeeded: false,
        responseCode: 307,
        reason: 'http_status',
      });
      expect(redirected.error).toContain('redirects are not followed');
      expect(hits).not.toContain('/target');
      const large = await sendWebhook(`${base}/large`, {}, '{}', settings);
      expect(large).toMatchObject({ succeeded: true, responseCode: 200 });
      const silent = await sendWebhook(`${base}/silent`, {}, '{}', { ...settings, timeoutMs: 500 });
      expect(silent).toMatchObject({ succeeded: false, reason: 'timeout', responseCode: null });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

import type { LookupAddress } from 'node:dns';
import { expect, vi } from 'vitest';
import { sendWebhook } from '../src/workers/webhook-sender.js';
import type { TestApp } from './support/app.js';
import { newProduct } from './support/fixtures.js';
import { failure, ok } from './support/graphql.js';
import { TEST_SESSION_SECRET } from './support/server-process.js';
import { startReceiver, TEST_WEBHOOKS } from './support/webhook-receiver.js';
import { describe, test } from './support/test.js';

/**
 * What names under `.test` (a reserved TLD) resolve to in this file: the service's own lookups
 * (at creation through `node:dns/promises`, at dial time through `node:dns`) read this table;
 * any other name goes to the real resolver.
 */
const answers = vi.hoisted(() => new Map<string, string[]>());

vi.mock('node:dns', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:dns')>();
  const lookup = ((hostname: string, options: unknown, callback: unknown) => {
    const fixed = answers.get(hostname);
    if (!fixed) return (real.lookup as (...args: unknown[]) => void)(hostname, options, callback);
    const addresses: LookupAddress[] = fixed.map((address) => ({
      address,
      family: address.includes(':') ? 6 : 4,
    }));
    queueMicrotask(() =>
      (callback as (error: null, addresses: LookupAddress[]) => void)(null, addresses),
    );
  }) as typeof real.lookup;
  return { ...real, default: { ...real, lookup }, lookup };
});

vi.mock('node:dns/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:dns/promises')>();
  const lookup = (async (hostname: string, options: unknown) => {
    const fixed = answers.get(hostname);
    if (!fixed) return (real.lookup as (...args: unknown[]) => Promise<unknown>)(hostname, options);
    return fixed.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  }) as typeof real.lookup;
  return { ...real, default: { ...real, lookup }, lookup };
});

const CREATE = `mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { endpoint { id url } } }`;

/** Addresses a resolver may yield that a webhook must not reach, one form of each kind. */
const BLOCKED = [
  '127.0.0.1',
  '169.254.169.254',
  '10.0.0.1',
  '::1',
  'fd00:ec2::254',
  '::ffff:127.0.0.1',
  '::ffff:a9fe:a9fe',
  '::7f00:1',
  '::ffff:0:7f00:1',
  '64:ff9b::a9fe:a9fe',
  '64:ff9b:1::7f00:1',
  '2002:7f00:1::',
  '2001:0:4136:e378:8000:63bf:80ff:fffe',
  '100::1',
  'ff02::1',
];

let names = 0;
/** A fresh name under `.test` that resolves to `addresses`. */
function nameFor(...addresses: string[]): string {
  const name = `hook-${process.pid}-${++names}.test`;
  answers.set(name, addresses);
  return name;
}

test.override('appOptions', { webhooks: TEST_WEBHOOKS, sessionSecret: TEST_SESSION_SECRET });

describe('webhook URLs by name: every address the name resolves to is checked', () => {
  /** An instance that allows no private webhook URL and delivers nothing. */
  const it = test.extend('strict', async ({ instance }): Promise<TestApp> =>
    instance({
      webhooks: { ...TEST_WEBHOOKS, allowPrivateUrls: false, deliver: false },
      sessionSecret: TEST_SESSION_SECRET,
    }),
  );

  it.for(BLOCKED)(
    'refuses at creation a name resolving to %s, alone or after a public address',
    async (address, { strict }) => {
      const product = await newProduct(strict);
      for (const host of [nameFor(address), nameFor('8.8.8.8', address)]) {
        const refused = await failure(strict.app, {
          key: product.secret.dev,
          query: CREATE,
          variables: { input: { url: `https://${host}/hooks` } },
        });
        expect(refused).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.url' });
      }
    },
  );

  it('accepts a name resolving to public addresses only (IPv4-mapped and NAT64 forms included)', async ({
    strict,
  }) => {
    const product = await newProduct(strict);
    const host = nameFor('8.8.8.8', '2606:4700:4700::1111', '::ffff:1.1.1.1', '64:ff9b::808:808');
    const created = await ok(strict.app, {
      key: product.secret.dev,
      query: CREATE,
      variables: { input: { url: `https://${host}/hooks` } },
    });
    expect(created.createWebhookEndpoint.endpoint.url).toBe(`https://${host}/hooks`);
  });

  it('refuses at dial time a name that now resolves to a blocked address (DNS rebinding), and dials what a name resolves to when that is allowed', async () => {
    const receiver = await startReceiver();
    try {
      const port = new URL(receiver.url).port;
      const strict = { allowPrivateUrls: false, timeoutMs: 2_000 };
      for (const address of BLOCKED) {
        for (const host of [nameFor(address), nameFor('8.8.8.8', address)]) {
          const sent = await sendWebhook(`http://${host}:${port}/hooks`, {}, '{}', strict);
          expect(sent, `${host} → ${address}`).toMatchObject({
            succeeded: false,
            reason: 'address_refused',
          });
        }
      }
      expect(receiver.requests).toHaveLength(0);
      // The table above is what the sender dials: allowed, a name resolving to the receiver's
      // address reaches it.
      const allowed = await sendWebhook(`http://${nameFor('127.0.0.1')}:${port}/hooks`, {}, '{}', {
        ...strict,
        allowPrivateUrls: true,
      });
      expect(allowed).toMatchObject({ succeeded: true, responseCode: 204 });
      expect(receiver.requests).toHaveLength(1);
    } finally {
      await receiver.close();
    }
  });
});

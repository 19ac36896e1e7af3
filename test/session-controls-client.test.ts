import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
// Through the package's `exports`, as an application would import it.
import {
  createSessionClient,
  isSessionServiceError,
  type SessionClient,
} from 'session-service/client';
import { uniqueTag } from './support/fixtures.js';
import { test } from './support/test.js';

/**
 * `client`: a client of the test's product with its dev secret key (`key`); `admin`: a client with
 * the admin key, and the product and env beside it, as Ductape's constructor takes them.
 */
const it = test
  .extend('client', async ({ server, key }, { onCleanup }): Promise<SessionClient> => {
    const client = createSessionClient({ url: server.url, key });
    onCleanup(() => client.close());
    return client;
  })
  .extend('admin', async ({ t, server, product }, { onCleanup }): Promise<SessionClient> => {
    const admin = createSessionClient({
      url: server.url,
      key: t.adminKey,
      product: product.tag,
      env: 'dev',
    });
    onCleanup(() => admin.close());
    return admin;
  });
const describe = it.describe;

const config = (tag: string, period: string) => ({
  name: 'User session',
  tag,
  description: 'Signed-in users',
  schema: { userId: 'u-1', email: 'a@b.c' },
  selector: '$Session{userId}',
  expiry: 2,
  period: period as 'hours',
});

async function rejection(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('Ductape spellings in the client', () => {
  it('accepts period: "hours" (any case, singular too) and product/env beside the input', async ({
    client,
    admin,
    product,
  }) => {
    const tag = uniqueTag('c');
    const created = await client.configs.create({
      ...config(tag, 'hours'),
      product: product.tag,
      env: 'dev',
    });
    expect(created.period).toBe('HOURS');
    expect((await client.configs.update({ tag, period: 'Day' as 'days' })).period).toBe('DAYS');
    // The admin key, with the product and env of Ductape's constructor.
    const started = await admin.sessions.start({ tag, data: { userId: 'ada', email: 'a@b.c' } });
    const verified = await client.sessions.verify({
      tag,
      token: started.token,
      product: product.tag,
      env: 'dev',
    });
    expect(verified.identifier).toBe('ada');
    // A secret key naming another env is refused by the server.
    const other = await rejection(
      client.sessions.verify({ tag, token: started.token, env: 'prd' }),
    );
    expect(isSessionServiceError(other, 'FORBIDDEN')).toBe(true);
  });

  it('input mistakes are BAD_USER_INPUT naming the field, never INTERNAL_SERVER_ERROR', async ({
    client,
  }) => {
    const tag = uniqueTag('c');
    const badPeriod = await rejection(client.configs.create(config(tag, 'fortnights')));
    expect(badPeriod).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.period' });
    await client.configs.create(config(tag, 'HOURS'));
    const cases: [Promise<unknown>, string][] = [
      [
        client.sessions.start({ tag, data: { userId: 'a' }, expiresAt: 'not a date' }),
        'input.expiresAt',
      ],
      [client.sessions.start({ tag, data: { userId: 'a' }, expiresIn: 1.5 }), 'input.expiresIn'],
      [client.sessions.start({ tag: '', data: { userId: 'a' } }), 'input.tag'],
      [client.sessions.verify({ tag, token: 'x', maxAge: 0.5 }), 'maxAge'],
      [client.sessions.list({ tag, identifier: 'a', first: Number.NaN }), 'first'],
      [client.sessions.revokeStartedBefore({ tag, before: 'yesterday-ish' }), 'before'],
      [client.sessions.revokeEverywhere({ identifier: '' }), 'identifier'],
      [client.sessions.verify({ tag, token: 'x', product: '' }), 'product'],
    ];
    for (const [call, field] of cases) {
      expect(await rejection(call)).toMatchObject({ code: 'BAD_USER_INPUT', field });
    }
  });
});

describe('session controls from the client', () => {
  it('lists a user’s sessions across tags with the current one, steps up, names a device, signs out everywhere', async ({
    client,
  }) => {
    const tagA = uniqueTag('c');
    const tagB = uniqueTag('c');
    await client.configs.create(config(tagA, 'hours'));
    await client.configs.create(config(tagB, 'hours'));
    const who = uniqueTag('u');
    const a = await client.sessions.start({
      tag: tagA,
      data: { userId: who },
      device: { userAgent: 'old-agent', ip: '198.51.100.3' },
    });
    const b = await client.sessions.start({
      tag: tagB,
      data: { userId: who },
      expiresAt: new Date(Date.now() + 600_000),
    });
    const list = await client.sessions.listForUser({ identifier: who, currentToken: b.token });
    expect(list.count).toBe(2);
    expect(list.currentSessionId).toBe(b.sessionId);
    expect(list.sessions.find((s) => s.current)?.sessionId).toBe(b.sessionId);

    await sleep(1100);
    const stale = await rejection(client.sessions.verify({ tag: tagA, token: a.token, maxAge: 0 }));
    expect(isSessionServiceError(stale, 'REAUTHENTICATION_REQUIRED')).toBe(true);
    await client.sessions.markFresh({ tag: tagA, sessionId: a.sessionId });
    const fresh = await client.sessions.verify({ tag: tagA, token: a.token, maxAge: 5 });
    expect(fresh.actor).toBeNull();

    const named = await client.sessions.setDeviceName({
      tag: tagA,
      sessionId: a.sessionId,
      name: 'Work laptop',
    });
    expect(named.deviceName).toBe('Work laptop');
    const refreshed = await client.sessions.refresh({
      tag: tagA,
      refreshToken: a.refreshToken,
      device: { userAgent: 'new-agent', ip: '198.51.100.4' },
    });
    const row = await client.sessions.get({ sessionId: a.sessionId });
    expect(row?.device).toEqual({ userAgent: 'new-agent', ip: '198.51.100.4' });
    expect(row?.deviceHistory).toMatchObject([{ userAgent: 'old-agent', ip: '198.51.100.3' }]);

    const out = await client.sessions.revokeEverywhere({
      identifier: who,
      excludeCurrentSession: b.sessionId,
    });
    expect(out.count).toBe(1);
    const revoked = await rejection(client.sessions.verify({ tag: tagA, token: refreshed.token }));
    expect(isSessionServiceError(revoked, 'SESSION_REVOKED')).toBe(true);
    expect(await client.sessions.isValid({ tag: tagB, token: b.token })).toBe(true);

    const notBefore = await client.sessions.revokeStartedBefore({ tag: tagB });
    expect(notBefore).toMatchObject({ tag: tagB, count: 1 });
    expect(await client.sessions.isValid({ tag: tagB, token: b.token })).toBe(false);
  });

  it('an impersonation started through the client carries its actor', async ({
    client,
    server,
    product,
  }) => {
    const tag = uniqueTag('c');
    await client.configs.create(config(tag, 'hours'));
    const s = await client.sessions.start({ tag, data: { userId: 'ada' }, actor: 'support-1' });
    expect((await client.sessions.verify({ tag, token: s.token })).actor).toBe('support-1');
    const publishable = createSessionClient({ url: server.url, key: product.publishable });
    const refused = await rejection(publishable.sessions.listForUser({ identifier: 'ada' }));
    expect(isSessionServiceError(refused, 'FORBIDDEN')).toBe(true);
    await publishable.close();
  });
});

import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, expectTypeOf } from 'vitest';
// Through the package's `exports`, as an application would import it.
import {
  createSessionClient,
  isSessionServiceError,
  SessionServiceError,
  type CreateSessionConfigInput,
  type SessionClient,
  type ApiErrorCode,
  type SessionEvent,
  type SessionTokens,
} from 'session-service/client';
import type { ErrorCode } from '../src/domain/errors.js';
import { ductapeConfig, eventTypesOf, newProduct, uniqueTag } from './support/fixtures.js';
import { waitUntil } from './support/live.js';
import { afterAll, beforeAll, describe, it } from './support/test.js';

let key: string;
let publishableKey: string;
let client: SessionClient;
/** Server-side ends of the WebSocket connections, to drop them on purpose. */
const upgraded = new Set<Socket>();

beforeAll(async ({ t, server }) => {
  server.http.server.on('upgrade', (_request, socket: Socket) => {
    upgraded.add(socket);
    socket.on('close', () => upgraded.delete(socket));
  });
  const product = await newProduct(t);
  key = product.secret.dev;
  publishableKey = product.publishable;
  client = createSessionClient({ url: server.url, key });
});
afterAll(async () => {
  await client?.close();
});

/** Ductape's data: a userId and nested details. */
const adaData = (userId = 'user-ada') => ({
  userId,
  details: { username: 'ada', email: 'ada@example.com' },
});

/** A fresh session type, created through the client. */
async function newTag(overrides: Record<string, unknown> = {}): Promise<string> {
  const tag = uniqueTag('c');
  await client.configs.create(configInput(tag, overrides));
  return tag;
}

/** The Ductape docs' config (a userId and nested details, selected by userId) for the client. */
const configInput = (tag: string, overrides: Record<string, unknown> = {}) =>
  ductapeConfig(tag, overrides) as unknown as CreateSessionConfigInput;

/** The error a call rejects with; fails if it resolves or throws anything else. */
async function rejection(call: Promise<unknown>): Promise<SessionServiceError> {
  const error = await call.then(
    (value) => {
      throw new Error(`expected a SessionServiceError, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(SessionServiceError);
  return error as SessionServiceError;
}

describe('the client’s error codes', () => {
  it('are the codes of the API, no more and no less (checked by the type checker)', () => {
    expectTypeOf<ErrorCode | 'INTERNAL_SERVER_ERROR'>().toEqualTypeOf<ApiErrorCode>();
  });
});

describe('configs (Ductape’s products.sessions)', () => {
  it('creates, fetches, fetches all, updates (both ways) and deletes a session config', async () => {
    const tag = uniqueTag('c');
    const created = await client.configs.create({
      name: 'User session',
      tag,
      description: 'Signed-in users',
      schema: { userId: 'u-1', details: { username: 'x', email: 'x@y.z' } },
      selector: '$Session{details}{username}',
      expiry: 7,
      period: 'HOURS',
    });
    expect(created).toMatchObject({ tag, expiry: 7, period: 'HOURS', activeSessionCount: 0 });
    expect(typeof created.createdAt).toBe('string');

    expect(await client.configs.fetch(tag)).toMatchObject({ tag, name: 'User session' });
    expect(await client.configs.fetch('no-such-tag')).toBeNull();
    expect((await client.configs.fetchAll()).map((c) => c.tag)).toContain(tag);

    // Ductape's shape: the tag locates the config, the other fields are merged.
    const ductapeUpdate = await client.configs.update({ tag, expiry: 14, period: 'DAYS' });
    expect(ductapeUpdate).toMatchObject({ tag, expiry: 14, period: 'DAYS', name: 'User session' });
    const renamed = `${tag}-v2`;
    const update = await client.configs.update(tag, { tag: renamed, description: 'Renamed' });
    expect(update).toMatchObject({ tag: renamed, description: 'Renamed', expiry: 14 });

    expect(await client.configs.delete(renamed)).toBe(true);
    expect(await client.configs.fetch(renamed)).toBeNull();
  });

  it('rejects a taken tag with CONFLICT and a bad one with BAD_USER_INPUT naming the field', async () => {
    const tag = await newTag();
    const conflict = await rejection(client.configs.create(configInput(tag)));
    expect(conflict.code).toBe('CONFLICT');
    const bad = await rejection(client.configs.create(configInput('Not A Tag!')));
    expect(bad).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.tag' });
    expect(bad.message).toMatch(/tag/);
  });
});

describe('sessions (Ductape’s sessions)', () => {
  it('starts, verifies and refreshes a session, as the Ductape docs do', async () => {
    const tag = await newTag();
    const session = await client.sessions.start({ tag, data: adaData(), expiresIn: 3600 });
    expect(session.token).toMatch(/^eyJ/);
    expect(session.refreshToken).toMatch(/^rt_/);
    expect(Date.parse(session.expiresAt) - Date.now()).toBeGreaterThan(3500_000);

    const verified = await client.sessions.verify<ReturnType<typeof adaData>>({
      tag,
      token: session.token,
    });
    expect(verified).toMatchObject({
      sessionId: session.sessionId,
      tag,
      identifier: 'user-ada',
      data: adaData(),
      version: 1,
    });
    expectTypeOf(verified.data.details.username).toEqualTypeOf<string>();
    expect(await client.sessions.isValid({ tag, token: session.token })).toBe(true);
    expect(await client.sessions.isValid({ tag, token: 'garbage' })).toBe(false);

    const refreshed = await client.sessions.refresh({ tag, refreshToken: session.refreshToken });
    expect(refreshed.sessionId).toBe(session.sessionId);
    expect(refreshed.refreshToken).not.toBe(session.refreshToken);
    expect((await client.sessions.verify({ tag, token: refreshed.token })).sessionId).toBe(
      session.sessionId,
    );
  });

  it('lists a user’s sessions with Ductape’s count and sessionId, page by page', async () => {
    const tag = await newTag();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await client.sessions.start({ tag, data: adaData('user-list') })).sessionId);
    }
    const first = await client.sessions.list({ tag, identifier: 'user-list', first: 2 });
    expect(first.count).toBe(3);
    expect(first.hasNextPage).toBe(true);
    expect(first.sessions.map((s) => s.sessionId)).toEqual([ids[2], ids[1]]);
    expect(first.sessions[0]).toMatchObject({ id: ids[2], status: 'ACTIVE', tag });
    const second = await client.sessions.list({
      tag,
      identifier: 'user-list',
      first: 2,
      after: first.endCursor!,
    });
    expect(second.sessions.map((s) => s.sessionId)).toEqual([ids[0]]);
    expect(second.hasNextPage).toBe(false);
  });

  it('revokes one session, then all but the current one', async () => {
    const tag = await newTag();
    const [a, b, c] = [
      await client.sessions.start({ tag, data: adaData('user-revoke') }),
      await client.sessions.start({ tag, data: adaData('user-revoke') }),
      await client.sessions.start({ tag, data: adaData('user-revoke') }),
    ];
    const revoked = await client.sessions.revoke({ tag, sessionId: a!.sessionId });
    expect(revoked).toMatchObject({ id: a!.sessionId, status: 'REVOKED', revokeReason: 'revoked' });
    const verifyRevoked = await rejection(client.sessions.verify({ tag, token: a!.token }));
    expect(verifyRevoked.code).toBe('SESSION_REVOKED');

    // Ductape's name for the session to keep: excludeCurrentSession.
    const all = await client.sessions.revokeAll({
      tag,
      identifier: 'user-revoke',
      excludeCurrentSession: c!.sessionId,
    });
    expect(all).toEqual({ count: 1 });
    expect(await client.sessions.isValid({ tag, token: b!.token })).toBe(false);
    expect(await client.sessions.isValid({ tag, token: c!.token })).toBe(true);
    expect(await client.sessions.revokeAll({ tag, identifier: 'user-revoke' })).toEqual({
      count: 1,
    });
  });

  it('reads and changes session data: get, getValue, updateData, mergeData, set, remove, clear', async () => {
    const tag = await newTag();
    const { sessionId } = await client.sessions.start({ tag, data: adaData() });
    const address = { tag, sessionId };

    expect(await client.sessions.get({ sessionId })).toMatchObject({
      id: sessionId,
      data: adaData(),
      version: 1,
    });
    expect(await client.sessions.get({ sessionId: '00000000-0000-4000-8000-000000000000' })).toBe(
      null,
    );

    const updated = await client.sessions.updateData({
      ...address,
      data: { ...adaData(), cart: [] },
      expectedVersion: 1,
    });
    expect(updated).toMatchObject({ version: 2, data: { cart: [] } });
    const merged = await client.sessions.mergeData({
      ...address,
      data: { details: { theme: 'dark' } },
    });
    expect(merged.data).toEqual({
      ...adaData(),
      cart: [],
      details: { ...adaData().details, theme: 'dark' },
    });
    const set = await client.sessions.set({ ...address, key: 'cart', value: { items: ['p1'] } });
    expect(set.version).toBe(4);
    expect(await client.sessions.getValue({ sessionId, key: 'cart' })).toEqual({ items: ['p1'] });
    const removed = await client.sessions.remove({ ...address, key: 'cart' });
    expect(removed.data).not.toHaveProperty('cart');
    expect(await client.sessions.getValue({ sessionId, key: 'cart' })).toBeNull();

    const stale = await rejection(
      client.sessions.set({ ...address, key: 'x', value: 1, expectedVersion: 1 }),
    );
    expect(stale.code).toBe('CONFLICT');

    const cleared = await client.sessions.clear(address);
    expect(cleared).toMatchObject({ data: {}, version: 6 });
  });

  it('touches, extends and sets the expiration of a session', async () => {
    const tag = await newTag();
    const { sessionId, expiresAt } = await client.sessions.start({
      tag,
      data: adaData(),
      expiresIn: 600,
    });
    const address = { tag, sessionId };
    const touched = await client.sessions.touch(address);
    expect(Date.parse(touched.lastActiveAt)).toBeGreaterThan(Date.now() - 60_000);

    const extended = await client.sessions.extend({ ...address, seconds: 3600 });
    expect(Date.parse(extended.expiresAt) - Date.parse(expiresAt)).toBeGreaterThan(3590_000);

    const at = new Date(Date.now() + 2 * 3600_000);
    at.setMilliseconds(0);
    const set = await client.sessions.setExpiration({ ...address, expiresAt: at });
    expect(Date.parse(set.expiresAt)).toBe(at.getTime());
    expect(set.timeRemaining).toBeGreaterThan(7000);
  });
});

describe('typed errors', () => {
  it('a garbage token is TOKEN_INVALID, as a SessionServiceError', async () => {
    const tag = await newTag();
    const error = await rejection(client.sessions.verify({ tag, token: 'not-a-token' }));
    expect(error.code).toBe('TOKEN_INVALID');
    expect(error.name).toBe('SessionServiceError');
    expect(error.errors[0]?.extensions?.code).toBe('TOKEN_INVALID');
    expect(isSessionServiceError(error, 'TOKEN_INVALID', 'TOKEN_EXPIRED')).toBe(true);
    expect(isSessionServiceError(error, 'NOT_FOUND')).toBe(false);
  });

  it('a forged refresh token is TOKEN_INVALID, an unknown tag NOT_FOUND, data off the schema BAD_USER_INPUT', async () => {
    const tag = await newTag();
    const forged = await rejection(client.sessions.refresh({ tag, refreshToken: 'rt_forged' }));
    expect(forged.code).toBe('TOKEN_INVALID');
    const unknownTag = await rejection(
      client.sessions.start({ tag: 'no-such-config', data: adaData() }),
    );
    expect(unknownTag.code).toBe('NOT_FOUND');
    const badData = await rejection(
      client.sessions.start({ tag, data: { userId: 42, details: {} } }),
    );
    expect(badData).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.data.userId' });
  });

  it('an unknown key is UNAUTHENTICATED and a publishable key FORBIDDEN', async ({ server }) => {
    const stranger = createSessionClient({ url: server.url, key: 'sk_dev_unknown' });
    expect((await rejection(stranger.configs.fetchAll())).code).toBe('UNAUTHENTICATED');
    const browser = createSessionClient({ url: server.url, key: publishableKey });
    expect((await rejection(browser.configs.fetchAll())).code).toBe('FORBIDDEN');
  });

  it('a server that cannot be reached is NETWORK_ERROR', async () => {
    const nowhere = createSessionClient({ url: 'http://127.0.0.1:9/graphql', key });
    const error = await rejection(nowhere.configs.fetchAll());
    expect(error.code).toBe('NETWORK_ERROR');
    expect(error.message).toContain('127.0.0.1:9');
  });
});

describe('autoRefresh (the Ductape docs’ SessionManager)', () => {
  it('refreshes before expiry, hands over each new pair, and stops when the session is revoked', async () => {
    const tag = await newTag();
    const first = await client.sessions.start({ tag, data: adaData(), expiresIn: 12 });
    const pairs: SessionTokens[] = [];
    const errors: unknown[] = [];
    const refresher = client.sessions.autoRefresh(first, {
      tag,
      refreshBeforeSeconds: 10, // so: about every 2 seconds
      onRefresh: (tokens) => {
        pairs.push(tokens);
      },
      onError: (error) => errors.push(error),
    });
    try {
      await waitUntil(() => pairs.length >= 2, 'two automatic refreshes', 15_000);
      expect(pairs[1]!.refreshToken).not.toBe(pairs[0]!.refreshToken);
      expect(refresher.tokens).toBe(pairs.at(-1));
      // The latest token verifies; the first refresh token is spent.
      const latest = refresher.tokens;
      expect(await client.sessions.isValid({ tag, token: latest.token })).toBe(true);
      expect(Date.parse(latest.expiresAt)).toBeGreaterThan(Date.parse(first.expiresAt));

      await client.sessions.revoke({ tag, sessionId: first.sessionId });
      await waitUntil(() => errors.length > 0, 'the refresh after the revocation to fail', 15_000);
      expect(refresher.stopped).toBe(true);
      expect(errors).toHaveLength(1);
      expect((errors[0] as SessionServiceError).code).toBe('SESSION_REVOKED');
      const count = pairs.length;
      await sleep(2500);
      expect(pairs).toHaveLength(count); // stopped: no more attempts
    } finally {
      refresher.stop();
    }
  });

  it('refreshNow refreshes at once; stop() ends the schedule', async () => {
    const tag = await newTag();
    const first = await client.sessions.start({ tag, data: adaData(), expiresIn: 3600 });
    const refresher = client.sessions.autoRefresh(first, { tag });
    const next = await refresher.refreshNow();
    expect(next.refreshToken).not.toBe(first.refreshToken);
    expect(refresher.tokens).toBe(next);
    refresher.stop();
    expect(refresher.stopped).toBe(true);
    await expect(refresher.refreshNow()).rejects.toThrow(/stopped/);
  });
});

describe('live events (onRevoked, onEvent)', () => {
  it('onRevoked hears a revocation made through the API', async ({ t }) => {
    const tag = await newTag();
    const heard: SessionEvent[] = [];
    const before = t.services.events.subscriberCount;
    const subscription = client.sessions.onRevoked({ tag }, (event) => heard.push(event));
    try {
      await waitUntil(() => t.services.events.subscriberCount > before, 'the subscription');
      const { sessionId } = await client.sessions.start({ tag, data: adaData('user-heard') });
      await client.sessions.revoke({ tag, sessionId });
      await waitUntil(() => heard.length === 1, 'the revocation');
      expect(heard[0]).toMatchObject({
        type: 'REVOKED',
        sessionId,
        tag,
        identifier: 'user-heard',
        reason: 'revoked',
      });
      expect(subscription.lastEventId).toBe(heard[0]!.id);
    } finally {
      subscription.unsubscribe();
    }
  });

  it('onEvent resumes after a dropped connection with what it missed, nothing twice', async ({
    t,
    server,
  }) => {
    // The reconnect waits for this gate, so that events happen while the socket is down.
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const resuming = createSessionClient({
      url: server.url,
      key,
      ws: { retryWait: () => gate },
    });
    const tag = await newTag();
    const heard: SessionEvent[] = [];
    const errors: unknown[] = [];
    const before = t.services.events.subscriberCount;
    resuming.sessions.onEvent({ tag, identifier: 'user-resume' }, (event) => heard.push(event), {
      onError: (error) => errors.push(error),
    });
    try {
      await waitUntil(() => t.services.events.subscriberCount > before, 'the subscription');
      const session = await client.sessions.start({ tag, data: adaData('user-resume') });
      await waitUntil(() => heard.length === 1, 'the STARTED event');

      // Drop the connection from the server's side, as a network failure would.
      for (const socket of upgraded) socket.destroy();
      await waitUntil(() => t.services.events.subscriberCount === before, 'the drop');
      const refreshed = await client.sessions.refresh({
        tag,
        refreshToken: session.refreshToken,
      });
      await client.sessions.set({ tag, sessionId: session.sessionId, key: 'cart', value: [] });
      await client.sessions.revoke({ tag, sessionId: refreshed.sessionId });
      expect(heard).toHaveLength(1);

      openGate();
      await waitUntil(() => heard.length >= 4, 'the missed events after reconnecting', 20_000);
      // One live event after the reconnect, to show the subscription carries on.
      await client.sessions.start({ tag, data: adaData('user-resume') });
      await waitUntil(() => heard.length >= 5, 'a live event after the replay');
      await sleep(300);

      expect(heard.map((e) => e.type)).toEqual([
        'STARTED',
        'REFRESHED',
        'DATA_UPDATED',
        'REVOKED',
        'STARTED',
      ]);
      const ids = heard.map((e) => Number(e.id));
      expect(new Set(ids).size).toBe(ids.length);
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
      expect(heard.slice(0, 4).map((e) => e.type)).toEqual(
        await eventTypesOf(t, session.sessionId),
      );
      expect(errors).toEqual([]);
    } finally {
      openGate();
      await resuming.close();
    }
  });

  it('a connection that stops answering pings is dropped and reopened, resuming where it was', async ({
    t,
    server,
  }) => {
    const watchful = createSessionClient({ url: server.url, key, ws: { keepAlive: 300 } });
    const tag = await newTag();
    const heard: SessionEvent[] = [];
    const before = t.services.events.subscriberCount;
    const socketsBefore = new Set(upgraded);
    watchful.sessions.onRevoked({ tag }, (event) => heard.push(event));
    try {
      await waitUntil(() => t.services.events.subscriberCount > before, 'the subscription');
      const one = await client.sessions.start({ tag, data: adaData('user-frozen') });
      await client.sessions.revoke({ tag, sessionId: one.sessionId });
      await waitUntil(() => heard.length === 1, 'the first revocation');

      // The connection freezes both ways, as on a dead network: pings go unanswered, and
      // what the server sends stays in its buffer.
      const [frozen] = [...upgraded].filter((socket) => !socketsBefore.has(socket));
      frozen!.pause();
      frozen!.cork();
      const two = await client.sessions.start({ tag, data: adaData('user-frozen') });
      await client.sessions.revoke({ tag, sessionId: two.sessionId });
      await waitUntil(() => heard.length === 2, 'the second revocation, on a new connection');
      expect(heard.map((e) => e.sessionId)).toEqual([one.sessionId, two.sessionId]);
      expect([...upgraded].filter((s) => !socketsBefore.has(s) && s !== frozen)).toHaveLength(1);
      frozen!.destroy();
    } finally {
      await watchful.close();
    }
  });

  it('onRevoked with after replays the revocations since that event', async () => {
    const tag = await newTag();
    const one = await client.sessions.start({ tag, data: adaData('user-replay') });
    const two = await client.sessions.start({ tag, data: adaData('user-replay') });
    await client.sessions.revoke({ tag, sessionId: one.sessionId });
    await client.sessions.revoke({ tag, sessionId: two.sessionId });
    const all: SessionEvent[] = [];
    const sub = client.sessions.onRevoked({ tag, after: '0' }, (event) => all.push(event));
    try {
      await waitUntil(() => all.length === 2, 'both revocations replayed');
      const after: SessionEvent[] = [];
      const later = client.sessions.onRevoked({ tag, after: all[0]!.id }, (e) => after.push(e));
      await waitUntil(() => after.length === 1, 'the second revocation replayed');
      later.unsubscribe();
      expect(after[0]!.sessionId).toBe(two.sessionId);
    } finally {
      sub.unsubscribe();
    }
  });

  it('latestEventId lets a subscriber start where it stands, missing nothing committed after', async () => {
    const tag = await newTag();
    const before = await client.sessions.start({ tag, data: adaData('user-latest') });
    await client.sessions.revoke({ tag, sessionId: before.sessionId });
    const latest = await client.sessions.latestEventId();
    expect(latest).toMatch(/^\d+$/);
    // Committed after reading it, before subscribing: still delivered; the earlier one is not.
    const later = await client.sessions.start({ tag, data: adaData('user-latest') });
    await client.sessions.revoke({ tag, sessionId: later.sessionId });
    const heard: SessionEvent[] = [];
    const sub = client.sessions.onRevoked({ tag, after: latest }, (event) => heard.push(event));
    try {
      await waitUntil(() => heard.length === 1, 'the revocation after the latest id');
      await sleep(200);
      expect(heard.map((e) => e.sessionId)).toEqual([later.sessionId]);
    } finally {
      sub.unsubscribe();
    }
  });

  it('a key the server refuses ends the subscription with its code, without retrying', async ({
    server,
  }) => {
    const refused = async (refusedKey: string) => {
      const other = createSessionClient({ url: server.url, key: refusedKey });
      const errors: SessionServiceError[] = [];
      other.sessions.onRevoked({}, () => undefined, { onError: (e) => errors.push(e) });
      try {
        await waitUntil(() => errors.length > 0, 'the refusal');
        await sleep(200);
        expect(errors).toHaveLength(1);
        return errors[0]!.code;
      } finally {
        await other.close();
      }
    };
    expect(await refused('sk_dev_unknown')).toBe('UNAUTHENTICATED');
    expect(await refused(publishableKey)).toBe('FORBIDDEN');
  });
});

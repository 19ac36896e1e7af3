import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import { openSessionToken } from '../src/tokens/session-token.js';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { gql, ok } from './support/graphql.js';
import {
  REVOKE,
  configIdsOf,
  eventTypesOf,
  newConfig,
  newProduct,
  sessionRowOf,
} from './support/fixtures.js';
import {
  bindSessionStateApp,
  MUTATIONS,
  type Op,
  ALL_OPS,
  DATA_OPS,
  validArgs,
  VALUE,
  adaData,
  setup,
  change,
  changeFails,
  verify,
  sessionById,
  refresh,
  execute,
  expectDataChange,
} from './support/session-state.js';

/** The file's app (the `t` fixture), for the tests and the shared helpers. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
  bindSessionStateApp(app);
});

describe('session data', () => {
  it('a new session is at version 1, and verify returns its data and version', async () => {
    const s = await setup();
    expect(await verify(s)).toMatchObject({ data: adaData(), version: 1 });
    expect(await sessionById(s, s.started.sessionId)).toMatchObject({
      version: 1,
      data: adaData(),
    });
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED']);
  });

  it('updateSessionData replaces the data, bumps the version by one and records DATA_UPDATED', async () => {
    const s = await setup({}, adaData({ cart: ['p1'], theme: 'dark' }));
    const data = { userId: 'user-ada', details: { username: 'ada', email: 'new@example.com' } };
    const result = await change(s, 'updateSessionData', { data });
    await expectDataChange(s, result, 1, data);
    // The identifier stays what it was when the session started.
    expect(result.identifier).toBe('user-ada');
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED', 'DATA_UPDATED']);

    const again = await change(s, 'updateSessionData', {
      data: adaData({ step: 2 }),
      expectedVersion: 2,
    });
    await expectDataChange(s, again, 2, adaData({ step: 2 }));
  });

  it('mergeSessionData deep-merges: nested objects merge key by key; arrays, scalars and null replace', async () => {
    const s = await setup(
      {},
      adaData({
        prefs: { theme: 'dark', langs: ['en', 'fr'], layout: { sidebar: true, width: 200 } },
        tags: ['a', 'b'],
        note: 'keep me?',
        count: 1,
      }),
    );
    const first = await change(s, 'mergeSessionData', {
      data: {
        details: { email: 'ada@new.example' },
        prefs: { langs: ['de'], layout: { width: 300 }, fontSize: 14 },
        tags: ['c'],
        note: null,
        count: 2,
        added: { a: 1 },
      },
    });
    const merged = {
      userId: 'user-ada',
      details: { username: 'ada', email: 'ada@new.example' },
      prefs: { theme: 'dark', langs: ['de'], layout: { sidebar: true, width: 300 }, fontSize: 14 },
      tags: ['c'],
      note: null,
      count: 2,
      added: { a: 1 },
    };
    await expectDataChange(s, first, 1, merged);

    // An object over a scalar, and a scalar or array over an object, replace too.
    const second = await change(s, 'mergeSessionData', {
      data: { count: { nested: true }, prefs: { layout: 'compact' }, added: [1, 2] },
      expectedVersion: 2,
    });
    await expectDataChange(s, second, 2, {
      ...merged,
      count: { nested: true },
      prefs: { ...merged.prefs, layout: 'compact' },
      added: [1, 2],
    });

    // An empty patch changes nothing but is still a (versioned) write.
    const third = await change(s, 'mergeSessionData', { data: {} });
    expect(third.data).toEqual(second.data);
    expect(third.version).toBe(4);
  });

  it('setSessionValue sets one top-level key to any JSON value, and value(key) reads it back', async () => {
    const s = await setup();
    const cart = { items: ['prod_1', 'prod_2'], total: 99.99 };
    const result = await change(s, 'setSessionValue', { key: 'shoppingCart', value: cart });
    await expectDataChange(s, result, 1, adaData({ shoppingCart: cart }));

    const value = await ok(t.app, {
      key: s.key,
      query: VALUE,
      variables: { id: s.started.sessionId, key: 'shoppingCart' },
    });
    expect(value.session).toEqual({ version: 2, value: cart });

    // Scalars and arrays are values too; setting a key again replaces it whole.
    for (const [i, v] of [['prod_3'], 42, 'text', false, { items: [] }].entries()) {
      const next = await change(s, 'setSessionValue', { key: 'shoppingCart', value: v });
      await expectDataChange(s, next, 2 + i, adaData({ shoppingCart: v }));
    }
    const last = await ok(t.app, {
      key: s.key,
      query: VALUE,
      variables: { id: s.started.sessionId, key: 'shoppingCart' },
    });
    expect(last.session.value).toEqual({ items: [] });
  });

  it('value(key) reads one key, nested objects whole, and is null for an absent key', async () => {
    const s = await setup({}, adaData({ score: 0, flag: false }));
    const read = async (key: string) =>
      (await ok(t.app, { key: s.key, query: VALUE, variables: { id: s.started.sessionId, key } }))
        .session.value;
    expect(await read('userId')).toBe('user-ada');
    expect(await read('details')).toEqual({ username: 'ada', email: 'ada@example.com' });
    expect(await read('score')).toBe(0);
    expect(await read('flag')).toBe(false);
    expect(await read('absent')).toBeNull();
    expect(await read('toString')).toBeNull();
  });

  it('removeSessionValue removes one key; removing an absent key is fine', async () => {
    const s = await setup({}, adaData({ cart: { items: ['p1'] }, theme: 'dark' }));
    const result = await change(s, 'removeSessionValue', { key: 'cart' });
    await expectDataChange(s, result, 1, adaData({ theme: 'dark' }));

    const absent = await change(s, 'removeSessionValue', { key: 'cart' });
    expect(absent.data).toEqual(adaData({ theme: 'dark' }));
    expect(absent.status).toBe('ACTIVE');
    expect((await verify(s)).data).toEqual(adaData({ theme: 'dark' }));

    const value = await ok(t.app, {
      key: s.key,
      query: VALUE,
      variables: { id: s.started.sessionId, key: 'cart' },
    });
    expect(value.session.value).toBeNull();
  });

  it('clearSessionData empties the data to {} and keeps the identifier', async () => {
    const s = await setup({}, adaData({ cart: ['p1'] }));
    const result = await change(s, 'clearSessionData');
    await expectDataChange(s, result, 1, {});
    expect(result.identifier).toBe('user-ada');
    expect((await verify(s)).identifier).toBe('user-ada');
    // Data can be written again after a clear.
    const again = await change(s, 'setSessionValue', { key: 'theme', value: 'light' });
    await expectDataChange(s, again, 2, { theme: 'light' });
  });

  it('after a change, refresh mints a token that carries the current data, and verify shows it', async () => {
    const s = await setup({}, adaData({ theme: 'dark' }));
    await change(s, 'setSessionValue', { key: 'theme', value: 'light' });
    await change(s, 'mergeSessionData', { data: { cart: { items: ['p9'] } } });
    const current = adaData({ theme: 'light', cart: { items: ['p9'] } });

    const refreshed = await refresh(s);
    const verified = await verify(s, refreshed.token);
    expect(verified).toMatchObject({ sessionId: s.started.sessionId, data: current, version: 3 });

    // The new token itself carries the current data (the old one still carries the start data).
    const { productId } = await configIdsOf(t, s.product.tag, s.tag);
    const scope = { productId, env: 'dev' };
    const claims = await openSessionToken(t.services.keyring, scope, s.tag, refreshed.token);
    expect(claims.data).toEqual(current);
    const oldClaims = await openSessionToken(t.services.keyring, scope, s.tag, s.started.token);
    expect(oldClaims.data).toEqual(adaData({ theme: 'dark' }));

    // A change after the refresh reaches the next refreshed token.
    await change(s, 'removeSessionValue', { key: 'cart' });
    const next = await refresh(s, refreshed.refreshToken);
    const nextClaims = await openSessionToken(t.services.keyring, scope, s.tag, next.token);
    expect(nextClaims.data).toEqual(adaData({ theme: 'light' }));
    expect(await verify(s, next.token)).toMatchObject({
      data: adaData({ theme: 'light' }),
      version: 4,
    });
  });

  it('a matching expectedVersion writes; a stale one is CONFLICT for every data operation and changes nothing', async () => {
    const s = await setup({}, adaData({ theme: 'dark' }));
    const written = await change(s, 'setSessionValue', {
      key: 'theme',
      value: 'light',
      expectedVersion: 1,
    });
    expect(written.version).toBe(2);
    const row = await sessionRowOf(t, s.started.sessionId);
    const events = await eventTypesOf(t, s.started.sessionId);

    for (const op of DATA_OPS) {
      for (const stale of [1, 3, 0, -1]) {
        const error = await changeFails(s, op, s.started.sessionId, {
          ...validArgs(op),
          expectedVersion: stale,
        });
        expect(error, `${op} at ${stale}`).toMatchObject({ code: 'CONFLICT' });
        expect(error.message, op).toMatch(/version/);
      }
    }
    expect(await sessionRowOf(t, s.started.sessionId)).toEqual(row);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(events);
    expect(await verify(s)).toMatchObject({ data: adaData({ theme: 'light' }), version: 2 });

    // Every data operation writes at the current version.
    let version = 2;
    for (const op of DATA_OPS) {
      const result = await change(s, op, { ...validArgs(op), expectedVersion: version });
      expect(result.version, op).toBe(version + 1);
      version += 1;
    }
  });
});

describe('session data errors', () => {
  it('data that does not fit the config’s sample is BAD_USER_INPUT naming the field, and changes nothing', async () => {
    const s = await setup();
    const row = await sessionRowOf(t, s.started.sessionId);
    const cases: [Op, Record<string, unknown>, string][] = [
      ['updateSessionData', { data: adaData({ userId: 5 }) }, 'data.userId'],
      ['updateSessionData', { data: adaData({ details: 'ada' }) }, 'data.details'],
      [
        'updateSessionData',
        { data: { userId: 'u', details: { username: 'ada', email: 5 } } },
        'data.details.email',
      ],
      ['mergeSessionData', { data: { details: { email: 5 } } }, 'data.details.email'],
      ['mergeSessionData', { data: { details: { username: null } } }, 'data.details.username'],
      ['mergeSessionData', { data: { userId: ['u'] } }, 'data.userId'],
      ['setSessionValue', { key: 'userId', value: 5 }, 'data.userId'],
      ['setSessionValue', { key: 'details', value: 'ada' }, 'data.details'],
    ];
    for (const [op, variables, field] of cases) {
      const error = await changeFails(s, op, s.started.sessionId, variables);
      expect(error, `${op} ${JSON.stringify(variables)}`).toMatchObject({
        code: 'BAD_USER_INPUT',
        field,
      });
    }
    // Data that is not a JSON object at all.
    for (const data of ['x', 5, ['a']]) {
      for (const op of ['updateSessionData', 'mergeSessionData'] as const) {
        expect(
          await changeFails(s, op, s.started.sessionId, { data }),
          `${op} ${JSON.stringify(data)}`,
        ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'data' });
      }
    }
    expect(await sessionRowOf(t, s.started.sessionId)).toEqual(row);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED']);
  });

  it('data over 16 KiB is BAD_USER_INPUT, whether replaced, merged, or grown one key at a time', async () => {
    const s = await setup();
    const big = 'b'.repeat(16 * 1024);
    expect(
      await changeFails(s, 'updateSessionData', s.started.sessionId, {
        data: adaData({ blob: big }),
      }),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'data' });
    expect(
      await changeFails(s, 'mergeSessionData', s.started.sessionId, { data: { blob: big } }),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'data' });
    const setTooBig = await changeFails(s, 'setSessionValue', s.started.sessionId, {
      key: 'blob',
      value: big,
    });
    expect(setTooBig.code).toBe('BAD_USER_INPUT');
    expect(setTooBig.field).toMatch(/^data\b/);

    // Each part fits; together they do not.
    const half = 'h'.repeat(9 * 1024);
    const grown = await change(s, 'setSessionValue', { key: 'first', value: half });
    expect(grown.version).toBe(2);
    expect(
      await changeFails(s, 'mergeSessionData', s.started.sessionId, { data: { second: half } }),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'data' });
    const setSecond = await changeFails(s, 'setSessionValue', s.started.sessionId, {
      key: 'second',
      value: half,
    });
    expect(setSecond.code).toBe('BAD_USER_INPUT');
    expect(await verify(s)).toMatchObject({ data: adaData({ first: half }), version: 2 });
  });

  it('a key that is empty or over 128 characters is BAD_USER_INPUT on key; 128 is fine', async () => {
    const s = await setup();
    for (const key of ['', 'k'.repeat(129)]) {
      expect(
        await changeFails(s, 'setSessionValue', s.started.sessionId, { key, value: 1 }),
        `set ${key.length}`,
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'key' });
      expect(
        await changeFails(s, 'removeSessionValue', s.started.sessionId, { key }),
        `remove ${key.length}`,
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'key' });
    }
    expect((await sessionById(s, s.started.sessionId)).version).toBe(1);

    const longest = 'k'.repeat(128);
    const set = await change(s, 'setSessionValue', { key: longest, value: 1 });
    expect(set.data[longest]).toBe(1);
    const removed = await change(s, 'removeSessionValue', { key: longest });
    expect(removed.data).toEqual(adaData());
    expect(removed.version).toBe(3);
  });

  it('an unknown session id is NOT_FOUND for every operation, and an id that is not a UUID is BAD_USER_INPUT', async () => {
    const s = await setup();
    for (const op of ALL_OPS) {
      expect(
        await changeFails(s, op, '00000000-0000-4000-8000-000000000000', validArgs(op)),
        op,
      ).toMatchObject({ code: 'NOT_FOUND' });
      expect(await changeFails(s, op, 'not-a-uuid', validArgs(op)), op).toMatchObject({
        code: 'BAD_USER_INPUT',
        field: 'sessionId',
      });
    }
  });

  it('another product’s, env’s or tag’s session is NOT_FOUND for every operation and left untouched', async () => {
    const s = await setup({}, adaData(), {}, { shared: true });
    const other = await newProduct(t);
    const theirTag = await newConfig(t, other.secret.dev);
    const otherTag = await newConfig(t, s.key);
    const row = await sessionRowOf(t, s.started.sessionId);

    for (const op of ALL_OPS) {
      for (const [key, tag] of [
        [other.secret.dev, s.tag],
        [other.secret.dev, theirTag],
        [s.product.secret.prd, s.tag],
        [s.key, otherTag],
      ] as const) {
        expect(
          await changeFails({ key, tag }, op, s.started.sessionId, validArgs(op)),
          `${op} ${tag}`,
        ).toMatchObject({ code: 'NOT_FOUND' });
      }
    }
    expect(await sessionRowOf(t, s.started.sessionId)).toEqual(row);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED']);
    expect(await verify(s)).toMatchObject({ data: adaData(), version: 1 });
  });

  it('a revoked session is SESSION_REVOKED for every operation and does not change', async () => {
    const s = await setup();
    await ok(t.app, {
      key: s.key,
      query: REVOKE,
      variables: { tag: s.tag, sessionId: s.started.sessionId },
    });
    const row = await sessionRowOf(t, s.started.sessionId);
    for (const op of ALL_OPS) {
      expect(await changeFails(s, op, s.started.sessionId, validArgs(op)), op).toMatchObject({
        code: 'SESSION_REVOKED',
      });
    }
    expect(await sessionRowOf(t, s.started.sessionId)).toEqual(row);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED', 'REVOKED']);
  });

  it('a session past its refresh expiry is TOKEN_EXPIRED for every operation and does not change', async () => {
    const s = await setup();
    await execute(
      sql`update sessions set expires_at = now() - interval '2 minutes', refresh_expires_at = now() - interval '1 minute' where id = ${s.started.sessionId}`,
    );
    const row = await sessionRowOf(t, s.started.sessionId);
    for (const op of ALL_OPS) {
      expect(await changeFails(s, op, s.started.sessionId, validArgs(op)), op).toMatchObject({
        code: 'TOKEN_EXPIRED',
      });
    }
    expect(await sessionRowOf(t, s.started.sessionId)).toEqual(row);
  });
});

describe('concurrent writers', () => {
  it('20 concurrent setSessionValue calls at the same expectedVersion: exactly one succeeds, 19 are CONFLICT', async () => {
    const s = await setup();
    await change(s, 'setSessionValue', { key: 'winner', value: -1 });
    const version = (await sessionById(s, s.started.sessionId)).version as number;
    expect(version).toBe(2);

    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        gql<{ setSessionValue: { version: number; data: Record<string, unknown> } }>(t.app, {
          key: s.key,
          query: MUTATIONS.setSessionValue,
          variables: {
            tag: s.tag,
            sessionId: s.started.sessionId,
            key: 'winner',
            value: i,
            expectedVersion: version,
          },
        }),
      ),
    );
    const succeeded = responses.filter((r) => !r.errors);
    const failed = responses.filter((r) => r.errors);
    expect(succeeded).toHaveLength(1);
    expect(failed).toHaveLength(19);
    for (const r of failed) expect(r.errors![0]!.extensions?.code).toBe('CONFLICT');

    const winner = succeeded[0]!.data!.setSessionValue;
    expect(winner.version).toBe(version + 1);
    const session = await sessionById(s, s.started.sessionId);
    expect(session.version).toBe(version + 1);
    expect(session.data).toEqual(winner.data);
    expect(session.data.winner).toBe(responses.indexOf(succeeded[0]!));
    const events = await eventTypesOf(t, s.started.sessionId);
    expect(events.filter((e) => e === 'DATA_UPDATED')).toHaveLength(2);
  });

  it('20 concurrent mergeSessionData calls without expectedVersion all land: no update is lost', async () => {
    const s = await setup();
    const version = (await sessionById(s, s.started.sessionId)).version as number;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        ok(t.app, {
          key: s.key,
          query: MUTATIONS.mergeSessionData,
          variables: {
            tag: s.tag,
            sessionId: s.started.sessionId,
            data: { [`k${i}`]: i, counters: { [`c${i}`]: i } },
          },
        }),
      ),
    );
    // Each write saw the one before it: the versions are v+1 .. v+20, once each.
    const versions = results.map((r) => r.mergeSessionData.version as number).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 20 }, (_, i) => version + 1 + i));

    const expected: Record<string, unknown> = adaData();
    const counters: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      expected[`k${i}`] = i;
      counters[`c${i}`] = i;
    }
    expected.counters = counters;
    const session = await sessionById(s, s.started.sessionId);
    expect(session.version).toBe(version + 20);
    expect(session.data).toEqual(expected);
    expect(await verify(s)).toMatchObject({ data: expected, version: version + 20 });
    const events = await eventTypesOf(t, s.started.sessionId);
    expect(events.filter((e) => e === 'DATA_UPDATED')).toHaveLength(20);
  });
});

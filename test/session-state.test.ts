import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import { openSessionToken } from '../src/tokens/session-token.js';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { failure, gql, ok } from './support/graphql.js';
import {
  REFRESH,
  REVOKE,
  configIdsOf,
  eventTypesOf,
  newConfig,
  newSharedConfig,
  newProduct,
  rowsOf,
  sessionRowOf,
  start,
  type Started,
  type TestProduct,
} from './support/fixtures.js';

/** The file's app (the `t` fixture), for the helpers below. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
});

const SESSION_FIELDS = `id identifier version data status expiresAt refreshExpiresAt lastActiveAt idleExpiresAt timeRemaining revokedAt revokeReason`;
const ADDRESS = `$tag: String!, $sessionId: ID!, $expectedVersion: Int`;
const AT = `tag: $tag, sessionId: $sessionId, expectedVersion: $expectedVersion`;

/** The session state mutations, each returning the changed session. */
const MUTATIONS = {
  updateSessionData: `mutation(${ADDRESS}, $data: JSON!) { updateSessionData(${AT}, data: $data) { ${SESSION_FIELDS} } }`,
  mergeSessionData: `mutation(${ADDRESS}, $data: JSON!) { mergeSessionData(${AT}, data: $data) { ${SESSION_FIELDS} } }`,
  setSessionValue: `mutation(${ADDRESS}, $key: String!, $value: JSON!) { setSessionValue(${AT}, key: $key, value: $value) { ${SESSION_FIELDS} } }`,
  removeSessionValue: `mutation(${ADDRESS}, $key: String!) { removeSessionValue(${AT}, key: $key) { ${SESSION_FIELDS} } }`,
  clearSessionData: `mutation(${ADDRESS}) { clearSessionData(${AT}) { ${SESSION_FIELDS} } }`,
  touchSession: `mutation(${ADDRESS}) { touchSession(${AT}) { ${SESSION_FIELDS} } }`,
  extendSession: `mutation(${ADDRESS}, $seconds: Int!) { extendSession(${AT}, seconds: $seconds) { ${SESSION_FIELDS} } }`,
  setSessionExpiration: `mutation(${ADDRESS}, $expiresAt: DateTime!) { setSessionExpiration(${AT}, expiresAt: $expiresAt) { ${SESSION_FIELDS} } }`,
} as const;
type Op = keyof typeof MUTATIONS;
const ALL_OPS = Object.keys(MUTATIONS) as Op[];
const DATA_OPS: Op[] = [
  'updateSessionData',
  'mergeSessionData',
  'setSessionValue',
  'removeSessionValue',
  'clearSessionData',
];

/** Arguments each operation accepts on a default session (besides tag and sessionId). */
const validArgs = (op: Op): Record<string, unknown> =>
  ({
    updateSessionData: { data: adaData({ note: 'replaced' }) },
    mergeSessionData: { data: { note: 'merged' } },
    setSessionValue: { key: 'note', value: 'set' },
    removeSessionValue: { key: 'details' },
    clearSessionData: {},
    touchSession: {},
    extendSession: { seconds: 60 },
    setSessionExpiration: { expiresAt: new Date(Date.now() + 3_600_000).toISOString() },
  })[op];

const VERIFY_STATE = `query($tag: String!, $token: String!) {
  verifySession(tag: $tag, token: $token) {
    sessionId identifier data version expiresAt
    session { id status version lastActiveAt idleExpiresAt }
  }
}`;
const SESSION = `query($id: ID!) { session(id: $id) { ${SESSION_FIELDS} } }`;
const VALUE = `query($id: ID!, $key: String!) { session(id: $id) { version value(key: $key) } }`;
const IS_VALID = `query($tag: String!, $token: String!) { isSessionValid(tag: $tag, token: $token) }`;
const LIST = `query($tag: String!, $identifier: String!) {
  sessions(tag: $tag, identifier: $identifier, first: 100) { totalCount edges { node { id } } }
}`;

/** Ductape's data: a userId and nested details, with extra keys as given. */
const adaData = (extra: Record<string, unknown> = {}) => ({
  userId: 'user-ada',
  details: { username: 'ada', email: 'ada@example.com' },
  ...extra,
});

interface Setup {
  product: TestProduct;
  key: string;
  tag: string;
  started: Started;
}

/** A fresh product and config (overrides as given), with one session started on it. */
async function setup(
  configOverrides: Record<string, unknown> = {},
  data: Record<string, unknown> = adaData(),
  startExtra: Record<string, unknown> = {},
  { shared = false } = {},
): Promise<Setup> {
  const product = await newProduct(t);
  const key = product.secret.dev;
  // Product-wide (`shared`): the prd key may use the tag too.
  const tag = shared
    ? await newSharedConfig(t, product.tag, configOverrides)
    : await newConfig(t, key, configOverrides);
  const started = await start(t, key, tag, data, startExtra);
  return { product, key, tag, started };
}

async function change(s: Setup, op: Op, variables: Record<string, unknown> = {}) {
  const data = await ok(t.app, {
    key: s.key,
    query: MUTATIONS[op],
    variables: { tag: s.tag, sessionId: s.started.sessionId, ...variables },
  });
  return data[op];
}

const changeFails = (
  s: Pick<Setup, 'key' | 'tag'>,
  op: Op,
  sessionId: string,
  variables: Record<string, unknown> = {},
) =>
  failure(t.app, {
    key: s.key,
    query: MUTATIONS[op],
    variables: { tag: s.tag, sessionId, ...variables },
  });

const verify = async (s: Setup, token = s.started.token) =>
  (await ok(t.app, { key: s.key, query: VERIFY_STATE, variables: { tag: s.tag, token } }))
    .verifySession;
const verifyFails = (s: Setup, token = s.started.token) =>
  failure(t.app, { key: s.key, query: VERIFY_STATE, variables: { tag: s.tag, token } });

async function sessionById(s: Pick<Setup, 'key'>, id: string) {
  return (await ok(t.app, { key: s.key, query: SESSION, variables: { id } })).session;
}

async function isValid(s: Setup, token: string): Promise<boolean> {
  const response = await gql<{ isSessionValid: boolean }>(t.app, {
    key: s.key,
    query: IS_VALID,
    variables: { tag: s.tag, token },
  });
  expect(response.errors).toBeUndefined();
  return response.data!.isSessionValid;
}

const refresh = async (s: Setup, refreshToken = s.started.refreshToken) =>
  (
    await ok<{ refreshSession: Started }>(t.app, {
      key: s.key,
      query: REFRESH,
      variables: { tag: s.tag, refreshToken },
    })
  ).refreshSession;

const execute = (query: ReturnType<typeof sql>) => t.database.db.execute(query);

/** Within `ms` of what was expected, for times set by the database clock. */
function expectNear(actual: string, expected: number, ms = 5_000) {
  expect(Math.abs(Date.parse(actual) - expected)).toBeLessThan(ms);
}

/**
 * What every data change must show: the new data, the version one up, one more DATA_UPDATED
 * event, and verify (with the token from start) returning that data and version.
 */
async function expectDataChange(
  s: Setup,
  result: { data: unknown; version: number },
  before: number,
  data: Record<string, unknown>,
) {
  expect(result.data).toEqual(data);
  expect(result.version).toBe(before + 1);
  const events = await eventTypesOf(t, s.started.sessionId);
  expect(events.at(-1)).toBe('DATA_UPDATED');
  // One DATA_UPDATED per version step: the session started at version 1.
  expect(events.filter((e) => e === 'DATA_UPDATED')).toHaveLength(before);
  const verified = await verify(s);
  expect(verified).toMatchObject({ data, version: before + 1 });
  expect(verified.session.version).toBe(before + 1);
}

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

describe('session time', () => {
  it('extendSession moves expiresAt later by the seconds and records an EXTENDED event', async () => {
    const s = await setup({}, adaData(), { expiresIn: 600 });
    const before = await sessionById(s, s.started.sessionId);
    const extended = await change(s, 'extendSession', { seconds: 120 });
    expect(Date.parse(extended.expiresAt) - Date.parse(before.expiresAt)).toBe(120_000);
    // Time does not touch the data's version.
    expect(extended.version).toBe(before.version);
    expect(extended.data).toEqual(before.data);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED', 'EXTENDED']);
    expect((await verify(s)).expiresAt).toBe(extended.expiresAt);
    expect(extended.timeRemaining).toBeGreaterThan(700);
    expect(extended.timeRemaining).toBeLessThanOrEqual(720);

    const twice = await change(s, 'extendSession', { seconds: 30 });
    expect(Date.parse(twice.expiresAt) - Date.parse(extended.expiresAt)).toBe(30_000);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED', 'EXTENDED', 'EXTENDED']);
  });

  it('extendSession on a session whose token expiry has passed extends from now and revives its token', async () => {
    const s = await setup({}, adaData(), { expiresIn: 600 });
    await execute(
      sql`update sessions set expires_at = now() - interval '1 hour' where id = ${s.started.sessionId}`,
    );
    expect(await verifyFails(s)).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect((await sessionById(s, s.started.sessionId)).timeRemaining).toBe(0);

    const extended = await change(s, 'extendSession', { seconds: 300 });
    expectNear(extended.expiresAt, Date.now() + 300_000);
    expect(extended.status).toBe('ACTIVE');
    expect((await verify(s)).expiresAt).toBe(extended.expiresAt);
  });

  it('a session started with expiresIn 10 and extended by 60 right away still verifies after 11 seconds', async () => {
    const s = await setup({}, adaData(), { expiresIn: 10 });
    const control = await start(t, s.key, s.tag, adaData(), { expiresIn: 10 });
    const extended = await change(s, 'extendSession', { seconds: 60 });
    expect(Date.parse(extended.expiresAt) - Date.parse(s.started.expiresAt)).toBe(60_000);

    await sleep(11_000);
    const verified = await verify(s);
    expect(verified).toMatchObject({
      sessionId: s.started.sessionId,
      expiresAt: extended.expiresAt,
    });
    expect(await isValid(s, s.started.token)).toBe(true);
    // The one not extended has run out.
    expect(await verifyFails(s, control.token)).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect(await isValid(s, control.token)).toBe(false);
  }, 30_000);

  it('extendSession past the refresh token’s expiry, or by less than a second, is BAD_USER_INPUT on seconds', async () => {
    // Tokens live 7 hours, refresh tokens 8: one more hour fits, two do not.
    const s = await setup({ refreshExpiresIn: 8 * 3_600 });
    const before = await sessionById(s, s.started.sessionId);
    const beforeRow = await sessionRowOf(t, s.started.sessionId);
    for (const seconds of [7_200, 3_601, 0, -60]) {
      expect(
        await changeFails(s, 'extendSession', s.started.sessionId, { seconds }),
        String(seconds),
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'seconds' });
    }
    expect(await sessionRowOf(t, s.started.sessionId)).toEqual(beforeRow);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED']);

    const extended = await change(s, 'extendSession', { seconds: 3_600 });
    expect(extended.expiresAt).toBe(before.refreshExpiresAt);
    expect(
      await changeFails(s, 'extendSession', s.started.sessionId, { seconds: 1 }),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'seconds' });
  });

  it('setSessionExpiration sets expiresAt to the instant given and records an EXTENDED event', async () => {
    const s = await setup();
    const later = new Date(Math.ceil(Date.now() / 1000) * 1000 + 2 * 86_400_000).toISOString();
    const set = await change(s, 'setSessionExpiration', { expiresAt: later });
    expect(set.expiresAt).toBe(later);
    expect(set.version).toBe(1);
    expect((await verify(s)).expiresAt).toBe(later);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED', 'EXTENDED']);

    // It may also bring the expiry closer.
    const sooner = new Date(Math.ceil(Date.now() / 1000) * 1000 + 120_000).toISOString();
    const shortened = await change(s, 'setSessionExpiration', { expiresAt: sooner });
    expect(shortened.expiresAt).toBe(sooner);
    expect(shortened.timeRemaining).toBeGreaterThan(110);
    expect(shortened.timeRemaining).toBeLessThanOrEqual(120);
    expect((await verify(s)).expiresAt).toBe(sooner);
  });

  it('setSessionExpiration in the past or after the refresh token’s expiry is BAD_USER_INPUT on expiresAt', async () => {
    const s = await setup();
    const before = await sessionById(s, s.started.sessionId);
    const beforeRow = await sessionRowOf(t, s.started.sessionId);
    const refreshEnd = Date.parse(before.refreshExpiresAt);
    for (const instant of [Date.now() - 60_000, Date.now() - 86_400_000, refreshEnd + 1_000]) {
      expect(
        await changeFails(s, 'setSessionExpiration', s.started.sessionId, {
          expiresAt: new Date(instant).toISOString(),
        }),
        new Date(instant).toISOString(),
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'expiresAt' });
    }
    expect(await sessionRowOf(t, s.started.sessionId)).toEqual(beforeRow);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED']);

    // The refresh token's expiry itself is the latest allowed.
    const set = await change(s, 'setSessionExpiration', { expiresAt: before.refreshExpiresAt });
    expect(set.expiresAt).toBe(before.refreshExpiresAt);
  });

  it('timeRemaining is the seconds until expiresAt, and 0 once it has passed', async () => {
    const s = await setup({}, adaData(), { expiresIn: 600 });
    const session = await sessionById(s, s.started.sessionId);
    const expected = (Date.parse(session.expiresAt) - Date.now()) / 1000;
    expect(Math.abs(session.timeRemaining - expected)).toBeLessThanOrEqual(2);
    expect(session.timeRemaining).toBeGreaterThan(590);
    expect(session.timeRemaining).toBeLessThanOrEqual(600);

    await execute(
      sql`update sessions set expires_at = now() - interval '5 seconds' where id = ${s.started.sessionId}`,
    );
    expect((await sessionById(s, s.started.sessionId)).timeRemaining).toBe(0);
  });

  it('touchSession records activity now, moving lastActiveAt and idleExpiresAt', async () => {
    const s = await setup({ idleTimeout: 600 });
    await execute(
      sql`update sessions set last_active_at = now() - interval '5 minutes' where id = ${s.started.sessionId}`,
    );
    const before = await sessionById(s, s.started.sessionId);
    expectNear(before.lastActiveAt, Date.now() - 300_000);
    expect(Date.parse(before.idleExpiresAt) - Date.parse(before.lastActiveAt)).toBe(600_000);

    const touched = await change(s, 'touchSession');
    expectNear(touched.lastActiveAt, Date.now());
    expect(Date.parse(touched.idleExpiresAt) - Date.parse(touched.lastActiveAt)).toBe(600_000);
    expectNear(touched.idleExpiresAt, Date.now() + 600_000);
    // Activity is not a change of the data, nor of the expiry.
    expect(touched.version).toBe(before.version);
    expect(touched.data).toEqual(before.data);
    expect(touched.expiresAt).toBe(before.expiresAt);
    expect(await sessionById(s, s.started.sessionId)).toMatchObject({
      lastActiveAt: touched.lastActiveAt,
      idleExpiresAt: touched.idleExpiresAt,
    });
  });

  it('a session without an idle timeout has no idleExpiresAt, and touch still moves lastActiveAt', async () => {
    const s = await setup();
    await execute(
      sql`update sessions set last_active_at = now() - interval '1 day' where id = ${s.started.sessionId}`,
    );
    expect((await sessionById(s, s.started.sessionId)).idleExpiresAt).toBeNull();
    const touched = await change(s, 'touchSession');
    expect(touched.idleExpiresAt).toBeNull();
    expectNear(touched.lastActiveAt, Date.now());
    expect(touched.status).toBe('ACTIVE');
  });
});

describe('idle timeout', () => {
  it('a session unused for longer than idleTimeout is over: verify, refresh and touch are TOKEN_EXPIRED, isSessionValid false, status EXPIRED', async () => {
    const s = await setup({ idleTimeout: 10 });
    const verified = await verify(s);
    expect(verified.session.status).toBe('ACTIVE');
    expect(
      Date.parse(verified.session.idleExpiresAt) - Date.parse(verified.session.lastActiveAt),
    ).toBe(10_000);
    expect(await isValid(s, s.started.token)).toBe(true);

    await execute(
      sql`update sessions set last_active_at = now() - interval '1 hour' where id = ${s.started.sessionId}`,
    );
    expect(await verifyFails(s)).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect(
      await failure(t.app, {
        key: s.key,
        query: REFRESH,
        variables: { tag: s.tag, refreshToken: s.started.refreshToken },
      }),
    ).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect(await isValid(s, s.started.token)).toBe(false);
    const session = await sessionById(s, s.started.sessionId);
    expect(session.status).toBe('EXPIRED');
    expect(session.revokedAt).toBeNull();
    expect(await changeFails(s, 'touchSession', s.started.sessionId)).toMatchObject({
      code: 'TOKEN_EXPIRED',
    });
    expect(
      await changeFails(s, 'setSessionValue', s.started.sessionId, { key: 'k', value: 1 }),
    ).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect(
      await changeFails(s, 'extendSession', s.started.sessionId, { seconds: 60 }),
    ).toMatchObject({ code: 'TOKEN_EXPIRED' });
    // Not among the identifier's active sessions, and still over after all those attempts.
    const listed = await ok(t.app, {
      key: s.key,
      query: LIST,
      variables: { tag: s.tag, identifier: 'user-ada' },
    });
    expect(listed.sessions.totalCount).toBe(0);
    expect(await verifyFails(s)).toMatchObject({ code: 'TOKEN_EXPIRED' });
  });

  it('an idle-expired session no longer counts in its config’s activeSessionCount', async () => {
    const s = await setup({ idleTimeout: 10 });
    await start(t, s.key, s.tag);
    const count = async () =>
      (
        await ok(t.app, {
          key: s.key,
          query: `query($tag: String!) { sessionConfig(tag: $tag) { activeSessionCount } }`,
          variables: { tag: s.tag },
        })
      ).sessionConfig.activeSessionCount;
    expect(await count()).toBe(2);
    await execute(
      sql`update sessions set last_active_at = now() - interval '1 hour' where id = ${s.started.sessionId}`,
    );
    expect((await sessionById(s, s.started.sessionId)).status).toBe('EXPIRED');
    expect(await count()).toBe(1);
  });

  it('verify and refresh count as activity and push the idle expiry back', async () => {
    const s = await setup({ idleTimeout: 120 });
    await execute(
      sql`update sessions set last_active_at = now() - interval '100 seconds' where id = ${s.started.sessionId}`,
    );
    const verified = await verify(s);
    expectNear(verified.session.lastActiveAt, Date.now());
    expectNear(verified.session.idleExpiresAt, Date.now() + 120_000);

    await execute(
      sql`update sessions set last_active_at = now() - interval '100 seconds' where id = ${s.started.sessionId}`,
    );
    const refreshed = await refresh(s);
    const session = await sessionById(s, s.started.sessionId);
    expectNear(session.lastActiveAt, Date.now());
    expect(session.status).toBe('ACTIVE');
    expect(await isValid(s, refreshed.token)).toBe(true);
  });

  it('verify records activity at most once a minute', async () => {
    const s = await setup();
    await execute(
      sql`update sessions set last_active_at = now() - interval '2 minutes' where id = ${s.started.sessionId}`,
    );
    const stale = await sessionRowOf(t, s.started.sessionId);

    t.statements.length = 0;
    const first = await verify(s);
    expect(t.statements.filter((q) => /^\s*update "sessions"/i.test(q))).toHaveLength(1);
    expectNear(first.session.lastActiveAt, Date.now());
    const touched = await sessionRowOf(t, s.started.sessionId);
    expect(touched!.last_active_at).not.toBe(stale!.last_active_at);
    expect((await sessionById(s, s.started.sessionId)).lastActiveAt).toBe(
      first.session.lastActiveAt,
    );

    // Within the minute: no write at all, and lastActiveAt stays where it was.
    t.statements.length = 0;
    const second = await verify(s);
    const third = await verify(s);
    expect(t.statements.filter((q) => /^\s*update\b/i.test(q))).toEqual([]);
    expect(second.session.lastActiveAt).toBe(first.session.lastActiveAt);
    expect(third.session.lastActiveAt).toBe(first.session.lastActiveAt);
    expect(await sessionRowOf(t, s.started.sessionId)).toEqual(touched);
  });
});

describe('isSessionValid', () => {
  it('is true for a live session and false, with no error, for a revoked, expired or garbage token', async () => {
    const s = await setup();
    const revoked = await start(t, s.key, s.tag);
    const tokenExpired = await start(t, s.key, s.tag);
    const refreshExpired = await start(t, s.key, s.tag);
    await ok(t.app, {
      key: s.key,
      query: REVOKE,
      variables: { tag: s.tag, sessionId: revoked.sessionId },
    });
    await execute(
      sql`update sessions set expires_at = now() - interval '1 minute' where id = ${tokenExpired.sessionId}`,
    );
    await execute(
      sql`update sessions set expires_at = now() - interval '2 minutes', refresh_expires_at = now() - interval '1 minute' where id = ${refreshExpired.sessionId}`,
    );

    expect(await isValid(s, s.started.token)).toBe(true);
    expect(await isValid(s, revoked.token)).toBe(false);
    expect(await isValid(s, tokenExpired.token)).toBe(false);
    expect(await isValid(s, refreshExpired.token)).toBe(false);
    for (const garbage of ['garbage', '', 'a.b.c.d.e', s.started.token.slice(0, -4) + 'AAAA']) {
      expect(await isValid(s, garbage), garbage).toBe(false);
    }
    // Asking does not change anything.
    expect(await isValid(s, s.started.token)).toBe(true);
  });
});

describe('sessions per identifier', () => {
  const sessionEventReasons = async (sessionId: string) =>
    rowsOf<{ type: string; reason: string | null }>(
      await execute(
        sql`select type, reason from session_events where session_id = ${sessionId} order by id`,
      ),
    );

  it('with maxSessionsPerIdentifier 2, a third session revokes the oldest with reason session_limit', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key, { maxSessionsPerIdentifier: 2 });
    const s = { product, key, tag };
    const bob = await start(t, key, tag, { userId: 'user-bob' });
    const ada: Started[] = [];
    for (let i = 0; i < 3; i++) ada.push(await start(t, key, tag, adaData()));

    const oldest = await sessionById(s, ada[0]!.sessionId);
    expect(oldest).toMatchObject({ status: 'REVOKED', revokeReason: 'session_limit' });
    expect(await sessionEventReasons(ada[0]!.sessionId)).toEqual([
      { type: 'STARTED', reason: null },
      { type: 'REVOKED', reason: 'session_limit' },
    ]);
    expect(
      await failure(t.app, { key, query: VERIFY_STATE, variables: { tag, token: ada[0]!.token } }),
    ).toMatchObject({ code: 'SESSION_REVOKED' });
    for (const live of ada.slice(1)) {
      expect((await sessionById(s, live.sessionId)).status).toBe('ACTIVE');
      expect(await eventTypesOf(t, live.sessionId)).toEqual(['STARTED']);
    }
    const listed = await ok(t.app, {
      key,
      query: LIST,
      variables: { tag, identifier: 'user-ada' },
    });
    expect(listed.sessions.totalCount).toBe(2);

    // Other identifiers keep theirs.
    expect((await sessionById(s, bob.sessionId)).status).toBe('ACTIVE');
    expect(await eventTypesOf(t, bob.sessionId)).toEqual(['STARTED']);

    // A fourth revokes the next oldest.
    await start(t, key, tag, adaData());
    expect((await sessionById(s, ada[1]!.sessionId)).revokeReason).toBe('session_limit');
    expect((await sessionById(s, ada[2]!.sessionId)).status).toBe('ACTIVE');
  });

  it('sessions already ended do not count toward the cap', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key, { maxSessionsPerIdentifier: 2 });
    const s = { product, key, tag };
    const first = await start(t, key, tag, adaData());
    const second = await start(t, key, tag, adaData());
    await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: first.sessionId } });
    const third = await start(t, key, tag, adaData());
    expect((await sessionById(s, second.sessionId)).status).toBe('ACTIVE');
    expect((await sessionById(s, third.sessionId)).status).toBe('ACTIVE');
    expect((await sessionById(s, first.sessionId)).revokeReason).toBe('revoked');

    await execute(
      sql`update sessions set expires_at = now() - interval '2 minutes', refresh_expires_at = now() - interval '1 minute' where id = ${second.sessionId}`,
    );
    const fourth = await start(t, key, tag, adaData());
    expect((await sessionById(s, third.sessionId)).status).toBe('ACTIVE');
    expect((await sessionById(s, fourth.sessionId)).status).toBe('ACTIVE');
    expect((await sessionById(s, second.sessionId)).revokedAt).toBeNull();
  });

  it('10 concurrent starts for one identifier under a cap of 3 leave exactly 3 live', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key, { maxSessionsPerIdentifier: 3 });
    const s = { product, key, tag };
    const bob = await start(t, key, tag, { userId: 'user-bob' });

    const started = await Promise.all(
      Array.from({ length: 10 }, () => start(t, key, tag, adaData())),
    );
    const listed = await ok(t.app, {
      key,
      query: LIST,
      variables: { tag, identifier: 'user-ada' },
    });
    expect(listed.sessions.totalCount).toBe(3);
    expect(listed.sessions.edges).toHaveLength(3);

    const sessions = await Promise.all(started.map((x) => sessionById(s, x.sessionId)));
    const live = sessions.filter((x) => x.status === 'ACTIVE');
    const revoked = sessions.filter((x) => x.status === 'REVOKED');
    expect(live).toHaveLength(3);
    expect(revoked).toHaveLength(7);
    for (const r of revoked) expect(r.revokeReason).toBe('session_limit');
    expect(new Set(live.map((x) => x.id))).toEqual(
      new Set(listed.sessions.edges.map((e: { node: { id: string } }) => e.node.id)),
    );
    const revokedEvents = rowsOf<{ n: number | string }>(
      await execute(
        sql`select count(*) as n from session_events where type = 'REVOKED' and reason = 'session_limit' and session_id in (${sql.join(
          started.map((x) => sql`${x.sessionId}::uuid`),
          sql`, `,
        )})`,
      ),
    );
    expect(Number(revokedEvents[0]!.n)).toBe(7);
    expect((await sessionById(s, bob.sessionId)).status).toBe('ACTIVE');
  });
});

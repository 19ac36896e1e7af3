import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { TestApp } from './app.js';
import { failure, gql, ok } from './graphql.js';
import {
  REFRESH,
  eventTypesOf,
  newConfig,
  newSharedConfig,
  newProduct,
  start,
  type Started,
  type TestProduct,
} from './fixtures.js';

/**
 * What the session state test files share (test/session-state-*.test.ts): the state
 * mutations, queries and helpers on the file's app.
 */

let t: TestApp;
/** Binds the helpers below to the test file's app (from its `beforeAll`). */
export function bindSessionStateApp(app: TestApp): void {
  t = app;
}

export const SESSION_FIELDS = `id identifier version data status expiresAt refreshExpiresAt lastActiveAt idleExpiresAt timeRemaining revokedAt revokeReason`;
export const ADDRESS = `$tag: String!, $sessionId: ID!, $expectedVersion: Int`;
export const AT = `tag: $tag, sessionId: $sessionId, expectedVersion: $expectedVersion`;

/** The session state mutations, each returning the changed session. */
export const MUTATIONS = {
  updateSessionData: `mutation(${ADDRESS}, $data: JSON!) { updateSessionData(${AT}, data: $data) { ${SESSION_FIELDS} } }`,
  mergeSessionData: `mutation(${ADDRESS}, $data: JSON!) { mergeSessionData(${AT}, data: $data) { ${SESSION_FIELDS} } }`,
  setSessionValue: `mutation(${ADDRESS}, $key: String!, $value: JSON!) { setSessionValue(${AT}, key: $key, value: $value) { ${SESSION_FIELDS} } }`,
  removeSessionValue: `mutation(${ADDRESS}, $key: String!) { removeSessionValue(${AT}, key: $key) { ${SESSION_FIELDS} } }`,
  clearSessionData: `mutation(${ADDRESS}) { clearSessionData(${AT}) { ${SESSION_FIELDS} } }`,
  touchSession: `mutation(${ADDRESS}) { touchSession(${AT}) { ${SESSION_FIELDS} } }`,
  extendSession: `mutation(${ADDRESS}, $seconds: Int!) { extendSession(${AT}, seconds: $seconds) { ${SESSION_FIELDS} } }`,
  setSessionExpiration: `mutation(${ADDRESS}, $expiresAt: DateTime!) { setSessionExpiration(${AT}, expiresAt: $expiresAt) { ${SESSION_FIELDS} } }`,
} as const;
export type Op = keyof typeof MUTATIONS;
export const ALL_OPS = Object.keys(MUTATIONS) as Op[];
export const DATA_OPS: Op[] = [
  'updateSessionData',
  'mergeSessionData',
  'setSessionValue',
  'removeSessionValue',
  'clearSessionData',
];

/** Arguments each operation accepts on a default session (besides tag and sessionId). */
export const validArgs = (op: Op): Record<string, unknown> =>
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

export const VERIFY_STATE = `query($tag: String!, $token: String!) {
  verifySession(tag: $tag, token: $token) {
    sessionId identifier data version expiresAt
    session { id status version lastActiveAt idleExpiresAt }
  }
}`;
export const SESSION = `query($id: ID!) { session(id: $id) { ${SESSION_FIELDS} } }`;
export const VALUE = `query($id: ID!, $key: String!) { session(id: $id) { version value(key: $key) } }`;
export const IS_VALID = `query($tag: String!, $token: String!) { isSessionValid(tag: $tag, token: $token) }`;
export const LIST = `query($tag: String!, $identifier: String!) {
  sessions(tag: $tag, identifier: $identifier, first: 100) { totalCount edges { node { id } } }
}`;

/** Ductape's data: a userId and nested details, with extra keys as given. */
export const adaData = (extra: Record<string, unknown> = {}) => ({
  userId: 'user-ada',
  details: { username: 'ada', email: 'ada@example.com' },
  ...extra,
});

export interface Setup {
  product: TestProduct;
  key: string;
  tag: string;
  started: Started;
}

/** A fresh product and config (overrides as given), with one session started on it. */
export async function setup(
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

export async function change(s: Setup, op: Op, variables: Record<string, unknown> = {}) {
  const data = await ok(t.app, {
    key: s.key,
    query: MUTATIONS[op],
    variables: { tag: s.tag, sessionId: s.started.sessionId, ...variables },
  });
  return data[op];
}

export const changeFails = (
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

export const verify = async (s: Setup, token = s.started.token) =>
  (await ok(t.app, { key: s.key, query: VERIFY_STATE, variables: { tag: s.tag, token } }))
    .verifySession;
export const verifyFails = (s: Setup, token = s.started.token) =>
  failure(t.app, { key: s.key, query: VERIFY_STATE, variables: { tag: s.tag, token } });

export async function sessionById(s: Pick<Setup, 'key'>, id: string) {
  return (await ok(t.app, { key: s.key, query: SESSION, variables: { id } })).session;
}

export async function isValid(s: Setup, token: string): Promise<boolean> {
  const response = await gql<{ isSessionValid: boolean }>(t.app, {
    key: s.key,
    query: IS_VALID,
    variables: { tag: s.tag, token },
  });
  expect(response.errors).toBeUndefined();
  return response.data!.isSessionValid;
}

export const refresh = async (s: Setup, refreshToken = s.started.refreshToken) =>
  (
    await ok<{ refreshSession: Started }>(t.app, {
      key: s.key,
      query: REFRESH,
      variables: { tag: s.tag, refreshToken },
    })
  ).refreshSession;

export const execute = (query: ReturnType<typeof sql>) => t.database.db.execute(query);

/** Within `ms` of what was expected, for times set by the database clock. */
export function expectNear(actual: string, expected: number, ms = 5_000) {
  expect(Math.abs(Date.parse(actual) - expected)).toBeLessThan(ms);
}

/**
 * What every data change must show: the new data, the version one up, one more DATA_UPDATED
 * event, and verify (with the token from start) returning that data and version.
 */
export async function expectDataChange(
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

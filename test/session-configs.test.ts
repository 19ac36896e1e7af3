import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { failure, gql, ok } from './support/graphql.js';
import {
  REFRESH,
  REVOKE,
  VERIFY,
  ductapeConfig,
  newConfig,
  newSharedConfig,
  newProduct,
  start,
  uniqueTag,
} from './support/fixtures.js';

/** The file's app (the `t` fixture), for the helpers below. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
});

const FIELDS = `name tag description schema selector expiry period refreshExpiresIn activeSessionCount createdAt updatedAt`;
const CREATE = `mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input) { ${FIELDS} } }`;
const UPDATE = `mutation($tag: String!, $input: UpdateSessionConfigInput!) { updateSessionConfig(tag: $tag, input: $input) { ${FIELDS} } }`;
const FETCH = `query($tag: String!) { sessionConfig(tag: $tag) { ${FIELDS} } }`;
const LIST = `{ sessionConfigs { ${FIELDS} } }`;
const DELETE = `mutation($tag: String!) { deleteSessionConfig(tag: $tag) }`;
const COUNTS = `{ sessionConfigs { tag activeSessionCount } }`;

const DAY = 86_400;

async function create(key: string, input: Record<string, unknown>) {
  const data = await ok(t.app, { key, query: CREATE, variables: { input } });
  return data.createSessionConfig;
}

/** The error of a createSessionConfig that must fail. */
const createFails = (key: string, input: Record<string, unknown>) =>
  failure(t.app, { key, query: CREATE, variables: { input } });

const updateFails = (key: string, tag: string, input: Record<string, unknown>) =>
  failure(t.app, { key, query: UPDATE, variables: { tag, input } });

async function fetchConfig(key: string, tag: string) {
  return (await ok(t.app, { key, query: FETCH, variables: { tag } })).sessionConfig;
}

async function listConfigs(key: string): Promise<Record<string, unknown>[]> {
  return (await ok(t.app, { key, query: LIST })).sessionConfigs;
}

/** Nested objects: `levels` objects counting the outermost, the innermost holding a string. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 'x' };
  for (let i = 1; i < levels; i++) value = { next: value };
  return value;
}

describe('creating, reading and listing session configs', () => {
  it('createSessionConfig stores the Ductape config and returns every field', async () => {
    const product = await newProduct(t);
    const input = ductapeConfig(uniqueTag());
    const created = await create(product.secret.dev, input);
    expect(created).toMatchObject({
      name: input.name,
      tag: input.tag,
      description: input.description,
      schema: input.schema,
      selector: '$Session{userId}',
      expiry: 7,
      period: 'HOURS',
      refreshExpiresIn: 30 * DAY,
      activeSessionCount: 0,
    });
    expect(Number.isNaN(Date.parse(created.createdAt))).toBe(false);
    expect(Number.isNaN(Date.parse(created.updatedAt))).toBe(false);
  });

  it('createSessionConfig accepts a nested selector and an explicit refreshExpiresIn', async () => {
    const product = await newProduct(t);
    const created = await create(
      product.secret.dev,
      ductapeConfig(uniqueTag(), {
        selector: '$Session{details}{username}',
        expiry: 30,
        period: 'MINUTES',
        refreshExpiresIn: 7 * DAY,
      }),
    );
    expect(created).toMatchObject({
      selector: '$Session{details}{username}',
      expiry: 30,
      period: 'MINUTES',
      refreshExpiresIn: 7 * DAY,
    });
  });

  it('sessionConfig(tag) fetches one config, and is null for a tag the product does not have', async () => {
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    const fetched = await fetchConfig(product.secret.dev, tag);
    expect(fetched).toMatchObject({ tag, name: 'User session', expiry: 7, period: 'HOURS' });
    expect(await fetchConfig(product.secret.dev, uniqueTag())).toBeNull();
  });

  it('sessionConfigs lists the configs an env may use, oldest first: its own and the product-wide ones', async () => {
    const product = await newProduct(t);
    const tags: string[] = [];
    for (let i = 0; i < 3; i++) tags.push(await newConfig(t, product.secret.dev));
    const shared = await newSharedConfig(t, product.tag);
    const prdOwn = await newConfig(t, product.secret.prd);
    expect((await listConfigs(product.secret.dev)).map((c) => c.tag)).toEqual([...tags, shared]);
    // The prd key sees the product-wide config and its own, never the dev key's.
    expect((await listConfigs(product.secret.prd)).map((c) => c.tag)).toEqual([shared, prdOwn]);
    const other = await newProduct(t);
    expect(await listConfigs(other.secret.dev)).toEqual([]);
  });
});

describe('updating session configs', () => {
  it('updateSessionConfig changes only the fields it is given', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const before = await fetchConfig(key, tag);

    const renamed = await ok(t.app, {
      key,
      query: UPDATE,
      variables: { tag, input: { name: 'Renamed session' } },
    });
    expect(renamed.updateSessionConfig).toEqual({
      ...before,
      name: 'Renamed session',
      updatedAt: renamed.updateSessionConfig.updatedAt,
    });
    expect(Date.parse(renamed.updateSessionConfig.updatedAt)).toBeGreaterThanOrEqual(
      Date.parse(before.updatedAt),
    );

    const schema = { userId: 'u-1', role: 'admin', details: { username: 'x' } };
    await ok(t.app, {
      key,
      query: UPDATE,
      variables: { tag, input: { expiry: 2, period: 'DAYS', schema } },
    });
    const after = await fetchConfig(key, tag);
    expect(after).toMatchObject({
      name: 'Renamed session',
      tag,
      description: before.description,
      selector: before.selector,
      schema,
      expiry: 2,
      period: 'DAYS',
      refreshExpiresIn: before.refreshExpiresIn,
      createdAt: before.createdAt,
    });
  });

  it('updateSessionConfig treats null fields as not given', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const before = await fetchConfig(key, tag);
    const updated = await ok(t.app, {
      key,
      query: UPDATE,
      variables: { tag, input: { name: null, description: 'New words', expiry: null } },
    });
    expect(updated.updateSessionConfig).toMatchObject({
      name: before.name,
      description: 'New words',
      expiry: before.expiry,
      period: before.period,
    });
  });

  it('updateSessionConfig can rename a config, after which the old tag is free', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const newTag = uniqueTag();
    const renamed = await ok(t.app, {
      key,
      query: UPDATE,
      variables: { tag, input: { tag: newTag } },
    });
    expect(renamed.updateSessionConfig.tag).toBe(newTag);
    expect(await fetchConfig(key, tag)).toBeNull();
    expect((await fetchConfig(key, newTag)).tag).toBe(newTag);
    expect((await create(key, ductapeConfig(tag))).tag).toBe(tag);
  });

  it('updateSessionConfig checks the merged config: a new schema must still hold the selector', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key, { selector: '$Session{details}{username}' });
    expect(await updateFails(key, tag, { schema: { userId: 'u-1' } })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.selector',
    });
    expect(
      await updateFails(key, tag, { schema: { details: { username: { first: 'a' } } } }),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.selector' });
    expect(await updateFails(key, tag, { selector: '$Session{nope}' })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.selector',
    });
    expect(await updateFails(key, tag, { expiry: 0 })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.expiry',
    });
    expect(await updateFails(key, tag, { tag: 'Not A Tag' })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.tag',
    });
    expect(await updateFails(key, tag, { name: '  ' })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.name',
    });
    // A failed update changes nothing.
    expect(await fetchConfig(key, tag)).toMatchObject({
      selector: '$Session{details}{username}',
      schema: ductapeConfig().schema,
      expiry: 7,
      name: 'User session',
    });
  });

  it('updateSessionConfig keeps the refresh lifetime at least the token lifetime', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key, { refreshExpiresIn: DAY });
    expect(await updateFails(key, tag, { expiry: 2, period: 'DAYS' })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.refreshExpiresIn',
    });
    expect(await updateFails(key, tag, { refreshExpiresIn: 3_600 })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.refreshExpiresIn',
    });
    const both = await ok(t.app, {
      key,
      query: UPDATE,
      variables: { tag, input: { expiry: 2, period: 'DAYS', refreshExpiresIn: 3 * DAY } },
    });
    expect(both.updateSessionConfig).toMatchObject({
      expiry: 2,
      period: 'DAYS',
      refreshExpiresIn: 3 * DAY,
    });
  });
});

describe('deleting session configs', () => {
  it('deleteSessionConfig of a product-wide config revokes its sessions in every env and frees its tag', async () => {
    const product = await newProduct(t);
    const tag = await newSharedConfig(t, product.tag);
    const dev = await start(t, product.secret.dev, tag);
    const prd = await start(t, product.secret.prd, tag);
    // Only the admin key deletes a product-wide config.
    const deleted = await ok(t.app, {
      key: t.adminKey,
      query: `mutation($tag: String!, $product: String!) { deleteSessionConfig(tag: $tag, product: $product, env: "dev") }`,
      variables: { tag, product: product.tag },
    });
    expect(deleted.deleteSessionConfig).toBe(true);

    expect(
      await failure(t.app, {
        key: product.secret.dev,
        query: VERIFY,
        variables: { tag, token: dev.token },
      }),
    ).toMatchObject({ code: 'SESSION_REVOKED' });
    expect(
      await failure(t.app, {
        key: product.secret.prd,
        query: VERIFY,
        variables: { tag, token: prd.token },
      }),
    ).toMatchObject({ code: 'SESSION_REVOKED' });
    expect(
      await failure(t.app, {
        key: product.secret.dev,
        query: REFRESH,
        variables: { tag, refreshToken: dev.refreshToken },
      }),
    ).toMatchObject({ code: 'SESSION_REVOKED' });
    const session = await ok(t.app, {
      key: product.secret.dev,
      query: `query($id: ID!) { session(id: $id) { status revokeReason } }`,
      variables: { id: dev.sessionId },
    });
    expect(session.session).toEqual({ status: 'REVOKED', revokeReason: 'config_deleted' });

    // The config is gone ...
    expect(await fetchConfig(product.secret.dev, tag)).toBeNull();
    expect(await listConfigs(product.secret.dev)).toEqual([]);
    expect(
      await failure(t.app, {
        key: product.secret.dev,
        query: `mutation($input: StartSessionInput!) { startSession(input: $input) { token } }`,
        variables: { input: { tag, data: { userId: 'u' } } },
      }),
    ).toMatchObject({ code: 'NOT_FOUND' });

    // ... and its tag can be created again, without reviving the old sessions.
    const again = await create(product.secret.dev, ductapeConfig(tag));
    expect(again).toMatchObject({ tag, activeSessionCount: 0 });
    expect(
      await failure(t.app, {
        key: product.secret.dev,
        query: VERIFY,
        variables: { tag, token: dev.token },
      }),
    ).toMatchObject({ code: 'SESSION_REVOKED' });
    const fresh = await start(t, product.secret.dev, tag);
    await ok(t.app, {
      key: product.secret.dev,
      query: VERIFY,
      variables: { tag, token: fresh.token },
    });
  });

  it('updating or deleting a tag the product does not have is NOT_FOUND', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    expect(await updateFails(key, uniqueTag(), { name: 'x' })).toMatchObject({
      code: 'NOT_FOUND',
    });
    expect(
      await failure(t.app, { key, query: DELETE, variables: { tag: uniqueTag() } }),
    ).toMatchObject({ code: 'NOT_FOUND' });

    // Another product's config is not this product's: NOT_FOUND, and left as it was.
    const other = await newProduct(t);
    const theirs = await newConfig(t, other.secret.dev);
    expect(await updateFails(key, theirs, { name: 'mine now' })).toMatchObject({
      code: 'NOT_FOUND',
    });
    expect(await failure(t.app, { key, query: DELETE, variables: { tag: theirs } })).toMatchObject({
      code: 'NOT_FOUND',
    });
    expect(await fetchConfig(other.secret.dev, theirs)).toMatchObject({
      tag: theirs,
      name: 'User session',
    });

    // A deleted config is NOT_FOUND too.
    const mine = await newConfig(t, key);
    await ok(t.app, { key, query: DELETE, variables: { tag: mine } });
    expect(await failure(t.app, { key, query: DELETE, variables: { tag: mine } })).toMatchObject({
      code: 'NOT_FOUND',
    });
    expect(await updateFails(key, mine, { name: 'x' })).toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('tags are unique in a product', () => {
  it('creating a config with a tag that exists is a CONFLICT', async () => {
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    expect(await createFails(product.secret.dev, ductapeConfig(tag))).toMatchObject({
      code: 'CONFLICT',
    });
    // Also from another env of the same product: configs are per product.
    expect(await createFails(product.secret.prd, ductapeConfig(tag))).toMatchObject({
      code: 'CONFLICT',
    });
    // Another product may use the same tag.
    const other = await newProduct(t);
    expect((await create(other.secret.dev, ductapeConfig(tag))).tag).toBe(tag);
  });

  it('of several concurrent creates with one tag, exactly one succeeds and the rest are CONFLICT', async () => {
    const product = await newProduct(t);
    const tag = uniqueTag();
    const responses = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        gql(t.app, {
          key: product.secret.dev,
          query: CREATE,
          variables: { input: ductapeConfig(tag, { name: `Racer ${i}` }) },
        }),
      ),
    );
    const created = responses.filter((r) => !r.errors);
    const codes = responses.flatMap((r) => (r.errors ?? []).map((e) => e.extensions?.code));
    expect(created).toHaveLength(1);
    expect(codes).toEqual(Array.from({ length: 7 }, () => 'CONFLICT'));
    expect(await listConfigs(product.secret.dev)).toHaveLength(1);
  });

  it('renaming a config onto a tag that exists is a CONFLICT and changes nothing', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const first = await newConfig(t, key);
    const second = await newConfig(t, key, { expiry: 3 });
    expect(await updateFails(key, second, { tag: first })).toMatchObject({ code: 'CONFLICT' });
    expect(await fetchConfig(key, first)).toMatchObject({ tag: first, expiry: 7 });
    expect(await fetchConfig(key, second)).toMatchObject({ tag: second, expiry: 3 });
  });
});

describe('createSessionConfig validation', () => {
  it('a bad tag is BAD_USER_INPUT on input.tag', async () => {
    const product = await newProduct(t);
    for (const tag of ['', 'Bad Tag', 'UPPER', '-leading', '_leading', 'a.b', 'x'.repeat(65)]) {
      expect(await createFails(product.secret.dev, ductapeConfig(tag))).toMatchObject({
        code: 'BAD_USER_INPUT',
        field: 'input.tag',
      });
    }
    // The longest tag allowed is 64 characters.
    const longest = `a${randomHex(63)}`;
    expect((await create(product.secret.dev, ductapeConfig(longest))).tag).toBe(longest);
  });

  it('an empty or overlong name is BAD_USER_INPUT on input.name', async () => {
    const product = await newProduct(t);
    for (const name of ['', '   ', 'n'.repeat(201)]) {
      expect(
        await createFails(product.secret.dev, ductapeConfig(uniqueTag(), { name })),
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.name' });
    }
  });

  it('a selector not of the form $Session{a}{b} is BAD_USER_INPUT on input.selector', async () => {
    const product = await newProduct(t);
    for (const selector of [
      '',
      'userId',
      '{userId}',
      '$Session',
      '$Session{}',
      '$session{userId}',
      '$Session{userId',
      '$Session{userId}x',
      '$Session.userId',
      '${userId}',
      ` $Session{userId}`,
    ]) {
      expect(
        await createFails(product.secret.dev, ductapeConfig(uniqueTag(), { selector })),
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.selector' });
    }
  });

  it('a selector that does not resolve in the schema, or names an object, is BAD_USER_INPUT on input.selector', async () => {
    const product = await newProduct(t);
    for (const selector of [
      '$Session{nope}',
      '$Session{details}',
      '$Session{details}{nope}',
      '$Session{userId}{more}',
      '$Session{details}{username}{more}',
    ]) {
      const error = await createFails(product.secret.dev, ductapeConfig(uniqueTag(), { selector }));
      expect(error, selector).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.selector' });
    }
    // An array or a null is not an identifier either.
    const schema = { userId: 'u', roles: ['admin'], nothing: null };
    for (const selector of ['$Session{roles}', '$Session{nothing}']) {
      const error = await createFails(
        product.secret.dev,
        ductapeConfig(uniqueTag(), { schema, selector }),
      );
      expect(error, selector).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.selector' });
    }
    // Numbers and booleans are fine identifiers.
    const numeric = await create(
      product.secret.dev,
      ductapeConfig(uniqueTag(), { schema: { userId: 42 }, selector: '$Session{userId}' }),
    );
    expect(numeric.schema).toEqual({ userId: 42 });
  });

  it('a schema that is not a JSON object is BAD_USER_INPUT on input.schema', async () => {
    const product = await newProduct(t);
    for (const schema of ['{"userId":"x"}', 5, true, [{ userId: 'x' }]]) {
      expect(
        await createFails(product.secret.dev, ductapeConfig(uniqueTag(), { schema })),
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.schema' });
    }
  });

  it('a schema over 16 KiB is BAD_USER_INPUT on input.schema', async () => {
    const product = await newProduct(t);
    // {"userId":"x","pad":"…"}: 23 bytes around the padding.
    const atLimit = { userId: 'x', pad: 'p'.repeat(16 * 1024 - 23) };
    expect(Buffer.byteLength(JSON.stringify(atLimit))).toBe(16 * 1024);
    const accepted = await create(
      product.secret.dev,
      ductapeConfig(uniqueTag(), { schema: atLimit }),
    );
    expect(accepted.schema).toEqual(atLimit);
    const over = { userId: 'x', pad: 'p'.repeat(16 * 1024 - 22) };
    expect(
      await createFails(product.secret.dev, ductapeConfig(uniqueTag(), { schema: over })),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.schema' });
    // Bytes, not characters: 6,000 three-byte characters are 18,000 bytes.
    const multiByte = { userId: 'x', pad: '€'.repeat(6_000) };
    expect(
      await createFails(product.secret.dev, ductapeConfig(uniqueTag(), { schema: multiByte })),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.schema' });
  });

  it('a schema nested deeper than 10 levels is BAD_USER_INPUT on input.schema', async () => {
    const product = await newProduct(t);
    // 10 levels counting the schema itself: accepted.
    const tenLevels = { userId: 'x', deep: nested(9) };
    const created = await create(
      product.secret.dev,
      ductapeConfig(uniqueTag(), { schema: tenLevels }),
    );
    expect(created.schema).toEqual(tenLevels);
    // 11 levels: refused.
    const elevenLevels = { userId: 'x', deep: nested(10) };
    expect(
      await createFails(product.secret.dev, ductapeConfig(uniqueTag(), { schema: elevenLevels })),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.schema' });
    // Arrays count as levels too.
    let arrays: unknown = 'x';
    for (let i = 0; i < 12; i++) arrays = [arrays];
    expect(
      await createFails(
        product.secret.dev,
        ductapeConfig(uniqueTag(), { schema: { userId: 'x', arrays } }),
      ),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.schema' });
  });

  it('an expiry of zero or less is BAD_USER_INPUT on input.expiry', async () => {
    const product = await newProduct(t);
    for (const expiry of [0, -1, -3600]) {
      for (const period of ['SECONDS', 'HOURS']) {
        expect(
          await createFails(product.secret.dev, ductapeConfig(uniqueTag(), { expiry, period })),
        ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.expiry' });
      }
    }
  });

  it('a token lifetime under 10 seconds or over 365 days is BAD_USER_INPUT on input.expiry', async () => {
    const product = await newProduct(t);
    for (const [expiry, period] of [
      [9, 'SECONDS'],
      [1, 'SECONDS'],
      [366, 'DAYS'],
      [53, 'WEEKS'],
      [8_761, 'HOURS'],
    ] as const) {
      expect(
        await createFails(product.secret.dev, ductapeConfig(uniqueTag(), { expiry, period })),
        `${expiry} ${period}`,
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.expiry' });
    }
    // The bounds themselves are accepted.
    for (const [expiry, period] of [
      [10, 'SECONDS'],
      [365, 'DAYS'],
      [52, 'WEEKS'],
    ] as const) {
      const created = await create(
        product.secret.dev,
        ductapeConfig(uniqueTag(), { expiry, period }),
      );
      expect(created).toMatchObject({ expiry, period });
    }
  });

  it('a refreshExpiresIn shorter than the token lifetime, or over 400 days, is BAD_USER_INPUT on input.refreshExpiresIn', async () => {
    const product = await newProduct(t);
    // 7 hours is 25,200 seconds.
    for (const refreshExpiresIn of [3_600, 25_199, 0, -1, 401 * DAY]) {
      expect(
        await createFails(product.secret.dev, ductapeConfig(uniqueTag(), { refreshExpiresIn })),
        String(refreshExpiresIn),
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.refreshExpiresIn' });
    }
    const equal = await create(
      product.secret.dev,
      ductapeConfig(uniqueTag(), { refreshExpiresIn: 25_200 }),
    );
    expect(equal.refreshExpiresIn).toBe(25_200);
  });

  it('a config refused for any reason is not created', async () => {
    const product = await newProduct(t);
    const tag = uniqueTag();
    expect(
      await createFails(product.secret.dev, ductapeConfig(tag, { selector: '$Session{nope}' })),
    ).toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(await fetchConfig(product.secret.dev, tag)).toBeNull();
    expect((await create(product.secret.dev, ductapeConfig(tag))).tag).toBe(tag);
  });
});

describe('activeSessionCount', () => {
  it('counts only the live sessions of the caller’s env', async () => {
    const product = await newProduct(t);
    const tag = await newSharedConfig(t, product.tag);
    const devA = await start(t, product.secret.dev, tag);
    await start(t, product.secret.dev, tag);
    await start(t, product.secret.prd, tag);
    const count = async (key: string) => (await fetchConfig(key, tag)).activeSessionCount as number;
    expect(await count(product.secret.dev)).toBe(2);
    expect(await count(product.secret.prd)).toBe(1);

    await ok(t.app, {
      key: product.secret.dev,
      query: REVOKE,
      variables: { tag, sessionId: devA.sessionId },
    });
    expect(await count(product.secret.dev)).toBe(1);
    expect(await count(product.secret.prd)).toBe(1);
    const listed = await ok(t.app, { key: product.secret.dev, query: COUNTS });
    expect(listed.sessionConfigs).toEqual([{ tag, activeSessionCount: 1 }]);
  });

  it('does not count a session past its refresh expiry', async () => {
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    const gone = await start(t, product.secret.dev, tag);
    await start(t, product.secret.dev, tag);
    await t.database.db.execute(
      sql`update sessions set refresh_expires_at = now() - interval '1 minute' where id = ${gone.sessionId}`,
    );
    expect((await fetchConfig(product.secret.dev, tag)).activeSessionCount).toBe(1);
  });

  it('listing 50 configs with their counts costs as many SQL statements as listing 5', async () => {
    const small = await newProduct(t);
    const large = await newProduct(t);
    for (let i = 0; i < 5; i++) await newConfig(t, small.secret.dev);
    const largeTags: string[] = [];
    for (let i = 0; i < 50; i++) largeTags.push(await newConfig(t, large.secret.dev));
    // Some live sessions, so that the counts are not all zero.
    await start(t, large.secret.dev, largeTags[0]!);
    await start(t, large.secret.dev, largeTags[0]!);
    await start(t, large.secret.dev, largeTags[49]!);

    t.statements.length = 0;
    const smallList = await ok(t.app, { key: small.secret.dev, query: COUNTS });
    const smallStatements = t.statements.length;
    t.statements.length = 0;
    const largeList = await ok(t.app, { key: large.secret.dev, query: COUNTS });
    const largeStatements = t.statements.length;
    // All 50 counts come from one statement over sessions.
    expect(t.statements.filter((s) => /from "sessions"/.test(s))).toHaveLength(1);

    expect(smallList.sessionConfigs).toHaveLength(5);
    expect(largeList.sessionConfigs).toHaveLength(50);
    const counts = new Map(
      (largeList.sessionConfigs as { tag: string; activeSessionCount: number }[]).map((c) => [
        c.tag,
        c.activeSessionCount,
      ]),
    );
    expect(counts.get(largeTags[0]!)).toBe(2);
    expect(counts.get(largeTags[49]!)).toBe(1);
    expect(counts.get(largeTags[1]!)).toBe(0);
    expect(smallStatements).toBeGreaterThan(0);
    expect(largeStatements).toBe(smallStatements);
  });
});

function randomHex(length: number): string {
  return randomBytes(Math.ceil(length / 2))
    .toString('hex')
    .slice(0, length);
}

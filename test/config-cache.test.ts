import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import { randomSecret } from '../src/tokens/secrets.js';
import { createTestApp, TEST_DATABASE_URL, type TestApp } from './support/app.js';
import {
  configIdsOf,
  ductapeConfig,
  newConfig,
  newProduct,
  rowsOf,
  start,
  uniqueTag,
} from './support/fixtures.js';
import { gql, ok } from './support/graphql.js';
import { test } from './support/test.js';
import { START, REVOKE_ALL } from './support/documents.js';

/**
 * The session config cache (issue #14): a start reads its config from the process's memory, and a
 * change made through another instance on the same database is seen by this one at once (its
 * NOTIFY drops the entry; and a start on an entry out of date reads the config again, never
 * acting on the old one). On Postgres the two instances have their own connections (and their own
 * LISTEN); on PGlite they share the one database handle.
 */
const sessionSecret = randomSecret(48);
test.override('appOptions', { sessionSecret });

/**
 * The first instance, `a`, is the file's `t`; `b` is a file-scoped fixture of this file (not
 * `instance`, which would share `t`'s connections on Postgres too).
 */
const it = test.extend('b', { scope: 'file' }, async ({ t }, { onCleanup }): Promise<TestApp> => {
  const b = await createTestApp({
    sessionSecret,
    ...(TEST_DATABASE_URL ? {} : { database: t.database }),
  });
  onCleanup(() => b.close());
  return b;
});
const describe = it.describe;

const UPDATE = `mutation($tag: String!, $input: UpdateSessionConfigInput!) { updateSessionConfig(tag: $tag, input: $input) { tag } }`;
const DELETE = `mutation($tag: String!) { deleteSessionConfig(tag: $tag) }`;
const CREATE = `mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input) { tag } }`;
const USER_DATA = { userId: 'user-123', details: { username: 'ada', email: 'ada@example.com' } };

async function startCode(t: TestApp, key: string, tag: string, data: unknown = USER_DATA) {
  const r = await gql<{ startSession: { token: string; sessionId: string } }>(t.app, {
    key,
    query: START,
    variables: { input: { tag, data } },
  });
  return {
    code: r.errors?.[0]?.extensions?.code as string | undefined,
    sessionId: r.data?.startSession?.sessionId,
  };
}

/**
 * Waits until `b` has had every config change committed so far (the NOTIFY of a config just
 * created through `a` among them): one notification of its own, sent after them, has come back on
 * its listening connection, which receives them in commit order. Otherwise that NOTIFY, on its way
 * while `b` starts a session, drops the entry `b` has just cached.
 */
async function createdNoticedBy(b: TestApp): Promise<void> {
  await b.database.checkNotifications();
}

/** Waits until `b`'s cache no longer holds anything of the product (the NOTIFY arrived). */
async function forgottenBy(t: TestApp, productId: string): Promise<void> {
  const until = Date.now() + 5_000;
  while (t.services.sessionConfigs.holdsProduct(productId)) {
    if (Date.now() > until) throw new Error('the config change never reached the other instance');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function liveSessionsOfConfig(a: TestApp, configId: string): Promise<number> {
  const rows = rowsOf<{ n: number }>(
    await a.database.db.execute(
      sql`select count(*)::int as n from sessions where config_id = ${configId} and revoked_at is null`,
    ),
  );
  return rows[0]!.n;
}

describe('session config cache across two instances', () => {
  it('a start from the cache sends no config read: one statement', async ({ t: a }) => {
    const product = await newProduct(a);
    const key = product.secret.dev;
    const tag = await newConfig(a, key);
    await start(a, key, tag);
    await a.services.activity.flush();
    a.statements.length = 0;
    await start(a, key, tag);
    const configReads = a.statements.filter(
      (s) => /from "session_configs"/.test(s) && !/insert into/i.test(s),
    );
    expect(configReads).toEqual([]);
    expect(a.statements.filter((s) => /insert into sessions/.test(s))).toHaveLength(1);
  });

  it('a rename through one instance is seen by the other at once', async ({ t: a, b }) => {
    const product = await newProduct(a);
    const key = product.secret.dev;
    const tag = await newConfig(a, key);
    const { productId } = await configIdsOf(a, product.tag, tag);
    await createdNoticedBy(b);
    await start(b, key, tag); // b caches the config
    expect(b.services.sessionConfigs.holdsProduct(productId)).toBe(true);
    await ok(a.app, { key, query: REVOKE_ALL, variables: { tag, identifier: 'user-123' } });
    const renamed = uniqueTag('renamed');
    await ok(a.app, { key, query: UPDATE, variables: { tag, input: { tag: renamed } } });
    // Right after the rename's answer, before or after b heard of it: the old tag is gone.
    expect((await startCode(b, key, tag)).code).toBe('NOT_FOUND');
    expect((await startCode(b, key, renamed)).code).toBeUndefined();
    await start(b, key, renamed);
    await ok(a.app, {
      key,
      query: REVOKE_ALL,
      variables: { tag: renamed, identifier: 'user-123' },
    });
    await ok(a.app, { key, query: UPDATE, variables: { tag: renamed, input: { tag } } });
    await forgottenBy(b, productId);
    expect((await startCode(b, key, renamed)).code).toBe('NOT_FOUND');
  });

  it('a new schema or lifetime through one instance applies to the next start on the other', async ({
    t: a,
    b,
  }) => {
    const product = await newProduct(a);
    const key = product.secret.dev;
    const tag = await newConfig(a, key);
    await start(b, key, tag);
    await ok(a.app, {
      key,
      query: UPDATE,
      variables: {
        tag,
        input: { schema: { email: 'a@b.c' }, selector: '$Session{email}', expiry: 1 },
      },
    });
    // No wait for the NOTIFY: the cached version no longer matches the row, so b reads again.
    const started = await ok<{ startSession: { expiresAt: string } }>(b.app, {
      key,
      query: `mutation($input: StartSessionInput!) { startSession(input: $input) { expiresAt } }`,
      variables: { input: { tag, data: { email: 'x@y.z' } } },
    });
    const lifetimeMs = new Date(started.startSession.expiresAt).getTime() - Date.now();
    expect(lifetimeMs).toBeLessThanOrEqual(3_600_000);
    expect(lifetimeMs).toBeGreaterThan(3_500_000);
    expect((await startCode(b, key, tag, USER_DATA)).code).toBe('BAD_USER_INPUT');
  });

  it('a change that sent no NOTIFY (made in SQL) is still never acted on: the start requires the version it read', async ({
    t: a,
    b,
  }) => {
    const product = await newProduct(a);
    const key = product.secret.dev;
    const tag = await newConfig(a, key);
    const { configId, productId } = await configIdsOf(a, product.tag, tag);
    await createdNoticedBy(b);
    await start(b, key, tag);
    expect(b.services.sessionConfigs.holdsProduct(productId)).toBe(true);
    await a.database.db.execute(
      sql`update session_configs set expiry = 1, period = 'HOURS' where id = ${configId}`,
    );
    expect(b.services.sessionConfigs.holdsProduct(productId)).toBe(true);
    const started = await ok<{ startSession: { expiresAt: string } }>(b.app, {
      key,
      query: `mutation($input: StartSessionInput!) { startSession(input: $input) { expiresAt } }`,
      variables: { input: { tag, data: USER_DATA } },
    });
    const lifetimeMs = new Date(started.startSession.expiresAt).getTime() - Date.now();
    expect(lifetimeMs).toBeLessThanOrEqual(3_600_000);
    await a.database.db.execute(
      sql`update session_configs set deleted_at = now() where id = ${configId}`,
    );
    expect((await startCode(b, key, tag)).code).toBe('NOT_FOUND');
  });

  it('a delete, then the tag taken by another env: the other instance answers NOT_FOUND, then FORBIDDEN', async ({
    t: a,
    b,
  }) => {
    const product = await newProduct(a);
    const tag = await newConfig(a, product.secret.dev);
    const { productId } = await configIdsOf(a, product.tag, tag);
    await start(b, product.secret.dev, tag);
    await ok(a.app, { key: product.secret.dev, query: DELETE, variables: { tag } });
    expect((await startCode(b, product.secret.dev, tag)).code).toBe('NOT_FOUND');
    await forgottenBy(b, productId);
    // The tag now belongs to prd: b caches it for a prd start...
    await ok(a.app, {
      key: product.secret.prd,
      query: CREATE,
      variables: { input: ductapeConfig(tag) },
    });
    await start(b, product.secret.prd, tag);
    expect((await startCode(b, product.secret.dev, tag)).code).toBe('FORBIDDEN');
    // ... and back to dev: FORBIDDEN is never answered from an out-of-date entry.
    await ok(a.app, { key: product.secret.prd, query: DELETE, variables: { tag } });
    await ok(a.app, {
      key: product.secret.dev,
      query: CREATE,
      variables: { input: ductapeConfig(tag) },
    });
    expect((await startCode(b, product.secret.dev, tag)).code).toBeUndefined();
    expect((await startCode(b, product.secret.prd, tag)).code).toBe('FORBIDDEN');
  });

  it('starts on one instance racing a delete on the other: each lands first (and is revoked) or is NOT_FOUND', async ({
    t: a,
    b,
  }) => {
    for (let round = 0; round < 6; round++) {
      const product = await newProduct(a);
      const key = product.secret.dev;
      const tag = await newConfig(a, key);
      const { configId } = await configIdsOf(a, product.tag, tag);
      await start(b, key, tag); // warm b's cache
      const starts = Array.from({ length: 16 }, () => startCode(b, key, tag));
      const deleted = ok(a.app, { key, query: DELETE, variables: { tag } });
      const results = await Promise.all(starts);
      await deleted;
      for (const r of results) expect([undefined, 'NOT_FOUND']).toContain(r.code);
      expect(await liveSessionsOfConfig(a, configId)).toBe(0);
      expect((await startCode(b, key, tag)).code).toBe('NOT_FOUND');
    }
  });

  it('starts on one instance racing a rename on the other: never a live session under the old tag', async ({
    t: a,
    b,
  }) => {
    for (let round = 0; round < 6; round++) {
      const product = await newProduct(a);
      const key = product.secret.dev;
      const tag = await newConfig(a, key);
      const { configId } = await configIdsOf(a, product.tag, tag);
      await start(b, key, tag); // warm b's cache
      await ok(a.app, { key, query: REVOKE_ALL, variables: { tag, identifier: 'user-123' } });
      const renamed = uniqueTag('renamed');
      const starts = Array.from({ length: 16 }, () => startCode(b, key, tag));
      const rename = gql(a.app, {
        key,
        query: UPDATE,
        variables: { tag, input: { tag: renamed } },
      });
      const results = await Promise.all(starts);
      const renameCode = (await rename).errors?.[0]?.extensions?.code;
      for (const r of results) expect([undefined, 'NOT_FOUND']).toContain(r.code);
      const landed = results.filter((r) => r.code === undefined).length;
      expect(await liveSessionsOfConfig(a, configId)).toBe(landed);
      if (renameCode === undefined) expect(landed).toBe(0);
      else expect(renameCode).toBe('CONFLICT');
    }
  });
});

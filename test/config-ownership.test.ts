import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { describe, it } from './support/test.js';
import { failure, gql, ok, type Document } from './support/graphql.js';
import {
  REFRESH,
  REVOKE,
  VERIFY,
  configIdsOf,
  ductapeConfig,
  newConfig,
  newProduct,
  newSharedConfig,
  rowsOf,
  start,
  uniqueTag,
} from './support/fixtures.js';
import { START, IS_VALID, REVOKE_ALL } from './support/documents.js';

/** The cap on live configs per product of the app `capped` runs with. */
const CAP = 5;

const CREATE = `mutation($input: CreateSessionConfigInput!, $product: String, $env: String) { createSessionConfig(input: $input, product: $product, env: $env) { tag env } }`;
const UPDATE = `mutation($tag: String!, $input: UpdateSessionConfigInput!, $product: String, $env: String) { updateSessionConfig(tag: $tag, input: $input, product: $product, env: $env) { tag env expiry } }`;
const DELETE = `mutation($tag: String!, $product: String, $env: String) { deleteSessionConfig(tag: $tag, product: $product, env: $env) }`;
const FETCH = `query($tag: String!) { sessionConfig(tag: $tag) { tag env name } }`;
const LIST = `{ sessionConfigs { tag env } }`;
const LIST_SESSIONS = `query($tag: String!, $identifier: String!) { sessions(tag: $tag, identifier: $identifier) { totalCount nodes { id } } }`;
const TOUCH = `mutation($tag: String!, $sessionId: ID!) { touchSession(tag: $tag, sessionId: $sessionId) { id } }`;
const USERS = `query($tag: String!) { sessionUsers(tag: $tag) { totalCount } }`;
const USER = `query($tag: String!) { sessionUser(tag: $tag, identifier: "user-123") { identifier } }`;
const ACTIVITY = `query($tag: String) { activityLog(tag: $tag) { totalCount } }`;
const DASHBOARD = `query($tag: String!) { sessionDashboard(tag: $tag, from: "2020-01-01T00:00:00Z", to: "2020-01-02T00:00:00Z", groupBy: DAY) { totalSessions } }`;

const USER_DATA = { userId: 'user-123', details: { username: 'ada', email: 'ada@example.com' } };

async function verify(t: TestApp, key: string, tag: string, token: string) {
  return gql(t.app, { key, query: VERIFY, variables: { tag, token } });
}

async function liveSessionsOfConfig(t: TestApp, configId: string): Promise<number> {
  const rows = rowsOf<{ n: number }>(
    await t.database.db.execute(
      sql`select count(*)::int as n from sessions where config_id = ${configId} and revoked_at is null`,
    ),
  );
  return Number(rows[0]!.n);
}

describe('renaming a config', () => {
  it('is refused with CONFLICT on input.tag while the config has a live session, and changes nothing', async ({
    t,
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const live = await start(t, key, tag);
    const newTag = uniqueTag('renamed');

    const refused = await failure(t.app, {
      key,
      query: UPDATE,
      variables: { tag, input: { tag: newTag, expiry: 3 } },
    });
    expect(refused).toMatchObject({ code: 'CONFLICT', field: 'input.tag' });
    expect(refused.message).toMatch(/live session/i);
    expect(refused.message).toMatch(/create a new config/i);
    expect(refused.message).toMatch(/revoke/i);

    // Nothing changed: the old tag still holds the config and its session.
    expect(
      (await ok(t.app, { key, query: FETCH, variables: { tag } })).sessionConfig,
    ).toMatchObject({ tag });
    expect((await ok(t.app, { key, query: FETCH, variables: { tag: newTag } })).sessionConfig).toBe(
      null,
    );
    await ok(t.app, { key, query: VERIFY, variables: { tag, token: live.token } });
    // Other fields still change while the tag stays.
    const updated = await ok(t.app, {
      key,
      query: UPDATE,
      variables: { tag, input: { expiry: 3 } },
    });
    expect(updated.updateSessionConfig).toMatchObject({ tag, expiry: 3 });
    // Renaming to the same tag is not a rename.
    await ok(t.app, { key, query: UPDATE, variables: { tag, input: { tag } } });

    // Once its sessions are revoked, the rename goes through, and revokeAll under the new tag
    // has nothing left to find under the old one.
    const revoked = await ok(t.app, {
      key,
      query: REVOKE_ALL,
      variables: { tag, identifier: 'user-123' },
    });
    expect(revoked.revokeAllSessions.count).toBe(1);
    const renamed = await ok(t.app, {
      key,
      query: UPDATE,
      variables: { tag, input: { tag: newTag } },
    });
    expect(renamed.updateSessionConfig).toMatchObject({ tag: newTag });
    // The old token verifies and refreshes under neither tag.
    for (const tg of [tag, newTag]) {
      expect((await verify(t, key, tg, live.token)).errors?.[0]?.extensions?.code).toMatch(
        /TOKEN_INVALID|SESSION_REVOKED/,
      );
      expect(
        (
          await gql(t.app, {
            key,
            query: REFRESH,
            variables: { tag: tg, refreshToken: live.refreshToken },
          })
        ).errors?.[0]?.extensions?.code,
      ).toMatch(/TOKEN_INVALID|SESSION_REVOKED/);
    }
    // New sessions start under the new tag.
    const fresh = await start(t, key, newTag);
    await ok(t.app, { key, query: VERIFY, variables: { tag: newTag, token: fresh.token } });
  });

  it('an expired session does not block a rename; a live session in another env does', async ({
    t,
  }) => {
    const product = await newProduct(t);
    const tag = await newSharedConfig(t, product.tag);
    const s = await start(t, product.secret.prd, tag);
    const admin = { product: product.tag, env: 'dev' };
    expect(
      await failure(t.app, {
        key: t.adminKey,
        query: UPDATE,
        variables: { ...admin, tag, input: { tag: uniqueTag() } },
      }),
    ).toMatchObject({ code: 'CONFLICT', field: 'input.tag' });
    await t.database.db.execute(
      sql`update sessions set refresh_expires_at = now() - interval '1 second', expires_at = now() - interval '1 second' where id = ${s.sessionId}`,
    );
    await ok(t.app, {
      key: t.adminKey,
      query: UPDATE,
      variables: { ...admin, tag, input: { tag: uniqueTag() } },
    });
  });

  it('a new config on an old tag never accepts older tokens, even of sessions an old rename or delete left live', async ({
    t,
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    for (const how of ['renamed', 'deleted'] as const) {
      const tag = await newConfig(t, key);
      const old = await start(t, key, tag);
      const { configId } = await configIdsOf(t, product.tag, tag);
      // What the old code did: move the config off the tag and leave its sessions live.
      await t.database.db.execute(
        how === 'renamed'
          ? sql`update session_configs set tag = ${uniqueTag('moved')} where id = ${configId}`
          : sql`update session_configs set deleted_at = now() where id = ${configId}`,
      );
      expect(await liveSessionsOfConfig(t, configId)).toBe(1);
      // A new config takes the old tag, with another schema and selector.
      await ok(t.app, {
        key,
        query: CREATE,
        variables: {
          input: ductapeConfig(tag, { schema: { email: 'a@b.c' }, selector: '$Session{email}' }),
        },
      });
      expect((await verify(t, key, tag, old.token)).errors?.[0]?.extensions?.code).toBe(
        'TOKEN_INVALID',
      );
      expect(
        (await ok(t.app, { key, query: IS_VALID, variables: { tag, token: old.token } }))
          .isSessionValid,
      ).toBe(false);
      expect(
        (
          await gql(t.app, {
            key,
            query: REFRESH,
            variables: { tag, refreshToken: old.refreshToken },
          })
        ).errors?.[0]?.extensions?.code,
      ).toBe('TOKEN_INVALID');
      // ... and the new config's own sessions work.
      const fresh = await start(t, key, tag, { email: 'x@y.z' });
      await ok(t.app, { key, query: VERIFY, variables: { tag, token: fresh.token } });
    }
  });

  it('a start racing a rename either lands first (rename refused) or fails with NOT_FOUND; never a session under the old tag', async ({
    t,
  }) => {
    const rounds = 8;
    const starts = 12;
    let renamed = 0;
    let refused = 0;
    for (let round = 0; round < rounds; round++) {
      const product = await newProduct(t);
      const key = product.secret.dev;
      const tag = await newConfig(t, key);
      const { configId } = await configIdsOf(t, product.tag, tag);
      const newTag = uniqueTag('race');
      const at = round % (starts + 1);
      const calls: Promise<{ kind: 'start' | 'rename'; code?: string; token?: string }>[] = [];
      for (let i = 0; i <= starts; i++) {
        if (i === at) {
          calls.push(
            gql(t.app, { key, query: UPDATE, variables: { tag, input: { tag: newTag } } }).then(
              (r) => ({ kind: 'rename', code: r.errors?.[0]?.extensions?.code as string }),
            ),
          );
        } else {
          calls.push(
            gql<{ startSession: { token: string } }>(t.app, {
              key,
              query: START,
              variables: { input: { tag, data: USER_DATA } },
            }).then((r) => ({
              kind: 'start',
              code: r.errors?.[0]?.extensions?.code as string | undefined,
              token: r.data?.startSession?.token,
            })),
          );
        }
      }
      const results = await Promise.all(calls);
      const rename = results.find((r) => r.kind === 'rename')!;
      const started = results.filter((r) => r.kind === 'start' && !r.code);
      for (const r of results.filter((r) => r.kind === 'start' && r.code)) {
        expect(r.code).toBe('NOT_FOUND');
      }
      const rows = await liveSessionsOfConfig(t, configId);
      expect(rows).toBe(started.length);
      if (rename.code === undefined) {
        renamed++;
        expect(rows).toBe(0);
      } else {
        refused++;
        expect(rename.code).toBe('CONFLICT');
        expect(rows).toBeGreaterThan(0);
        for (const s of started)
          await ok(t.app, { key, query: VERIFY, variables: { tag, token: s.token } });
      }
    }
    expect(renamed + refused).toBe(rounds);
  });
});

/** Every operation a key may try on a config by its tag, as [name, call]. */
function everyUse(
  tag: string,
  session: { token: string; refreshToken: string; sessionId: string },
) {
  const calls: [string, { query: Document; variables: Record<string, unknown> }][] = [
    ['sessionConfig', { query: FETCH, variables: { tag } }],
    ['updateSessionConfig', { query: UPDATE, variables: { tag, input: { expiry: 1 } } }],
    ['deleteSessionConfig', { query: DELETE, variables: { tag } }],
    ['startSession', { query: START, variables: { input: { tag, data: USER_DATA } } }],
    ['verifySession', { query: VERIFY, variables: { tag, token: session.token } }],
    ['isSessionValid', { query: IS_VALID, variables: { tag, token: session.token } }],
    ['refreshSession', { query: REFRESH, variables: { tag, refreshToken: session.refreshToken } }],
    ['revokeSession', { query: REVOKE, variables: { tag, sessionId: session.sessionId } }],
    ['revokeAllSessions', { query: REVOKE_ALL, variables: { tag, identifier: 'user-123' } }],
    ['sessions', { query: LIST_SESSIONS, variables: { tag, identifier: 'user-123' } }],
    ['touchSession', { query: TOUCH, variables: { tag, sessionId: session.sessionId } }],
    ['sessionUsers', { query: USERS, variables: { tag } }],
    ['sessionUser', { query: USER, variables: { tag } }],
    ['activityLog', { query: ACTIVITY, variables: { tag } }],
    ['sessionDashboard', { query: DASHBOARD, variables: { tag } }],
  ];
  return calls;
}

describe('who may touch a config', () => {
  it('a secret key’s config belongs to its env: the other env gets FORBIDDEN on every use, learns nothing, and changes nothing', async ({
    t,
    product,
  }) => {
    const tag = await newConfig(t, product.secret.prd, { name: 'Secret name of prd' });
    const created = await ok(t.app, { key: product.secret.prd, query: FETCH, variables: { tag } });
    expect(created.sessionConfig).toMatchObject({ tag, env: 'prd' });
    const prdSession = await start(t, product.secret.prd, tag);
    const devSession = await start(t, product.secret.dev, await newConfig(t, product.secret.dev));

    for (const session of [prdSession, devSession]) {
      for (const [name, call] of everyUse(tag, session)) {
        const response = await gql(t.app, { key: product.secret.dev, ...call });
        expect(response.errors?.[0]?.extensions?.code, name).toBe('FORBIDDEN');
        expect(JSON.stringify(response), name).not.toContain('Secret name of prd');
        expect(JSON.stringify(response), name).not.toContain('user-123');
      }
    }
    // The events subscription over SSE: refused before anything streams.
    const sse = await t.app.fetch('http://test.local/graphql', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        authorization: `Bearer ${product.secret.dev}`,
      },
      body: JSON.stringify({
        query: `subscription($tag: String) { sessionEvents(tag: $tag) { id } }`,
        variables: { tag },
      }),
    });
    const text = await sse.text();
    expect(text).toContain('FORBIDDEN');

    expect(
      (await ok(t.app, { key: product.secret.dev, query: LIST })).sessionConfigs.map(
        (c: { tag: string }) => c.tag,
      ),
    ).not.toContain(tag);
    // prd's config and session are as they were.
    expect(
      (await ok(t.app, { key: product.secret.prd, query: FETCH, variables: { tag } }))
        .sessionConfig,
    ).toMatchObject({ tag, env: 'prd', name: 'Secret name of prd' });
    await ok(t.app, {
      key: product.secret.prd,
      query: VERIFY,
      variables: { tag, token: prdSession.token },
    });
    // The admin key acts as the env it names: as dev, FORBIDDEN; as prd, allowed.
    expect(
      await failure(t.app, {
        key: t.adminKey,
        query: UPDATE,
        variables: { tag, input: { expiry: 2 }, product: product.tag, env: 'dev' },
      }),
    ).toMatchObject({ code: 'FORBIDDEN' });
    const asPrd = await ok(t.app, {
      key: t.adminKey,
      query: UPDATE,
      variables: { tag, input: { expiry: 2 }, product: product.tag, env: 'prd' },
    });
    expect(asPrd.updateSessionConfig).toMatchObject({ tag, env: 'prd', expiry: 2 });
  });

  it('a secret key updates and deletes its own env’s configs; deleting revokes their sessions', async ({
    t,
    product,
  }) => {
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const s = await start(t, key, tag);
    await ok(t.app, { key, query: UPDATE, variables: { tag, input: { expiry: 2 } } });
    await ok(t.app, { key, query: DELETE, variables: { tag } });
    expect((await verify(t, key, tag, s.token)).errors?.[0]?.extensions?.code).toBe(
      'SESSION_REVOKED',
    );
  });

  it('a product-wide config is used by every env, and only the admin key changes or deletes it', async ({
    t,
    product,
  }) => {
    const tag = await newSharedConfig(t, product.tag);
    const sessions = {
      dev: await start(t, product.secret.dev, tag),
      prd: await start(t, product.secret.prd, tag),
    };
    for (const env of ['dev', 'prd'] as const) {
      const key = product.secret[env];
      expect(
        (await ok(t.app, { key, query: FETCH, variables: { tag } })).sessionConfig,
      ).toMatchObject({ tag, env: null });
      expect((await ok(t.app, { key, query: LIST })).sessionConfigs).toContainEqual({
        tag,
        env: null,
      });
      await ok(t.app, { key, query: VERIFY, variables: { tag, token: sessions[env].token } });
      await ok(t.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken: sessions[env].refreshToken },
      });
      for (const call of [
        { query: UPDATE, variables: { tag, input: { expiry: 1 } } },
        { query: DELETE, variables: { tag } },
      ]) {
        const refused = await failure(t.app, { key, ...call });
        expect(refused.code).toBe('FORBIDDEN');
        expect(refused.message).toMatch(/admin key/);
      }
    }
    const updated = await ok(t.app, {
      key: t.adminKey,
      query: UPDATE,
      variables: { tag, input: { expiry: 2 }, product: product.tag, env: 'prd' },
    });
    expect(updated.updateSessionConfig).toMatchObject({ tag, env: null, expiry: 2 });
    await ok(t.app, {
      key: t.adminKey,
      query: DELETE,
      variables: { tag, product: product.tag, env: 'prd' },
    });
    for (const env of ['dev', 'prd'] as const) {
      const left = await ok(t.app, {
        key: product.secret[env],
        query: LIST_SESSIONS,
        variables: { tag, identifier: 'user-123' },
      });
      expect(left.sessions.totalCount).toBe(0);
    }
  });

  it('only the admin key creates a product-wide config; it creates env-owned ones for the env it names', async ({
    t,
    product,
  }) => {
    const refused = await failure(t.app, {
      key: product.secret.dev,
      query: CREATE,
      variables: { input: { ...ductapeConfig(uniqueTag()), shared: true } },
    });
    expect(refused.code).toBe('FORBIDDEN');
    const tag = uniqueTag();
    const made = await ok(t.app, {
      key: t.adminKey,
      query: CREATE,
      variables: { input: ductapeConfig(tag), product: product.tag, env: 'prd' },
    });
    expect(made.createSessionConfig).toEqual({ tag, env: 'prd' });
    expect(
      (await failure(t.app, { key: product.secret.dev, query: FETCH, variables: { tag } })).code,
    ).toBe('FORBIDDEN');
    await start(t, product.secret.prd, tag);
  });

  it('tags stay unique in the product across owners', async ({ t, product }) => {
    const tag = await newConfig(t, product.secret.prd);
    expect(
      await failure(t.app, {
        key: product.secret.dev,
        query: CREATE,
        variables: { input: ductapeConfig(tag) },
      }),
    ).toMatchObject({ code: 'CONFLICT' });
    expect(
      await failure(t.app, {
        key: t.adminKey,
        query: CREATE,
        variables: {
          input: { ...ductapeConfig(tag), shared: true },
          product: product.tag,
          env: 'dev',
        },
      }),
    ).toMatchObject({ code: 'CONFLICT' });
  });
});

describe('the cap on configs per product', () => {
  const createIn = (app: TestApp, key: string, tag = uniqueTag()) =>
    gql(app.app, { key, query: CREATE, variables: { input: ductapeConfig(tag) } });

  it('refuses one config more than the cap with LIMIT_EXCEEDED; deleting one frees a place; other products are not counted', async ({
    instance,
  }) => {
    const capped = await instance({ maxConfigsPerProduct: CAP });
    const product = await newProduct(capped);
    const tags: string[] = [];
    for (let i = 0; i < CAP; i++) {
      const tag = uniqueTag();
      tags.push(tag);
      // Owners do not matter: the cap counts the product's configs in every env.
      const key = i % 2 === 0 ? product.secret.dev : product.secret.prd;
      expect((await createIn(capped, key, tag)).errors).toBeUndefined();
    }
    const refused = await createIn(capped, product.secret.dev);
    expect(refused.errors?.[0]?.extensions?.code).toBe('LIMIT_EXCEEDED');
    expect(refused.errors?.[0]?.message).toContain(String(CAP));
    // Renaming is not creating.
    await ok(capped.app, {
      key: product.secret.dev,
      query: UPDATE,
      variables: { tag: tags[0], input: { tag: uniqueTag() } },
    });
    const other = await newProduct(capped);
    expect((await createIn(capped, other.secret.dev)).errors).toBeUndefined();
    await ok(capped.app, { key: product.secret.prd, query: DELETE, variables: { tag: tags[1] } });
    expect((await createIn(capped, product.secret.dev)).errors).toBeUndefined();
    expect((await createIn(capped, product.secret.dev)).errors?.[0]?.extensions?.code).toBe(
      'LIMIT_EXCEEDED',
    );
  });

  it('20 concurrent creates at one below the cap end with exactly the cap', async ({
    t,
    instance,
  }) => {
    const capped = await instance({ maxConfigsPerProduct: CAP });
    for (let round = 0; round < 3; round++) {
      const product = await newProduct(capped);
      for (let i = 0; i < CAP - 1; i++) await createIn(capped, product.secret.dev);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          createIn(capped, i % 2 === 0 ? product.secret.dev : product.secret.prd),
        ),
      );
      const codes = results.map((r) => r.errors?.[0]?.extensions?.code ?? 'OK');
      expect(codes.filter((c) => c === 'OK')).toHaveLength(1);
      expect(codes.filter((c) => c === 'LIMIT_EXCEEDED')).toHaveLength(19);
      const rows = rowsOf<{ n: number }>(
        await t.database.db.execute(
          sql`select count(*)::int as n from session_configs c join products p on p.id = c.product_id where p.tag = ${product.tag} and c.deleted_at is null`,
        ),
      );
      expect(Number(rows[0]!.n)).toBe(CAP);
    }
  });
});

import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { failure, gql, graphql, ok } from './support/graphql.js';
import {
  REFRESH,
  REVOKE,
  VERIFY,
  newConfig,
  newSharedConfig,
  newProduct,
  start,
  uniqueTag,
  type TestProduct,
} from './support/fixtures.js';
import { IS_VALID, REVOKE_ALL } from './support/documents.js';

/** The file's app (the `t` fixture), for the helpers below. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
});

const NESTED = { selector: '$Session{details}{username}' };

/** Ductape's data: a userId and nested details. */
const adaData = (username = 'ada', extra: Record<string, unknown> = {}) => ({
  userId: `user-${username}`,
  details: { username, email: `${username}@example.com` },
  ...extra,
});

const START = graphql(`
  mutation ($input: StartSessionInput!) {
    startSession(input: $input) {
      token
      refreshToken
      sessionId
      expiresAt
      session {
        id
        tag
        identifier
        data
        status
        createdAt
        expiresAt
        lastActiveAt
        revokedAt
        config {
          tag
        }
      }
    }
  }
`);
const SESSION = graphql(`
  query ($id: ID!) {
    session(id: $id) {
      id
      tag
      identifier
      data
      status
      createdAt
      expiresAt
      lastActiveAt
      revokedAt
      revokeReason
      device {
        userAgent
        ip
      }
      config {
        tag
      }
    }
  }
`);
const LIST = graphql(`
  query ($tag: String!, $identifier: String!, $first: Int, $after: String) {
    sessions(tag: $tag, identifier: $identifier, first: $first, after: $after) {
      totalCount
      pageInfo {
        hasNextPage
        hasPreviousPage
        startCursor
        endCursor
      }
      edges {
        cursor
        node {
          id
          identifier
          status
          createdAt
          expiresAt
          lastActiveAt
          device {
            userAgent
            ip
          }
        }
      }
    }
  }
`);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A product with a nested-selector config, as most tests here want. */
/**
 * A product and a config its dev key uses; `shared`: a product-wide one (created by the admin
 * key), which the prd key may use too.
 */
async function setup({ shared = false } = {}): Promise<{
  product: TestProduct;
  key: string;
  tag: string;
}> {
  const product = await newProduct(t);
  const tag = shared
    ? await newSharedConfig(t, product.tag, NESTED)
    : await newConfig(t, product.secret.dev, NESTED);
  return { product, key: product.secret.dev, tag };
}

const verify = (key: string, tag: string, token: string) =>
  ok(t.app, { key, query: VERIFY, variables: { tag, token } }).then((d) => d.verifySession);
const verifyFails = (key: string, tag: string, token: string) =>
  failure(t.app, { key, query: VERIFY, variables: { tag, token } });
const startFails = (key: string, input: Record<string, unknown>) =>
  failure(t.app, { key, query: START, variables: { input } });

/** `session(id)` as the key sees it: null if the key may not see it or it does not exist. */
async function sessionOrNull(key: string, id: string) {
  return (await ok(t.app, { key, query: SESSION, variables: { id } })).session;
}

/** A session the key can see (fails the test if it is not there). */
async function sessionById(key: string, id: string) {
  const session = await sessionOrNull(key, id);
  if (!session) throw new Error(`session ${id} not found`);
  return session;
}

async function list(
  key: string,
  tag: string,
  identifier: string,
  first?: number,
  after?: string | null,
) {
  return (await ok(t.app, { key, query: LIST, variables: { tag, identifier, first, after } }))
    .sessions;
}

/** Within `ms` of what was expected, for times set by the database clock. */
function expectNear(actual: string, expected: number, ms = 10_000) {
  expect(Math.abs(Date.parse(actual) - expected)).toBeLessThan(ms);
}

describe('starting a session', () => {
  it('startSession takes userId and details data and picks the identifier with the nested selector', async () => {
    const { key, tag } = await setup();
    const data = adaData();
    const result = await ok(t.app, { key, query: START, variables: { input: { tag, data } } });
    const started = result.startSession;
    expect(started.token.split('.')).toHaveLength(5);
    expect(started.refreshToken).toMatch(/^rt_[A-Za-z0-9_-]{43}$/);
    expect(started.sessionId).toMatch(UUID);
    // The config says 7 hours.
    expectNear(started.expiresAt, Date.now() + 7 * 3_600_000);
    expect(started.session).toMatchObject({
      id: started.sessionId,
      tag,
      identifier: 'ada',
      data,
      status: 'ACTIVE',
      expiresAt: started.expiresAt,
      revokedAt: null,
      config: { tag },
    });
    expectNear(started.session.createdAt, Date.now());
  });

  it('startSession with the $Session{userId} selector uses userId as the identifier', async () => {
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    const started = await start(t, product.secret.dev, tag, adaData());
    expect((await verify(product.secret.dev, tag, started.token)).identifier).toBe('user-ada');
  });

  it('an identifier given at start overrides the selector', async () => {
    const { key, tag } = await setup();
    const started = await start(t, key, tag, adaData(), { identifier: 'account-42' });
    const verified = await verify(key, tag, started.token);
    expect(verified.identifier).toBe('account-42');
    expect((await list(key, tag, 'account-42')).totalCount).toBe(1);
    expect((await list(key, tag, 'ada')).totalCount).toBe(0);
  });

  it('an identifier given at start makes the selector’s key optional in the data', async () => {
    const { key, tag } = await setup();
    const started = await start(t, key, tag, { userId: 'u-1' }, { identifier: 'someone' });
    expect((await verify(key, tag, started.token)).data).toEqual({ userId: 'u-1' });
  });

  it('expiresIn sets the session token’s lifetime in seconds', async () => {
    const { key, tag } = await setup();
    const started = await start(t, key, tag, adaData(), { expiresIn: 1_800 });
    expectNear(started.expiresAt, Date.now() + 1_800_000);
    expect((await verify(key, tag, started.token)).expiresAt).toBe(started.expiresAt);
  });

  it('data and identifiers outside ASCII round-trip unchanged', async () => {
    const { key, tag } = await setup();
    const data = {
      userId: 'u-ü',
      details: { username: 'Zoë-名前-🙂', email: 'zoë@exämple.com' },
      note: 'line\nbreak "quoted" \\ back',
    };
    const started = await start(t, key, tag, data);
    const verified = await verify(key, tag, started.token);
    expect(verified).toMatchObject({ identifier: 'Zoë-名前-🙂', data });
    const listed = await list(key, tag, 'Zoë-名前-🙂');
    expect(listed.totalCount).toBe(1);
    expect(listed.edges[0]!.node.id).toBe(started.sessionId);
  });

  it('extra keys the schema does not have are kept in the data', async () => {
    const { key, tag } = await setup();
    const data = adaData('ada', { role: 'admin', permissions: ['read', 'write'] });
    const started = await start(t, key, tag, data);
    expect((await verify(key, tag, started.token)).data).toEqual(data);
  });
});

describe('verifying and refreshing', () => {
  it('verifySession returns the decrypted data, identifier, session id and expiry', async () => {
    const { key, tag } = await setup();
    const data = adaData('ada', { creditCardLast4: '4242', subscriptionTier: 'premium' });
    const started = await start(t, key, tag, data);
    const verified = await verify(key, tag, started.token);
    expect(verified).toEqual({
      sessionId: started.sessionId,
      tag,
      identifier: 'ada',
      data,
      expiresAt: started.expiresAt,
      session: { id: started.sessionId, status: 'ACTIVE' },
    });
  });

  it('refreshSession returns a new pair, and the new token verifies with the same data', async () => {
    const { key, tag } = await setup();
    const data = adaData();
    const started = await start(t, key, tag, data);
    const refreshed = (
      await ok(t.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken: started.refreshToken },
      })
    ).refreshSession;
    expect(refreshed.sessionId).toBe(started.sessionId);
    expect(refreshed.token).not.toBe(started.token);
    expect(refreshed.refreshToken).not.toBe(started.refreshToken);
    expect(refreshed.refreshToken).toMatch(/^rt_[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(refreshed.expiresAt)).toBeGreaterThanOrEqual(Date.parse(started.expiresAt));
    expectNear(refreshed.expiresAt, Date.now() + 7 * 3_600_000);

    const verified = await verify(key, tag, refreshed.token);
    expect(verified).toMatchObject({
      sessionId: started.sessionId,
      identifier: 'ada',
      data,
      expiresAt: refreshed.expiresAt,
    });

    // The new refresh token refreshes again, keeping the lifetime the session started with.
    const again = (
      await ok(t.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken: refreshed.refreshToken },
      })
    ).refreshSession;
    expect(again.sessionId).toBe(started.sessionId);
    expect((await verify(key, tag, again.token)).data).toEqual(data);
  });

  it('a session started with expiresIn keeps that lifetime on refresh', async () => {
    const { key, tag } = await setup();
    const started = await start(t, key, tag, adaData(), { expiresIn: 600 });
    const refreshed = (
      await ok(t.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken: started.refreshToken },
      })
    ).refreshSession;
    expectNear(refreshed.expiresAt, Date.now() + 600_000);
  });

  it('isSessionValid is true for a live token and false, without an error, for a dead or bad one', async () => {
    const { product, key, tag } = await setup({ shared: true });
    const live = await start(t, key, tag);
    const dead = await start(t, key, tag);
    await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: dead.sessionId } });
    const otherTag = await newConfig(t, key);
    const isValid = async (token: string, asTag = tag, asKey = key) => {
      const response = await gql<{ isSessionValid: boolean }>(t.app, {
        key: asKey,
        query: IS_VALID,
        variables: { tag: asTag, token },
      });
      expect(response.errors).toBeUndefined();
      return response.data!.isSessionValid;
    };
    expect(await isValid(live.token)).toBe(true);
    expect(await isValid(dead.token)).toBe(false);
    expect(await isValid('garbage')).toBe(false);
    expect(await isValid('')).toBe(false);
    expect(await isValid(live.token, otherTag)).toBe(false);
    expect(await isValid(live.token, tag, product.secret.prd)).toBe(false);
    expect(await isValid(live.refreshToken)).toBe(false);
  });
});

describe('logging out', () => {
  it('logout: verify, then revokeSession; the token then fails with SESSION_REVOKED', async () => {
    const { key, tag } = await setup();
    const started = await start(t, key, tag);
    const verified = await verify(key, tag, started.token);
    const revoked = (
      await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: verified.sessionId } })
    ).revokeSession;
    expect(revoked).toMatchObject({
      id: started.sessionId,
      status: 'REVOKED',
      revokeReason: 'revoked',
    });
    expectNear(revoked.revokedAt!, Date.now());

    expect(await verifyFails(key, tag, started.token)).toMatchObject({ code: 'SESSION_REVOKED' });
    expect(
      await failure(t.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken: started.refreshToken },
      }),
    ).toMatchObject({ code: 'SESSION_REVOKED' });
  });

  it('revokeSession is idempotent', async () => {
    const { key, tag } = await setup();
    const started = await start(t, key, tag);
    const first = (
      await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: started.sessionId } })
    ).revokeSession;
    const second = (
      await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: started.sessionId } })
    ).revokeSession;
    expect(second).toEqual(first);
    expect(second.status).toBe('REVOKED');
  });

  it('revoking another product’s, env’s or tag’s session is NOT_FOUND and leaves it active', async () => {
    const { product, key, tag } = await setup({ shared: true });
    const started = await start(t, key, tag);
    const other = await newProduct(t);
    const theirTag = await newConfig(t, other.secret.dev, { ...NESTED });
    const otherTag = await newConfig(t, key);

    for (const [asKey, asTag] of [
      [other.secret.dev, tag],
      [other.secret.dev, theirTag],
      [product.secret.prd, tag],
      [key, otherTag],
    ] as const) {
      expect(
        await failure(t.app, {
          key: asKey,
          query: REVOKE,
          variables: { tag: asTag, sessionId: started.sessionId },
        }),
      ).toMatchObject({ code: 'NOT_FOUND' });
    }
    expect(
      await failure(t.app, {
        key,
        query: REVOKE,
        variables: { tag, sessionId: '00000000-0000-4000-8000-000000000000' },
      }),
    ).toMatchObject({ code: 'NOT_FOUND' });

    expect((await verify(key, tag, started.token)).sessionId).toBe(started.sessionId);
    expect((await sessionById(key, started.sessionId)).status).toBe('ACTIVE');
  });

  it('revokeAllSessions logs an identifier out of every device and returns the count', async () => {
    const { key, tag } = await setup();
    const ada = [
      await start(t, key, tag, adaData('ada')),
      await start(t, key, tag, adaData('ada')),
      await start(t, key, tag, adaData('ada')),
    ];
    const bob = await start(t, key, tag, adaData('bob'));
    const otherTag = await newConfig(t, key, NESTED);
    const adaElsewhere = await start(t, key, otherTag, adaData('ada'));

    const result = await ok(t.app, {
      key,
      query: REVOKE_ALL,
      variables: { tag, identifier: 'ada' },
    });
    expect(result.revokeAllSessions.count).toBe(3);
    for (const s of ada) {
      expect(await verifyFails(key, tag, s.token)).toMatchObject({ code: 'SESSION_REVOKED' });
      expect(await sessionById(key, s.sessionId)).toMatchObject({
        status: 'REVOKED',
        revokeReason: 'revoked_all',
      });
    }
    // Other identifiers, and the same identifier under another tag, are untouched.
    expect((await verify(key, tag, bob.token)).identifier).toBe('bob');
    expect((await verify(key, otherTag, adaElsewhere.token)).identifier).toBe('ada');
    expect((await list(key, tag, 'ada')).totalCount).toBe(0);

    // Nothing left to revoke.
    const again = await ok(t.app, {
      key,
      query: REVOKE_ALL,
      variables: { tag, identifier: 'ada' },
    });
    expect(again.revokeAllSessions.count).toBe(0);
  });

  it('revokeAllSessions with excludeSessionId revokes all but the current session', async () => {
    const { key, tag } = await setup();
    const current = await start(t, key, tag, adaData('ada'));
    const others = [
      await start(t, key, tag, adaData('ada')),
      await start(t, key, tag, adaData('ada')),
    ];
    const verified = await verify(key, tag, current.token);
    const result = await ok(t.app, {
      key,
      query: REVOKE_ALL,
      variables: {
        tag,
        identifier: verified.data.details.username,
        excludeSessionId: verified.sessionId,
      },
    });
    expect(result.revokeAllSessions.count).toBe(2);
    expect((await verify(key, tag, current.token)).sessionId).toBe(current.sessionId);
    for (const s of others) {
      expect(await verifyFails(key, tag, s.token)).toMatchObject({ code: 'SESSION_REVOKED' });
    }
    const listed = await list(key, tag, 'ada');
    expect(listed.totalCount).toBe(1);
    expect(listed.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([
      current.sessionId,
    ]);
  });

  it('revokeAllSessions does not reach another product’s or env’s sessions', async () => {
    const { product, key, tag } = await setup({ shared: true });
    const mine = await start(t, key, tag, adaData('ada'));
    const inPrd = await start(t, product.secret.prd, tag, adaData('ada'));
    const other = await newProduct(t);
    // The tag names no config of the other product: NOT_FOUND, and nothing revoked.
    const result = await gql(t.app, {
      key: other.secret.dev,
      query: REVOKE_ALL,
      variables: { tag, identifier: 'ada' },
    });
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'NOT_FOUND', tag });
    const fromPrd = await ok(t.app, {
      key: product.secret.prd,
      query: REVOKE_ALL,
      variables: { tag, identifier: 'ada' },
    });
    expect(fromPrd.revokeAllSessions.count).toBe(1);
    expect((await verify(key, tag, mine.token)).sessionId).toBe(mine.sessionId);
    expect(await verifyFails(product.secret.prd, tag, inPrd.token)).toMatchObject({
      code: 'SESSION_REVOKED',
    });
  });
});

describe('listing sessions', () => {
  it('sessions lists an identifier’s active sessions newest first, with totalCount', async () => {
    const { key, tag } = await setup();
    const started: string[] = [];
    for (let i = 0; i < 3; i++) {
      started.push((await start(t, key, tag, adaData('ada'))).sessionId);
      await sleep(5); // distinct creation times, so that "newest first" is one order
    }
    await start(t, key, tag, adaData('bob'));

    const page = await list(key, tag, 'ada');
    expect(page.totalCount).toBe(3);
    expect(page.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual(
      [...started].reverse(),
    );
    expect(page.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: false });
    expect(page.pageInfo.startCursor).toBe(page.edges[0]!.cursor);
    expect(page.pageInfo.endCursor).toBe(page.edges[2]!.cursor);
    for (const { node } of page.edges) {
      expect(node).toMatchObject({ identifier: 'ada', status: 'ACTIVE' });
      expectNear(node.createdAt, Date.now());
      expectNear(node.expiresAt, Date.now() + 7 * 3_600_000);
      expectNear(node.lastActiveAt, Date.now());
      expect(node.device).toHaveProperty('userAgent');
    }
    const times = page.edges.map((e: { node: { createdAt: string } }) =>
      Date.parse(e.node.createdAt),
    );
    expect([...times].sort((a, b) => b - a)).toEqual(times);

    expect((await list(key, tag, 'bob')).totalCount).toBe(1);
    const nobody = await list(key, tag, 'nobody');
    expect(nobody).toEqual({
      totalCount: 0,
      pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: null, endCursor: null },
      edges: [],
    });
  });

  it('sessions pages forward by keyset with first and after', async () => {
    const { key, tag } = await setup();
    const started = new Set<string>();
    for (let i = 0; i < 5; i++) started.add((await start(t, key, tag, adaData('ada'))).sessionId);

    const seen: string[] = [];
    const pages: { size: number; hasNextPage: boolean; totalCount: number }[] = [];
    let after: string | null | undefined;
    for (let guard = 0; guard < 10; guard++) {
      const page = await list(key, tag, 'ada', 2, after);
      seen.push(...page.edges.map((e: { node: { id: string } }) => e.node.id));
      pages.push({
        size: page.edges.length,
        hasNextPage: page.pageInfo.hasNextPage,
        totalCount: page.totalCount,
      });
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(pages).toEqual([
      { size: 2, hasNextPage: true, totalCount: 5 },
      { size: 2, hasNextPage: true, totalCount: 5 },
      { size: 1, hasNextPage: false, totalCount: 5 },
    ]);
    expect(seen).toHaveLength(5);
    expect(new Set(seen)).toEqual(started);
  });

  it('a session started during paging does not shift the later pages', async () => {
    const { key, tag } = await setup();
    const started = new Set<string>();
    for (let i = 0; i < 4; i++) started.add((await start(t, key, tag, adaData('ada'))).sessionId);
    const first = await list(key, tag, 'ada', 2);
    await start(t, key, tag, adaData('ada')); // newer than everything: belongs before page one
    const second = await list(key, tag, 'ada', 2, first.pageInfo.endCursor);
    const ids = [...first.edges, ...second.edges].map((e: { node: { id: string } }) => e.node.id);
    expect(new Set(ids)).toEqual(started);
    expect(second.pageInfo.hasNextPage).toBe(false);
  });

  it('sessions rejects a page size over 100 or a cursor it did not issue', async () => {
    const { key, tag } = await setup();
    expect(
      await failure(t.app, { key, query: LIST, variables: { tag, identifier: 'ada', first: 101 } }),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
    expect(
      await failure(t.app, {
        key,
        query: LIST,
        variables: { tag, identifier: 'ada', after: 'not-a-cursor' },
      }),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  it('revoked sessions are not listed', async () => {
    const { key, tag } = await setup();
    const sessions = [];
    for (let i = 0; i < 3; i++) sessions.push(await start(t, key, tag, adaData('ada')));
    await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: sessions[1]!.sessionId } });
    const listed = await list(key, tag, 'ada');
    expect(listed.totalCount).toBe(2);
    const ids = listed.edges.map((e: { node: { id: string } }) => e.node.id);
    expect(ids).toHaveLength(2);
    expect(ids).not.toContain(sessions[1]!.sessionId);
    await ok(t.app, { key, query: REVOKE_ALL, variables: { tag, identifier: 'ada' } });
    const none = await list(key, tag, 'ada');
    expect(none.totalCount).toBe(0);
    expect(none.edges).toEqual([]);
  });

  it('sessions lists only the caller’s product and env', async () => {
    const { product, key, tag } = await setup({ shared: true });
    await start(t, key, tag, adaData('ada'));
    await start(t, product.secret.prd, tag, adaData('ada'));
    await start(t, product.secret.prd, tag, adaData('ada'));
    expect((await list(key, tag, 'ada')).totalCount).toBe(1);
    expect((await list(product.secret.prd, tag, 'ada')).totalCount).toBe(2);
    const other = await newProduct(t);
    expect(
      (
        await failure(t.app, {
          key: other.secret.dev,
          query: LIST,
          variables: { tag, identifier: 'ada' },
        })
      ).code,
    ).toBe('NOT_FOUND');
  });
});

describe('expired sessions', () => {
  it('a session past its refresh expiry is EXPIRED, unlisted, and its tokens fail with TOKEN_EXPIRED', async () => {
    const { key, tag } = await setup();
    const gone = await start(t, key, tag, adaData('ada'));
    const live = await start(t, key, tag, adaData('ada'));
    await t.database.db.execute(
      sql`update sessions set expires_at = now() - interval '2 minutes', refresh_expires_at = now() - interval '1 minute' where id = ${gone.sessionId}`,
    );
    await t.database.db.execute(
      sql`update refresh_tokens set expires_at = now() - interval '1 minute' where session_id = ${gone.sessionId}`,
    );
    expect(await sessionById(key, gone.sessionId)).toMatchObject({
      status: 'EXPIRED',
      revokedAt: null,
    });
    expect(await verifyFails(key, tag, gone.token)).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect(
      await failure(t.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken: gone.refreshToken },
      }),
    ).toMatchObject({ code: 'TOKEN_EXPIRED' });
    const listed = await list(key, tag, 'ada');
    expect(listed.totalCount).toBe(1);
    expect(listed.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([live.sessionId]);
  });

  it('revokeAllSessions ends and counts the live sessions only, leaving an expired one EXPIRED', async () => {
    const { key, tag } = await setup();
    const gone = await start(t, key, tag, adaData('ada'));
    const live = await start(t, key, tag, adaData('ada'));
    await t.database.db.execute(
      sql`update sessions set expires_at = now() - interval '2 minutes', refresh_expires_at = now() - interval '1 minute' where id = ${gone.sessionId}`,
    );
    expect((await list(key, tag, 'ada')).totalCount).toBe(1);
    const all = await ok(t.app, { key, query: REVOKE_ALL, variables: { tag, identifier: 'ada' } });
    expect(all.revokeAllSessions.count).toBe(1);
    expect(await verifyFails(key, tag, live.token)).toMatchObject({ code: 'SESSION_REVOKED' });
    expect((await sessionById(key, gone.sessionId)).status).toBe('EXPIRED');
  });
});

describe('one session by id', () => {
  it('session(id) returns the session with its status, and the userAgent of the request asked for', async () => {
    const { key, tag } = await setup();
    const data = adaData();
    const response = await ok(t.app, {
      key,
      query: START,
      variables: { input: { tag, data, device: { fromRequest: true } } },
      headers: { 'user-agent': 'Mozilla/5.0 (SessionTest)' },
    });
    const id = response.startSession.sessionId;
    const session = await sessionById(key, id);
    expect(session).toMatchObject({
      id,
      tag,
      identifier: 'ada',
      data,
      status: 'ACTIVE',
      revokedAt: null,
      revokeReason: null,
      device: { userAgent: 'Mozilla/5.0 (SessionTest)' },
      config: { tag },
    });
    await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: id } });
    expect(await sessionById(key, id)).toMatchObject({
      status: 'REVOKED',
      revokeReason: 'revoked',
    });
  });

  it('session(id) shows the device a backend passes in input.device', async () => {
    const { key, tag } = await setup();
    for (const ip of ['203.0.113.7', '2001:db8::1']) {
      const response = await ok(t.app, {
        key,
        query: START,
        variables: { input: { tag, data: adaData(), device: { userAgent: 'EndUser/1.0', ip } } },
        headers: { 'user-agent': 'Backend/2.0' },
      });
      const session = await sessionById(key, response.startSession.sessionId);
      expect(session.device).toEqual({ userAgent: 'EndUser/1.0', ip });
    }
    // Only an ip: the backend's own User-Agent is not taken for the user's.
    const ipOnly = await ok(t.app, {
      key,
      query: START,
      variables: { input: { tag, data: adaData(), device: { ip: '198.51.100.1' } } },
      headers: { 'user-agent': 'Backend/2.0' },
    });
    expect((await sessionById(key, ipOnly.startSession.sessionId)).device).toEqual({
      userAgent: null,
      ip: '198.51.100.1',
    });
  });

  it('session(id) is null for another product’s or env’s session and for an unknown id', async () => {
    const { product, key, tag } = await setup();
    const started = await start(t, key, tag);
    const other = await newProduct(t);
    expect(await sessionOrNull(other.secret.dev, started.sessionId)).toBeNull();
    expect(await sessionOrNull(product.secret.prd, started.sessionId)).toBeNull();
    expect(await sessionOrNull(key, '00000000-0000-4000-8000-000000000000')).toBeNull();
    expect(await sessionOrNull(key, 'not-a-uuid')).toBeNull();
    expect((await sessionById(key, started.sessionId)).id).toBe(started.sessionId);
  });
});

describe('startSession validation', () => {
  it('starting a session under an unknown tag is NOT_FOUND', async () => {
    const { key } = await setup();
    expect(await startFails(key, { tag: uniqueTag(), data: adaData() })).toMatchObject({
      code: 'NOT_FOUND',
    });
    // Another product's tag is unknown here too.
    const other = await newProduct(t);
    const theirs = await newConfig(t, other.secret.dev);
    expect(await startFails(key, { tag: theirs, data: adaData() })).toMatchObject({
      code: 'NOT_FOUND',
    });
  });

  it('data that does not fit the sample schema’s types is BAD_USER_INPUT naming the key', async () => {
    const { key, tag } = await setup();
    const cases: [Record<string, unknown>, string][] = [
      [{ ...adaData(), userId: 5 }, 'input.data.userId'],
      [{ ...adaData(), userId: true }, 'input.data.userId'],
      [{ ...adaData(), userId: null }, 'input.data.userId'],
      [{ ...adaData(), details: 'x' }, 'input.data.details'],
      [{ ...adaData(), details: ['ada'] }, 'input.data.details'],
      [{ userId: 'u', details: { username: 'ada', email: 5 } }, 'input.data.details.email'],
      [{ userId: 'u', details: { username: 7, email: 'a@b.c' } }, 'input.data.details.username'],
    ];
    for (const [data, field] of cases) {
      expect(await startFails(key, { tag, data }), field).toMatchObject({
        code: 'BAD_USER_INPUT',
        field,
      });
    }
    for (const data of ['x', 5, ['a']]) {
      expect(await startFails(key, { tag, data }), JSON.stringify(data)).toMatchObject({
        code: 'BAD_USER_INPUT',
      });
    }
    expect((await list(key, tag, 'ada')).totalCount).toBe(0);
  });

  it('data in which the selector finds nothing, or an object, is BAD_USER_INPUT', async () => {
    const { key, tag } = await setup();
    for (const data of [
      { userId: 'u' },
      { userId: 'u', details: {} },
      { userId: 'u', details: { email: 'a@b.c' } },
      { userId: 'u', details: { username: '' } },
      { userId: 'u', details: { username: { first: 'ada' } } },
    ]) {
      const error = await startFails(key, { tag, data });
      expect(error, JSON.stringify(data)).toMatchObject({ code: 'BAD_USER_INPUT' });
      expect(error.field, JSON.stringify(data)).toMatch(/^input\.data/);
    }
  });

  it('data over 16 KiB is BAD_USER_INPUT on input.data', async () => {
    const { key, tag } = await setup();
    const data = adaData('ada', { blob: 'b'.repeat(16 * 1024) });
    expect(await startFails(key, { tag, data })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.data',
    });
    // A little under the limit is fine.
    const fits = adaData('ada', { blob: 'b'.repeat(15 * 1024) });
    const started = await start(t, key, tag, fits);
    expect((await verify(key, tag, started.token)).data).toEqual(fits);
  });

  it('data nested deeper than 10 levels is BAD_USER_INPUT on input.data', async () => {
    const { key, tag } = await setup();
    let deep: Record<string, unknown> = { leaf: 'x' };
    for (let i = 0; i < 11; i++) deep = { next: deep };
    expect(await startFails(key, { tag, data: adaData('ada', { deep }) })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.data',
    });
  });

  it('expiresIn under 10 seconds or over 365 days is BAD_USER_INPUT on input.expiresIn', async () => {
    const { key, tag } = await setup();
    for (const expiresIn of [9, 0, -60, 365 * 86_400 + 1]) {
      expect(
        await startFails(key, { tag, data: adaData(), expiresIn }),
        String(expiresIn),
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.expiresIn' });
    }
    const shortest = await start(t, key, tag, adaData(), { expiresIn: 10 });
    expectNear(shortest.expiresAt, Date.now() + 10_000, 3_000);
  });

  it('a device.ip that is not an IP address is BAD_USER_INPUT on input.device.ip', async () => {
    const { key, tag } = await setup();
    for (const ip of ['not-an-ip', '999.1.1.1', '10.0.0', '::g']) {
      expect(await startFails(key, { tag, data: adaData(), device: { ip } }), ip).toMatchObject({
        code: 'BAD_USER_INPUT',
        field: 'input.device.ip',
      });
    }
  });

  it('an identifier over 256 characters is BAD_USER_INPUT on input.identifier', async () => {
    const { key, tag } = await setup();
    expect(
      await startFails(key, { tag, data: adaData(), identifier: 'i'.repeat(257) }),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.identifier' });
  });
});

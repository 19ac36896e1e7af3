import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import { TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { failure, gql, ok } from './support/graphql.js';
import {
  REFRESH,
  VERIFY,
  newConfig,
  newProduct,
  rowsOf,
  start,
  uniqueTag,
  type TestProduct,
} from './support/fixtures.js';
import { describe, it, test } from './support/test.js';
import { START } from './support/documents.js';

test.override('appOptions', { impersonationMaxSeconds: 120 });

const user = (userId: string) => ({
  userId,
  details: { username: userId, email: `${userId}@example.com` },
});

const USER_SESSIONS = `query($identifier: String!, $tag: String, $currentToken: String, $first: Int, $after: String, $product: String, $env: String) {
  userSessions(identifier: $identifier, tag: $tag, currentToken: $currentToken, first: $first, after: $after, product: $product, env: $env) {
    totalCount currentSessionId
    pageInfo { hasNextPage endCursor }
    edges { cursor current node { id tag env identifier status actor deviceName authenticatedAt } }
  }
}`;
const REVOKE_USER = `mutation($identifier: String!, $exceptSessionId: ID, $product: String, $env: String) {
  revokeUserSessions(identifier: $identifier, exceptSessionId: $exceptSessionId, product: $product, env: $env) { count }
}`;
const NOT_BEFORE = `mutation($tag: String, $before: DateTime, $product: String, $env: String) {
  revokeSessionsStartedBefore(tag: $tag, before: $before, product: $product, env: $env) { tag notBefore count }
}`;
const VERIFY_FRESH = `query($tag: String!, $token: String!, $maxAge: Int) {
  verifySession(tag: $tag, token: $token, maxAge: $maxAge) { sessionId authenticatedAt actor }
}`;
const MARK_FRESH = `mutation($tag: String!, $sessionId: ID!) {
  markSessionFresh(tag: $tag, sessionId: $sessionId) { id authenticatedAt }
}`;
const SESSION = `query($id: ID!) {
  session(id: $id) {
    id status actor authenticatedAt expiresAt refreshExpiresAt timeRemaining revokeReason deviceName
    device { userAgent ip } deviceHistory { userAgent ip until }
  }
}`;
const REFRESH_DEVICE = `mutation($tag: String!, $refreshToken: String!, $device: DeviceInput) {
  refreshSession(tag: $tag, refreshToken: $refreshToken, device: $device) { token refreshToken sessionId expiresAt }
}`;
const DEVICE_NAME = `mutation($tag: String!, $sessionId: ID!, $name: String) {
  setSessionDeviceName(tag: $tag, sessionId: $sessionId, name: $name) { id deviceName }
}`;

async function eventsOf(
  t: TestApp,
  sessionId: string,
): Promise<{ type: string; reason: string | null; actor: string | null }[]> {
  return rowsOf<{ type: string; reason: string | null; actor: string | null }>(
    await t.database.db.execute(
      sql`select type, reason, actor from session_events where session_id = ${sessionId} order by id`,
    ),
  );
}

async function sessionOf(t: TestApp, key: string, id: string) {
  return (await ok(t.app, { key, query: SESSION, variables: { id } })).session;
}

describe('sign a user out everywhere', () => {
  /** Two configs of the product's dev env. */
  const twoConfigs = async (t: TestApp, product: TestProduct): Promise<[string, string]> => [
    await newConfig(t, product.secret.dev),
    await newConfig(t, product.secret.dev),
  ];

  it('lists one user’s sessions across tags, marks the caller’s own, and revokes all but it with one event each', async ({
    t,
    product,
  }) => {
    const [tagA, tagB] = await twoConfigs(t, product);
    const key = product.secret.dev;
    const who = uniqueTag('u');
    const a1 = await start(t, key, tagA, user(who));
    const a2 = await start(t, key, tagA, user(who));
    const b1 = await start(t, key, tagB, user(who));
    const other = await start(t, key, tagA, user(uniqueTag('other')));

    const listed = (
      await ok(t.app, {
        key,
        query: USER_SESSIONS,
        variables: { identifier: who, currentToken: a2.token },
      })
    ).userSessions;
    expect(listed.totalCount).toBe(3);
    expect(new Set(listed.edges.map((e: { node: { id: string } }) => e.node.id))).toEqual(
      new Set([a1.sessionId, a2.sessionId, b1.sessionId]),
    );
    expect(new Set(listed.edges.map((e: { node: { tag: string } }) => e.node.tag))).toEqual(
      new Set([tagA, tagB]),
    );
    expect(listed.currentSessionId).toBe(a2.sessionId);
    const current = listed.edges.filter((e: { current: boolean }) => e.current);
    expect(current.map((e: { node: { id: string } }) => e.node.id)).toEqual([a2.sessionId]);

    // One tag only, with paging.
    const onlyA = (
      await ok(t.app, {
        key,
        query: USER_SESSIONS,
        variables: { identifier: who, tag: tagA, first: 1 },
      })
    ).userSessions;
    expect(onlyA.totalCount).toBe(2);
    expect(onlyA.pageInfo.hasNextPage).toBe(true);
    const next = (
      await ok(t.app, {
        key,
        query: USER_SESSIONS,
        variables: { identifier: who, tag: tagA, first: 1, after: onlyA.pageInfo.endCursor },
      })
    ).userSessions;
    expect(next.edges).toHaveLength(1);
    expect(next.pageInfo.hasNextPage).toBe(false);
    expect(next.edges[0].node.id).not.toBe(onlyA.edges[0].node.id);

    // A token that is not the caller's marks nothing and is not an error.
    const none = (
      await ok(t.app, {
        key,
        query: USER_SESSIONS,
        variables: { identifier: who, currentToken: other.token },
      })
    ).userSessions;
    expect(none.currentSessionId).toBeNull();

    const revoked = await ok(t.app, {
      key,
      query: REVOKE_USER,
      variables: { identifier: who, exceptSessionId: a2.sessionId },
    });
    expect(revoked.revokeUserSessions.count).toBe(2);
    for (const s of [a1, b1]) {
      const tag = s === b1 ? tagB : tagA;
      expect(
        (await failure(t.app, { key, query: VERIFY, variables: { tag, token: s.token } })).code,
      ).toBe('SESSION_REVOKED');
      const revokedEvents = (await eventsOf(t, s.sessionId)).filter((e) => e.type === 'REVOKED');
      expect(revokedEvents).toEqual([
        { type: 'REVOKED', reason: 'signed_out_everywhere', actor: null },
      ]);
    }
    await ok(t.app, { key, query: VERIFY, variables: { tag: tagA, token: a2.token } });
    await ok(t.app, { key, query: VERIFY, variables: { tag: tagA, token: other.token } });
    // Again: nothing left but the kept one.
    expect(
      (await ok(t.app, { key, query: REVOKE_USER, variables: { identifier: who } }))
        .revokeUserSessions.count,
    ).toBe(1);
  });

  it('the admin key covers every env of the product when it names no env; a secret key only its own', async ({
    t,
    product,
  }) => {
    const [tagA] = await twoConfigs(t, product);
    const prdTag = await newConfig(t, product.secret.prd);
    const who = uniqueTag('u');
    const dev = await start(t, product.secret.dev, tagA, user(who));
    const prd = await start(t, product.secret.prd, prdTag, user(who));

    const adminList = (
      await ok(t.app, {
        key: t.adminKey,
        query: USER_SESSIONS,
        variables: { identifier: who, product: product.tag },
      })
    ).userSessions;
    expect(adminList.totalCount).toBe(2);
    expect(new Set(adminList.edges.map((e: { node: { env: string } }) => e.node.env))).toEqual(
      new Set(['dev', 'prd']),
    );
    // With a tag, only the envs that may use its config.
    const adminTagged = (
      await ok(t.app, {
        key: t.adminKey,
        query: USER_SESSIONS,
        variables: { identifier: who, product: product.tag, tag: prdTag },
      })
    ).userSessions;
    expect(adminTagged.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([
      prd.sessionId,
    ]);
    const devOnly = (
      await ok(t.app, {
        key: product.secret.dev,
        query: USER_SESSIONS,
        variables: { identifier: who },
      })
    ).userSessions;
    expect(devOnly.totalCount).toBe(1);
    expect(devOnly.edges[0].node.id).toBe(dev.sessionId);

    const count = (
      await ok(t.app, {
        key: t.adminKey,
        query: REVOKE_USER,
        variables: { identifier: who, product: product.tag },
      })
    ).revokeUserSessions.count;
    expect(count).toBe(2);
    expect(
      (
        await failure(t.app, {
          key: product.secret.prd,
          query: VERIFY,
          variables: { tag: prdTag, token: prd.token },
        })
      ).code,
    ).toBe('SESSION_REVOKED');
  });

  it('refuses a publishable key, another product and another environment', async ({
    t,
    product,
  }) => {
    const [tagA] = await twoConfigs(t, product);
    const other = await newProduct(t);
    const who = uniqueTag('u');
    await start(t, product.secret.dev, tagA, user(who));
    for (const query of [USER_SESSIONS, REVOKE_USER]) {
      expect(
        (await failure(t.app, { key: product.publishable, query, variables: { identifier: who } }))
          .code,
      ).toBe('FORBIDDEN');
      expect(
        (
          await failure(t.app, {
            key: other.secret.dev,
            query,
            variables: { identifier: who, product: product.tag },
          })
        ).code,
      ).toBe('FORBIDDEN');
      expect(
        (
          await failure(t.app, {
            key: product.secret.dev,
            query,
            variables: { identifier: who, env: 'prd' },
          })
        ).code,
      ).toBe('FORBIDDEN');
    }
    // Another product's key sees none of this user's sessions and revokes none.
    expect(
      (
        await ok(t.app, {
          key: other.secret.dev,
          query: REVOKE_USER,
          variables: { identifier: who },
        })
      ).revokeUserSessions.count,
    ).toBe(0);
    // A tag of another env's config is FORBIDDEN.
    const prdTag = await newConfig(t, product.secret.prd);
    expect(
      (
        await failure(t.app, {
          key: product.secret.dev,
          query: USER_SESSIONS,
          variables: { identifier: who, tag: prdTag },
        })
      ).code,
    ).toBe('FORBIDDEN');
    // Inputs have limits.
    const long = await failure(t.app, {
      key: product.secret.dev,
      query: USER_SESSIONS,
      variables: { identifier: 'x'.repeat(257) },
    });
    expect(long.code).toBe('BAD_USER_INPUT');
    expect(
      (
        await failure(t.app, {
          key: product.secret.dev,
          query: USER_SESSIONS,
          variables: { identifier: who, first: 101 },
        })
      ).code,
    ).toBe('BAD_USER_INPUT');
    expect(
      (
        await failure(t.app, {
          key: product.secret.dev,
          query: REVOKE_USER,
          variables: { identifier: who, exceptSessionId: 'nope' },
        })
      ).code,
    ).toBe('BAD_USER_INPUT');
  });
});

describe('not-before revocation', () => {
  it('revokes every session of a tag started before the instant, in batches, while verifies keep answering; the config stays', async ({
    t,
    key,
    config: tag,
  }) => {
    const untouchedTag = await newConfig(t, key);
    const started = await Promise.all(
      Array.from({ length: 20 }, (_, i) => start(t, key, tag, user(`u${i}`))),
    );
    const elsewhere = await start(t, key, untouchedTag, user('u0'));
    // Many more rows, copied from a started one (the API would take minutes for this count).
    await t.database.db.execute(sql`
      insert into sessions (id, product_id, env, config_id, tag, identifier, data_enc,
                            token_lifetime_seconds, created_at, expires_at, refresh_expires_at)
      select gen_random_uuid(), product_id, env, config_id, tag, 'bulk-' || g, data_enc,
             token_lifetime_seconds, created_at - make_interval(secs => g), expires_at,
             refresh_expires_at
      from sessions, generate_series(1, 1180) g
      where id = ${started[0]!.sessionId}`);
    await sleep(5);

    let verifiesDuring = 0;
    let finished = false;
    const verifying = (async () => {
      const outcomes: string[] = [];
      while (!finished) {
        const results = await Promise.all(
          started
            .slice(0, 10)
            .map((s) => gql(t.app, { key, query: VERIFY, variables: { tag, token: s.token } })),
        );
        for (const r of results)
          outcomes.push(r.errors ? String(r.errors[0]!.extensions?.code) : 'OK');
        if (!finished) verifiesDuring += results.length;
      }
      return outcomes;
    })();
    // Refreshes race the batches too: each session ends up revoked once, by one or the other.
    const refreshing = Promise.all(
      started.slice(10).map(async (s) => {
        await sleep(Math.random() * 50);
        const r = await gql(t.app, {
          key,
          query: REFRESH,
          variables: { tag, refreshToken: s.refreshToken },
        });
        return r.errors ? String(r.errors[0]!.extensions?.code) : 'OK';
      }),
    );
    const result = (await ok(t.app, { key, query: NOT_BEFORE, variables: { tag } }))
      .revokeSessionsStartedBefore;
    finished = true;
    const outcomes = await verifying;
    const refreshes = await refreshing;
    expect(new Set(refreshes.filter((o) => o !== 'OK' && o !== 'SESSION_REVOKED'))).toEqual(
      new Set(),
    );
    const byRefresh = rowsOf<{ n: number }>(
      await t.database.db.execute(
        sql`select count(*)::int as n from sessions where tag = ${tag} and revoke_reason = 'not_before'`,
      ),
    );
    expect(byRefresh[0]!.n).toBe(1200);
    // The batches' count plus the sessions a refresh revoked first (SESSION_REVOKED answers
    // after the watermark, before a batch reached them) is every session started before.
    expect(result.count).toBeLessThanOrEqual(1200);
    expect(result.count).toBeGreaterThanOrEqual(1200 - refreshes.length);
    expect(result.tag).toBe(tag);
    // Verifies ran while the batches did, and each answered valid or revoked, nothing else.
    // (On Postgres. PGlite is one connection: a verify there waits for the batch in progress.)
    if (TEST_DATABASE_URL) expect(verifiesDuring).toBeGreaterThan(0);
    expect(new Set(outcomes.filter((o) => o !== 'OK' && o !== 'SESSION_REVOKED'))).toEqual(
      new Set(),
    );

    const events = rowsOf<{ n: number }>(
      await t.database.db.execute(sql`
        select count(*)::int as n from session_events e join sessions s on s.id = e.session_id
        where s.tag = ${tag} and e.type = 'REVOKED' and e.reason = 'not_before'`),
    );
    expect(events[0]!.n).toBe(1200);
    // One REVOKED event per session, never two.
    const twice = rowsOf<{ n: number }>(
      await t.database.db.execute(sql`
        select count(*)::int as n from (
          select e.session_id from session_events e join sessions s on s.id = e.session_id
          where s.tag = ${tag} and e.type = 'REVOKED' group by e.session_id having count(*) > 1) d`),
    );
    expect(twice[0]!.n).toBe(0);
    for (const s of started) {
      expect(
        (await failure(t.app, { key, query: VERIFY, variables: { tag, token: s.token } })).code,
      ).toBe('SESSION_REVOKED');
    }
    expect(
      (
        await failure(t.app, {
          key,
          query: REFRESH,
          variables: { tag, refreshToken: started[1]!.refreshToken },
        })
      ).code,
    ).toBe('SESSION_REVOKED');
    // Another tag is untouched; the config still starts sessions, and they verify.
    await ok(t.app, {
      key,
      query: VERIFY,
      variables: { tag: untouchedTag, token: elsewhere.token },
    });
    const fresh = await start(t, key, tag, user('u1'));
    await ok(t.app, { key, query: VERIFY, variables: { tag, token: fresh.token } });
    const listed = (await ok(t.app, { key, query: `{ notBeforeRevocations { tag notBefore } }` }))
      .notBeforeRevocations;
    expect(listed).toEqual([{ tag, notBefore: result.notBefore }]);
  });

  it('refuses at once, before the rows are marked: the watermark is checked by verify and refresh', async ({
    t,
    key,
    config: tag,
  }) => {
    const s = await start(t, key, tag, user('ada'));
    await sleep(5);
    // The watermark alone, as the first step of the mutation leaves it before any batch.
    await t.database.db.execute(sql`
      insert into session_revocation_watermarks (product_id, env, tag, not_before)
      select product_id, env, '*', now() from sessions where id = ${s.sessionId}`);
    expect(
      (await failure(t.app, { key, query: VERIFY, variables: { tag, token: s.token } })).code,
    ).toBe('SESSION_REVOKED');
    expect(
      (
        await failure(t.app, {
          key,
          query: REFRESH,
          variables: { tag, refreshToken: s.refreshToken },
        })
      ).code,
    ).toBe('SESSION_REVOKED');
    // The refresh marked the row itself, with its event.
    expect((await sessionOf(t, key, s.sessionId)).revokeReason).toBe('not_before');
    expect((await eventsOf(t, s.sessionId)).map((e) => e.reason)).toContain('not_before');
  });

  it('the whole env at once (no tag), an instant in the past, and the refusals', async ({
    t,
    product,
    key,
  }) => {
    const tagA = await newConfig(t, key);
    const tagB = await newConfig(t, key);
    const old = await start(t, key, tagA, user('ada'));
    await sleep(20);
    const cut = new Date();
    await sleep(20);
    const newer = await start(t, key, tagB, user('ada'));
    const prdTag = await newConfig(t, product.secret.prd);
    const prd = await start(t, product.secret.prd, prdTag, user('ada'));

    const result = (
      await ok(t.app, { key, query: NOT_BEFORE, variables: { before: cut.toISOString() } })
    ).revokeSessionsStartedBefore;
    expect(result).toEqual({ tag: null, notBefore: cut.toISOString(), count: 1 });
    expect(
      (await failure(t.app, { key, query: VERIFY, variables: { tag: tagA, token: old.token } }))
        .code,
    ).toBe('SESSION_REVOKED');
    await ok(t.app, { key, query: VERIFY, variables: { tag: tagB, token: newer.token } });
    // Another env is untouched.
    await ok(t.app, {
      key: product.secret.prd,
      query: VERIFY,
      variables: { tag: prdTag, token: prd.token },
    });

    const future = new Date(Date.now() + 60_000).toISOString();
    expect(
      (await failure(t.app, { key, query: NOT_BEFORE, variables: { before: future } })).field,
    ).toBe('before');
    expect((await failure(t.app, { key: product.publishable, query: NOT_BEFORE })).code).toBe(
      'FORBIDDEN',
    );
    expect(
      (await failure(t.app, { key, query: NOT_BEFORE, variables: { tag: prdTag } })).code,
    ).toBe('FORBIDDEN');
    expect((await failure(t.app, { key, query: NOT_BEFORE, variables: { env: 'prd' } })).code).toBe(
      'FORBIDDEN',
    );
    const other = await newProduct(t);
    expect(
      (
        await failure(t.app, {
          key: other.secret.dev,
          query: NOT_BEFORE,
          variables: { product: product.tag },
        })
      ).code,
    ).toBe('FORBIDDEN');
    expect(
      (await failure(t.app, { key, query: NOT_BEFORE, variables: { tag: uniqueTag('none') } }))
        .code,
    ).toBe('NOT_FOUND');
  });
});

describe('freshness and step-up', () => {
  it('authenticatedAt survives refreshes; maxAge answers REAUTHENTICATION_REQUIRED until markSessionFresh', async ({
    t,
    product,
    key,
    config: tag,
  }) => {
    const s = await start(t, key, tag, user('ada'));
    const first = (
      await ok(t.app, {
        key,
        query: VERIFY_FRESH,
        variables: { tag, token: s.token, maxAge: 3600 },
      })
    ).verifySession;
    await sleep(1100);
    const refreshed = (
      await ok(t.app, { key, query: REFRESH, variables: { tag, refreshToken: s.refreshToken } })
    ).refreshSession;
    const after = (
      await ok(t.app, { key, query: VERIFY_FRESH, variables: { tag, token: refreshed.token } })
    ).verifySession;
    expect(after.authenticatedAt).toBe(first.authenticatedAt);

    const stale = await gql(t.app, {
      key,
      query: VERIFY_FRESH,
      variables: { tag, token: refreshed.token, maxAge: 0 },
    });
    expect(stale.errors?.[0]?.extensions).toMatchObject({
      code: 'REAUTHENTICATION_REQUIRED',
      maxAge: 0,
    });
    const marked = (
      await ok(t.app, { key, query: MARK_FRESH, variables: { tag, sessionId: s.sessionId } })
    ).markSessionFresh;
    expect(Date.parse(marked.authenticatedAt)).toBeGreaterThan(Date.parse(first.authenticatedAt));
    await ok(t.app, {
      key,
      query: VERIFY_FRESH,
      variables: { tag, token: refreshed.token, maxAge: 5 },
    });
    // isSessionValid-style callers are unaffected; a bad maxAge is BAD_USER_INPUT.
    expect(
      (
        await failure(t.app, {
          key,
          query: VERIFY_FRESH,
          variables: { tag, token: refreshed.token, maxAge: -1 },
        })
      ).field,
    ).toBe('maxAge');
    // Refusals.
    expect(
      (
        await failure(t.app, {
          key: product.publishable,
          query: MARK_FRESH,
          variables: { tag, sessionId: s.sessionId },
        })
      ).code,
    ).toBe('FORBIDDEN');
    expect(
      (
        await failure(t.app, {
          key: product.secret.prd,
          query: MARK_FRESH,
          variables: { tag, sessionId: s.sessionId },
        })
      ).code,
    ).toBe('FORBIDDEN');
    const other = await newProduct(t);
    expect(
      (
        await failure(t.app, {
          key: other.secret.dev,
          query: MARK_FRESH,
          variables: { tag, sessionId: s.sessionId },
        })
      ).code,
    ).toBe('NOT_FOUND');
  });
});

describe('impersonation', () => {
  it('an actor is in verify, events and the activity log; the session is capped and ends with sign-out-everywhere', async ({
    t,
    product,
    key,
  }) => {
    const tag = await newConfig(t, key); // 7 hours
    const s = (
      await ok(t.app, {
        key,
        query: START,
        variables: { input: { tag, data: user('ada'), actor: 'operator-7' } },
      })
    ).startSession;
    const cap = Date.now() + 120_000;
    expect(Date.parse(s.expiresAt)).toBeLessThanOrEqual(cap + 1000);
    const row = await sessionOf(t, key, s.sessionId);
    expect(row.actor).toBe('operator-7');
    expect(Date.parse(row.refreshExpiresAt)).toBeLessThanOrEqual(cap + 1000);

    const verified = (
      await ok(t.app, { key, query: VERIFY_FRESH, variables: { tag, token: s.token } })
    ).verifySession;
    expect(verified.actor).toBe('operator-7');
    const refreshed = (
      await ok(t.app, { key, query: REFRESH, variables: { tag, refreshToken: s.refreshToken } })
    ).refreshSession;
    // A refresh never moves it past the cap.
    expect(Date.parse(refreshed.expiresAt)).toBeLessThanOrEqual(Date.parse(row.refreshExpiresAt));
    expect(Date.parse((await sessionOf(t, key, s.sessionId)).refreshExpiresAt)).toBe(
      Date.parse(row.refreshExpiresAt),
    );
    expect(
      (await failure(t.app, { key, query: MARK_FRESH, variables: { tag, sessionId: s.sessionId } }))
        .code,
    ).toBe('FORBIDDEN');

    const own = await start(t, key, tag, user('ada'));
    expect(
      (await ok(t.app, { key, query: REVOKE_USER, variables: { identifier: 'ada' } }))
        .revokeUserSessions.count,
    ).toBe(2);
    for (const token of [refreshed.token, own.token]) {
      expect((await failure(t.app, { key, query: VERIFY, variables: { tag, token } })).code).toBe(
        'SESSION_REVOKED',
      );
    }

    const events = await eventsOf(t, s.sessionId);
    expect(events.map((e) => [e.type, e.actor])).toEqual([
      ['STARTED', 'operator-7'],
      ['REFRESHED', 'operator-7'],
      ['REVOKED', 'operator-7'],
    ]);
    const log = (
      await ok(t.app, {
        key,
        query: `query($tag: String) { activityLog(tag: $tag, first: 50) { edges { node { operation sessionId actor } } } }`,
        variables: { tag },
      })
    ).activityLog.edges.map(
      (e: { node: { operation: string; sessionId: string; actor: string | null } }) => e.node,
    );
    expect(log).toContainEqual({ operation: 'START', sessionId: s.sessionId, actor: 'operator-7' });
    // Successful verifies are counted, not logged; the refresh is.
    expect(log).toContainEqual({
      operation: 'REFRESH',
      sessionId: s.sessionId,
      actor: 'operator-7',
    });

    expect(
      (
        await failure(t.app, {
          key,
          query: START,
          variables: { input: { tag, data: user('ada'), actor: 'x'.repeat(257) } },
        })
      ).field,
    ).toBe('input.actor');
    expect(
      (
        await failure(t.app, {
          key: product.publishable,
          query: START,
          variables: { input: { tag, data: user('ada'), actor: 'op' } },
        })
      ).code,
    ).toBe('FORBIDDEN');
  });
});

describe('devices', () => {
  it('a refresh moves the session to its new device and keeps at most 5 earlier ones; a client names the device', async ({
    t,
    product,
    key,
    config: tag,
  }) => {
    let tokens = (
      await ok(t.app, {
        key,
        query: START,
        variables: {
          input: { tag, data: user('ada'), device: { userAgent: 'ua-0', ip: '203.0.113.0' } },
        },
      })
    ).startSession;
    const id = tokens.sessionId;
    for (let i = 1; i <= 7; i++) {
      tokens = (
        await ok(t.app, {
          key,
          query: REFRESH_DEVICE,
          variables: {
            tag,
            refreshToken: tokens.refreshToken,
            device: { userAgent: `ua-${i}`, ip: `203.0.113.${i}` },
          },
        })
      ).refreshSession;
    }
    // A refresh with the same device adds nothing.
    tokens = (
      await ok(t.app, {
        key,
        query: REFRESH_DEVICE,
        variables: {
          tag,
          refreshToken: tokens.refreshToken,
          device: { userAgent: 'ua-7', ip: '203.0.113.7' },
        },
      })
    ).refreshSession;
    const s = await sessionOf(t, key, id);
    expect(s.device).toEqual({ userAgent: 'ua-7', ip: '203.0.113.7' });
    expect(s.deviceHistory.map((d: { userAgent: string }) => d.userAgent)).toEqual([
      'ua-6',
      'ua-5',
      'ua-4',
      'ua-3',
      'ua-2',
    ]);

    const named = (
      await ok(t.app, {
        key,
        query: DEVICE_NAME,
        variables: { tag, sessionId: id, name: 'Ada’s laptop' },
      })
    ).setSessionDeviceName;
    expect(named.deviceName).toBe('Ada’s laptop');
    const listed = (
      await ok(t.app, {
        key,
        query: USER_SESSIONS,
        variables: { identifier: 'ada', currentToken: tokens.token },
      })
    ).userSessions;
    expect(listed.edges[0]).toMatchObject({
      current: true,
      node: { id, deviceName: 'Ada’s laptop' },
    });
    expect(
      (await ok(t.app, { key, query: DEVICE_NAME, variables: { tag, sessionId: id, name: null } }))
        .setSessionDeviceName.deviceName,
    ).toBeNull();
    expect(
      (
        await failure(t.app, {
          key,
          query: DEVICE_NAME,
          variables: { tag, sessionId: id, name: 'x'.repeat(65) },
        })
      ).field,
    ).toBe('name');
    expect(
      (
        await failure(t.app, {
          key: product.secret.prd,
          query: DEVICE_NAME,
          variables: { tag, sessionId: id, name: 'n' },
        })
      ).code,
    ).toBe('FORBIDDEN');
    expect(
      (
        await failure(t.app, {
          key: product.publishable,
          query: DEVICE_NAME,
          variables: { tag, sessionId: id, name: 'n' },
        })
      ).code,
    ).toBe('FORBIDDEN');
    expect(
      (
        await failure(t.app, {
          key,
          query: REFRESH_DEVICE,
          variables: { tag, refreshToken: tokens.refreshToken, device: { ip: 'not-an-ip' } },
        })
      ).field,
    ).toBe('device.ip');
  });

  // Sessions are started and refreshed by backends: the request's own User-Agent and IP are the
  // backend's, never taken for the end user's unless the caller asks (`fromRequest`).
  const BACKEND = { 'user-agent': 'Backend/2.0 (server)' };

  it('the request’s own User-Agent is the device only with fromRequest: at start and at refresh', async ({
    t,
    key,
    config: tag,
  }) => {
    // Start without a device: none is recorded (not the backend's).
    const bare = (
      await ok(t.app, {
        key,
        headers: BACKEND,
        query: START,
        variables: { input: { tag, data: user('ada') } },
      })
    ).startSession;
    expect((await sessionOf(t, key, bare.sessionId)).device).toEqual({
      userAgent: null,
      ip: null,
    });
    // A part given is recorded alone.
    const ipOnly = (
      await ok(t.app, {
        key,
        headers: BACKEND,
        query: START,
        variables: { input: { tag, data: user('ada'), device: { ip: '198.51.100.1' } } },
      })
    ).startSession;
    expect((await sessionOf(t, key, ipOnly.sessionId)).device).toEqual({
      userAgent: null,
      ip: '198.51.100.1',
    });
    // Asked for, the request's fills the parts not given.
    const fromRequest = (
      await ok(t.app, {
        key,
        headers: { 'user-agent': 'Browser/3.0' },
        query: START,
        variables: {
          input: { tag, data: user('ada'), device: { ip: '198.51.100.2', fromRequest: true } },
        },
      })
    ).startSession;
    expect((await sessionOf(t, key, fromRequest.sessionId)).device).toEqual({
      userAgent: 'Browser/3.0',
      ip: '198.51.100.2',
    });

    // A refresh of the session with no device, with a real device: nothing unknown goes into
    // the history.
    const refreshed = (
      await ok(t.app, {
        key,
        headers: BACKEND,
        query: REFRESH_DEVICE,
        variables: {
          tag,
          refreshToken: bare.refreshToken,
          device: { userAgent: 'Browser/1.0', ip: '203.0.113.5' },
        },
      })
    ).refreshSession;
    const s = await sessionOf(t, key, bare.sessionId);
    expect(s.device).toEqual({ userAgent: 'Browser/1.0', ip: '203.0.113.5' });
    expect(s.deviceHistory).toEqual([]);
    // fromRequest at refresh: the request's User-Agent; the IP the request lacks stays.
    await ok(t.app, {
      key,
      headers: { 'user-agent': 'Browser/4.0' },
      query: REFRESH_DEVICE,
      variables: { tag, refreshToken: refreshed.refreshToken, device: { fromRequest: true } },
    });
    const after = await sessionOf(t, key, bare.sessionId);
    expect(after.device).toEqual({ userAgent: 'Browser/4.0', ip: '203.0.113.5' });
    expect(after.deviceHistory).toMatchObject([{ userAgent: 'Browser/1.0', ip: '203.0.113.5' }]);
  });
});

describe('session.do parity', () => {
  it('an absolute expiresAt at start, checked against its bounds', async ({
    t,
    key,
    config: tag,
  }) => {
    const at = new Date(Date.now() + 3_600_000);
    at.setMilliseconds(0);
    const s = (
      await ok(t.app, {
        key,
        query: START,
        variables: { input: { tag, data: user('ada'), expiresAt: at.toISOString() } },
      })
    ).startSession;
    expect(Math.abs(Date.parse(s.expiresAt) - at.getTime())).toBeLessThanOrEqual(1000);
    const row = await sessionOf(t, key, s.sessionId);
    expect(row.timeRemaining).toBeGreaterThan(3590);
    expect(row.timeRemaining).toBeLessThanOrEqual(3601);
    for (const input of [
      { expiresAt: new Date(Date.now() + 5_000).toISOString() },
      { expiresAt: new Date(Date.now() + 366 * 86_400_000).toISOString() },
      { expiresAt: at.toISOString(), expiresIn: 600 },
    ]) {
      expect(
        (
          await failure(t.app, {
            key,
            query: START,
            variables: { input: { tag, data: user('ada'), ...input } },
          })
        ).field,
      ).toBe('input.expiresAt');
    }
  });

  it('idle expiry is TOKEN_EXPIRED with reason idle_timeout, on verify and on refresh', async ({
    t,
    key,
  }) => {
    const tag = await newConfig(t, key, { idleTimeout: 600 });
    const s = await start(t, key, tag, user('ada'));
    await t.database.db.execute(
      sql`update sessions set last_active_at = now() - interval '11 minutes' where id = ${s.sessionId}`,
    );
    const verify = await gql(t.app, { key, query: VERIFY, variables: { tag, token: s.token } });
    expect(verify.errors?.[0]?.extensions).toMatchObject({
      code: 'TOKEN_EXPIRED',
      reason: 'idle_timeout',
    });
    const refresh = await gql(t.app, {
      key,
      query: REFRESH,
      variables: { tag, refreshToken: s.refreshToken },
    });
    expect(refresh.errors?.[0]?.extensions).toMatchObject({
      code: 'TOKEN_EXPIRED',
      reason: 'idle_timeout',
    });
    expect(refresh.errors?.[0]?.message).toMatch(/idle/);
    // A plain expiry carries no reason.
    const plain = await start(t, key, tag, user('bob'));
    await t.database.db.execute(
      sql`update sessions set expires_at = now() - interval '1 second' where id = ${plain.sessionId}`,
    );
    const expired = await gql(t.app, {
      key,
      query: VERIFY,
      variables: { tag, token: plain.token },
    });
    expect(expired.errors?.[0]?.extensions?.code).toBe('TOKEN_EXPIRED');
    expect(expired.errors?.[0]?.extensions?.reason).toBeUndefined();
  });
});

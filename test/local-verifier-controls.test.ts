import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import {
  type LocalVerifier,
  type LocalVerifyResult,
  type VerifyInput,
} from '../src/client/index.js';
import { mintSessionToken } from '../src/tokens/session-token.js';
import type { TestApp } from './support/app.js';
import { newConfig, rowsOf, start } from './support/fixtures.js';
import { failure, gql, ok } from './support/graphql.js';
import { waitUntil } from './support/live.js';
import { TEST_SESSION_SECRET } from './support/server-process.js';
import { describe, it, test } from './support/verifier.js';

/*
 * The local verifier and the session controls (#16): a not-before revocation, freshness
 * (`maxAge`), impersonation and tokens minted before tokens carried `sst`/`auth_time`. In each
 * case the verifier answers as the server does, or leaves the call to it: never "valid" where
 * the server refuses.
 */

const VERIFY = `query($tag: String!, $token: String!, $maxAge: Int) {
  verifySession(tag: $tag, token: $token, maxAge: $maxAge) { sessionId authenticatedAt actor }
}`;
const REFRESH = `mutation($tag: String!, $rt: String!) { refreshSession(tag: $tag, refreshToken: $rt) { token refreshToken } }`;
const MARK_FRESH = `mutation($tag: String!, $sessionId: ID!) { markSessionFresh(tag: $tag, sessionId: $sessionId) { authenticatedAt } }`;
const NOT_BEFORE = `mutation($tag: String) { revokeSessionsStartedBefore(tag: $tag) { count notBefore } }`;

test.override('appOptions', { sessionSecret: TEST_SESSION_SECRET });

/** The verifier's answer as `[verifiedBy, fallback]`, or the error code it throws. */
async function outcome(v: LocalVerifier, input: VerifyInput): Promise<string | [string, string?]> {
  try {
    const r: LocalVerifyResult = await v.verify(input);
    return [r.verifiedBy, r.fallback];
  } catch (error) {
    return (error as { code: string }).code;
  }
}

/** The server's own answer: 'VALID' or the error code. */
async function serverSays(
  t: TestApp,
  key: string,
  tag: string,
  token: string,
  maxAge?: number,
): Promise<string> {
  const response = await gql(t.app, { key, query: VERIFY, variables: { tag, token, maxAge } });
  return response.errors?.length ? String(response.errors[0]!.extensions?.code) : 'VALID';
}

describe('local verification and the session controls', () => {
  it('a not-before mark refuses at once, before any REVOKED event; later sessions stay local', async ({
    t,
    key,
    verifier,
  }) => {
    const tag = await newConfig(t, key);
    const other = await newConfig(t, key);
    const v = verifier([tag, other]);
    await v.ready;
    const before = await start(t, key, tag);
    const otherBefore = await start(t, key, other);
    expect(await outcome(v, { tag, token: before.token })).toEqual(['local', undefined]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    // The watermark alone, as the mutation leaves it before its first batch: no event yet.
    await t.database.db.execute(sql`
      insert into session_revocation_watermarks (product_id, env, tag, not_before)
      select product_id, env, tag, date_trunc('milliseconds', now()) from sessions
      where id = ${before.sessionId}`);
    expect(await serverSays(t, key, tag, before.token)).toBe('SESSION_REVOKED');
    await waitUntil(
      async () => (await outcome(v, { tag, token: before.token })) === 'SESSION_REVOKED',
      'the mark to reach the verifier',
    );
    const events = rowsOf<{ n: number }>(
      await t.database.db.execute(
        sql`select count(*)::int as n from session_events where session_id = ${before.sessionId} and type = 'REVOKED'`,
      ),
    );
    expect(events[0]!.n).toBe(0);
    // Another tag's session is untouched; one started after the mark verifies locally.
    expect(await outcome(v, { tag: other, token: otherBefore.token })).toEqual([
      'local',
      undefined,
    ]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const after = await start(t, key, tag);
    expect(await outcome(v, { tag, token: after.token })).toEqual(['local', undefined]);

    // The whole env, through the mutation: every session started before it, every tag.
    const started = await Promise.all([start(t, key, tag), start(t, key, other)]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await ok(t.app, { key, query: NOT_BEFORE, variables: {} });
    for (const s of [...started, after, otherBefore]) {
      const tagOf = s === started[1] || s === otherBefore ? other : tag;
      expect(await serverSays(t, key, tagOf, s.token)).toBe('SESSION_REVOKED');
      await waitUntil(
        async () => (await outcome(v, { tag: tagOf, token: s.token })) === 'SESSION_REVOKED',
        'the env-wide revocation to reach the verifier',
      );
    }
  });

  it('maxAge: local only when the token’s auth_time proves it; otherwise the server decides', async ({
    t,
    key,
    verifier,
  }) => {
    const tag = await newConfig(t, key);
    const v = verifier([tag]);
    await v.ready;
    const s = await start(t, key, tag);
    const local = await v.verify({ tag, token: s.token, maxAge: 3600 });
    expect([local.verifiedBy, local.fallback, local.actor]).toEqual(['local', undefined, null]);
    const server = await ok<{ verifySession: { authenticatedAt: string } }>(t.app, {
      key,
      query: VERIFY,
      variables: { tag, token: s.token },
    });
    // auth_time is kept to the millisecond, as the server keeps it.
    expect(local.authenticatedAt).toBe(server.verifySession.authenticatedAt);

    // The user signed in two hours ago: a token minted now carries that auth_time.
    await t.database.db.execute(
      sql`update sessions set authenticated_at = now() - interval '2 hours' where id = ${s.sessionId}`,
    );
    const renewed = (
      await ok<{ refreshSession: { token: string } }>(t.app, {
        key,
        query: REFRESH,
        variables: { tag, rt: s.refreshToken },
      })
    ).refreshSession.token;
    expect(await serverSays(t, key, tag, renewed, 3600)).toBe('REAUTHENTICATION_REQUIRED');
    expect(await outcome(v, { tag, token: renewed, maxAge: 3600 })).toBe(
      'REAUTHENTICATION_REQUIRED',
    );
    // Without maxAge, or with one it meets, it stays local.
    expect(await outcome(v, { tag, token: renewed })).toEqual(['local', undefined]);
    expect(await outcome(v, { tag, token: renewed, maxAge: 3 * 3600 })).toEqual([
      'local',
      undefined,
    ]);
    // Step-up: the same token is now accepted, by the server (the verifier cannot know).
    await ok(t.app, { key, query: MARK_FRESH, variables: { tag, sessionId: s.sessionId } });
    expect(await outcome(v, { tag, token: renewed, maxAge: 3600 })).toEqual(['server', 'MAX_AGE']);
    // maxAge 0 is never proved locally; a maxAge the server refuses is its to refuse.
    expect(await outcome(v, { tag, token: renewed, maxAge: 0 })).toBe('REAUTHENTICATION_REQUIRED');
    expect(await outcome(v, { tag, token: renewed, maxAge: -1 })).toBe('BAD_USER_INPUT');
  });

  it('an impersonation is left to the server, which shows its actor', async ({
    t,
    key,
    verifier,
  }) => {
    const tag = await newConfig(t, key);
    const v = verifier([tag]);
    await v.ready;
    const s = await start(t, key, tag, undefined, { actor: 'operator-7' });
    const r = await v.verify({ tag, token: s.token });
    expect([r.verifiedBy, r.fallback, r.actor]).toEqual(['server', 'IMPERSONATION', 'operator-7']);
    // Its refreshed tokens too.
    const renewed = await ok<{ refreshSession: { token: string } }>(t.app, {
      key,
      query: REFRESH,
      variables: { tag, rt: s.refreshToken },
    });
    const again = await v.verify({ tag, token: renewed.refreshSession.token });
    expect([again.fallback, again.actor]).toEqual(['IMPERSONATION', 'operator-7']);
  });

  it('a signed token minted before tokens carried sst and auth_time goes to the server', async ({
    t,
    key,
    verifier,
  }) => {
    const tag = await newConfig(t, key);
    const v = verifier([tag]);
    await v.ready;
    const s = await start(t, key, tag);
    const row = rowsOf<{ product_id: string; env: string; exp_ms: number; rexp_ms: number }>(
      await t.database.db.execute(sql`
        select product_id, env, (extract(epoch from expires_at) * 1000)::float8 as exp_ms,
               (extract(epoch from refresh_expires_at) * 1000)::float8 as rexp_ms
        from sessions where id = ${s.sessionId}`),
    )[0]!;
    const older = await mintSessionToken(
      t.services.keyring,
      { productId: row.product_id, env: row.env },
      {
        sessionId: s.sessionId,
        tag,
        identifier: 'user-123',
        data: { userId: 'user-123', details: { username: 'ada', email: 'ada@example.com' } },
        expiresAt: new Date(Number(row.rexp_ms)),
        version: 1,
        sessionExpiresAt: new Date(Number(row.exp_ms)),
        idleTimeout: false,
      },
    );
    expect(await outcome(v, { tag, token: older })).toEqual(['server', 'LEGACY_TOKEN']);
    // And a not-before mark still refuses it (at the server).
    await new Promise((resolve) => setTimeout(resolve, 5));
    await ok(t.app, { key, query: NOT_BEFORE, variables: { tag } });
    expect(await outcome(v, { tag, token: older })).toBe('SESSION_REVOKED');
    expect(
      (await failure(t.app, { key, query: VERIFY, variables: { tag, token: older } })).code,
    ).toBe('SESSION_REVOKED');
  });
});

import { generateKeyPairSync } from 'node:crypto';
import { CompactEncrypt, SignJWT, importJWK, type JWK } from 'jose';
import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import {
  createLocalVerifier,
  type LocalVerifier,
  type LocalVerifyResult,
} from '../src/client/index.js';
import { mintLegacySessionToken } from '../src/tokens/session-token.js';
import { TEST_DATABASE_URL } from './support/app.js';
import { newConfig, rowsOf, start } from './support/fixtures.js';
import { failure, ok } from './support/graphql.js';
import { listen, waitUntil } from './support/live.js';
import {
  TEST_SESSION_SECRET,
  exitOrKill,
  post,
  startServerProcess,
  type ServerProcess,
} from './support/server-process.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { describe, it, test } from './support/verifier.js';

const VERIFY = `query($tag: String!, $token: String!) { verifySession(tag: $tag, token: $token) { sessionId tag identifier data version expiresAt authenticatedAt actor } }`;
const REVOKE = `mutation($tag: String!, $sessionId: ID!) { revokeSession(tag: $tag, sessionId: $sessionId) { id } }`;

// The bounded-memory test inserts 100,000 sessions in one statement: past the server's 5 s
// statement deadline on a busy machine (DATABASE_DEADLINE in a run), so this file's handle waits
// up to 60 s a statement.
test.override('appOptions', { sessionSecret: TEST_SESSION_SECRET, statementTimeoutMs: 60_000 });

/** A fetch that counts its calls. */
function countingFetch(): { fetch: typeof fetch; calls: () => number } {
  let calls = 0;
  return {
    fetch: (input, init) => {
      calls += 1;
      return fetch(input, init);
    },
    calls: () => calls,
  };
}

/** The error code `verify` throws, or 'VALID'. */
async function outcome(v: LocalVerifier, tag: string, token: string): Promise<string> {
  try {
    await v.verify({ tag, token });
    return 'VALID';
  } catch (error) {
    return (error as { code: string }).code;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe('local verification', () => {
  it('answers like verifySession, with no request on the hot path', async ({
    t,
    product,
    key,
    verifier,
  }) => {
    const tag = await newConfig(t, key);
    const session = await start(t, key, tag);
    const counting = countingFetch();
    const v = verifier([tag], { fetch: counting.fetch });
    await v.ready;
    const before = counting.calls();
    const local = await v.verify({ tag, token: session.token });
    for (let i = 0; i < 1_000; i++) await v.verify({ tag, token: session.token });
    expect(counting.calls()).toBe(before);
    expect(local.verifiedBy).toBe('local');
    expect(local.fallback).toBeUndefined();
    const remote = await ok<{ verifySession: Record<string, unknown> }>(t.app, {
      key,
      query: VERIFY,
      variables: { tag, token: session.token },
    });
    const { verifiedBy: _by, ...shape } = local as LocalVerifyResult & Record<string, unknown>;
    expect(shape).toEqual(remote.verifySession);

    // Same refusals as the server: another tag's name, a truncated token, an altered one.
    const other = await newConfig(t, key);
    const both = verifier([tag, other]);
    await both.ready;
    expect(await outcome(both, other, session.token)).toBe('TOKEN_INVALID');
    expect(await outcome(both, tag, session.token.slice(0, -2))).toBe('TOKEN_INVALID');
    const parts = session.token.split('.');
    parts[3] = parts[3]!.startsWith('A') ? `B${parts[3]!.slice(1)}` : `A${parts[3]!.slice(1)}`;
    expect(await outcome(both, tag, parts.join('.'))).toBe('TOKEN_INVALID');
    // Opened tokens are bounded in count and in characters.
    const tokens = [
      session.token,
      ...(await Promise.all([1, 2, 3, 4].map(() => start(t, key, tag)))).map((s) => s.token),
    ];
    const tiny = verifier([tag], { cacheChars: Math.max(...tokens.map((x) => x.length)) * 2 + 1 });
    const few = verifier([tag], { cacheSize: 3 });
    await Promise.all([tiny.ready, few.ready]);
    for (const token of tokens) {
      expect((await tiny.verify({ tag, token })).verifiedBy).toBe('local');
      expect((await few.verify({ tag, token })).verifiedBy).toBe('local');
    }
    expect(tiny.stats().cachedTokens).toBe(2);
    expect(few.stats().cachedTokens).toBe(3);
    // A publishable key gets no key material.
    const refused = await failure(t.app, {
      key: product.publishable,
      query: `{ verifierKeys(tags: ["${tag}"]) { issuer } }`,
    });
    expect(refused.code).toBe('FORBIDDEN');
  });

  it('leaves to the server, and says so, what it cannot decide', async ({ t, key, verifier }) => {
    const tag = await newConfig(t, key);
    const idleTag = await newConfig(t, key, { idleTimeout: 600 });
    const v = verifier([tag, idleTag]);
    await v.ready;
    const idle = await start(t, key, idleTag);
    const idleResult = await v.verify({ tag: idleTag, token: idle.token });
    expect([idleResult.verifiedBy, idleResult.fallback]).toEqual(['server', 'IDLE_TIMEOUT']);

    // Data changed after the token was minted: the server answers, with the new data.
    const session = await start(t, key, tag);
    expect((await v.verify({ tag, token: session.token })).verifiedBy).toBe('local');
    const merged = await ok<{ mergeSessionData: { version: number } }>(t.app, {
      key,
      query: `mutation($tag: String!, $id: ID!) { mergeSessionData(tag: $tag, sessionId: $id, data: { details: { username: "grace" } }) { version } }`,
      variables: { tag, id: session.sessionId },
    });
    await waitUntil(
      async () => (await v.verify({ tag, token: session.token })).verifiedBy === 'server',
      'the data change to reach the verifier',
    );
    const changed = await v.verify({ tag, token: session.token });
    expect(changed.fallback).toBe('CHANGED');
    expect(changed.version).toBe(merged.mergeSessionData.version);
    expect((changed.data as { details: { username: string } }).details.username).toBe('grace');
    // A token minted after the change is the verifier's again (past the clocks’ margin; iat counts whole seconds).
    await new Promise((resolve) => setTimeout(resolve, 3_100));
    const renewed = await ok<{ refreshSession: { token: string } }>(t.app, {
      key,
      query: `mutation($tag: String!, $rt: String!) { refreshSession(tag: $tag, refreshToken: $rt) { token } }`,
      variables: { tag, rt: session.refreshToken },
    });
    const after = await v.verify({ tag, token: renewed.refreshSession.token });
    expect([after.verifiedBy, after.fallback, after.version]).toEqual([
      'local',
      undefined,
      merged.mergeSessionData.version,
    ]);

    // A token of the first format (minted before signed tokens) still verifies, at the server.
    const row = rowsOf<{ product_id: string; env: string; refresh_ms: number }>(
      await t.database.db.execute(
        sql`select product_id, env, (extract(epoch from refresh_expires_at) * 1000)::float8 as refresh_ms from sessions where id = ${session.sessionId}`,
      ),
    )[0]!;
    const other = await start(t, key, tag);
    const otherRow = rowsOf<{ product_id: string; env: string; refresh_ms: number }>(
      await t.database.db.execute(
        sql`select product_id, env, (extract(epoch from refresh_expires_at) * 1000)::float8 as refresh_ms from sessions where id = ${other.sessionId}`,
      ),
    )[0]!;
    const legacy = await mintLegacySessionToken(
      t.services.keyring,
      { productId: otherRow.product_id, env: otherRow.env },
      {
        sessionId: other.sessionId,
        tag,
        identifier: 'user-123',
        data: { userId: 'user-123', details: { username: 'ada', email: 'ada@example.com' } },
        expiresAt: new Date(Number(otherRow.refresh_ms)),
      },
    );
    const legacyResult = await v.verify({ tag, token: legacy });
    expect([legacyResult.verifiedBy, legacyResult.fallback, legacyResult.sessionId]).toEqual([
      'server',
      'LEGACY_TOKEN',
      other.sessionId,
    ]);
    expect(row.product_id).toBe(otherRow.product_id);

    // A tag the verifier does not follow.
    const unfollowed = await newConfig(t, key);
    const s3 = await start(t, key, unfollowed);
    expect((await v.verify({ tag: unfollowed, token: s3.token })).fallback).toBe(
      'TAG_NOT_FOLLOWED',
    );
  });

  it('refuses a token made with the verifier’s key material alone; so does the server', async ({
    t,
    key,
    verifier,
  }) => {
    const tag = await newConfig(t, key);
    const genuine = await start(t, key, tag);
    const v = verifier([tag]);
    await v.ready;
    const material = await ok<{
      verifierKeys: {
        issuer: string;
        audience: string;
        keys: Array<{ kid: string; current: boolean; encryptionKey: JWK; verificationKey: JWK }>;
      };
    }>(t.app, {
      key,
      query: `query($tags: [String!]!) { verifierKeys(tags: $tags) { issuer audience keys { kid current encryptionKey { kty k alg kid } verificationKey { kty crv x alg use kid } } } }`,
      variables: { tags: [tag] },
    });
    const { issuer, audience, keys } = material.verifierKeys;
    const current = keys.find((k) => k.current)!;
    expect(JSON.stringify(current.verificationKey)).not.toMatch(/"d"/);
    const encryptionKey = await importJWK(current.encryptionKey, 'A256KW');
    const claims = {
      sid: genuine.sessionId,
      tag,
      data: { userId: 'user-123', details: { username: 'mallory', email: 'm@example.com' } },
      ver: 1,
      sexp: Math.floor(Date.now() / 1000) + 3600,
      idle: false,
    };
    const now = Math.floor(Date.now() / 1000);
    const encrypt = (plaintext: string, header: Record<string, unknown>) =>
      new CompactEncrypt(new TextEncoder().encode(plaintext))
        .setProtectedHeader({ alg: 'A256KW', enc: 'A256GCM', ...header })
        .encrypt(encryptionKey);
    const { privateKey } = generateKeyPairSync('ed25519');
    const signedByAnother = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: current.kid })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject('user-123')
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(privateKey);
    const unsigned = [
      Buffer.from(JSON.stringify({ alg: 'none', kid: current.kid })).toString('base64url'),
      Buffer.from(
        JSON.stringify({
          ...claims,
          iss: issuer,
          aud: audience,
          sub: 'user-123',
          iat: now,
          exp: now + 3600,
        }),
      ).toString('base64url'),
      '',
    ].join('.');
    const forgeries = {
      'signed with another Ed25519 key': await encrypt(signedByAnother, {
        kid: current.kid,
        cty: 'JWT',
      }),
      'unsigned (alg none) inside': await encrypt(unsigned, { kid: current.kid, cty: 'JWT' }),
      'plain claims, first-format header': await encrypt(
        JSON.stringify({
          ...claims,
          iss: issuer,
          aud: audience,
          sub: 'user-123',
          iat: now,
          exp: now + 3600,
        }),
        { kid: current.kid },
      ),
    };
    for (const [label, token] of Object.entries(forgeries)) {
      expect(await outcome(v, tag, token), label).toBe('TOKEN_INVALID');
      const server = await failure(t.app, { key, query: VERIFY, variables: { tag, token } });
      expect(server.code, label).toBe('TOKEN_INVALID');
    }
    expect((await v.verify({ tag, token: genuine.token })).verifiedBy).toBe('local');
  });

  it('refuses a session revoked through another server instance; delay measured', async ({
    t,
    key,
    verifier,
    instance,
  }) => {
    const tag = await newConfig(t, key);
    const v = verifier([tag], { heartbeatMs: 1_000, maxStalenessMs: 5_000 });
    await v.ready;
    // Another instance on the same database: a process of its own on Postgres; on PGlite
    // (one process per database) a second app in this process.
    let other: ServerProcess | undefined;
    let revoke: (sessionId: string) => Promise<void>;
    if (TEST_DATABASE_URL) {
      other = await startServerProcess({
        DATABASE_URL: TEST_DATABASE_URL,
        SESSION_SECRET: TEST_SESSION_SECRET,
        SWEEP_INTERVAL_SECONDS: '0',
        LOG_LEVEL: 'warn',
      });
      const url = other.url;
      revoke = async (sessionId) => {
        const result = await post(url, key, REVOKE, { tag, sessionId });
        if (result.errors) throw new Error(JSON.stringify(result.errors));
      };
    } else {
      const { app } = await instance({ sessionSecret: TEST_SESSION_SECRET });
      revoke = async (sessionId) => {
        await ok(app, { key, query: REVOKE, variables: { tag, sessionId } });
      };
    }
    try {
      const delays: number[] = [];
      for (let i = 0; i < 40; i++) {
        const session = await start(t, key, tag);
        expect((await v.verify({ tag, token: session.token })).verifiedBy).toBe('local');
        await revoke(session.sessionId);
        const committed = performance.now();
        for (;;) {
          const code = await outcome(v, tag, session.token);
          if (code === 'SESSION_REVOKED') break;
          expect(code).toBe('VALID');
          await new Promise((resolve) => setImmediate(resolve));
        }
        delays.push(performance.now() - committed);
      }
      delays.sort((a, b) => a - b);
      const figures = {
        p50: percentile(delays, 50),
        p99: percentile(delays, 99),
        n: delays.length,
      };
      console.log(
        `revocation-to-refusal at a local verifier (revoked through another instance): p50 ${figures.p50.toFixed(1)} ms, p99 ${figures.p99.toFixed(1)} ms over ${figures.n}`,
      );
      expect(delays).toHaveLength(40);
    } finally {
      if (other) await exitOrKill(other);
    }
  }, 120_000);

  it('falls back or refuses when the feed is cut, and catches up without a gap', async ({
    t,
    server,
    key,
    verifier,
  }) => {
    const tag = await newConfig(t, key);
    const port = Number(new URL(server.url).port);
    const proxy = new TcpProxy('127.0.0.1', port);
    await proxy.start();
    const wsUrl = `ws://127.0.0.1:${proxy.port}/graphql`;
    const refusing = countingFetch();
    const fallingBack = verifier([tag], { wsUrl, maxStalenessMs: 2_500, onStale: 'fallback' });
    const refuser = verifier([tag], {
      wsUrl,
      maxStalenessMs: 2_500,
      onStale: 'refuse',
      fetch: refusing.fetch,
    });
    await Promise.all([fallingBack.ready, refuser.ready]);
    const kept = await start(t, key, tag);
    const revoked = await start(t, key, tag);
    for (const v of [fallingBack, refuser]) {
      expect((await v.verify({ tag, token: kept.token })).verifiedBy).toBe('local');
      expect((await v.verify({ tag, token: revoked.token })).verifiedBy).toBe('local');
    }
    try {
      await proxy.cut();
      // Revoked while the feed is cut: neither verifier may still call it valid once stale.
      await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: revoked.sessionId } });
      await waitUntil(async () => fallingBack.stats().stalenessMs > 2_500, 'staleness');
      await waitUntil(async () => refuser.stats().stalenessMs > 2_500, 'staleness');
      const fell = await fallingBack.verify({ tag, token: kept.token });
      expect([fell.verifiedBy, fell.fallback]).toEqual(['server', 'STALE']);
      expect(await outcome(fallingBack, tag, revoked.token)).toBe('SESSION_REVOKED');
      expect(await outcome(refuser, tag, kept.token)).toBe('SERVICE_UNAVAILABLE');
      expect(await outcome(refuser, tag, revoked.token)).toBe('SERVICE_UNAVAILABLE');
      // More revocations while cut, then the feed returns: every one is heard, none missed.
      const more = await Promise.all(Array.from({ length: 20 }, () => start(t, key, tag)));
      for (const s of more) await refuser.verify({ tag, token: s.token }).catch(() => undefined);
      for (const s of more) {
        await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: s.sessionId } });
      }
      await proxy.restore();
      await waitUntil(async () => refuser.stats().stalenessMs < 500, 'the feed to return', 30_000);
      const callsBefore = refusing.calls();
      expect(await outcome(refuser, tag, revoked.token)).toBe('SESSION_REVOKED');
      for (const s of more) expect(await outcome(refuser, tag, s.token)).toBe('SESSION_REVOKED');
      expect((await refuser.verify({ tag, token: kept.token })).verifiedBy).toBe('local');
      expect(refusing.calls()).toBe(callsBefore);
    } finally {
      await proxy.cut();
    }
  });

  it('keeps verifying old and new tokens locally through a key rotation', async ({
    t,
    server,
    key,
    verifier,
    instance,
  }) => {
    const secret = TEST_SESSION_SECRET;
    const step1 = await instance({ sessionSecret: secret, tokenKeyIds: ['k1', 'k2'] });
    const step2 = await instance({ sessionSecret: secret, tokenKeyIds: ['k2', 'k1'] });
    const step3 = await instance({ sessionSecret: secret, tokenKeyIds: ['k2'] });
    const servers = await Promise.all([step1, step2, step3].map((a) => listen(a)));
    try {
      const tag = await newConfig(t, key);
      let target = server.url;
      const v = verifier([tag], {
        keysRefreshMs: 100,
        fetch: (_input, init) => fetch(target, init),
      });
      await v.ready;
      const old = await start(t, key, tag); // k1
      expect((await v.verify({ tag, token: old.token })).verifiedBy).toBe('local');

      target = servers[0]!.url; // step 1: k2 accepted, k1 still minted
      const step1Token = await start(step1, key, tag);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await v.verify({ tag, token: step1Token.token })).verifiedBy).toBe('local');

      target = servers[1]!.url; // step 2: k2 minted, k1 still opens
      const fresh = await start(step2, key, tag);
      await waitUntil(
        async () => (await v.verify({ tag, token: fresh.token })).verifiedBy === 'local',
        'the k2 keys to reach the verifier',
      );
      expect((await v.verify({ tag, token: old.token })).verifiedBy).toBe('local');

      target = servers[2]!.url; // step 3: k1 retired
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await v.verify({ tag, token: fresh.token })).verifiedBy).toBe('local');
      expect(await outcome(v, tag, old.token)).toBe('TOKEN_INVALID');
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  it('a closed verifier’s feed is released at once, whatever its heartbeat interval', async ({
    t,
    key,
    instance,
  }) => {
    const limited = await instance({
      sessionSecret: TEST_SESSION_SECRET,
      subscriptionLimits: { maxPerKey: 1, slowConsumerMs: 30_000 },
    });
    const limitedServer = await listen(limited);
    try {
      const tag = await newConfig(t, key);
      const options = { url: limitedServer.url, key, tags: [tag], heartbeatMs: 30_000 };
      const first = createLocalVerifier(options);
      await first.ready;
      await first.close();
      // One subscription per key here: the second verifier's feed opens only once the first's
      // is released, long before the first's next heartbeat (30 s) would have let it go.
      const second = createLocalVerifier(options);
      try {
        await Promise.race([
          second.ready,
          new Promise((_, reject) =>
            setTimeout(() => reject(new Error('the first feed was not released')), 15_000),
          ),
        ]);
      } finally {
        await second.close();
      }
    } finally {
      await limitedServer.close();
    }
  });

  it('bounded memory: 100,000 revoked short-lived sessions, a set that shrinks as they expire', async ({
    t,
    key,
    verifier,
  }) => {
    const tag = await newConfig(t, key);
    const config = rowsOf<{ id: string; product_id: string }>(
      await t.database.db.execute(
        sql`select id, product_id from session_configs where tag = ${tag}`,
      ),
    )[0]!;
    // Tokens pass their own expiry check up to 30 s (the clock tolerance) after it: these
    // sessions' tokens run out from 10 s to 50 s from now (wide enough that a loaded machine
    // still syncs the verifier before the first ones go).
    await t.database.db.execute(sql`
      insert into sessions (id, product_id, env, config_id, tag, identifier, data_enc,
                            token_lifetime_seconds, expires_at, refresh_expires_at, revoked_at,
                            revoke_reason)
      select gen_random_uuid(), ${config.product_id}, 'dev', ${config.id}, ${tag}, 'u-' || i, 'x', 60,
             now(), now() - interval '20 seconds' + (i % 200) * interval '200 milliseconds',
             now(), 'revoked'
      from generate_series(1, 100000) as i`);
    const seededAt = Date.now();
    const expectedAt = (ms: number) => {
      // until_i = seededAt + 10 s + (i % 200) × 200 ms; 500 sessions per 200 ms step.
      const steps = Math.ceil((ms - seededAt - 10_000) / 200);
      return Math.max(0, Math.min(200, 200 - Math.max(0, steps))) * 500;
    };
    const v = verifier([tag]);
    await v.ready;
    const readyAt = Date.now();
    const first = v.stats().entries;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(expectedAt(readyAt - 3_000) + 1_000);
    const samples = [first];
    await waitUntil(
      async () => {
        samples.push(v.stats().entries);
        return samples[samples.length - 1] === 0;
      },
      'every entry to expire',
      70_000,
    );
    for (let i = 1; i < samples.length; i++)
      expect(samples[i]).toBeLessThanOrEqual(samples[i - 1]!);
    // A verifier with a smaller bound holds no more than it.
    const small = verifier([tag], { maxEntries: 1_000 });
    await small.ready;
    expect(small.stats().entries).toBeLessThanOrEqual(1_000);
  }, 120_000);
});

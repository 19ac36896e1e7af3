import { decodeProtectedHeader } from 'jose';
import { expect } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { randomSecret } from '../src/tokens/secrets.js';
import type { TestApp } from './support/app.js';
import { failure, ok } from './support/graphql.js';
import { REFRESH, VERIFY, start, type Started } from './support/fixtures.js';
import { describe, it, test } from './support/test.js';

/**
 * The rotation procedure (README, key rotation), played out on one database by instances of
 * the same master secret with successive TOKEN_KEY_IDS:
 *   1. `k1`      the starting point: k1 mints and opens.
 *   2. `k1,k2`   every instance learns k2 (opens k2 tokens) before any instance mints with it.
 *   3. `k2,k1`   k2 mints; tokens minted under k1 keep verifying.
 *   4. `k2`      k1 retired, once the longest session token lifetime has passed since step 3:
 *                what is left of k1 is TOKEN_INVALID, and its sessions renew with their refresh
 *                tokens (which no token key touches).
 */
const secret = randomSecret(48);
// The file's app `t` is step 1, `k1`; the later steps are instances on its database.
test.override('appOptions', {
  sessionSecret: secret,
  tokenKeyIds: ['k1'],
});

const kidOf = (token: string) => decodeProtectedHeader(token).kid;
const verify = async (t: TestApp, key: string, tag: string, token: string) =>
  (await ok(t.app, { key, query: VERIFY, variables: { tag, token } })).verifySession as {
    sessionId: string;
    identifier: string;
  };
const verifyFails = (t: TestApp, key: string, tag: string, token: string) =>
  failure(t.app, { key, query: VERIFY, variables: { tag, token } });
const refresh = async (
  t: TestApp,
  key: string,
  tag: string,
  refreshToken: string,
): Promise<Started> =>
  (await ok(t.app, { key, query: REFRESH, variables: { tag, refreshToken } })).refreshSession;

describe('token key rotation by kid', () => {
  it('k1 → k1,k2 → k2,k1 → k2: old tokens verify until their key is retired, then TOKEN_INVALID', async ({
    t: k1,
    instance,
    key,
    config: tag,
  }) => {
    const shared = { sessionSecret: secret };
    const learning = await instance({ ...shared, tokenKeyIds: ['k1', 'k2'] });
    const rotated = await instance({ ...shared, tokenKeyIds: ['k2', 'k1'] });
    const retired = await instance({ ...shared, tokenKeyIds: ['k2'] });
    // 1. Minted under k1.
    const before = await start(k1, key, tag);
    expect(kidOf(before.token)).toBe('k1');
    expect((await verify(k1, key, tag, before.token)).sessionId).toBe(before.sessionId);

    // 2. Learning k2: still mints k1; opens k1 (and would open k2).
    const duringLearning = await start(learning, key, tag);
    expect(kidOf(duringLearning.token)).toBe('k1');
    expect((await verify(learning, key, tag, before.token)).sessionId).toBe(before.sessionId);

    // 3. Rotated: mints k2, at start and at refresh; k1 tokens keep verifying everywhere.
    const after = await start(rotated, key, tag);
    expect(kidOf(after.token)).toBe('k2');
    expect((await verify(rotated, key, tag, before.token)).sessionId).toBe(before.sessionId);
    expect((await verify(rotated, key, tag, after.token)).sessionId).toBe(after.sessionId);
    // An instance still in step 2 opens the new k2 tokens: that is what step 2 is for.
    expect((await verify(learning, key, tag, after.token)).sessionId).toBe(after.sessionId);
    // One still in step 1 would not: skipping step 2 logs users out during a rolling deploy.
    expect(await verifyFails(k1, key, tag, after.token)).toMatchObject({ code: 'TOKEN_INVALID' });
    const renewed = await refresh(rotated, key, tag, duringLearning.refreshToken);
    expect(kidOf(renewed.token)).toBe('k2');
    expect((await verify(rotated, key, tag, renewed.token)).sessionId).toBe(
      duringLearning.sessionId,
    );

    // 4. Retired: k1 tokens are TOKEN_INVALID, k2 tokens verify.
    expect(await verifyFails(retired, key, tag, before.token)).toMatchObject({
      code: 'TOKEN_INVALID',
      message: 'The session token is malformed, altered, or not for this tag.',
    });
    const valid = await ok(retired.app, {
      key,
      query: `query($tag: String!, $token: String!) { isSessionValid(tag: $tag, token: $token) }`,
      variables: { tag, token: before.token },
    });
    expect(valid.isSessionValid).toBe(false);
    expect((await verify(retired, key, tag, after.token)).sessionId).toBe(after.sessionId);
    expect((await verify(retired, key, tag, renewed.token)).sessionId).toBe(
      duringLearning.sessionId,
    );
    // A session whose token was minted under k1 is not lost: its refresh token renews it under k2.
    const rescued = await refresh(retired, key, tag, before.refreshToken);
    expect(kidOf(rescued.token)).toBe('k2');
    expect((await verify(retired, key, tag, rescued.token)).sessionId).toBe(before.sessionId);
  });

  it('a kid is bound to the master secret: the same kid under another secret opens nothing', async ({
    t: k1,
    instance,
    key,
    config: tag,
  }) => {
    const other = await instance({ sessionSecret: randomSecret(48), tokenKeyIds: ['k1'] });
    const mine = await start(k1, key, tag);
    expect(await verifyFails(other, key, tag, mine.token)).toMatchObject({
      code: 'TOKEN_INVALID',
    });
    const theirs = await start(other, key, tag);
    expect(kidOf(theirs.token)).toBe('k1');
    expect(await verifyFails(k1, key, tag, theirs.token)).toMatchObject({
      code: 'TOKEN_INVALID',
    });
  });

  it('TOKEN_KEY_IDS is read newest first; duplicates and bad ids are refused', () => {
    expect(loadConfig({}).tokenKeyIds).toEqual(['k1']);
    expect(loadConfig({ TOKEN_KEY_IDS: 'k2,k1' }).tokenKeyIds).toEqual(['k2', 'k1']);
    expect(loadConfig({ TOKEN_KEY_IDS: '2026-06_b,2026-01_a' }).tokenKeyIds).toEqual([
      '2026-06_b',
      '2026-01_a',
    ]);
    for (const bad of ['k1,k1', 'k2,k1,k2', 'k 1', 'k1,', ',k1', 'k1;k2', 'x'.repeat(33)]) {
      expect(() => loadConfig({ TOKEN_KEY_IDS: bad }), bad).toThrow(ConfigError);
    }
    try {
      loadConfig({ TOKEN_KEY_IDS: 'k1,k1' });
    } catch (error) {
      expect((error as ConfigError).problems.join('\n')).toMatch(/^TOKEN_KEY_IDS:/);
    }
  });
});

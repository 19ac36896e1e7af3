import { afterEach, describe, expect, it, vi } from 'vitest';
import { Keyring } from '../src/tokens/keyring.js';
import { randomSecret } from '../src/tokens/secrets.js';
import { mintSessionToken, openSessionToken, TokenRefused } from '../src/tokens/session-token.js';

const scope = { productId: '00000000-0000-4000-8000-000000000001', env: 'dev' };

async function mint(keyring: Keyring, expiresInSeconds: number) {
  return mintSessionToken(keyring, scope, {
    sessionId: '00000000-0000-4000-8000-00000000000a',
    tag: 'user-session',
    identifier: 'ada',
    data: { userId: 'ada' },
    expiresAt: new Date(Date.now() + expiresInSeconds * 1000),
  });
}

const reasonOf = async (promise: Promise<unknown>) =>
  promise.then(
    () => 'opened',
    (error: unknown) => (error instanceof TokenRefused ? error.reason : String(error)),
  );

describe('the cache of opened tokens', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('serves the same claims for the same token, and checks the tag on every hit', async () => {
    const keyring = new Keyring(randomSecret(48));
    const token = await mint(keyring, 3600);
    const first = await openSessionToken(keyring, scope, 'user-session', token);
    const again = await openSessionToken(keyring, scope, 'user-session', token);
    expect(again).toBe(first);
    expect(await reasonOf(openSessionToken(keyring, scope, 'other-tag', token))).toBe('invalid');
    // Another scope never shares an entry: it opens (and fails) on its own.
    expect(
      await reasonOf(openSessionToken(keyring, { ...scope, env: 'prd' }, 'user-session', token)),
    ).toBe('invalid');
  });

  it('a cached token past its expiry (and the clock tolerance) is refused as expired', async () => {
    const keyring = new Keyring(randomSecret(48));
    const token = await mint(keyring, 60);
    await openSessionToken(keyring, scope, 'user-session', token);
    vi.useFakeTimers({ now: Date.now() + 60_000 + 31_000, toFake: ['Date'] });
    expect(await reasonOf(openSessionToken(keyring, scope, 'user-session', token))).toBe('expired');
  });

  it('keeps at most its bound of entries', async () => {
    const keyring = new Keyring(randomSecret(48));
    const cache = keyring.openedTokens;
    for (let i = 0; i < cache.maxEntries + 10; i++) cache.set(`k${i}`, {} as never);
    expect(cache.get('k0')).toBeUndefined();
    expect(cache.get(`k${cache.maxEntries + 9}`)).toBeDefined();
  });
});

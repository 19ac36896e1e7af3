import { randomBytes, webcrypto } from 'node:crypto';
import net from 'node:net';
import { deflateRawSync } from 'node:zlib';
import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import {
  EncryptJWT,
  SignJWT,
  base64url,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type CompactJWEHeaderParameters,
} from 'jose';
import { expect, vi } from 'vitest';
import { ServiceError } from '../src/domain/errors.js';
import { parseSelector } from '../src/domain/selector.js';
import { Keyring } from '../src/tokens/keyring.js';
import { randomSecret } from '../src/tokens/secrets.js';
import {
  MAX_SESSION_TOKEN_LENGTH,
  mintSessionToken,
  openSessionToken,
  TokenRefused,
  type SessionTokenClaims,
} from '../src/tokens/session-token.js';
import { createTestApp, type TestApp } from './support/app.js';
import { afterEach, beforeAll, describe, it, test } from './support/test.js';
import { gql, ok } from './support/graphql.js';
import {
  REFRESH,
  VERIFY,
  eventTypesOf,
  newConfig,
  newProduct,
  rowsOf,
  start,
  type Started,
} from './support/fixtures.js';

/** The one message every invalid session token gets, whatever was wrong with it. */
const TOKEN_INVALID_MESSAGE = 'The session token is malformed, altered, or not for this tag.';
const IS_VALID = `query($tag: String!, $token: String!) { isSessionValid(tag: $tag, token: $token) }`;

const sessionSecret = randomSecret(48);
test.override('appOptions', { sessionSecret });

let key: string;
let tag: string;
let productId: string;
let session: Started;

beforeAll(async ({ t }) => {
  const product = await newProduct(t);
  key = product.secret.dev;
  tag = await newConfig(t, key);
  session = await start(t, key, tag);
  const rows = rowsOf<{ id: string }>(
    await t.database.db.execute(sql`select id from products where tag = ${product.tag}`),
  );
  productId = rows[0]!.id;
});

/** The key-wrapping key the app itself uses for this product's dev tokens under `kid`. */
const appKey = (t: TestApp, kid = 'k1') => t.services.keyring.tokenKey(productId, 'dev', kid);

/** Claims exactly as the server mints them for the test session (valid for an hour). */
function claimsOf(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {
    iss: 'session-service',
    aud: `${productId}:dev`,
    sub: 'user-123',
    sid: session.sessionId,
    tag,
    data: { userId: 'user-123', details: { username: 'ada', email: 'ada@example.com' } },
    iat: now,
    exp: now + 3600,
    ...overrides,
  };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
  return claims;
}

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const b64u = (bytes: Uint8Array | string) => base64url.encode(bytes);

/**
 * A compact JWE built by hand with WebCrypto (AES-KW key wrapping, AES-GCM content encryption):
 * any protected header at all, encrypted correctly under `kek`, so that the header (not the
 * cryptography) is the only thing the server can object to.
 */
async function handmadeJwe(
  header: Record<string, unknown>,
  plaintext: Uint8Array,
  kek: CryptoKey,
): Promise<string> {
  const protectedHeader = b64u(json(header));
  const cek = await webcrypto.subtle.importKey('raw', randomBytes(32), 'AES-GCM', true, [
    'encrypt',
  ]);
  const wrapped = new Uint8Array(await webcrypto.subtle.wrapKey('raw', cek, kek, 'AES-KW'));
  const iv = randomBytes(12);
  const sealed = new Uint8Array(
    await webcrypto.subtle.encrypt(
      {
        name: 'AES-GCM',
        iv,
        additionalData: new TextEncoder().encode(protectedHeader),
        tagLength: 128,
      },
      cek,
      plaintext,
    ),
  );
  const ciphertext = sealed.slice(0, -16);
  const authTag = sealed.slice(-16);
  return [protectedHeader, b64u(wrapped), b64u(iv), b64u(ciphertext), b64u(authTag)].join('.');
}

const STANDARD_HEADER = { alg: 'A256KW', enc: 'A256GCM', kid: 'k1' };
/** What minted tokens carry: the same, saying that a signed JWT is nested inside (issue #15). */
const SIGNED_HEADER = { ...STANDARD_HEADER, cty: 'JWT' };

/** The response to verifying `token`, checked to be TOKEN_INVALID and to say nothing more. */
async function expectOnlyTokenInvalid(t: TestApp, token: string, label: string): Promise<void> {
  const response = await gql(t.app, { key, query: VERIFY, variables: { tag, token } });
  expect(response.status, label).toBe(200);
  expect(response.data ?? null, label).toBeNull();
  expect(response.errors, label).toHaveLength(1);
  const error = response.errors![0]!;
  expect(error.message, label).toBe(TOKEN_INVALID_MESSAGE);
  expect(error.extensions, label).toEqual({ code: 'TOKEN_INVALID' });
  for (const field of Object.keys(error)) {
    expect(['message', 'locations', 'path', 'extensions'], label).toContain(field);
  }
  const text = JSON.stringify(response);
  // The token is not echoed, nor anything about why it failed.
  for (const part of token.split('.').filter((p) => p.length >= 16)) {
    expect(text.includes(part), `${label}: echoes part of the token`).toBe(false);
  }
  expect(text, label).not.toMatch(/jose|JWE|JWS|decrypt|algorithm|header|kid|stack|claim/i);
  // isSessionValid answers false for the same token, with no error.
  const valid = await gql(t.app, { key, query: IS_VALID, variables: { tag, token } });
  expect(valid, label).toEqual({ status: 200, data: { isSessionValid: false } });
}

/** Verifies and expects success: the control that proves a crafting helper makes real tokens. */
async function expectVerifies(t: TestApp, token: string): Promise<void> {
  const data = await ok(t.app, { key, query: VERIFY, variables: { tag, token } });
  expect(data.verifySession.sessionId).toBe(session.sessionId);
}

describe('crafted tokens: the crafting is right', () => {
  it('a token built by hand with the app’s own key and the standard header verifies', async ({
    t,
  }) => {
    await expectVerifies(t, await handmadeJwe(STANDARD_HEADER, json(claimsOf()), await appKey(t)));
    await expectVerifies(
      t,
      await new EncryptJWT(claimsOf()).setProtectedHeader(STANDARD_HEADER).encrypt(await appKey(t)),
    );
  });
});

describe('hostile session tokens are TOKEN_INVALID, and the answer says nothing more', () => {
  it('a changed protected header (any field, or the same fields re-serialized)', async ({ t }) => {
    const [header, ...rest] = session.token.split('.');
    const original = JSON.parse(Buffer.from(header!, 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    expect(original).toEqual(SIGNED_HEADER);
    const variants: Record<string, unknown>[] = [
      { ...original, kid: 'k2' },
      { ...original, enc: 'A128GCM' },
      { ...original, alg: 'dir' },
      { ...original, alg: 'A128KW' },
      { ...original, zip: 'DEF' },
      { ...original, typ: 'JWT' },
      { ...original, x: 1 },
      { ...original, cty: 'jwt' },
      { alg: original.alg, enc: original.enc, kid: original.kid },
      { alg: original.alg, enc: original.enc },
      { kid: original.kid, enc: original.enc, alg: original.alg },
    ];
    const serialized = variants.map((v) => JSON.stringify(v));
    serialized.push(JSON.stringify(original, null, 1));
    for (const text of serialized) {
      const changed = [Buffer.from(text).toString('base64url'), ...rest].join('.');
      await expectOnlyTokenInvalid(t, changed, `header ${text}`);
    }
    // The same header fields, encrypted correctly under another key id's key: kid is bound too.
    await expectOnlyTokenInvalid(
      t,
      await handmadeJwe({ ...STANDARD_HEADER, kid: 'k2' }, json(claimsOf()), await appKey(t, 'k2')),
      'minted under the app’s own k2 key, which is not in service',
    );
    await expectVerifies(t, session.token);
  });

  it('a truncated token, at every segment boundary and in the middle of each segment', async ({
    t,
  }) => {
    const token = session.token;
    const parts = token.split('.');
    const cuts = new Set<number>([1, token.length - 1]);
    let offset = 0;
    for (const part of parts) {
      cuts.add(offset + Math.floor(part.length / 2));
      offset += part.length;
      cuts.add(offset); // just before the dot
      offset += 1;
      cuts.add(offset); // just after it
    }
    for (const cut of [...cuts].filter((c) => c > 0 && c < token.length).sort((a, b) => a - b)) {
      await expectOnlyTokenInvalid(t, token.slice(0, cut), `cut at ${cut} of ${token.length}`);
    }
    for (let keep = 1; keep < 5; keep++) {
      await expectOnlyTokenInvalid(t, parts.slice(0, keep).join('.'), `${keep} segments`);
      await expectOnlyTokenInvalid(t, parts.slice(5 - keep).join('.'), `last ${keep} segments`);
    }
  });

  it('a re-encoded token: standard base64, padding, whitespace, other separators', async ({
    t,
  }) => {
    const parts = session.token.split('.');
    const pad = (s: string) => s + '='.repeat((4 - (s.length % 4)) % 4);
    const standard = (s: string) => Buffer.from(s, 'base64url').toString('base64');
    const tail = (f: (s: string, i: number) => string) =>
      [parts[0], ...parts.slice(1).map((p, i) => f(p, i + 1))].join('.');
    const variants: Record<string, string> = {
      'standard base64 with padding': parts.map(standard).join('.'),
      'standard base64, body segments only': tail(standard),
      'base64url with padding': parts.map(pad).join('.'),
      'base64url with padding, body segments only': tail(pad),
      'a space inside the ciphertext': tail((p, i) =>
        i === 3 ? `${p.slice(0, 8)} ${p.slice(8)}` : p,
      ),
      'a newline inside the IV': tail((p, i) => (i === 2 ? `${p.slice(0, 4)}\n${p.slice(4)}` : p)),
      'a tab inside the tag': tail((p, i) => (i === 4 ? `${p.slice(0, 4)}\t${p.slice(4)}` : p)),
      'percent-encoded dots': parts.join('%2E'),
      'upper-cased': session.token.toUpperCase(),
      'hex segments': parts.map((p) => Buffer.from(p, 'base64url').toString('hex')).join('.'),
      'JSON serialization': JSON.stringify({
        protected: parts[0],
        encrypted_key: parts[1],
        iv: parts[2],
        ciphertext: parts[3],
        tag: parts[4],
      }),
    };
    for (const [label, token] of Object.entries(variants)) {
      expect(token).not.toBe(session.token);
      await expectOnlyTokenInvalid(t, token, label);
    }
  });

  it('an unsigned JWT (alg none) and JWS tokens (HS256 with the master secret, RS256 with an embedded key)', async ({
    t,
  }) => {
    const claims = claimsOf();
    const none = `${b64u(json({ alg: 'none', typ: 'JWT' }))}.${b64u(json(claims))}.`;
    const noneKid = `${b64u(json({ alg: 'none', kid: 'k1' }))}.${b64u(json(claims))}.`;
    const noneJwe = `${b64u(json({ alg: 'none', enc: 'A256GCM', kid: 'k1' }))}..${b64u(randomBytes(12))}.${b64u(json(claims))}.${b64u(randomBytes(16))}`;
    // The classic confusion: an HMAC signed with the server's own master secret.
    const hs256 = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .sign(new TextEncoder().encode(sessionSecret));
    const hs256RandomKey = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .sign(randomBytes(32));
    const rsa = await generateKeyPair('RS256', { extractable: true });
    const rs256 = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', jwk: await exportJWK(rsa.publicKey) })
      .sign(rsa.privateKey);
    const tokens = { none, noneKid, noneJwe, hs256, hs256RandomKey, rs256 };
    for (const [label, token] of Object.entries(tokens)) {
      await expectOnlyTokenInvalid(t, token, label);
    }
  });

  it('other key management and content encryption algorithms, and compression', async ({ t }) => {
    const claims = claimsOf();
    const encryptWith = async (header: CompactJWEHeaderParameters, keyOf: CryptoKey | Uint8Array) =>
      new EncryptJWT(claims).setProtectedHeader(header).encrypt(keyOf);
    const rsa = await generateKeyPair('RSA-OAEP-256');
    const rsa1 = await generateKeyPair('RSA-OAEP');
    const ec = await generateKeyPair('ECDH-ES+A256KW');
    const tokens: Record<string, string> = {
      'dir, A256GCM': await encryptWith({ alg: 'dir', enc: 'A256GCM', kid: 'k1' }, randomBytes(32)),
      'dir, A128CBC-HS256': await encryptWith(
        { alg: 'dir', enc: 'A128CBC-HS256', kid: 'k1' },
        randomBytes(32),
      ),
      A128KW: await encryptWith({ alg: 'A128KW', enc: 'A256GCM', kid: 'k1' }, randomBytes(16)),
      A192KW: await encryptWith({ alg: 'A192KW', enc: 'A256GCM', kid: 'k1' }, randomBytes(24)),
      A256GCMKW: await encryptWith(
        { alg: 'A256GCMKW', enc: 'A256GCM', kid: 'k1' },
        randomBytes(32),
      ),
      'A256KW under a random key': await encryptWith(STANDARD_HEADER, randomBytes(32)),
      'RSA-OAEP-256': await encryptWith(
        { alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: 'k1' },
        rsa.publicKey,
      ),
      'RSA-OAEP': await encryptWith({ alg: 'RSA-OAEP', enc: 'A256GCM', kid: 'k1' }, rsa1.publicKey),
      'ECDH-ES+A256KW': await encryptWith(
        { alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: 'k1' },
        ec.publicKey,
      ),
      'PBES2-HS256+A128KW': await new EncryptJWT(claims)
        .setProtectedHeader({ alg: 'PBES2-HS256+A128KW', enc: 'A256GCM', kid: 'k1' })
        .setKeyManagementParameters({ p2c: 1000, p2s: randomBytes(16) })
        .encrypt(new TextEncoder().encode(sessionSecret)),
      // The app's own key, but content encryption other than A256GCM: the enc pin refuses it.
      'A256KW with A128GCM, app key': await handmadeJwe(
        { ...STANDARD_HEADER, enc: 'A128GCM' },
        json(claims),
        await appKey(t),
      ),
      'A256KW with A256CBC-HS512, app key': await encryptWith(
        { ...STANDARD_HEADER, enc: 'A256CBC-HS512' },
        await appKey(t),
      ),
      // Compressed content under the app's own key: compression is refused outright.
      'zip DEF, app key': await handmadeJwe(
        { ...STANDARD_HEADER, zip: 'DEF' },
        deflateRawSync(Buffer.from(JSON.stringify(claims))),
        await appKey(t),
      ),
      // An unknown critical header parameter under the app's own key.
      'crit, app key': await handmadeJwe(
        { ...STANDARD_HEADER, crit: ['exp'], exp: 1 },
        json(claims),
        await appKey(t),
      ),
    };
    // A PBES2 header asking for a hundred million iterations: refused without doing them.
    const p2cHeader = b64u(
      json({
        alg: 'PBES2-HS512+A256KW',
        enc: 'A256GCM',
        kid: 'k1',
        p2s: b64u(randomBytes(16)),
        p2c: 100_000_000,
      }),
    );
    tokens['PBES2 with p2c 1e8'] = [
      p2cHeader,
      b64u(randomBytes(40)),
      b64u(randomBytes(12)),
      b64u(json(claims)),
      b64u(randomBytes(16)),
    ].join('.');
    for (const [label, token] of Object.entries(tokens)) {
      const started = performance.now();
      await expectOnlyTokenInvalid(t, token, label);
      if (label.startsWith('PBES2 with')) {
        console.log(
          `PBES2 p2c=1e8 token refused in ${(performance.now() - started).toFixed(0)} ms`,
        );
      }
    }
  });

  it('a missing, unknown or odd kid, each under the key the app would derive for it', async ({
    t,
  }) => {
    const claims = json(claimsOf());
    const kids: unknown[] = [
      undefined,
      null,
      '',
      'k2',
      'K1',
      'k1 ',
      ' k1',
      'k1\u0000',
      '../../etc/passwd',
      '..\\..\\windows\\win.ini',
      'k1,k2',
      'x'.repeat(10_000),
      1,
      true,
      ['k1'],
      { toString: 'k1' },
      '__proto__',
      'constructor',
    ];
    for (const kid of kids) {
      const header: Record<string, unknown> = { alg: 'A256KW', enc: 'A256GCM' };
      if (kid !== undefined) header.kid = kid;
      // The key derived for that very kid string (as a rotation gone wrong would have it); HKDF
      // cannot take a 10,000-character kid, so that one gets a random key.
      const kidText = typeof kid === 'string' ? kid : String(JSON.stringify(kid));
      const kek =
        kidText.length > 256
          ? await webcrypto.subtle.importKey('raw', randomBytes(32), 'AES-KW', false, ['wrapKey'])
          : await appKey(t, kidText);
      const token = await handmadeJwe(header, claims, kek);
      await expectOnlyTokenInvalid(t, token, `kid ${JSON.stringify(kid)?.slice(0, 40)}`);
    }
  });

  describe('key-locating headers', () => {
    const connections: string[] = [];
    afterEach(() => {
      vi.restoreAllMocks();
      connections.length = 0;
    });

    it('jku, x5u and jwk headers pointing at an attacker’s key: TOKEN_INVALID, and no outbound request', async ({
      t,
    }) => {
      const original = net.Socket.prototype.connect;
      vi.spyOn(net.Socket.prototype, 'connect').mockImplementation(function (
        this: net.Socket,
        ...args: unknown[]
      ) {
        connections.push(JSON.stringify(args.filter((a) => typeof a !== 'function')));
        return (original as (...a: unknown[]) => net.Socket).apply(this, args);
      });
      const fetchSpy = vi.spyOn(globalThis, 'fetch');

      const attackerKey = randomBytes(32);
      const claims = claimsOf();
      const rsa = await generateKeyPair('RSA-OAEP-256', { extractable: true });
      const headers: Record<string, CompactJWEHeaderParameters> = {
        jku: { ...STANDARD_HEADER, jku: 'https://attacker.example/jwks.json' },
        x5u: { ...STANDARD_HEADER, x5u: 'https://attacker.example/cert.pem' },
        'jku on a private address': { ...STANDARD_HEADER, jku: 'http://169.254.169.254/keys' },
        'jwk (oct)': {
          ...STANDARD_HEADER,
          jwk: { kty: 'oct', k: b64u(attackerKey) } as CompactJWEHeaderParameters['jwk'],
        },
      };
      const tokens: Record<string, string> = {};
      for (const [label, header] of Object.entries(headers)) {
        tokens[label] = await new EncryptJWT(claims)
          .setProtectedHeader(header)
          .encrypt(attackerKey);
      }
      tokens['jwk (RSA) with RSA-OAEP-256'] = await new EncryptJWT(claims)
        .setProtectedHeader({
          alg: 'RSA-OAEP-256',
          enc: 'A256GCM',
          kid: 'k1',
          jwk: await exportJWK(rsa.publicKey),
          jku: 'https://attacker.example/jwks.json',
        })
        .encrypt(rsa.publicKey);

      for (const [label, token] of Object.entries(tokens)) {
        await expectOnlyTokenInvalid(t, token, label);
      }
      expect(fetchSpy).not.toHaveBeenCalled();
      // Only the test database (on loopback) may be connected to, if anything at all.
      for (const connection of connections) {
        expect(connection).not.toMatch(/attacker|169\.254/);
        expect(connection).toMatch(/127\.0\.0\.1|localhost|::1/);
      }
    });
  });

  it('missing or mistyped claims, in a token encrypted with the app’s own key', async ({ t }) => {
    const key1 = await appKey(t);
    const variants: Record<string, Record<string, unknown>> = {
      'no sid': claimsOf({ sid: undefined }),
      'no tag': claimsOf({ tag: undefined }),
      'no sub': claimsOf({ sub: undefined }),
      'no exp': claimsOf({ exp: undefined }),
      'no iat': claimsOf({ iat: undefined }),
      'no iss': claimsOf({ iss: undefined }),
      'no aud': claimsOf({ aud: undefined }),
      'no data': claimsOf({ data: undefined }),
      'sid a number': claimsOf({ sid: 42 }),
      'sid not a session': claimsOf({ sid: '00000000-0000-4000-8000-000000000000' }),
      'sid not a uuid': claimsOf({ sid: "x' or '1'='1" }),
      'tag of another config': claimsOf({ tag: `${tag}-other` }),
      'tag an array': claimsOf({ tag: [tag] }),
      'data an array': claimsOf({ data: [] }),
      'data null': claimsOf({ data: null }),
      'sub an object': claimsOf({ sub: { id: 'user-123' } }),
      'exp a string': claimsOf({ exp: String(Math.floor(Date.now() / 1000) + 3600) }),
      'iat a string': claimsOf({ iat: 'now' }),
      'iss another issuer': claimsOf({ iss: 'someone-else' }),
      'aud another env': claimsOf({ aud: `${productId}:prd` }),
      'aud a list without ours': claimsOf({ aud: ['x', `${productId}:prd`] }),
      'nbf in the future': claimsOf({ nbf: Math.floor(Date.now() / 1000) + 3600 }),
      'a JSON array payload': [claimsOf()] as unknown as Record<string, unknown>,
    };
    for (const [label, claims] of Object.entries(variants)) {
      await expectOnlyTokenInvalid(
        t,
        await handmadeJwe(STANDARD_HEADER, json(claims), key1),
        label,
      );
    }
    // A payload that is not JSON at all.
    await expectOnlyTokenInvalid(
      t,
      await handmadeJwe(STANDARD_HEADER, new TextEncoder().encode('not json'), key1),
      'not JSON',
    );
    await expectVerifies(t, await handmadeJwe(STANDARD_HEADER, json(claimsOf()), key1));
  });

  it('a session token offered as a refresh token and the reverse, harming nothing', async ({
    t,
  }) => {
    const own = await start(t, key, tag);
    const asRefresh = await gql(t.app, {
      key,
      query: REFRESH,
      variables: { tag, refreshToken: own.token },
    });
    expect(asRefresh.errors?.map((e) => e.extensions)).toEqual([{ code: 'TOKEN_INVALID' }]);
    expect(JSON.stringify(asRefresh)).not.toContain(own.token.split('.')[3]!);
    await expectOnlyTokenInvalid(t, own.refreshToken, 'a refresh token as a session token');
    const refreshed = await ok(t.app, {
      key,
      query: REFRESH,
      variables: { tag, refreshToken: own.refreshToken },
    });
    expect(refreshed.refreshSession.sessionId).toBe(own.sessionId);
    expect(await eventTypesOf(t, own.sessionId)).toEqual(['STARTED', 'REFRESHED']);
  });

  it('a 1 MB token: refused at the body limit, and TOKEN_INVALID where the body limit allows it', async ({
    t,
  }) => {
    const huge = `${session.token.split('.')[0]}.${'A'.repeat(1024 * 1024)}.x.y.z`;
    const started = performance.now();
    const response = await t.app.fetch('http://test.local/graphql', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${key}`,
        'content-length': String(
          Buffer.byteLength(JSON.stringify({ query: VERIFY, variables: { tag, token: huge } })),
        ),
      },
      body: JSON.stringify({ query: VERIFY, variables: { tag, token: huge } }),
    });
    expect(response.status).toBe(413);
    expect(await response.text()).not.toContain('AAAAAAAA');
    console.log(`1 MB token refused with 413 in ${(performance.now() - started).toFixed(0)} ms`);

    // An instance that accepts large bodies still refuses the token before parsing it.
    const roomy = await createTestApp({
      database: t.database,
      sessionSecret,
      appOptions: { bodyLimitBytes: 4 * 1024 * 1024 },
    });
    try {
      expect(huge.length).toBeGreaterThan(MAX_SESSION_TOKEN_LENGTH);
      const at = performance.now();
      const big = await gql(roomy.app, { key, query: VERIFY, variables: { tag, token: huge } });
      console.log(`1 MB token answered TOKEN_INVALID in ${(performance.now() - at).toFixed(0)} ms`);
      expect(big.data ?? null).toBeNull();
      expect(big.errors?.map((e) => [e.message, e.extensions])).toEqual([
        [TOKEN_INVALID_MESSAGE, { code: 'TOKEN_INVALID' }],
      ]);
      expect(JSON.stringify(big)).not.toContain('AAAAAAAAAAAAAAAA');
    } finally {
      await roomy.close();
    }
  });

  it('no hostile token above left anything of itself in the log', ({ t }) => {
    const log = t.logs.join('');
    expect(log.length).toBeGreaterThan(0);
    expect(log).not.toContain('attacker.example');
    expect(log).not.toContain('etc/passwd');
    expect(log).not.toContain('A'.repeat(1000));
  });
});

describe('properties of the token parser (fast-check)', () => {
  const keyring = new Keyring(randomSecret(48), ['k1']);
  const scope = { productId: '3f1e0f5e-8d7c-4b6a-9e2f-0a1b2c3d4e5f', env: 'dev' };
  const unitTag = 'user-session';
  let minted: string;
  let mintedClaims: SessionTokenClaims;
  beforeAll(async () => {
    minted = await mintSessionToken(keyring, scope, {
      sessionId: '9b2c4f7e-1a3d-4e5f-8a9b-0c1d2e3f4a5b',
      tag: unitTag,
      identifier: 'user-1',
      data: { userId: 'user-1', roles: ['admin'] },
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    mintedClaims = await openSessionToken(keyring, scope, unitTag, minted);
    expect(decodeProtectedHeader(minted)).toEqual(SIGNED_HEADER);
  });

  /**
   * What opening `token` gives: the claims, or the code the API says a refusal with (verify maps
   * the tokens module's TokenRefused so); anything else fails.
   */
  async function outcome(token: string): Promise<SessionTokenClaims | string> {
    try {
      return await openSessionToken(keyring, scope, unitTag, token);
    } catch (error) {
      if (!(error instanceof TokenRefused)) throw error;
      return error.reason === 'expired' ? 'TOKEN_EXPIRED' : 'TOKEN_INVALID';
    }
  }

  const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const b64uChar = fc.constantFrom(...BASE64URL);
  const segment = fc.string({ unit: b64uChar, maxLength: 200 });

  it('random strings never open, and always fail as TOKEN_INVALID', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'binary', maxLength: 300 }),
          fc.array(segment, { minLength: 1, maxLength: 7 }).map((s) => s.join('.')),
          fc.tuple(segment, segment, segment, segment, segment).map((s) => s.join('.')),
          fc
            .tuple(fc.jsonValue(), fc.jsonValue())
            .map(([h, p]) => `${b64u(JSON.stringify(h) ?? '')}.${b64u(JSON.stringify(p) ?? '')}.`),
        ),
        async (token) => {
          expect(await outcome(token)).toBe('TOKEN_INVALID');
        },
      ),
      { numRuns: 400 },
    );
  });

  it('any protected header but the minted one, with the rest of a valid token, is TOKEN_INVALID', async () => {
    const rest = () => minted.split('.').slice(1).join('.');
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue(),
          fc.record(
            {
              alg: fc.oneof(
                fc.constantFrom('A256KW', 'dir', 'none', 'A128KW', 'HS256'),
                fc.jsonValue(),
              ),
              enc: fc.oneof(fc.constantFrom('A256GCM', 'A128GCM', 'A256CBC-HS512'), fc.jsonValue()),
              kid: fc.oneof(fc.constantFrom('k1', 'k2', ''), fc.jsonValue()),
              zip: fc.constantFrom('DEF'),
              crit: fc.array(fc.string()),
            },
            { requiredKeys: [] },
          ),
        ),
        async (header) => {
          const encoded = b64u(JSON.stringify(header) ?? '');
          fc.pre(encoded !== minted.split('.')[0]);
          expect(await outcome(`${encoded}.${rest()}`)).toBe('TOKEN_INVALID');
        },
      ),
      { numRuns: 300 },
    );
  });

  type Mutation =
    | { kind: 'replace'; at: number; ch: string }
    | { kind: 'insert'; at: number; ch: string }
    | { kind: 'delete'; at: number }
    | { kind: 'truncate'; at: number }
    | { kind: 'swap'; a: number; b: number }
    | { kind: 'flip'; segment: number; byte: number; bit: number };

  function mutate(token: string, mutations: readonly Mutation[]): string {
    let s = token;
    for (const m of mutations) {
      const at = (n: number) => (s.length === 0 ? 0 : n % s.length);
      switch (m.kind) {
        case 'replace':
          s = s.slice(0, at(m.at)) + m.ch + s.slice(at(m.at) + 1);
          break;
        case 'insert':
          s = s.slice(0, at(m.at)) + m.ch + s.slice(at(m.at));
          break;
        case 'delete':
          s = s.slice(0, at(m.at)) + s.slice(at(m.at) + 1);
          break;
        case 'truncate':
          s = s.slice(0, at(m.at));
          break;
        case 'swap': {
          const parts = s.split('.');
          const a = m.a % parts.length;
          const b = m.b % parts.length;
          [parts[a], parts[b]] = [parts[b]!, parts[a]!];
          s = parts.join('.');
          break;
        }
        case 'flip': {
          const parts = s.split('.');
          const i = m.segment % parts.length;
          const bytes = Buffer.from(parts[i]!, 'base64url');
          if (bytes.length > 0) {
            bytes[m.byte % bytes.length]! ^= 1 << m.bit;
            parts[i] = bytes.toString('base64url');
          }
          s = parts.join('.');
          break;
        }
      }
    }
    return s;
  }

  const mutationOf = (ch: fc.Arbitrary<string>): fc.Arbitrary<Mutation> =>
    fc.oneof(
      fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), ch }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), ch }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('swap' as const), a: fc.nat(4), b: fc.nat(4) }),
      fc.record({
        kind: fc.constant('flip' as const),
        segment: fc.nat(4),
        byte: fc.nat(),
        bit: fc.nat(7),
      }),
    );

  /** The bytes each segment decodes to: what the cryptography sees. */
  const decodedSegments = (token: string) =>
    token.split('.').map((p) => Buffer.from(p, 'base64url').toString('hex'));

  it('mutations of a valid token that change what it decodes to never open (TOKEN_INVALID)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(mutationOf(fc.constantFrom(...`${BASE64URL}.`)), { minLength: 1, maxLength: 4 }),
        async (mutations) => {
          const mutated = mutate(minted, mutations);
          const result = await outcome(mutated);
          const sameBytes =
            mutated.split('.').length === 5 &&
            JSON.stringify(decodedSegments(mutated)) === JSON.stringify(decodedSegments(minted));
          if (sameBytes) {
            // Only a spelling of the very same bytes could open, and then to the same claims.
            if (typeof result !== 'string') expect(result).toEqual(mintedClaims);
          } else {
            expect(result).toBe('TOKEN_INVALID');
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('no string other than the minted token opens, whatever the spelling (strict encoding)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          mutationOf(
            // Half the time a character outside base64url: padding, whitespace, standard base64.
            fc.oneof(
              fc.constantFrom(...`${BASE64URL}.`),
              fc.constantFrom('=', ' ', '\n', '\t', '+', '/', '%'),
            ),
          ),
          { minLength: 1, maxLength: 2 },
        ),
        async (mutations) => {
          const mutated = mutate(minted, mutations);
          fc.pre(mutated !== minted);
          expect(await outcome(mutated)).toBe('TOKEN_INVALID');
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('properties of the selector parser (fast-check)', () => {
  /** A key as the grammar allows it: 1 to 64 UTF-16 code units, no braces. */
  const selectorKey = fc
    .string({ unit: 'binary', minLength: 1, maxLength: 64 })
    .filter((k) => k.length >= 1 && k.length <= 64 && !/[{}]/.test(k));
  const path = fc.array(selectorKey, { minLength: 1, maxLength: 8 });
  const render = (keys: readonly string[]) => `$Session${keys.map((k) => `{${k}}`).join('')}`;

  it('round-trips every path of 1 to 8 keys', () => {
    fc.assert(
      fc.property(path, (keys) => {
        expect(parseSelector('selector', render(keys))).toEqual(keys);
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses paths of 9 or more keys, empty keys and keys over 64 characters', () => {
    const tooLong = fc
      .string({ unit: 'grapheme-ascii', minLength: 65, maxLength: 200 })
      .filter((k) => !/[{}]/.test(k));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(selectorKey, { minLength: 9, maxLength: 20 }).map(render),
          fc.tuple(fc.array(selectorKey, { maxLength: 7 }), fc.nat()).map(([keys, at]) => {
            const withEmpty = [...keys];
            withEmpty.splice(at % (keys.length + 1), 0, '');
            return render(withEmpty);
          }),
          fc.tuple(path, tooLong, fc.nat()).map(([keys, long, at]) => {
            const withLong = [...keys];
            withLong[at % keys.length] = long;
            return render(withLong);
          }),
        ),
        (selector) => {
          expect(() => parseSelector('selector', selector)).toThrow(ServiceError);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('any string either parses into a path that renders back to it exactly, or is BAD_USER_INPUT', () => {
    const piece = fc.oneof(
      fc.constantFrom('$Session', '$session', 'Session', '$', '{', '}', '{}', '{a}', ' ', '\n'),
      fc.string({ maxLength: 8 }),
      selectorKey.map((k) => `{${k}}`),
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary' }),
          fc.array(piece, { maxLength: 12 }).map((p) => p.join('')),
          fc.array(piece, { maxLength: 12 }).map((p) => `$Session${p.join('')}`),
        ),
        (selector) => {
          let keys: string[];
          try {
            keys = parseSelector('input.selector', selector);
          } catch (error) {
            expect(error).toBeInstanceOf(ServiceError);
            expect((error as ServiceError).code).toBe('BAD_USER_INPUT');
            expect((error as ServiceError).field).toBe('input.selector');
            return;
          }
          expect(keys.length).toBeGreaterThanOrEqual(1);
          expect(keys.length).toBeLessThanOrEqual(8);
          for (const k of keys) {
            expect(k.length).toBeGreaterThanOrEqual(1);
            expect(k.length).toBeLessThanOrEqual(64);
            expect(k).not.toMatch(/[{}]/);
          }
          expect(render(keys)).toBe(selector);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

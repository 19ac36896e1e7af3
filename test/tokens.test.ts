import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { failure, gql, ok } from './support/graphql.js';
import {
  REFRESH,
  VERIFY,
  configIdsOf,
  ductapeConfig,
  eventTypesOf,
  newConfig,
  newSharedConfig,
  newProduct,
  rowsOf,
  start,
  type Started,
} from './support/fixtures.js';

/** The file's app (the `t` fixture), for the helpers below. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
});

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const randomBase64url = (chars: number) =>
  Array.from(randomBytes(chars), (b) => BASE64URL[b % 64]).join('');

const verifyFails = (key: string, tag: string, token: string) =>
  failure(t.app, { key, query: VERIFY, variables: { tag, token } });
const verify = (key: string, tag: string, token: string) =>
  ok(t.app, { key, query: VERIFY, variables: { tag, token } }).then((d) => d.verifySession);
const refreshFails = (key: string, tag: string, refreshToken: string) =>
  failure(t.app, { key, query: REFRESH, variables: { tag, refreshToken } });
const refresh = (key: string, tag: string, refreshToken: string): Promise<Started> =>
  ok(t.app, { key, query: REFRESH, variables: { tag, refreshToken } }).then(
    (d) => d.refreshSession,
  );

/** The token with the character at `position` of segment `segment` replaced by another. */
function flipChar(token: string, segment: number, position: number): string {
  const parts = token.split('.');
  const part = parts[segment]!;
  const c = part[position]!;
  const replacement = c === 'A' ? 'B' : 'A';
  parts[segment] = part.slice(0, position) + replacement + part.slice(position + 1);
  return parts.join('.');
}

/**
 * Positions in a base64url segment whose character carries only data bits (the last character of
 * a segment whose length is not a multiple of 4 also holds padding bits a decoder may ignore).
 */
function significantPositions(length: number): number[] {
  const last = length % 4 === 0 ? length - 1 : length - 2;
  return [...new Set([0, 1, Math.floor(length / 2), last])].filter((p) => p >= 0 && p < length);
}

describe('tokens are bound to their product, env and tag', () => {
  it('a dev token verified with the prd key is TOKEN_INVALID', async () => {
    const product = await newProduct(t);
    // A product-wide config, so that both envs may use the tag.
    const tag = await newSharedConfig(t, product.tag);
    const dev = await start(t, product.secret.dev, tag);
    expect(await verifyFails(product.secret.prd, tag, dev.token)).toMatchObject({
      code: 'TOKEN_INVALID',
    });
    // And the other way round.
    const prd = await start(t, product.secret.prd, tag);
    expect(await verifyFails(product.secret.dev, tag, prd.token)).toMatchObject({
      code: 'TOKEN_INVALID',
    });
    expect((await verify(product.secret.dev, tag, dev.token)).sessionId).toBe(dev.sessionId);
  });

  it('a token of one product verified by another product (same tag) is TOKEN_INVALID', async () => {
    const mine = await newProduct(t);
    const theirs = await newProduct(t);
    const tag = await newConfig(t, mine.secret.dev);
    await ok(t.app, {
      key: theirs.secret.dev,
      query: `mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input) { tag } }`,
      variables: { input: ductapeConfig(tag) },
    });
    const started = await start(t, mine.secret.dev, tag);
    expect(await verifyFails(theirs.secret.dev, tag, started.token)).toMatchObject({
      code: 'TOKEN_INVALID',
    });
    expect(await refreshFails(theirs.secret.dev, tag, started.refreshToken)).toMatchObject({
      code: 'TOKEN_INVALID',
    });
    // Neither attempt harmed the session.
    const refreshed = await refresh(mine.secret.dev, tag, started.refreshToken);
    expect((await verify(mine.secret.dev, tag, refreshed.token)).sessionId).toBe(started.sessionId);
  });

  it('a token verified under another tag of the same product is TOKEN_INVALID', async () => {
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    const otherTag = await newConfig(t, product.secret.dev);
    const started = await start(t, product.secret.dev, tag);
    expect(await verifyFails(product.secret.dev, otherTag, started.token)).toMatchObject({
      code: 'TOKEN_INVALID',
    });
    expect(await refreshFails(product.secret.dev, otherTag, started.refreshToken)).toMatchObject({
      code: 'TOKEN_INVALID',
    });
    const refreshed = await refresh(product.secret.dev, tag, started.refreshToken);
    expect(refreshed.sessionId).toBe(started.sessionId);
  });
});

describe('malformed and tampered tokens', () => {
  it('a token with one character changed in any of its 5 JWE segments is TOKEN_INVALID', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const started = await start(t, key, tag);
    const segments = started.token.split('.');
    expect(segments).toHaveLength(5);
    let tried = 0;
    for (let segment = 0; segment < 5; segment++) {
      for (const position of significantPositions(segments[segment]!.length)) {
        const tampered = flipChar(started.token, segment, position);
        expect(tampered).not.toBe(started.token);
        const error = await verifyFails(key, tag, tampered);
        expect(error, `segment ${segment}, position ${position}`).toMatchObject({
          code: 'TOKEN_INVALID',
        });
        tried++;
      }
    }
    expect(tried).toBeGreaterThanOrEqual(18);
    // The untouched token still verifies: the failures were the changes.
    expect((await verify(key, tag, started.token)).sessionId).toBe(started.sessionId);
  });

  it('a token with one bit flipped in the decoded bytes of any segment is TOKEN_INVALID', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const started = await start(t, key, tag);
    const segments = started.token.split('.');
    for (let segment = 0; segment < 5; segment++) {
      const bytes = Buffer.from(segments[segment]!, 'base64url');
      for (const index of [0, Math.floor(bytes.length / 2), bytes.length - 1]) {
        for (const bit of [0, 7]) {
          const flipped = Buffer.from(bytes);
          flipped[index]! ^= 1 << bit;
          const parts = [...segments];
          parts[segment] = flipped.toString('base64url');
          const error = await verifyFails(key, tag, parts.join('.'));
          expect(error, `segment ${segment}, byte ${index}, bit ${bit}`).toMatchObject({
            code: 'TOKEN_INVALID',
          });
        }
      }
    }
  });

  it('truncated, empty, random and oversized tokens are TOKEN_INVALID', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const { token } = await start(t, key, tag);
    const parts = token.split('.');
    const bad = [
      token.slice(0, -1),
      token.slice(0, -10),
      token.slice(0, Math.floor(token.length / 2)),
      parts.slice(0, 4).join('.'),
      parts.slice(0, 3).join('.'),
      `${token}.`,
      `${token}x`,
      ` ${token}`,
      '',
      ' ',
      'garbage',
      '....',
      'a.b.c.d.e',
      Array.from({ length: 5 }, () => randomBase64url(40)).join('.'),
      // An unsigned JWT ("alg": "none").
      `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"sid":"x"}').toString('base64url')}.`,
      'x'.repeat(100 * 1024),
      `${parts[0]}.${'A'.repeat(100 * 1024)}.${parts[2]}.${parts[3]}.${parts[4]}`,
    ];
    for (const candidate of bad) {
      expect(
        await verifyFails(key, tag, candidate),
        `${candidate.slice(0, 40)}… (${candidate.length})`,
      ).toMatchObject({ code: 'TOKEN_INVALID' });
    }
  });

  it('a session token passed as a refresh token, and a refresh token as a session token, are TOKEN_INVALID', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const started = await start(t, key, tag);
    expect(await refreshFails(key, tag, started.token)).toMatchObject({ code: 'TOKEN_INVALID' });
    expect(await verifyFails(key, tag, started.refreshToken)).toMatchObject({
      code: 'TOKEN_INVALID',
    });
    // The session is unharmed.
    const refreshed = await refresh(key, tag, started.refreshToken);
    expect((await verify(key, tag, refreshed.token)).sessionId).toBe(started.sessionId);
  });

  it('a forged refresh token is TOKEN_INVALID and revokes nothing', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const started = await start(t, key, tag);
    const forgeries = [
      `rt_${randomBytes(32).toString('base64url')}`,
      `rt_${randomBase64url(43)}`,
      flipChar(started.refreshToken, 0, 3),
      flipChar(started.refreshToken, 0, 20),
      `${started.refreshToken.slice(0, -1)}${started.refreshToken.endsWith('A') ? 'B' : 'A'}`,
      started.refreshToken.slice(0, -1),
      `${started.refreshToken}A`,
      started.refreshToken.slice(3),
      '',
      'rt_',
    ];
    for (const forged of forgeries) {
      expect(forged).not.toBe(started.refreshToken);
      expect(await refreshFails(key, tag, forged), forged).toMatchObject({
        code: 'TOKEN_INVALID',
      });
    }
    // The real session still verifies and refreshes; no revocation was recorded.
    expect((await verify(key, tag, started.token)).sessionId).toBe(started.sessionId);
    const refreshed = await refresh(key, tag, started.refreshToken);
    expect((await verify(key, tag, refreshed.token)).sessionId).toBe(started.sessionId);
    expect(await eventTypesOf(t, started.sessionId)).toEqual(['STARTED', 'REFRESHED']);
  });
});

describe('expiry', () => {
  it('a session token past its expiresIn is TOKEN_EXPIRED, and its refresh token still renews it', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const started = await start(t, key, tag, undefined, { expiresIn: 10 });
    expect((await verify(key, tag, started.token)).sessionId).toBe(started.sessionId);
    await sleep(11_000);
    expect(await verifyFails(key, tag, started.token)).toMatchObject({ code: 'TOKEN_EXPIRED' });
    const valid = await ok(t.app, {
      key,
      query: `query($tag: String!, $token: String!) { isSessionValid(tag: $tag, token: $token) }`,
      variables: { tag, token: started.token },
    });
    expect(valid.isSessionValid).toBe(false);
    const refreshed = await refresh(key, tag, started.refreshToken);
    expect((await verify(key, tag, refreshed.token)).sessionId).toBe(started.sessionId);
  }, 30_000);

  it('a refresh token past its expiry is TOKEN_EXPIRED', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const started = await start(t, key, tag);
    await t.database.db.execute(
      sql`update refresh_tokens set expires_at = now() - interval '1 second' where session_id = ${started.sessionId}`,
    );
    expect(await refreshFails(key, tag, started.refreshToken)).toMatchObject({
      code: 'TOKEN_EXPIRED',
    });
    // An expired refresh token is not reuse: the session was not revoked.
    expect(await eventTypesOf(t, started.sessionId)).toEqual(['STARTED']);
  });
});

describe('secrets never appear in plaintext', () => {
  it('no table and no log line holds a session token, a refresh token, the secret key or the session data', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const marker = `marker-${randomBytes(12).toString('hex')}`;
    const started = await start(t, key, tag, {
      userId: 'user-plain',
      details: { username: 'plain', email: `${marker}@example.com` },
      note: marker,
    });
    expect((await verify(key, tag, started.token)).data.note).toBe(marker);
    const refreshed = await refresh(key, tag, started.refreshToken);
    expect((await verify(key, tag, refreshed.token)).data.note).toBe(marker);
    // A failure is logged as well: it must not carry the token either.
    await verifyFails(key, tag, `${started.token}x`);

    const secrets: Record<string, string> = {
      'session token': started.token,
      'refreshed session token': refreshed.token,
      'refresh token': started.refreshToken,
      'refresh token, random part': started.refreshToken.slice(3),
      'new refresh token': refreshed.refreshToken,
      'new refresh token, random part': refreshed.refreshToken.slice(3),
      'secret key': key,
      'secret key, random part': key.slice('sk_dev_'.length),
      'data marker': marker,
    };
    // The encrypted parts of the session tokens (not the header, which is the same for all).
    for (const [name, token] of [
      ['session token', started.token],
      ['refreshed session token', refreshed.token],
    ] as const) {
      token
        .split('.')
        .slice(1)
        .forEach((part, i) => (secrets[`${name}, segment ${i + 1}`] = part));
    }

    // Every table of the schema, this product's rows (the test database is shared by every test
    // file, and only this test's secrets are looked for): by product_id where a table has one.
    const { productId } = await configIdsOf(t, product.tag, tag);
    const tables = rowsOf<{ table_name: string; scoped: boolean }>(
      await t.database.db.execute(sql`
        select t.table_name,
               exists (select 1 from information_schema.columns c
                       where c.table_schema = t.table_schema and c.table_name = t.table_name
                         and c.column_name = 'product_id') as scoped
        from information_schema.tables t
        where t.table_schema = 'public' and t.table_type = 'BASE TABLE'`),
    );
    expect(tables.map((x) => x.table_name)).toEqual(
      expect.arrayContaining(['products', 'api_keys', 'sessions', 'refresh_tokens']),
    );
    let rowCount = 0;
    const found: string[] = [];
    for (const { table_name: table, scoped } of tables) {
      const where =
        table === 'products'
          ? sql`where x.id = ${productId}`
          : table === 'refresh_tokens'
            ? sql`where x.session_id in (select id from sessions where product_id = ${productId})`
            : scoped
              ? sql`where x.product_id = ${productId}`
              : sql``;
      const rows = rowsOf<{ row: string }>(
        await t.database.db.execute(
          sql`select row_to_json(x)::text as row from ${sql.identifier(table)} x ${where}`,
        ),
      );
      rowCount += rows.length;
      for (const { row } of rows) {
        for (const [name, secret] of Object.entries(secrets)) {
          if (row.includes(secret)) found.push(`${name} in ${table}: ${row.slice(0, 200)}`);
        }
      }
    }
    expect(found).toEqual([]);
    // The dump saw this test's rows: the session, its two refresh tokens and its events.
    expect(rowCount).toBeGreaterThan(5);
    const sessionRows = rowsOf<{ n: number | string }>(
      await t.database.db.execute(
        sql`select count(*) as n from refresh_tokens where session_id = ${started.sessionId}`,
      ),
    );
    expect(Number(sessionRows[0]!.n)).toBe(2);

    expect(t.logs.length).toBeGreaterThan(0);
    for (const line of [...t.logs, ...t.statements]) {
      for (const [name, secret] of Object.entries(secrets)) {
        expect(line.includes(secret), `${name} in log line: ${line.slice(0, 200)}`).toBe(false);
      }
    }
  });

  it('error responses never echo a token back', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const started = await start(t, key, tag);
    const tampered = flipChar(started.token, 3, 5);
    const responses = [
      await gql(t.app, { key, query: VERIFY, variables: { tag, token: tampered } }),
      await gql(t.app, {
        key,
        query: REFRESH,
        variables: { tag, refreshToken: `${started.refreshToken}A` },
      }),
    ];
    for (const response of responses) {
      const text = JSON.stringify(response);
      expect(response.errors).toHaveLength(1);
      expect(text).not.toContain(tampered.split('.')[3]!);
      expect(text).not.toContain(started.refreshToken);
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { sql } from 'drizzle-orm';
import { gql } from './support/graphql.js';
import { newConfig, newProduct, start } from './support/fixtures.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

describe('HTTP surface', () => {
  it('serves GraphiQL from the package itself: the page loads nothing from another host', async () => {
    const response = await t.app.fetch('http://test.local/graphql', {
      headers: { accept: 'text/html' },
    });
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain('<div id="root">');
    expect(html.length).toBeGreaterThan(100_000); // the bundle is inline, not fetched
    // No element, stylesheet or import pulls a resource from elsewhere.
    const external = [
      ...html.matchAll(
        /<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?\/\//gi,
      ),
      ...html.matchAll(/@import\s+(?:url\()?["']?(?:https?:)?\/\//gi),
      ...html.matchAll(/\bimport\s*\(\s*["'](?:https?:)?\/\//gi),
    ];
    expect(external.map((m) => m[0])).toEqual([]);
    expect(html).not.toMatch(/unpkg\.com|jsdelivr|cdnjs/);
  });

  it('answers /health with 200 and /ready with 200 while the database is up', async () => {
    expect((await t.app.fetch('http://test.local/health')).status).toBe(200);
    expect((await t.app.fetch('http://test.local/ready')).status).toBe(200);
  });

  it('answers a trivial query with no key', async () => {
    const response = await gql(t.app, { query: '{ __typename }' });
    expect(response.data).toEqual({ __typename: 'Query' });
  });

  it('reports a syntax or validation error as such, not as an internal error', async () => {
    const syntax = await gql(t.app, { query: '{ sessionConfigs ' });
    expect(syntax.errors?.[0]?.message).toMatch(/Syntax Error/);
    const unknown = await gql(t.app, { query: '{ noSuchField }' });
    expect(unknown.errors?.[0]?.message).toMatch(/noSuchField/);
  });

  it('masks unexpected faults: the client sees INTERNAL_SERVER_ERROR and no detail, the log has the detail', async () => {
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    const session = await start(t, product.secret.dev, tag);
    // A ciphertext that no longer opens: a fault no input could cause.
    await t.database.db.execute(
      sql`update sessions set data_enc = 'AQ' || repeat('A', 60) where id = ${session.sessionId}`,
    );
    const logsBefore = t.logs.length;
    const response = await gql(t.app, {
      key: product.secret.dev,
      query: 'query($id: ID!) { session(id: $id) { data } }',
      variables: { id: session.sessionId },
    });
    expect(response.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    expect(response.errors?.[0]?.message).toBe('Unexpected error.');
    expect(JSON.stringify(response)).not.toMatch(/stack|decipher|auth|aes|select/i);
    expect(t.logs.slice(logsBefore).join('')).toMatch(/unexpected error/);
  });

  it('with the database gone, answers a retriable SERVICE_UNAVAILABLE (503), never data', async () => {
    const broken = await createTestApp();
    await broken.close();
    const response = await gql(broken.app, { query: '{ products { tag } }', key: broken.adminKey });
    expect(response.status).toBe(503);
    expect(response.errors?.[0]?.extensions).toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      retriable: true,
    });
    expect(response.data?.products ?? null).toBeNull();
    expect(JSON.stringify(response)).not.toMatch(/stack|select|postgres|pglite/i);
  });
});

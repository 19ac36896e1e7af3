import { expect } from 'vitest';
import { describe, it } from './support/test.js';
import { createTestApp } from './support/app.js';
import { sql } from 'drizzle-orm';
import { clientIp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { gql, ok } from './support/graphql.js';
import { newConfig, newProduct, start } from './support/fixtures.js';

describe('HTTP surface', () => {
  it('serves GraphiQL from the package itself: the page loads nothing from another host', async ({
    t,
  }) => {
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

  it('answers /health with 200 and /ready with 200 while the database is up', async ({ t }) => {
    expect((await t.app.fetch('http://test.local/health')).status).toBe(200);
    expect((await t.app.fetch('http://test.local/ready')).status).toBe(200);
  });

  it('answers a trivial query with no key', async ({ t }) => {
    const response = await gql(t.app, { query: '{ __typename }' });
    expect(response.data).toEqual({ __typename: 'Query' });
  });

  it('reports a syntax or validation error as such, not as an internal error', async ({ t }) => {
    const syntax = await gql(t.app, { query: '{ sessionConfigs ' });
    expect(syntax.errors?.[0]?.message).toMatch(/Syntax Error/);
    const unknown = await gql(t.app, { query: '{ noSuchField }' });
    expect(unknown.errors?.[0]?.message).toMatch(/noSuchField/);
  });

  it('masks unexpected faults: the client sees INTERNAL_SERVER_ERROR and no detail, the log has the detail', async ({
    t,
  }) => {
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

describe('the client address behind proxies', () => {
  it('is the TCP peer unless proxies are trusted, then the address the outermost one saw', () => {
    expect(clientIp('10.0.0.5', '203.0.113.9', 0)).toBe('10.0.0.5');
    expect(clientIp('10.0.0.5', '203.0.113.9', 1)).toBe('203.0.113.9');
    // A client writing its own X-Forwarded-For only adds entries further left.
    expect(clientIp('10.0.0.5', '1.2.3.4, 203.0.113.9', 1)).toBe('203.0.113.9');
    expect(clientIp('10.0.0.5', '1.2.3.4, 203.0.113.9, 10.0.0.7', 2)).toBe('203.0.113.9');
    // Fewer entries than trusted hops, or garbage: fall back to the peer.
    expect(clientIp('10.0.0.5', '203.0.113.9', 2)).toBe('10.0.0.5');
    expect(clientIp('10.0.0.5', 'not-an-ip', 1)).toBe('10.0.0.5');
  });

  it('with TRUST_PROXY_HOPS=1 a session started with device.fromRequest records the forwarded address', async () => {
    const behind = await createTestApp({ appOptions: { trustProxyHops: 1 } });
    try {
      const product = await newProduct(behind);
      const tag = await newConfig(behind, product.secret.dev);
      const started = await ok<{ startSession: { session: { device: { ip: string | null } } } }>(
        behind.app,
        {
          key: product.secret.dev,
          headers: { 'x-forwarded-for': '1.2.3.4, 203.0.113.9' },
          query: `mutation($tag: String!) { startSession(input: { tag: $tag, data: { userId: "u" }, device: { fromRequest: true } }) { session { device { ip } } } }`,
          variables: { tag },
        },
      );
      expect(started.startSession.session.device.ip).toBe('203.0.113.9');
    } finally {
      await behind.close();
    }
  });

  it('reads TRUST_PROXY_HOPS from the environment, 0 by default', () => {
    expect(loadConfig({}).trustProxyHops).toBe(0);
    expect(loadConfig({ TRUST_PROXY_HOPS: '2' }).trustProxyHops).toBe(2);
  });
});

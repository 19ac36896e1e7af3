import { parse, validate } from 'graphql/index.js'; // the copy Pothos uses (see scripts/print-schema.ts)
import { expect } from 'vitest';
import { graphiqlOptions, KEY_PLACEHOLDER } from '../src/graphiql.js';
import { schema } from '../src/graphql/index.js';
import type { TestApp } from './support/app.js';
import { describe, it } from './support/test.js';

const operationName = (query: string | null) =>
  /^(?:query|mutation|subscription)\s+(\w+)/m.exec(query ?? '')?.[1];

describe('GraphiQL’s example operations', () => {
  it('walk through a session’s life, one tab each: start, verify, refresh, list, revoke, a subscription', () => {
    const tabs = graphiqlOptions().defaultTabs ?? [];
    expect(tabs.map((tab) => operationName(tab.query))).toEqual([
      'StartSession',
      'VerifySession',
      'RefreshSession',
      'ListSessions',
      'RevokeSession',
      'SessionRevoked',
      'CreateSessionConfig',
    ]);
  });

  it('are valid against the schema, with variables that are valid JSON', () => {
    const options = graphiqlOptions();
    for (const tab of [...(options.defaultTabs ?? []), { query: options.defaultQuery ?? null }]) {
      const errors = validate(schema, parse(tab.query ?? ''));
      expect(
        errors.map((e) => e.message),
        operationName(tab.query),
      ).toEqual([]);
      if ('variables' in tab && tab.variables)
        expect(() => JSON.parse(tab.variables!)).not.toThrow();
    }
  });

  it('explain themselves in comments that fit the editor without scrolling sideways', () => {
    const options = graphiqlOptions();
    for (const query of [
      ...(options.defaultTabs ?? []).map((tab) => tab.query),
      options.defaultQuery,
    ]) {
      const comments = (query ?? '').split('\n').filter((line) => line.startsWith('#'));
      expect(comments.length, operationName(query ?? null)).toBeGreaterThan(0);
      expect(comments.filter((line) => line.length > 56)).toEqual([]);
    }
  });

  it('send the demo key when it is known, outside production; a placeholder otherwise', () => {
    const headersOf = (options: ReturnType<typeof graphiqlOptions>) => [
      options.headers,
      ...(options.defaultTabs ?? []).map((tab) => tab.headers),
    ];
    const withKey = graphiqlOptions({ demoKey: 'sk_dev_demo' });
    for (const headers of headersOf(withKey)) {
      expect(JSON.parse(headers!)).toEqual({ Authorization: 'Bearer sk_dev_demo' });
    }
    for (const options of [
      graphiqlOptions(),
      graphiqlOptions({ demoKey: 'sk_dev_demo', production: true }),
    ]) {
      for (const headers of headersOf(options)) {
        expect(JSON.parse(headers!)).toEqual({ Authorization: KEY_PLACEHOLDER });
      }
    }
  });
});

describe('the GraphiQL page', () => {
  it('carries the example tabs and, with no demo key known, the key placeholder', async ({ t }) => {
    const response = await t.app.fetch('http://test.local/graphql', {
      headers: { accept: 'text/html' },
    });
    const html = await response.text();
    expect(html).toContain('mutation StartSession');
    expect(html).toContain('subscription SessionRevoked');
    expect(html).toContain(KEY_PLACEHOLDER);
    expect(html).not.toMatch(/sk_dev_\w/);
  });
});

describe('the demo key in the GraphiQL page', () => {
  const demoKey = 'sk_dev_demoKeyOnlyForLoopback';
  const withDemoKey = { appOptions: { graphiqlSetup: { demoKey } } };

  /** The page as a client at `peer` sees it (the TCP peer Node's server would hand Yoga). */
  const page = async (
    t: TestApp,
    peer: string | undefined,
    headers: Record<string, string> = {},
  ) => {
    const response = await t.app.fetch(
      'http://test.local/graphql',
      { headers: { accept: 'text/html', ...headers } },
      { req: { socket: { remoteAddress: peer } } as never },
    );
    expect(response.status).toBe(200);
    return response.text();
  };

  it('is prefilled for a client on a loopback address (IPv4, IPv6, IPv4-mapped)', async ({
    instance,
  }) => {
    const t = await instance(withDemoKey);
    for (const peer of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) {
      expect((await page(t, peer)).includes(demoKey), peer).toBe(true);
    }
  });

  it('is never in the page for any other client: a LAN or public peer, an unknown peer, or a loopback peer forwarding for someone else', async ({
    instance,
  }) => {
    const t = await instance(withDemoKey);
    const cases: [string | undefined, Record<string, string>][] = [
      ['192.168.1.20', {}],
      ['10.0.0.7', {}],
      ['203.0.113.5', {}],
      ['::ffff:203.0.113.5', {}],
      ['2001:db8::1', {}],
      [undefined, {}],
      // A reverse proxy on the same host: the peer is loopback, the client is not.
      ['127.0.0.1', { 'x-forwarded-for': '203.0.113.5' }],
      ['::1', { forwarded: 'for=203.0.113.5' }],
    ];
    for (const [peer, headers] of cases) {
      const html = await page(t, peer, headers);
      const label = `${peer} ${JSON.stringify(headers)}`;
      expect(html.includes(demoKey), label).toBe(false);
      expect(/sk_dev_\w/.test(html), label).toBe(false);
      expect(html.includes(KEY_PLACEHOLDER), label).toBe(true);
    }
  });
});

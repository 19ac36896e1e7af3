import { readdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { parse, validate } from 'graphql/index.js'; // the copy Pothos uses (see scripts/print-schema.ts)
import { expect } from 'vitest';
import { graphiqlOptions, KEY_PLACEHOLDER } from '../src/graphiql.js';
import { schema } from '../src/graphql/index.js';
import { CONSOLE_BUILD_DIR, CONSOLE_CSP } from '../src/http/console.js';
import type { TestApp } from './support/app.js';
import { listen } from './support/live.js';
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

  /**
   * The page as a client at `peer` sees it (the TCP peer Node's server would hand Yoga), asked
   * for at `host` (the URL's host and the Host header, as Node's server makes them agree).
   */
  const page = async (
    t: TestApp,
    peer: string | undefined,
    headers: Record<string, string> = {},
    host = 'localhost:4000',
  ) => {
    const response = await t.app.fetch(
      `http://${host}/graphql`,
      { headers: { accept: 'text/html', host, ...headers } },
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

  it('is prefilled for a loopback Host (localhost, 127.0.0.0/8, [::1], with or without a port) with no Origin or a loopback one', async ({
    instance,
  }) => {
    const t = await instance(withDemoKey);
    const hosts = [
      'localhost',
      'localhost:4000',
      'LocalHost:4000',
      '127.0.0.1',
      '127.0.0.1:4000',
      '127.8.9.10:80',
      '[::1]',
      '[::1]:4000',
    ];
    const origins = [
      undefined,
      'http://localhost:4000',
      'https://localhost',
      'http://127.0.0.1:4000',
      'http://127.1.2.3:8080',
      'http://[::1]:4000',
    ];
    for (const host of hosts) {
      for (const origin of origins) {
        const html = await page(t, '127.0.0.1', origin ? { origin } : {}, host);
        expect(html.includes(demoKey), `${host} ${origin}`).toBe(true);
      }
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

  it('is never in the page for a loopback peer that names another Host (DNS rebinding) or comes with a foreign Origin', async ({
    instance,
  }) => {
    const t = await instance(withDemoKey);
    // A name the attacker made resolve to 127.0.0.1: the browser sends it as the Host.
    for (const host of [
      'rebind.attacker.example',
      'rebind.attacker.example:4000',
      'localhost.attacker.example:4000',
      '127.0.0.1.nip.io:4000',
      'sub.localhost:4000',
      'localhost.:4000',
      '192.168.1.2:4000',
      '[::ffff:7f00:1]:4000',
      '[fe80::1]:4000',
    ]) {
      const html = await page(t, '127.0.0.1', {}, host);
      expect(html.includes(demoKey), host).toBe(false);
      expect(html.includes(KEY_PLACEHOLDER), host).toBe(true);
    }
    // The URL and the Host header must both be loopback.
    const mixed = await t.app.fetch(
      'http://localhost:4000/graphql',
      { headers: { accept: 'text/html', host: 'rebind.attacker.example:4000' } },
      { req: { socket: { remoteAddress: '127.0.0.1' } } as never },
    );
    expect((await mixed.text()).includes(demoKey)).toBe(false);
    for (const origin of [
      'http://attacker.example',
      'http://localhost.attacker.example:4000',
      'http://127.0.0.1.nip.io:4000',
      'null',
      'file://',
      'ftp://localhost',
      'http://localhost:4000/path',
    ]) {
      const html = await page(t, '127.0.0.1', { origin });
      expect(html.includes(demoKey), origin).toBe(false);
      expect(html.includes(KEY_PLACEHOLDER), origin).toBe(true);
    }
  });

  it('over a real connection from this machine: present when the Host is the loopback address dialled, absent when the Host is a rebound name', async ({
    instance,
  }) => {
    const t = await instance(withDemoKey);
    const server = await listen(t);
    try {
      const { port } = new URL(server.url);
      const get = (host: string) =>
        new Promise<string>((resolve, reject) => {
          const request = httpRequest(
            { host: '127.0.0.1', port, path: '/graphql', headers: { accept: 'text/html', host } },
            (response) => {
              let body = '';
              response.setEncoding('utf8');
              response.on('data', (chunk: string) => (body += chunk));
              response.on('end', () => resolve(body));
              response.on('error', reject);
            },
          );
          request.on('error', reject);
          request.end();
        });
      expect((await get(`127.0.0.1:${port}`)).includes(demoKey)).toBe(true);
      expect((await get(`localhost:${port}`)).includes(demoKey)).toBe(true);
      const rebound = await get(`rebind.attacker.example:${port}`);
      expect(rebound.includes(demoKey)).toBe(false);
      expect(rebound.includes(KEY_PLACEHOLDER)).toBe(true);
    } finally {
      await server.close();
    }
  });
});

describe('the HTML routes (GraphiQL, console) and CORS', () => {
  const ORIGIN = 'http://attacker.example';
  const corsHeadersOf = (response: Response) =>
    [...response.headers.keys()].filter((name) => name.startsWith('access-control-'));

  it('answer no CORS headers, whatever the Origin; the API keeps its CORS', async ({
    instance,
  }) => {
    const t = await instance({
      appOptions: { console: true, graphiqlSetup: { demoKey: 'sk_dev_demoKeyOnlyForLoopback' } },
    });
    const get = (pathname: string, method = 'GET', headers: Record<string, string> = {}) =>
      t.app.fetch(
        `http://localhost:4000${pathname}`,
        { method, headers: { origin: ORIGIN, ...headers } },
        { req: { socket: { remoteAddress: '127.0.0.1' } } as never },
      );
    const asset = readdirSync(path.join(CONSOLE_BUILD_DIR, 'assets'))[0]!;
    const html: [string, Response][] = [
      ['GraphiQL', await get('/graphql', 'GET', { accept: 'text/html' })],
      ['console', await get('/console')],
      ['console/', await get('/console/')],
      ['console asset', await get(`/console/assets/${asset}`)],
      ['console 404', await get('/console/nothing')],
      ['console POST', await get('/console', 'POST')],
      [
        'console preflight',
        await get('/console', 'OPTIONS', { 'access-control-request-method': 'GET' }),
      ],
    ];
    for (const [label, response] of html) {
      expect(corsHeadersOf(response), label).toEqual([]);
    }
    // The GraphQL API itself is called from browsers on other origins with a key in a header:
    // it still answers them.
    const api = await t.app.fetch('http://localhost:4000/graphql', {
      method: 'POST',
      headers: { origin: ORIGIN, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(api.headers.get('access-control-allow-origin')).toBe(ORIGIN);
  });

  it('GraphiQL may not be framed: its Content-Security-Policy says frame-ancestors none, as the console’s does', async ({
    t,
  }) => {
    const response = await t.app.fetch('http://localhost:4000/graphql', {
      headers: { accept: 'text/html' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect(CONSOLE_CSP).toContain("frame-ancestors 'none'");
  });
});

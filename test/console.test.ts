import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { expect } from 'vitest';
import { loadConfig } from '../src/config.js';
import { CONSOLE_BUILD_DIR, CONSOLE_CSP } from '../src/http/console.js';
import { chooseEncoding } from '../src/http/static.js';
import type { TestApp } from './support/app.js';
import { describe, it, test } from './support/test.js';

const INDEX = readFileSync(path.join(CONSOLE_BUILD_DIR, 'index.html'));
const ASSETS = readdirSync(path.join(CONSOLE_BUILD_DIR, 'assets'));
const SCRIPT = ASSETS.find((name) => name.endsWith('.js'))!;

test.override('appOptions', { appOptions: { console: true } });

/** The body as sent, decoded by its Content-Encoding. */
async function decoded(response: Response): Promise<Buffer> {
  const raw = Buffer.from(await response.arrayBuffer());
  const encoding = response.headers.get('content-encoding');
  if (encoding === 'br') return brotliDecompressSync(raw);
  if (encoding === 'gzip') return gunzipSync(raw);
  return raw;
}

describe('the console and GraphiQL over HTTP', () => {
  const get = (
    t: TestApp,
    pathname: string,
    headers: Record<string, string> = {},
    method = 'GET',
  ) => t.app.fetch(`http://test.local${pathname}`, { method, headers });

  it('serves the page brotli- or gzip-compressed by Accept-Encoding, and plain otherwise', async ({
    t,
  }) => {
    const cases: [string | undefined, string | null][] = [
      ['gzip, deflate, br, zstd', 'br'],
      ['br;q=0.5, gzip;q=0.9', 'gzip'],
      ['gzip', 'gzip'],
      ['br', 'br'],
      ['identity', null],
      ['gzip;q=0, br;q=0', null],
      ['*', 'br'],
      [undefined, null],
    ];
    for (const [accept, expected] of cases) {
      const response = await get(
        t,
        '/console/',
        accept === undefined ? {} : { 'accept-encoding': accept },
      );
      expect(response.status, accept).toBe(200);
      expect(response.headers.get('content-encoding'), accept).toBe(expected);
      expect(response.headers.get('vary')).toBe('Accept-Encoding');
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect((await decoded(response)).equals(INDEX), accept).toBe(true);
    }
    expect(chooseEncoding('gzip;q=1, *;q=0')).toBe('gzip');
  });

  it('gives the page no-cache with an ETag (304 when unchanged), and hashed assets a year, immutable', async ({
    t,
  }) => {
    const page = await get(t, '/console', { 'accept-encoding': 'br' });
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const etag = page.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await get(t, '/console', { 'accept-encoding': 'br', 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    // Another encoding's ETag names the same content: still not modified.
    const plain = await get(t, '/console', { 'if-none-match': etag });
    expect(plain.status).toBe(304);
    expect((await get(t, '/console', { 'if-none-match': '"other"' })).status).toBe(200);

    const script = await get(t, `/console/assets/${SCRIPT}`, { 'accept-encoding': 'gzip' });
    expect(script.status).toBe(200);
    expect(script.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.headers.get('content-encoding')).toBe('gzip');
    const original = readFileSync(path.join(CONSOLE_BUILD_DIR, 'assets', SCRIPT));
    const body = await decoded(script);
    expect(body.equals(original)).toBe(true);
    expect(Number(script.headers.get('content-length'))).toBeLessThan(original.length / 2);
  });

  it('sends a strict Content-Security-Policy and no-referrer, no framing', async ({ t }) => {
    const page = await get(t, '/console/');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toBe(CONSOLE_CSP);
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    // The page loads nothing from another host, and runs no inline script.
    const html = INDEX.toString('utf8');
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });

  it('answers HEAD without a body, 404 for unknown assets, 405 for other methods', async ({
    t,
  }) => {
    const head = await get(t, '/console/', {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    expect((await get(t, '/console/assets/nope.js')).status).toBe(404);
    expect((await get(t, '/console/assets/../../package.json')).status).toBe(404);
    const notFound = await get(t, '/console/elsewhere');
    expect(notFound.status).toBe(404);
    expect(await notFound.json()).toMatchObject({
      errors: [{ extensions: { code: 'NOT_FOUND' } }],
    });
    expect((await get(t, '/console/', {}, 'POST')).status).toBe(405);
  });

  it('serves GraphiQL compressed, with an ETag and no-cache; an unchanged page is a 304', async ({
    t,
  }) => {
    const page = await get(t, '/graphql', { accept: 'text/html', 'accept-encoding': 'gzip, br' });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-encoding')).toBe('br');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const sent = Number(page.headers.get('content-length'));
    const html = (await decoded(page)).toString('utf8');
    expect(html).toContain('mutation StartSession');
    // About 9 MB of HTML travels as well under a quarter of that.
    expect(sent).toBeLessThan(html.length / 4);
    const etag = page.headers.get('etag')!;
    const again = await get(t, '/graphql', {
      accept: 'text/html',
      'accept-encoding': 'gzip, br',
      'if-none-match': etag,
    });
    expect(again.status).toBe(304);
    const gzipped = await get(t, '/graphql', { accept: 'text/html', 'accept-encoding': 'gzip' });
    expect(gzipped.headers.get('content-encoding')).toBe('gzip');
    expect((await decoded(gzipped)).toString('utf8')).toBe(html);
  });
});

describe('the console switch', () => {
  it('is on by default in development and test, off in production unless CONSOLE=true', () => {
    const secret = { SESSION_SECRET: 'x'.repeat(32) };
    expect(loadConfig({}).console).toBe(true);
    expect(loadConfig({ NODE_ENV: 'test' }).console).toBe(true);
    expect(loadConfig({ NODE_ENV: 'production', ...secret }).console).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production', CONSOLE: 'true', ...secret }).console).toBe(true);
    expect(loadConfig({ CONSOLE: 'false' }).console).toBe(false);
    expect(() => loadConfig({ CONSOLE: 'yes' })).toThrow(/CONSOLE: expected true or false/);
  });

  it('answers NOT_FOUND at /console when off (as production does by default)', async ({
    instance,
  }) => {
    const off = await instance({ appOptions: { console: false } });
    for (const pathname of ['/console', '/console/', `/console/assets/${SCRIPT}`]) {
      const response = await off.app.fetch(`http://test.local${pathname}`);
      expect(response.status, pathname).toBe(404);
      expect(await response.json()).toMatchObject({
        errors: [{ extensions: { code: 'NOT_FOUND' } }],
      });
    }
  });
});

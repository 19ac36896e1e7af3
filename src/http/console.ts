import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { GraphiQLOptions, Plugin } from 'graphql-yoga';
import { CONSOLE_BUILD_DIR } from '../paths.js';
import { errorResponse } from './error-contract.js';
import {
  CACHE_IMMUTABLE,
  CACHE_REVALIDATE,
  once,
  precompress,
  serveAsset,
  type StaticAsset,
} from './static.js';

export { CONSOLE_BUILD_DIR };

/** Where the console is served. */
export const CONSOLE_PATH = '/console';

/**
 * The console's Content-Security-Policy: its own scripts, styles and images only, no inline
 * script or style, requests to this origin only (GraphQL over HTTP and WebSocket), no framing.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const CONSOLE_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

/**
 * GraphiQL's headers: it may not be framed (another site could overlay it to make a visitor
 * run operations with the key in its Headers), nor load plugins or rebase its URLs.
 */
export const GRAPHIQL_HEADERS = {
  'content-security-policy': [
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
  ].join('; '),
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/** Whether a request asks for GraphiQL: a browser's `GET /graphql` (it accepts HTML). */
const isGraphiQLRequest = (request: Request, pathname: string) =>
  pathname === '/graphql' &&
  request.method === 'GET' &&
  (request.headers.get('accept') ?? '').includes('text/html');

/** Whether a request is for one of the pages: GraphiQL or anything under the console's path. */
export function isPageRequest(request: Request, pathname: string): boolean {
  return (
    isGraphiQLRequest(request, pathname) ||
    pathname === CONSOLE_PATH ||
    pathname.startsWith(`${CONSOLE_PATH}/`)
  );
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
};

/** Largest file the console's build may hold: every file is kept in memory. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

interface ConsoleFiles {
  readonly index: StaticAsset;
  /** `assets/<name>` → file; names carry a content hash, so they are cached for good. */
  readonly assets: ReadonlyMap<string, StaticAsset>;
}

/** Reads and compresses the console's build once. */
export async function loadConsole(dir: string = CONSOLE_BUILD_DIR): Promise<ConsoleFiles> {
  const index = await precompress(
    await readFile(path.join(dir, 'index.html')),
    TYPES['.html']!,
    CACHE_REVALIDATE,
  );
  const assets = new Map<string, StaticAsset>();
  for (const name of await readdir(path.join(dir, 'assets'))) {
    const body = await readFile(path.join(dir, 'assets', name));
    if (body.length > MAX_FILE_BYTES) throw new Error(`console asset ${name} is too large`);
    const type = TYPES[path.extname(name)] ?? 'application/octet-stream';
    assets.set(name, await precompress(body, type, CACHE_IMMUTABLE));
  }
  return { index, assets };
}

/**
 * Which pages {@link createStaticPages} serves and how it tells a request from this machine: app.ts
 * fills it from its own options.
 */
export interface StaticPagesOptions {
  /** Serve the console at /console. */
  readonly console: boolean;
  /**
   * GraphiQL's options for a request, or undefined when GraphiQL is off. `local` is whether the
   * request comes from this machine itself (it decides whether the demo key may be shown).
   */
  readonly graphiql?: (local: boolean) => GraphiQLOptions;
  /** Whether a request comes from this machine (src/graphiql.ts, isLocalRequest). */
  readonly isLocal: (request: Request, serverContext: unknown) => boolean;
  /** Where the console's build is (tests point elsewhere). */
  readonly consoleDir?: string;
}

/** The served pages: a Yoga plugin that answers their requests, and a warm-up. */
export interface StaticPages {
  readonly plugin: Plugin;
  /** Reads and compresses everything now rather than on first request (called after listen). */
  warm(): Promise<void>;
}

/**
 * The console (`/console`) and GraphiQL (`GET /graphql` from a browser), each served from
 * memory, compressed once (brotli or gzip by Accept-Encoding) with caching headers: hashed
 * assets are immutable, pages are `no-cache` with an ETag (a reload costs a 304).
 */
export function createStaticPages(options: StaticPagesOptions): StaticPages {
  const consoleFiles = once(() => loadConsole(options.consoleDir));
  // Two GraphiQL pages at most: with the demo key (for this machine only) and without.
  const graphiqlPage = new Map<boolean, () => Promise<StaticAsset>>();
  // The page differs for this machine only when a demo key is known: decided once.
  const localDiffers = once(async () => {
    const render = options.graphiql;
    return render ? JSON.stringify(render(true)) !== JSON.stringify(render(false)) : false;
  });
  const pageFor = async (local: boolean) => {
    const render = options.graphiql;
    if (!render) throw new Error('GraphiQL is off');
    const key = local && (await localDiffers());
    let page = graphiqlPage.get(key);
    if (!page) {
      page = once(async () => {
        // GraphiQL's bundle (9 MB of source) is loaded when a page is first made, not at start.
        const { renderGraphiQL } = await import('@graphql-yoga/render-graphiql');
        return precompress(
          Buffer.from(renderGraphiQL({ ...render(key), endpoint: '/graphql' })),
          TYPES['.html']!,
          CACHE_REVALIDATE,
        );
      });
      graphiqlPage.set(key, page);
    }
    return await page();
  };

  const plugin: Plugin = {
    onRequest({ request, url, serverContext, endResponse, fetchAPI }) {
      const { pathname } = url;
      const method = request.method;
      if (options.graphiql && isGraphiQLRequest(request, pathname)) {
        const local = options.isLocal(request, serverContext);
        return pageFor(local).then((page) =>
          endResponse(serveAsset(request, page, GRAPHIQL_HEADERS)),
        );
      }
      if (pathname !== CONSOLE_PATH && !pathname.startsWith(`${CONSOLE_PATH}/`)) return;
      if (!options.console) {
        endResponse(errorResponse(fetchAPI, 404, 'NOT_FOUND', 'No such route.'));
        return;
      }
      if (method !== 'GET' && method !== 'HEAD') {
        endResponse(
          new fetchAPI.Response(null, {
            status: 405,
            headers: { allow: 'GET, HEAD', ...CONSOLE_HEADERS },
          }),
        );
        return;
      }
      return consoleFiles().then((files) => {
        const rest = pathname.slice(CONSOLE_PATH.length);
        if (rest === '' || rest === '/' || rest === '/index.html') {
          endResponse(serveAsset(request, files.index, CONSOLE_HEADERS));
          return;
        }
        const name = /^\/assets\/([A-Za-z0-9._-]{1,200})$/.exec(rest)?.[1];
        const asset = name === undefined ? undefined : files.assets.get(name);
        endResponse(
          asset
            ? serveAsset(request, asset, CONSOLE_HEADERS)
            : errorResponse(fetchAPI, 404, 'NOT_FOUND', 'No such route.'),
        );
      });
    },
  };

  return {
    plugin,
    async warm() {
      await Promise.all([
        options.console ? consoleFiles() : undefined,
        options.graphiql ? pageFor(false) : undefined,
        // The page with the demo key, when there is one (first start), for this machine's browser.
        options.graphiql ? pageFor(true) : undefined,
      ]);
    },
  };
}

import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { brotliCompress, constants as zlibConstants, gzip } from 'node:zlib';

const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

/**
 * Above this size the best qualities cost seconds of CPU (brotli 11: 13 s for GraphiQL's 9 MB;
 * 9: 2 s on a busy machine): such a body gets brotli 5 and gzip 6 (0.6 s and 0.5 s, and 5% and
 * 0.4% larger than at 9).
 */
const LARGE_BYTES = 1024 * 1024;

/** One static file, held in memory with its compressed forms, made once (never per request). */
export interface StaticAsset {
  readonly type: string;
  readonly identity: Buffer;
  readonly br: Buffer;
  readonly gzip: Buffer;
  /** A strong validator of the content (the same for every encoding's representation base). */
  readonly etag: string;
  /** `immutable` for content-hashed names; `no-cache` (revalidate with the ETag) otherwise. */
  readonly cacheControl: string;
}

/**
 * `Cache-Control` of a file whose name carries its content's hash (the console's assets): kept a
 * year, never revalidated.
 */
export const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';
/**
 * `Cache-Control` of a page whose name stays (the console's index, GraphiQL): kept, but revalidated
 * with its ETag on every use.
 */
export const CACHE_REVALIDATE = 'no-cache';

/** Compresses `body` with brotli and gzip, off the event loop (zlib's thread pool). */
export async function precompress(
  body: Buffer,
  type: string,
  cacheControl: string,
): Promise<StaticAsset> {
  const large = body.length > LARGE_BYTES;
  const quality = large ? 5 : zlibConstants.BROTLI_MAX_QUALITY;
  const [br, gz] = await Promise.all([
    brotli(body, {
      params: {
        [zlibConstants.BROTLI_PARAM_QUALITY]: quality,
        [zlibConstants.BROTLI_PARAM_SIZE_HINT]: body.length,
        [zlibConstants.BROTLI_PARAM_MODE]: type.startsWith('text/')
          ? zlibConstants.BROTLI_MODE_TEXT
          : zlibConstants.BROTLI_MODE_GENERIC,
      },
    }),
    gzipAsync(body, { level: large ? 6 : 9 }),
  ]);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { type, identity: body, br, gzip: gz, etag, cacheControl };
}

type Encoding = 'br' | 'gzip' | 'identity';

/**
 * The best encoding the client accepts (RFC 9110 `Accept-Encoding`, with q-values): brotli,
 * then gzip, else none. `q=0` refuses a coding; `*` stands for any coding not named.
 */
export function chooseEncoding(acceptEncoding: string | null): Encoding {
  if (!acceptEncoding) return 'identity';
  const q = new Map<string, number>();
  for (const part of acceptEncoding.slice(0, 1024).split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    let weight = 1;
    for (const param of params) {
      const match = /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(param);
      if (match) weight = Number(match[1]);
    }
    q.set(name, Number.isFinite(weight) ? weight : 0);
  }
  const weightOf = (coding: string) => q.get(coding) ?? q.get('*') ?? 0;
  const br = weightOf('br');
  const gz = weightOf('gzip');
  if (br > 0 && br >= gz) return 'br';
  if (gz > 0) return 'gzip';
  return 'identity';
}

/** Whether `If-None-Match` names this ETag (or `*`), ignoring weak prefixes and encodings. */
function notModified(ifNoneMatch: string | null, etag: string): boolean {
  if (!ifNoneMatch) return false;
  const bare = etag.replace(/"$/, '');
  return ifNoneMatch
    .slice(0, 4096)
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => tag === '*' || tag === etag || tag.startsWith(`${bare}-`));
}

/**
 * The response for `asset`: the best precompressed form for the request's Accept-Encoding,
 * `Vary: Accept-Encoding`, its caching headers, and a 304 when the client holds it already.
 * Each encoding gets its own ETag (`"…-br"`), as a cache must not mix representations.
 */
export function serveAsset(
  request: Request,
  asset: StaticAsset,
  extraHeaders: Record<string, string> = {},
): Response {
  const encoding = chooseEncoding(request.headers.get('accept-encoding'));
  const etag = encoding === 'identity' ? asset.etag : asset.etag.replace(/"$/, `-${encoding}"`);
  const headers: Record<string, string> = {
    'content-type': asset.type,
    'cache-control': asset.cacheControl,
    etag,
    vary: 'Accept-Encoding',
    'x-content-type-options': 'nosniff',
    ...extraHeaders,
  };
  if (notModified(request.headers.get('if-none-match'), asset.etag)) {
    return new Response(null, { status: 304, headers });
  }
  const body = encoding === 'br' ? asset.br : encoding === 'gzip' ? asset.gzip : asset.identity;
  if (encoding !== 'identity') headers['content-encoding'] = encoding;
  headers['content-length'] = String(body.length);
  // A view of the stored bytes, not a copy: the same buffer serves every request.
  const view = new Uint8Array(body.buffer as ArrayBuffer, body.byteOffset, body.byteLength);
  return new Response(request.method === 'HEAD' ? null : view, {
    status: 200,
    headers,
  });
}

/** A value computed once, on first use (and retried if that attempt failed). */
export function once<T>(make: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= make().catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
}

/**
 * The session cookies: names and attributes with safe defaults, and their Set-Cookie values.
 * Parsing and serializing are the `cookie` package's (jshttp/cookie); this module only decides
 * what goes in them and refuses what a browser would not keep.
 */
import { parseCookie, stringifySetCookie } from 'cookie';
import { SessionServiceError } from '../errors.js';

/** How the session cookies are named and scoped. Every field has a safe default. */
export interface SessionCookieOptions {
  /**
   * The cookies' names. Default `__Host-session` and `__Host-refresh` (with `secure: false`,
   * where a browser refuses the `__Host-` prefix: `session` and `refresh`).
   */
  readonly names?: { readonly session?: string; readonly refresh?: string };
  /**
   * `Secure` (default true): the browser sends the cookies over HTTPS only (and on
   * `http://localhost`, which browsers treat as secure). Set false only for plain-HTTP
   * development on another host; the default names then lose their `__Host-` prefix.
   */
  readonly secure?: boolean;
  /** `SameSite` (default `Lax`: sent on top-level navigations, not on cross-site subrequests). */
  readonly sameSite?: 'Lax' | 'Strict' | 'None';
  /** `Path` (default `/`; a `__Host-` cookie must have `/`). */
  readonly path?: string;
  /** `Domain` (default none: this host only). Refused with a `__Host-` name. */
  readonly domain?: string;
}

/** {@link SessionCookieOptions} with every default filled in and checked. */
export interface ResolvedCookieOptions {
  readonly names: { readonly session: string; readonly refresh: string };
  readonly secure: boolean;
  readonly sameSite: 'Lax' | 'Strict' | 'None';
  readonly path: string;
  readonly domain: string | undefined;
}

/** The tokens the cookies carry. */
export interface CookieTokens {
  readonly token: string;
  readonly refreshToken: string;
}

/**
 * The most bytes of one Set-Cookie value (name, value and attributes): browsers keep cookies of
 * at least 4096 bytes (RFC 6265 §6.1) and drop larger ones, silently.
 */
export const MAX_COOKIE_BYTES = 4096;

const utf8 = new TextEncoder();

const badOption = (field: string, message: string) =>
  new SessionServiceError('BAD_USER_INPUT', `${field}: ${message}`, { field });

/** The options with their defaults, or BAD_USER_INPUT for a combination browsers refuse. */
export function resolveCookieOptions(options: SessionCookieOptions = {}): ResolvedCookieOptions {
  const secure = options.secure ?? true;
  const prefix = secure ? '__Host-' : '';
  const names = {
    session: options.names?.session ?? `${prefix}session`,
    refresh: options.names?.refresh ?? `${prefix}refresh`,
  };
  const sameSite = options.sameSite ?? 'Lax';
  const path = options.path ?? '/';
  const domain = options.domain;
  if (!['Lax', 'Strict', 'None'].includes(sameSite)) {
    throw badOption('cookies.sameSite', 'expected Lax, Strict or None');
  }
  if (!path.startsWith('/')) throw badOption('cookies.path', 'expected a path starting with /');
  if (sameSite === 'None' && !secure) {
    throw badOption('cookies.sameSite', 'SameSite=None needs secure: true (browsers refuse it)');
  }
  if (names.session === names.refresh) {
    throw badOption('cookies.names', 'the session and refresh cookies need different names');
  }
  for (const [which, name] of Object.entries(names)) {
    const field = `cookies.names.${which}`;
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/.test(name)) {
      throw badOption(field, 'expected a cookie name (RFC 6265 token characters)');
    }
    if (name.startsWith('__Host-') && (!secure || path !== '/' || domain !== undefined)) {
      throw badOption(
        field,
        'a __Host- cookie needs secure: true, path "/" and no domain (browsers refuse it otherwise)',
      );
    }
    if (name.startsWith('__Secure-') && !secure) {
      throw badOption(field, 'a __Secure- cookie needs secure: true');
    }
  }
  return { names, secure, sameSite, path, domain };
}

function setCookie(
  name: string,
  value: string,
  maxAge: number,
  options: ResolvedCookieOptions,
): string {
  return stringifySetCookie({
    name,
    value,
    maxAge,
    path: options.path,
    domain: options.domain,
    httpOnly: true,
    secure: options.secure,
    sameSite: options.sameSite.toLowerCase() as 'lax' | 'strict' | 'none',
  });
}

/**
 * The two Set-Cookie values that store a session's tokens: HttpOnly, and by default `__Host-`,
 * Secure, SameSite=Lax, Path=/. `maxAgeSeconds` should be the refresh token's lifetime (the
 * session type's `refreshExpiresIn`), for both: the session cookie must outlive its token so
 * that an expired token reaches the server and is refreshed.
 *
 * Throws `COOKIE_TOO_LARGE` when a cookie would exceed {@link MAX_COOKIE_BYTES}: the session
 * token carries the session's data, and a browser silently drops a larger cookie. Keep session
 * data small (ids and roles, not profiles).
 */
export function serializeSessionCookies(
  tokens: CookieTokens,
  options: SessionCookieOptions & { readonly maxAgeSeconds: number },
): string[] {
  const resolved = resolveCookieOptions(options);
  const maxAge = options.maxAgeSeconds;
  if (!Number.isInteger(maxAge) || maxAge < 1) {
    throw badOption('maxAgeSeconds', 'expected whole seconds, at least 1');
  }
  const values = [
    setCookie(resolved.names.session, tokens.token, maxAge, resolved),
    setCookie(resolved.names.refresh, tokens.refreshToken, maxAge, resolved),
  ];
  for (const [i, value] of values.entries()) {
    const bytes = utf8.encode(value).length;
    if (bytes > MAX_COOKIE_BYTES) {
      const name = i === 0 ? resolved.names.session : resolved.names.refresh;
      // The message names the cookie and its size, never its value.
      throw new SessionServiceError(
        'COOKIE_TOO_LARGE',
        `The ${name} cookie would be ${bytes} bytes, over the ${MAX_COOKIE_BYTES} a browser keeps: keep less data in the session (its token carries the data).`,
      );
    }
  }
  return values;
}

/** The two Set-Cookie values that delete the session cookies (same name, path and domain). */
export function clearSessionCookies(options: SessionCookieOptions = {}): string[] {
  const resolved = resolveCookieOptions(options);
  return [
    setCookie(resolved.names.session, '', 0, resolved),
    setCookie(resolved.names.refresh, '', 0, resolved),
  ];
}

/** The longest `Cookie` header read (bytes); Node's whole header limit is 16 KiB by default. */
const MAX_COOKIE_HEADER_CHARS = 32_768;

/**
 * The session and refresh tokens of a `Cookie` header (absent ones left out). A value longer
 * than {@link MAX_COOKIE_BYTES} (no browser sends one) is ignored, as is a header over 32 KiB.
 */
export function readSessionCookies(
  cookieHeader: string | null | undefined,
  options: SessionCookieOptions = {},
): { token?: string; refreshToken?: string } {
  if (!cookieHeader || cookieHeader.length > MAX_COOKIE_HEADER_CHARS) return {};
  const resolved = resolveCookieOptions(options);
  const cookies = parseCookie(cookieHeader);
  const valueOf = (name: string) => {
    const value = cookies[name];
    return value && value.length <= MAX_COOKIE_BYTES ? value : undefined;
  };
  const token = valueOf(resolved.names.session);
  const refreshToken = valueOf(resolved.names.refresh);
  return {
    ...(token === undefined ? {} : { token }),
    ...(refreshToken === undefined ? {} : { refreshToken }),
  };
}

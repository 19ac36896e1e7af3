/** Codes that mean "the database could not be reached", not "the query was wrong". */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
]);

/** How far down a chain of causes is looked at. */
const MAX_CHAIN_DEPTH = 6;

/** What an error wraps: a GraphQL error's `originalError`, else its `cause`. */
export function wrappedBy(error: Error): unknown {
  return (error as Error & { originalError?: unknown }).originalError ?? error.cause;
}

/**
 * An error and what it wraps, outermost first: a GraphQL error's `originalError`, else `cause`;
 * at most {@link MAX_CHAIN_DEPTH} errors, and each once (a cycle ends the walk).
 */
export function* errorChain(error: unknown): Generator<Error> {
  const seen = new Set<unknown>();
  let e: unknown = error;
  for (let depth = 0; depth < MAX_CHAIN_DEPTH && e instanceof Error && !seen.has(e); depth++) {
    seen.add(e);
    yield e;
    e = wrappedBy(e);
  }
}

/** The `code` of an error (a SQLSTATE from Postgres or PGlite, or a driver's), if it is text. */
export function codeOf(error: Error): string | undefined {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Whether an error or one it wraps carries a code that `matches`: a SQLSTATE (`'23505'`), or a
 * predicate over it (a class: `(code) => code.startsWith('23')`).
 */
export function hasErrorCode(
  error: unknown,
  matches: string | ((code: string) => boolean),
): boolean {
  const test = typeof matches === 'string' ? (code: string) => code === matches : matches;
  for (const e of errorChain(error)) {
    const code = codeOf(e);
    if (code !== undefined && test(code)) return true;
  }
  return false;
}

/** unique_violation: a row with that key exists. */
export const UNIQUE_VIOLATION = '23505';

/**
 * Whether an error (or one of its causes) says the database is unreachable: such a failure is
 * temporary and worth retrying, unlike a bug.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (const e of errorChain(error)) {
    const code = codeOf(e);
    if (code !== undefined && CONNECTION_CODES.has(code)) return true;
    if (/PGlite is closed/.test(e.message)) return true;
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.some((inner) => isDatabaseUnavailable(inner))) return true;
  }
  return false;
}

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
  'DATABASE_DEADLINE', // a wait outlived DATABASE_STATEMENT_TIMEOUT_MS (src/db/client.ts)
  '25006', // read_only_sql_transaction: a standby answered (a failover in progress)
  '53300', // too_many_connections: the server's connection slots are all taken (a shared server)
  '53000', // insufficient_resources
  '53200', // out_of_memory
  '55P03', // lock_not_available: lock_timeout ran out waiting for a lock
  '57014', // query_canceled: statement_timeout ran out (nothing of the statement is kept)
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

/**
 * Codes with which Postgres aborts a transaction because of what ran concurrently with it, not
 * because of what it did: deadlock_detected and serialization_failure (and a COMMIT answered
 * ROLLBACK). The whole transaction was rolled back, so running it again is correct, and usually
 * succeeds.
 */
const CONFLICT_CODES = new Set([
  '40P01',
  '40001',
  // Postgres answered COMMIT with ROLLBACK (the transaction had failed): nothing was kept. A
  // check of the patched postgres.js (patches/).
  'COMMIT_ROLLED_BACK',
]);

/** Whether Postgres aborted a transaction for a deadlock or a serialization conflict. */
export function isTransactionConflict(error: unknown): boolean {
  return hasErrorCode(error, (code) => CONFLICT_CODES.has(code));
}

/** unique_violation: a row with that key exists. */
export const UNIQUE_VIOLATION = '23505';

/**
 * Whether an error (or one of its causes) says the database is unreachable, out of connection
 * slots, or gave up waiting (lock_timeout, statement_timeout): such a failure is temporary and
 * worth retrying, unlike a bug, and is answered SERVICE_UNAVAILABLE. A deadlock or serialization
 * failure that outlived its retries ({@link isTransactionConflict}) counts too.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (const e of errorChain(error)) {
    const code = codeOf(e);
    if (code !== undefined && (CONNECTION_CODES.has(code) || CONFLICT_CODES.has(code))) return true;
    if (/PGlite is closed/.test(e.message)) return true;
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.some((inner) => isDatabaseUnavailable(inner))) return true;
  }
  return false;
}

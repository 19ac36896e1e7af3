import { GraphQLError } from 'graphql';
import type { Logger } from 'pino';
import { errorChain, isDatabaseUnavailable, wrappedBy } from '../db/errors.js';
import { ServiceError } from '../domain/errors.js';

const LONGEST_LOGGED_TEXT = 2_000;

/**
 * The one redaction every logged text goes through: error messages, stacks and Yoga's own log
 * arguments. Database drivers put query parameters in messages (drizzle's `params: …`), and
 * parameters hold refresh-token and key hashes, ciphertexts, user agents and IPs; so anything
 * after `params:`/`parameters:` goes, and so do values shaped like secrets (hex hashes, long
 * base64url runs, our key and token prefixes, IP addresses) wherever they appear.
 */
export function redact(text: string): string {
  return text
    .slice(0, LONGEST_LOGGED_TEXT)
    .replace(/\b(params|parameters|args|values)\s*[:=][\s\S]*$/i, '$1: [redacted]')
    .replace(/\b(?:sk|pk|ak|rt)_[A-Za-z0-9_-]+/g, '[redacted]')
    .replace(/[A-Za-z0-9_-]{32,}(?:\.[A-Za-z0-9_-]*)*/g, '[redacted]')
    .replace(/\b[0-9a-f]{16,}\b/gi, '[redacted]')
    .replace(/\b\d{1,3}(?:\.\d{1,3}){3}\b/g, '[ip]')
    .replace(/\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}\b/gi, '[ip]')
    .replaceAll('\u0000', '\\0');
}

/** The message of an error (or the text of anything thrown), redacted, for a log line. */
export function redactedMessage(error: unknown): string {
  return redact(error instanceof Error ? error.message : String(error));
}

interface LoggedError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

/**
 * What is logged of an error and its causes: names, redacted messages, codes and the frames of
 * the stack (never the message repeated in it, nor any property a driver hangs on the error,
 * such as postgres.js's `parameters`).
 */
export function errorForLog(error: unknown): LoggedError[] {
  const chain: LoggedError[] = [];
  let last: Error | undefined;
  for (const e of errorChain(error)) {
    if (chain.length === 5) break;
    last = e;
    const code = (e as { code?: unknown }).code;
    chain.push({
      name: e.name,
      message: redact(e.message),
      ...(typeof code === 'string' || typeof code === 'number' ? { code: String(code) } : {}),
      ...(e.stack
        ? {
            stack: redact(
              e.stack
                .split('\n')
                .filter((line) => /^\s+at /.test(line))
                .slice(0, 8)
                .join('\n'),
            ),
          }
        : {}),
    });
  }
  // Something thrown that is not an Error, or such a cause at the end of the chain.
  const tail = last === undefined ? error : wrappedBy(last);
  if (chain.length < 5 && tail !== undefined && tail !== null && !(tail instanceof Error)) {
    chain.push({ name: typeof tail, message: redact(String(tail)) });
  }
  return chain;
}

/** The ServiceError behind a GraphQL error, if any (resolvers' errors arrive wrapped). */
export function findServiceError(error: unknown): ServiceError | undefined {
  for (const e of errorChain(error)) if (e instanceof ServiceError) return e;
  return undefined;
}

/**
 * The one path by which errors are logged. An expected client error (a ServiceError: bad token,
 * missing key, bad input, not found…, or a GraphQL request error) is a `debug` line with its
 * code; an unreachable database is a `warn`; anything else is a fault, logged at `error` with
 * its redacted chain.
 */
export function logError(logger: Logger, error: unknown, context?: string): void {
  const serviceError = findServiceError(error);
  if (serviceError) {
    logger.debug({ code: serviceError.code, field: serviceError.field }, 'client error');
    return;
  }
  if (error instanceof GraphQLError && error.originalError === undefined) {
    const code = error.extensions?.code;
    logger.debug(
      { code: typeof code === 'string' ? code : undefined, message: redact(error.message) },
      'request error',
    );
    return;
  }
  if (isDatabaseUnavailable(error)) {
    logger.warn({ err: errorForLog(error) }, context ?? 'database unavailable');
    return;
  }
  logger.error({ err: errorForLog(error) }, context ?? 'unexpected error');
}

/** Yoga's logger arguments as something safe to log: errors summarized, texts redacted. */
function argsForLog(args: unknown[]): unknown[] {
  return args.map((arg) =>
    arg instanceof Error ? errorForLog(arg) : redact(typeof arg === 'string' ? arg : String(arg)),
  );
}

/**
 * Yoga's own logger, through the same path: errors it reports go to {@link logError}, anything
 * else is redacted. An error raised by an operation is logged by its request's logger
 * (`loggerOfError`), so its line carries the request's id.
 */
export function yogaLogging(
  logger: Logger,
  requests?: { loggerOfError(error: unknown): Logger | undefined },
) {
  return {
    debug: (...args: unknown[]) => {
      if (logger.isLevelEnabled('debug')) logger.debug({ args: argsForLog(args) }, 'yoga');
    },
    info: (...args: unknown[]) => logger.info({ args: argsForLog(args) }, 'yoga'),
    warn: (...args: unknown[]) => logger.warn({ args: argsForLog(args) }, 'yoga'),
    error: (...args: unknown[]) => {
      const errors = args.filter((arg) => arg instanceof Error);
      if (errors.length > 0) {
        for (const error of errors) logError(requests?.loggerOfError(error) ?? logger, error);
      } else logger.error({ args: argsForLog(args) }, 'yoga');
    },
  };
}

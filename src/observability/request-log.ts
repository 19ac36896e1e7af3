import { randomUUID } from 'node:crypto';
import type { GraphQLError } from 'graphql';
import { handleStreamOrSingleExecutionResult, type Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

interface RequestEntry {
  readonly at: number;
  readonly id: string;
  /** The request's child logger, made when first asked for. */
  log?: Logger;
}

/**
 * The request id every log line of a request carries (`reqId`): the caller's `x-request-id` when
 * it is sane, else a new one, echoed back in the response. The request line and any error logged
 * while the request ran carry the same id, so an unexpected error can be tied to its request.
 */
export class RequestLogs {
  readonly #logger: Logger;
  readonly #requests = new WeakMap<Request, RequestEntry>();
  /** Errors raised while executing an operation, by the logger of its request. */
  readonly #errors = new WeakMap<object, Logger>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * The logger for a request's lines: the process's, with the request's id bound as `reqId`.
   * A request this plugin has not seen (an operation over WebSocket) gets an id of its own.
   */
  loggerFor(request: Request | undefined): Logger {
    const entry = request === undefined ? undefined : this.#requests.get(request);
    if (entry) return (entry.log ??= this.#logger.child({ reqId: entry.id }));
    return this.#logger.child({ reqId: randomUUID() });
  }

  /** The logger of the request an error was raised in, if the error came from an operation. */
  loggerOfError(error: unknown): Logger | undefined {
    return typeof error === 'object' && error !== null ? this.#errors.get(error) : undefined;
  }

  /**
   * One structured log line per HTTP request, with its id. Only method, path, status and
   * duration: never headers, bodies, tokens, keys or session data. It also notes which request
   * each execution error belongs to, before Yoga masks and logs it (see `yogaLogging`).
   */
  plugin(): Plugin<{ log?: () => Logger }> {
    const note = (errors: readonly GraphQLError[] | undefined, log: (() => Logger) | undefined) => {
      if (!errors || errors.length === 0 || !log) return;
      const logger = log();
      for (const error of errors) this.#errors.set(error, logger);
    };
    return {
      onRequest: ({ request }) => {
        const given = request.headers.get('x-request-id');
        this.#requests.set(request, {
          at: performance.now(),
          id: given !== null && REQUEST_ID.test(given) ? given : randomUUID(),
        });
      },
      // Runs before Yoga's masking (plugins run in order): the errors are still the originals.
      onExecute: ({ args }) => ({
        onExecuteDone: (payload) =>
          handleStreamOrSingleExecutionResult(payload, ({ result }) =>
            note(result.errors, args.contextValue.log),
          ),
      }),
      onSubscribe: ({ args }) => ({
        onSubscribeResult: (payload) =>
          handleStreamOrSingleExecutionResult(payload, ({ result }) =>
            note(result.errors, args.contextValue.log),
          ),
        onSubscribeError: ({ error }) => {
          const log = args.contextValue.log?.();
          if (log && typeof error === 'object' && error !== null) this.#errors.set(error, log);
        },
      }),
      onResponse: ({ request, response }) => {
        const entry = this.#requests.get(request);
        if (!entry) return;
        response.headers.set('x-request-id', entry.id);
        if (!this.#logger.isLevelEnabled('info')) return;
        const url = new URL(request.url);
        this.#logger.info(
          {
            reqId: entry.id,
            method: request.method,
            path: url.pathname,
            status: response.status,
            ms: Math.round((performance.now() - entry.at) * 10) / 10,
          },
          'request',
        );
      },
    };
  }
}

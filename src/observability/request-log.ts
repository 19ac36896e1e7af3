import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Plugin } from 'graphql-yoga';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * One structured log line per HTTP request, with a request id (the caller's `x-request-id` when
 * it is sane, else a new one, echoed back in the response). Only method, path, status and
 * duration: never headers, bodies, tokens, keys or session data.
 */
export function useRequestLog(logger: Logger): Plugin {
  const started = new WeakMap<Request, { at: number; id: string }>();
  return {
    onRequest({ request }) {
      const given = request.headers.get('x-request-id');
      started.set(request, {
        at: performance.now(),
        id: given !== null && REQUEST_ID.test(given) ? given : randomUUID(),
      });
    },
    onResponse({ request, response }) {
      const entry = started.get(request);
      if (!entry) return;
      response.headers.set('x-request-id', entry.id);
      if (!logger.isLevelEnabled('info')) return;
      const url = new URL(request.url);
      logger.info(
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

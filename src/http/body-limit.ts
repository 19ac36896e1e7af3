import type { Plugin } from 'graphql-yoga';
import { errorResponse } from './error-contract.js';

/**
 * Refuses oversized request bodies from their `Content-Length` header, before anything is read:
 * 413 when it is over the limit, 411 when a body comes without one (chunked uploads). This
 * replaces Yoga's own limit, which streams every body through a counting transform and costs
 * more than the rest of a small request. Each refusal is a JSON error with code BAD_REQUEST.
 */
export function useBodyLimit(maxBytes: number): Plugin {
  return {
    onRequest({ request, endResponse, fetchAPI }) {
      if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS') {
        return;
      }
      const header = request.headers.get('content-length');
      if (header === null) {
        if (request.headers.get('transfer-encoding') !== null) {
          endResponse(
            errorResponse(
              fetchAPI,
              411,
              'BAD_REQUEST',
              'A request body needs a Content-Length header.',
            ),
          );
        }
        return;
      }
      const length = Number(header);
      if (!Number.isSafeInteger(length) || length < 0) {
        endResponse(errorResponse(fetchAPI, 400, 'BAD_REQUEST', 'Invalid Content-Length.'));
      } else if (length > maxBytes) {
        endResponse(
          errorResponse(
            fetchAPI,
            413,
            'BAD_REQUEST',
            `The request body is over ${maxBytes} bytes.`,
          ),
        );
      }
    },
  };
}

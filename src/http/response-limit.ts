import type { ExecutionResult } from 'graphql';
import { isAsyncIterable, mapAsyncIterator, type Plugin } from 'graphql-yoga';
import type { Logger } from 'pino';

/** A result with the serializer Yoga uses for it when it has one (Yoga's own type, not exported). */
type ExecutionResultWithSerializer = ExecutionResult & {
  stringify?: (result: ExecutionResult) => string;
};

/**
 * The backstop behind the cost model: a result whose JSON is over `maxBytes` is not sent; the
 * client gets one `LIMIT_EXCEEDED` error instead. The result is serialized once, by the
 * serializer Yoga calls anyway (`result.stringify`), for JSON responses and for each SSE or
 * multipart event alike; its byte length is only counted when its character count could be over.
 */
export function useResponseLimit(maxBytes: number, logger: Logger): Plugin {
  const tooLarge = JSON.stringify({
    errors: [
      {
        message: `The response is larger than the ${maxBytes} bytes this server sends: ask for smaller pages (first), fewer fields or fewer aliases.`,
        extensions: { code: 'LIMIT_EXCEEDED', maxBytes },
      },
    ],
  });
  const stringify = (result: ExecutionResult): string => {
    const text = JSON.stringify(result);
    // UTF-8 takes at most 3 bytes per UTF-16 code unit: most answers need no byte count.
    if (text.length * 3 <= maxBytes) return text;
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes <= maxBytes) return text;
    logger.warn({ bytes, maxBytes }, 'response over MAX_RESPONSE_BYTES replaced by an error');
    return tooLarge;
  };
  const withLimit = (result: ExecutionResultWithSerializer): ExecutionResultWithSerializer => ({
    ...result,
    stringify,
  });
  return {
    onResultProcess({ result, setResult }) {
      if (isAsyncIterable<ExecutionResultWithSerializer>(result)) {
        setResult(mapAsyncIterator(result[Symbol.asyncIterator](), withLimit));
      } else if (Array.isArray(result)) {
        setResult(result.map(withLimit));
      } else {
        setResult(withLimit(result as ExecutionResultWithSerializer));
      }
    },
  };
}

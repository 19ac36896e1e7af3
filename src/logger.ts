import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Structured JSON logs. Paths that could carry secrets are redacted as a second line of
 * defence; the code never logs tokens, keys or session data in the first place.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: [
          'token',
          'refreshToken',
          'key',
          'authorization',
          'data',
          '*.token',
          '*.refreshToken',
          '*.authorization',
          'req.headers.authorization',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

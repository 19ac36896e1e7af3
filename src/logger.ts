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

/** What {@link boundedOutput} writes to: a Node stream such as `process.stdout`. */
export interface OutputTarget {
  write(chunk: string): boolean;
  readonly writableLength: number;
  on(event: 'error', listener: (error: NodeJS.ErrnoException) => void): unknown;
  once(event: 'drain', listener: () => void): unknown;
  removeListener(event: 'drain', listener: () => void): unknown;
}

/** A log destination that never blocks the process: see {@link boundedOutput}. */
export interface BoundedOutput extends DestinationStream {
  /** Lines dropped so far (the buffer was full, or the destination is broken). */
  readonly dropped: number;
  /** Whether the destination failed (EPIPE...): nothing is written to it any more. */
  readonly broken: boolean;
  /** Waits for what is buffered to be written, for at most `timeoutMs`; never rejects. */
  drain(timeoutMs: number): Promise<void>;
}

/**
 * A log destination that never blocks the process, whatever its reader does. Lines go to
 * `target` (`process.stdout`: on a pipe, Node writes without blocking and buffers the rest),
 * but at most `maxBufferBytes` wait in that buffer: beyond, lines are dropped. A destination
 * that fails (EPIPE: its reader went away) is written to no more. Either is said once through
 * `notice` (stderr, if that still works). Nothing is ever flushed synchronously at exit (pino's
 * own stdout destination retries a failed write there forever).
 */
export function boundedOutput(
  target: OutputTarget,
  options: { maxBufferBytes: number; notice: (message: string) => void },
): BoundedOutput {
  let dropped = 0;
  let broken = false;
  let toldFull = false;
  const tell = (message: string) => {
    try {
      options.notice(message);
    } catch {
      // stderr is gone too: nobody is left to tell.
    }
  };
  target.on('error', (error) => {
    if (broken) return;
    broken = true;
    tell(`log output failed (${error.code ?? 'error'}); dropping log lines from now on\n`);
  });
  return {
    get dropped() {
      return dropped;
    },
    get broken() {
      return broken;
    },
    write(line: string) {
      if (broken) {
        dropped++;
        return;
      }
      if (target.writableLength + Buffer.byteLength(line) > options.maxBufferBytes) {
        dropped++;
        if (!toldFull) {
          toldFull = true;
          tell(
            `log output is not keeping up (${options.maxBufferBytes} bytes waiting); dropping log lines until it does\n`,
          );
        }
        return;
      }
      try {
        target.write(line);
      } catch {
        // A destroyed stream throws instead of emitting: the same as broken.
        broken = true;
        dropped++;
      }
    },
    drain(timeoutMs) {
      if (broken || target.writableLength === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          target.removeListener('drain', done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        target.once('drain', done);
      });
    },
  };
}

/**
 * The process's log output: stdout, bounded as {@link boundedOutput} says, with notices on
 * stderr. A failing stderr is ignored (it must not crash the process either).
 */
export function processOutput(maxBufferBytes: number): BoundedOutput {
  process.stderr.on('error', () => {});
  return boundedOutput(process.stdout, {
    maxBufferBytes,
    notice: (message) => {
      if (process.stderr.writableLength < 65_536) process.stderr.write(message);
    },
  });
}

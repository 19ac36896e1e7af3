import type { Logger } from 'pino';
import type { Database } from '../db/client.js';
import { sweepOnce, type SweepOptions } from '../domain/sweep.js';
import { redactedMessage } from '../observability/errors.js';

/** Runs the cleanup every `intervalMs` (with jitter, so instances spread out) until stopped. */
export function startSweeper(
  db: Database,
  logger: Logger,
  options: SweepOptions & { intervalMs: number },
): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    const jitter = Math.random() * Math.min(options.intervalMs / 4, 10_000);
    timer = setTimeout(tick, options.intervalMs + jitter);
    timer.unref();
  };
  const tick = () => {
    running = sweepOnce(db, options)
      .then((result) => {
        if (result.expired + result.deleted + result.eventsPruned > 0) {
          logger.info(result, 'sweep');
        }
      })
      .catch((error: unknown) => {
        logger.warn({ err: redactedMessage(error) }, 'sweep failed; will retry');
      })
      .finally(schedule);
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

import { performance } from 'node:perf_hooks';
import type { Scope } from '../domain/callers.js';
import type { Operation } from '../domain/activity.js';
import { ServiceError } from '../domain/errors.js';
import type { Context } from './context.js';

/** What an operation says about the session it acted on, for the activity log. */
export interface Subject {
  readonly sessionId?: string | null;
  readonly identifier?: string | null;
}

/**
 * Runs a session operation and records it for the activity log and the metrics: its outcome
 * (the error code on failure), its duration, and the session it concerned. Never changes the
 * outcome.
 */
export async function tracked<T>(
  ctx: Context,
  scope: Scope,
  tag: string,
  operation: Operation,
  run: () => Promise<T>,
  subjectOf: (result: T) => Subject,
  known: Subject = {},
): Promise<T> {
  const started = performance.now();
  const at = new Date();
  const record = (status: 'SUCCESS' | 'FAILURE', errorCode: string | null, subject: Subject) =>
    ctx.services.activity.record({
      productId: scope.productId,
      env: scope.env,
      tag: tag.slice(0, 64),
      operation,
      status,
      errorCode,
      durationMs: performance.now() - started,
      sessionId: subject.sessionId ?? known.sessionId ?? null,
      identifier: subject.identifier ?? known.identifier ?? null,
      at,
    });
  try {
    const result = await run();
    record('SUCCESS', null, subjectOf(result));
    return result;
  } catch (error) {
    record('FAILURE', error instanceof ServiceError ? error.code : 'INTERNAL_SERVER_ERROR', {});
    throw error;
  }
}

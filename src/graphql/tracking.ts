import { performance } from 'node:perf_hooks';
import type { Scope } from '../domain/callers.js';
import type { Operation } from '../domain/activity/index.js';
import { ServiceError } from '../domain/errors.js';
import { TAG_PATTERN, UUID_PATTERN } from '../domain/validation.js';
import { MAX_IDENTIFIER_LENGTH } from '../domain/sessions/shared.js';
import { MAX_ACTOR_LENGTH } from '../domain/sessions/start.js';
import type { Context } from './context.js';
import { scopeForTag } from './scope.js';

/** Where calls naming a tag that cannot exist are counted (it is not a valid tag itself). */
export const INVALID_TAG = '(invalid tag)';

/** What an operation says about the session it acted on, for the activity log. */
export interface Subject {
  readonly sessionId?: string | null;
  readonly identifier?: string | null;
  /** The operator acting as the user, for an impersonated session. */
  readonly actor?: string | null;
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
  const record = (status: 'SUCCESS' | 'FAILURE', errorCode: string | null, subject: Subject) => {
    ctx.services.metrics.operation(operation, errorCode, (performance.now() - started) / 1000);
    // Only what the database can store as it is: a failed call may carry any input at all.
    const sessionId = subject.sessionId ?? known.sessionId ?? null;
    const identifier = subject.identifier ?? known.identifier ?? null;
    const actor = subject.actor ?? known.actor ?? null;
    ctx.services.activity.record({
      productId: scope.productId,
      env: scope.env,
      tag: TAG_PATTERN.test(tag) ? tag : INVALID_TAG,
      operation,
      status,
      errorCode,
      durationMs: performance.now() - started,
      sessionId:
        sessionId !== null && UUID_PATTERN.test(sessionId) ? sessionId.toLowerCase() : null,
      identifier:
        identifier !== null &&
        identifier.length <= MAX_IDENTIFIER_LENGTH &&
        !identifier.includes('\u0000')
          ? identifier
          : null,
      actor:
        actor !== null && actor.length <= MAX_ACTOR_LENGTH && !actor.includes('\u0000')
          ? actor
          : null,
      at,
    });
  };
  try {
    const result = await run();
    record('SUCCESS', null, subjectOf(result));
    return result;
  } catch (error) {
    record('FAILURE', error instanceof ServiceError ? error.code : 'INTERNAL_SERVER_ERROR', {});
    throw error;
  }
}

/**
 * Resolves the caller's scope for the session's tag (see {@link scopeForTag}), then runs the
 * operation on that session, {@link tracked}.
 */
export async function trackedOnSession<T>(
  ctx: Context,
  args: { tag: string; sessionId: string | number; product?: string | null; env?: string | null },
  operation: Operation,
  run: (scope: Scope, sessionId: string) => Promise<T>,
  subjectOf: (result: T) => Subject,
): Promise<T> {
  const scope = await scopeForTag(ctx, args, args.tag);
  const sessionId = String(args.sessionId);
  return tracked(ctx, scope, args.tag, operation, () => run(scope, sessionId), subjectOf, {
    sessionId,
  });
}

import {
  clearSessionData,
  extendSession,
  mergeSessionData,
  removeSessionValue,
  setSessionExpiration,
  setSessionValue,
  touchSession,
  updateSessionData,
  type SessionAddress,
} from '../domain/session-state.js';
import type { Scope } from '../domain/callers.js';
import type { Operation } from '../domain/activity/index.js';
import type { SessionRow } from '../db/schema.js';
import { trackedOnSession } from './tracking.js';
import { builder } from './builder.js';
import type { Context } from './context.js';
import { scopeArgs, sessionAddressArgs } from './scope.js';
import { Session } from './sessions/session.js';

/** Arguments that address one session, shared by every state operation. */
const addressArgs = {
  ...sessionAddressArgs,
  ...builder.args((t) => ({
    expectedVersion: t.int({
      description: 'Write only if the data is still at this version; CONFLICT otherwise.',
    }),
  })),
};

type AddressArgs = {
  tag: string;
  sessionId: string | number;
  expectedVersion?: number | null;
  product?: string | null;
  env?: string | null;
};

/** Runs the operation on the addressed session, tracked. */
function onSession(
  ctx: Context,
  args: AddressArgs,
  operation: Operation,
  run: (scope: Scope, address: SessionAddress) => Promise<SessionRow>,
): Promise<SessionRow> {
  return trackedOnSession(
    ctx,
    args,
    operation,
    (scope, sessionId) =>
      run(scope, { tag: args.tag, sessionId, expectedVersion: args.expectedVersion }),
    (s) => ({ sessionId: s.id, identifier: s.identifier }),
  );
}

builder.mutationFields((t) => ({
  updateSessionData: t.field({
    type: Session,
    description:
      'Replaces the session’s data (checked against the config’s schema); bumps `version`.',
    args: {
      ...scopeArgs,
      ...addressArgs,
      data: t.arg({ type: 'JSON', required: true, description: 'The new data: a JSON object.' }),
    },
    resolve: (_root, args, ctx) =>
      onSession(ctx, args, 'update_data', (scope, address) =>
        updateSessionData(ctx.services, scope, address, args.data),
      ),
  }),
  mergeSessionData: t.field({
    type: Session,
    description:
      'Deep-merges into the session’s data: objects merge key by key; arrays, scalars and null replace. Bumps `version`.',
    args: {
      ...scopeArgs,
      ...addressArgs,
      data: t.arg({ type: 'JSON', required: true, description: 'What to merge: a JSON object.' }),
    },
    resolve: (_root, args, ctx) =>
      onSession(ctx, args, 'merge_data', (scope, address) =>
        mergeSessionData(ctx.services, scope, address, args.data),
      ),
  }),
  setSessionValue: t.field({
    type: Session,
    description: 'Sets one top-level key of the data. Bumps `version`.',
    args: {
      ...scopeArgs,
      ...addressArgs,
      key: t.arg.string({ required: true, description: 'The key, 1 to 128 characters.' }),
      value: t.arg({ type: 'JSON', required: true, description: 'Its value: any JSON.' }),
    },
    resolve: (_root, args, ctx) =>
      onSession(ctx, args, 'set_value', (scope, address) =>
        setSessionValue(ctx.services, scope, address, args.key, args.value),
      ),
  }),
  removeSessionValue: t.field({
    type: Session,
    description: 'Removes one top-level key of the data (absent is fine). Bumps `version`.',
    args: {
      ...scopeArgs,
      ...addressArgs,
      key: t.arg.string({ required: true, description: 'The key.' }),
    },
    resolve: (_root, args, ctx) =>
      onSession(ctx, args, 'remove_value', (scope, address) =>
        removeSessionValue(ctx.services, scope, address, args.key),
      ),
  }),
  clearSessionData: t.field({
    type: Session,
    description: 'Empties the data (`{}`). Bumps `version`.',
    args: { ...scopeArgs, ...addressArgs },
    resolve: (_root, args, ctx) =>
      onSession(ctx, args, 'clear_data', (scope, address) =>
        clearSessionData(ctx.services, scope, address),
      ),
  }),
  touchSession: t.field({
    type: Session,
    description: 'Records activity now, which pushes back the idle timeout.',
    args: { ...scopeArgs, ...addressArgs },
    resolve: (_root, args, ctx) =>
      onSession(ctx, args, 'touch', (scope, address) => touchSession(ctx.services, scope, address)),
  }),
  extendSession: t.field({
    type: Session,
    description:
      'Moves `expiresAt` later by `seconds` (from now if it had passed); the session’s tokens verify until then. Never past the refresh token’s expiry.',
    args: {
      ...scopeArgs,
      ...addressArgs,
      seconds: t.arg.int({ required: true, description: 'How much longer, in seconds.' }),
    },
    resolve: (_root, args, ctx) =>
      onSession(ctx, args, 'extend', (scope, address) =>
        extendSession(ctx.services, scope, address, args.seconds),
      ),
  }),
  setSessionExpiration: t.field({
    type: Session,
    description:
      'Sets `expiresAt` to an instant in the future, no later than the refresh token’s expiry.',
    args: {
      ...scopeArgs,
      ...addressArgs,
      expiresAt: t.arg({ type: 'DateTime', required: true, description: 'The new expiry.' }),
    },
    resolve: (_root, args, ctx) =>
      onSession(ctx, args, 'set_expiration', (scope, address) =>
        setSessionExpiration(ctx.services, scope, address, args.expiresAt),
      ),
  }),
}));

import type { InputFieldMap, InputShapeFromFields } from '@pothos/core';
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
import type { Services } from '../services.js';
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

/**
 * A state operation on one addressed session, tracked as `operation`: the address, the
 * operation's own arguments, and what it does; it answers the session as it now is.
 */
function stateMutation<Extra extends InputFieldMap>(
  name: string,
  spec: {
    readonly description: string;
    readonly operation: Operation;
    readonly args?: Extra;
    readonly run: (
      services: Services,
      scope: Scope,
      address: SessionAddress,
      args: InputShapeFromFields<Extra>,
    ) => Promise<SessionRow>;
  },
): void {
  builder.mutationField(name, (t) =>
    t.field({
      type: Session,
      description: spec.description,
      args: { ...scopeArgs, ...addressArgs, ...(spec.args as Extra) },
      resolve: (_root, args, ctx) =>
        onSession(ctx, args as AddressArgs, spec.operation, (scope, address) =>
          // The field's arguments are the address's and Extra's: TypeScript cannot tell for a
          // generic Extra.
          spec.run(ctx.services, scope, address, args as unknown as InputShapeFromFields<Extra>),
        ),
    }),
  );
}

stateMutation('updateSessionData', {
  description:
    'Replaces the session’s data (checked against the config’s schema); bumps `version`.',
  operation: 'update_data',
  args: builder.args((t) => ({
    data: t.field({ type: 'JSON', required: true, description: 'The new data: a JSON object.' }),
  })),
  run: (services, scope, address, args) => updateSessionData(services, scope, address, args.data),
});
stateMutation('mergeSessionData', {
  description:
    'Deep-merges into the session’s data: objects merge key by key; arrays, scalars and null replace. Bumps `version`.',
  operation: 'merge_data',
  args: builder.args((t) => ({
    data: t.field({ type: 'JSON', required: true, description: 'What to merge: a JSON object.' }),
  })),
  run: (services, scope, address, args) => mergeSessionData(services, scope, address, args.data),
});
stateMutation('setSessionValue', {
  description: 'Sets one top-level key of the data. Bumps `version`.',
  operation: 'set_value',
  args: builder.args((t) => ({
    key: t.string({ required: true, description: 'The key, 1 to 128 characters.' }),
    value: t.field({ type: 'JSON', required: true, description: 'Its value: any JSON.' }),
  })),
  run: (services, scope, address, args) =>
    setSessionValue(services, scope, address, args.key, args.value),
});
stateMutation('removeSessionValue', {
  description: 'Removes one top-level key of the data (absent is fine). Bumps `version`.',
  operation: 'remove_value',
  args: builder.args((t) => ({
    key: t.string({ required: true, description: 'The key.' }),
  })),
  run: (services, scope, address, args) => removeSessionValue(services, scope, address, args.key),
});
stateMutation('clearSessionData', {
  description: 'Empties the data (`{}`). Bumps `version`.',
  operation: 'clear_data',
  run: (services, scope, address) => clearSessionData(services, scope, address),
});
stateMutation('touchSession', {
  description: 'Records activity now, which pushes back the idle timeout.',
  operation: 'touch',
  run: (services, scope, address) => touchSession(services, scope, address),
});
stateMutation('extendSession', {
  description:
    'Moves `expiresAt` later by `seconds` (from now if it had passed); the session’s tokens verify until then. Never past the refresh token’s expiry.',
  operation: 'extend',
  args: builder.args((t) => ({
    seconds: t.int({ required: true, description: 'How much longer, in seconds.' }),
  })),
  run: (services, scope, address, args) => extendSession(services, scope, address, args.seconds),
});
stateMutation('setSessionExpiration', {
  description:
    'Sets `expiresAt` to an instant in the future, no later than the refresh token’s expiry.',
  operation: 'set_expiration',
  args: builder.args((t) => ({
    expiresAt: t.field({ type: 'DateTime', required: true, description: 'The new expiry.' }),
  })),
  run: (services, scope, address, args) =>
    setSessionExpiration(services, scope, address, args.expiresAt),
});

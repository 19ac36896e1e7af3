import { revokeAllSessions, revokeSession } from '../../domain/sessions.js';
import { builder } from '../builder.js';
import { scopeArgs, scopeForTag } from '../scope.js';
import { tracked } from '../tracking.js';
import { Session } from './session.js';

/* Ending sessions: one (logout), or every session of a user but one. */

const RevokeAllResult = builder.objectRef<{ count: number }>('RevokeAllResult').implement({
  description: 'The outcome of revokeAllSessions.',
  fields: (t) => ({
    count: t.exposeInt('count', {
      description: 'How many sessions were revoked now (already revoked ones not counted).',
    }),
  }),
});

builder.mutationFields((t) => ({
  revokeSession: t.field({
    type: Session,
    description: 'Ends one session (logout) everywhere on the next verify. Idempotent.',
    authScopes: { sessions: true },
    args: {
      tag: t.arg.string({ required: true, description: 'The session type.' }),
      sessionId: t.arg.id({
        required: true,
        description: 'The session id (verifySession returns it).',
      }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeForTag(ctx, args, args.tag);
      return tracked(
        ctx,
        scope,
        args.tag,
        'revoke',
        () => revokeSession(ctx.services, scope, args.tag, String(args.sessionId)),
        (s) => ({ sessionId: s.id, identifier: s.identifier }),
        { sessionId: String(args.sessionId) },
      );
    },
  }),
  revokeAllSessions: t.field({
    type: RevokeAllResult,
    description:
      'Ends every session of a user under a tag (log out all devices), but the one excluded if any.',
    authScopes: { sessions: true },
    args: {
      tag: t.arg.string({ required: true, description: 'The session type.' }),
      identifier: t.arg.string({ required: true, description: 'The user.' }),
      excludeSessionId: t.arg.id({ description: 'A session to keep (the current one).' }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeForTag(ctx, args, args.tag);
      const count = await tracked(
        ctx,
        scope,
        args.tag,
        'revoke_all',
        () =>
          revokeAllSessions(
            ctx.services,
            scope,
            args.tag,
            args.identifier,
            args.excludeSessionId == null ? null : String(args.excludeSessionId),
          ),
        () => ({}),
        { identifier: args.identifier },
      );
      return { count };
    },
  }),
}));

import {
  verifySession,
  type VerifiedSession as VerifiedSessionShape,
} from '../../domain/sessions.js';
import { ServiceError } from '../../domain/errors.js';
import { builder } from '../builder.js';
import { IDENTIFIER_COST, JSON_DATA_COST } from '../cost.js';
import type { Context } from '../context.js';
import { scopeArgs, scopeOf } from '../scope.js';
import { tracked } from '../tracking.js';
import { Session } from './session.js';

/* Checking a session token: verifySession answers its data, isSessionValid only yes or no. */

/**
 * One verify as both verifySession and isSessionValid make it: within the caller's rate
 * limits, recorded for the activity log and metrics, the row read by the shared loader.
 */
async function verifyCall(
  ctx: Context,
  args: { tag: string; token: string; product?: string | null; env?: string | null },
): Promise<VerifiedSessionShape> {
  const scope = await scopeOf(ctx, args);
  return tracked(
    ctx,
    scope,
    args.tag,
    'verify',
    async () => {
      return verifySession(ctx.services, scope, args.tag, args.token, (id) =>
        ctx.loaders.sessionRecord.load(id),
      );
    },
    (v) => v,
  );
}

const VerifiedSession = builder.objectRef<VerifiedSessionShape>('VerifiedSession').implement({
  description: 'What a valid session token says.',
  fields: (t) => ({
    sessionId: t.exposeID('sessionId', {
      description: 'The session’s id (to revoke it, for example).',
    }),
    tag: t.exposeString('tag', { description: 'The session type.' }),
    identifier: t.exposeString('identifier', {
      description: 'Who the session is for.',
      complexity: IDENTIFIER_COST,
    }),
    data: t.field({
      type: 'JSON',
      description: 'The session’s current data, decrypted.',
      complexity: JSON_DATA_COST,
      resolve: (v) => v.data,
    }),
    version: t.exposeInt('version', { description: 'Version of the data.' }),
    expiresAt: t.expose('expiresAt', {
      type: 'DateTime',
      description: 'When the session expires unless refreshed or extended.',
    }),
    session: t.field({ type: Session, description: 'The session row.', resolve: (v) => v.session }),
  }),
});

builder.queryFields((t) => ({
  verifySession: t.field({
    type: VerifiedSession,
    description:
      'Checks a session token and returns its data. TOKEN_INVALID, TOKEN_EXPIRED or SESSION_REVOKED otherwise.',
    authScopes: { sessions: true },
    args: {
      tag: t.arg.string({
        required: true,
        description: 'The session type the token must belong to.',
      }),
      token: t.arg.string({ required: true, description: 'The session token.' }),
      ...scopeArgs,
    },
    resolve: (_root, args, ctx) => verifyCall(ctx, args),
  }),
  isSessionValid: t.boolean({
    description:
      'True when the token verifies; false (no error) when it is invalid, expired or revoked.',
    authScopes: { sessions: true },
    args: {
      tag: t.arg.string({ required: true, description: 'The session type.' }),
      token: t.arg.string({ required: true, description: 'The session token.' }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      try {
        await verifyCall(ctx, args);
        return true;
      } catch (error) {
        if (
          error instanceof ServiceError &&
          ['TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_REVOKED'].includes(error.code)
        ) {
          return false;
        }
        throw error;
      }
    },
  }),
}));

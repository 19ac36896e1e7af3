import type { SessionRow } from '../../db/schema.js';
import { ServiceError } from '../../domain/errors.js';
import {
  encodeCursor,
  findSession,
  listSessions,
  verifySession,
  type VerifiedSession as VerifiedSessionShape,
} from '../../domain/sessions/index.js';
import { builder } from '../builder.js';
import { connectionOf, connectionType, pageArgs } from '../connection.js';
import { IDENTIFIER_COST, JSON_DATA_COST, pagedCost } from '../cost.js';
import type { Context } from '../context.js';
import { scopeArgs, scopeForTag, scopeOf, sessionTypeArgs } from '../scope.js';
import { tracked } from '../tracking.js';
import { Session } from './session.js';
import { dateTimeField } from '../fields.js';

/*
 * The session queries: a user's active sessions page by page, one session by id, and checking
 * a session token (verifySession answers its data, isSessionValid only yes or no).
 */

const SessionConnection = connectionType<SessionRow>('Session', Session, {
  connection: 'A page of sessions, newest first.',
  node: 'A session in a list',
  nodes: 'The sessions of this page, without cursors.',
  total: 'Every active session of the list, on all pages.',
});

/**
 * One verify as both verifySession and isSessionValid make it: within the caller's rate
 * limits, recorded for the activity log and metrics, the row read by the shared loader.
 */
async function verifyCall(
  ctx: Context,
  args: {
    tag: string;
    token: string;
    maxAge?: number | null;
    product?: string | null;
    env?: string | null;
  },
): Promise<VerifiedSessionShape> {
  const scope = await scopeOf(ctx, args);
  return tracked(
    ctx,
    scope,
    args.tag,
    'verify',
    async () => {
      return verifySession(
        ctx.services,
        scope,
        args.tag,
        args.token,
        (id) => ctx.loaders.sessionRecord.load(id),
        args.maxAge,
      );
    },
    (v) => v,
  );
}

/**
 * The `VerifiedSession` type: what `verifySession` answers for a valid token, the data decrypted.
 * session-controls.ts adds `authenticatedAt` and `actor`.
 */
export const VerifiedSession = builder
  .objectRef<VerifiedSessionShape>('VerifiedSession')
  .implement({
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
      expiresAt: dateTimeField(
        t,
        'expiresAt',
        'When the session expires unless refreshed or extended.',
      ),
      session: t.expose('session', { type: Session, description: 'The session row.' }),
    }),
  });

builder.queryFields((t) => ({
  sessions: t.field({
    type: SessionConnection,
    description: 'A user’s active sessions under a tag, newest first (Ductape’s sessions.list).',
    complexity: pagedCost,
    args: {
      identifier: t.arg.string({ required: true, description: 'The user.' }),
      ...pageArgs,
      ...sessionTypeArgs,
    },
    resolve: async (_root, args, ctx) =>
      connectionOf(
        await listSessions(ctx.services, await scopeForTag(ctx, args, args.tag), args),
        encodeCursor,
      ),
  }),
  session: t.field({
    type: Session,
    nullable: true,
    description:
      'One session of the product and env by id, whatever its status; null when there is none.',
    args: {
      id: t.arg.id({ required: true, description: 'The session id.' }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) =>
      (await findSession(ctx.services, await scopeOf(ctx, args), String(args.id))) ?? null,
  }),
  verifySession: t.field({
    type: VerifiedSession,
    description:
      'Checks a session token and returns its data. TOKEN_INVALID, TOKEN_EXPIRED or SESSION_REVOKED otherwise.',
    args: {
      tag: t.arg.string({
        required: true,
        description:
          'The session type the token must belong to; NOT_FOUND, with the tag in `extensions.tag`, when no session config of the environment has it (a deleted config’s tag still names it).',
      }),
      token: t.arg.string({ required: true, description: 'The session token.' }),
      maxAge: t.arg.int({
        description:
          'Freshness: the most seconds since the user last signed in (start or markSessionFresh); older answers REAUTHENTICATION_REQUIRED.',
      }),
      ...scopeArgs,
    },
    resolve: (_root, args, ctx) => verifyCall(ctx, args),
  }),
  isSessionValid: t.boolean({
    description:
      'True when the token verifies; false (no error) when it is invalid, expired or revoked. A tag that names no session config of the environment is NOT_FOUND, as everywhere.',
    args: {
      token: t.arg.string({ required: true, description: 'The session token.' }),
      ...sessionTypeArgs,
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

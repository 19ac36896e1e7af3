import { encodeCursor, findSession, listSessions } from '../../domain/sessions.js';
import type { SessionRow } from '../../db/schema.js';
import { builder } from '../builder.js';
import { connectionOf, connectionType } from '../connection.js';
import { pagedCost } from '../cost.js';
import { scopeArgs, scopeForTag, scopeOf } from '../scope.js';
import { Session } from './session.js';

/* Reading sessions: a user's active sessions page by page, and one session by id. */

const SessionConnection = connectionType<SessionRow>('Session', Session, {
  connection: 'A page of sessions, newest first.',
  node: 'A session in a list',
  nodes: 'The sessions of this page, without cursors.',
  total: 'Every active session of the list, on all pages.',
});

builder.queryFields((t) => ({
  sessions: t.field({
    type: SessionConnection,
    description: 'A user’s active sessions under a tag, newest first (Ductape’s sessions.list).',
    authScopes: { sessions: true },
    complexity: pagedCost,
    args: {
      tag: t.arg.string({ required: true, description: 'The session type.' }),
      identifier: t.arg.string({ required: true, description: 'The user.' }),
      first: t.arg.int({ description: 'Page size, 0 to 100 (default 20).' }),
      after: t.arg.string({ description: 'The `endCursor` of the previous page.' }),
      ...scopeArgs,
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
    authScopes: { sessions: true },
    args: {
      id: t.arg.id({ required: true, description: 'The session id.' }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) =>
      (await findSession(ctx.services, await scopeOf(ctx, args), String(args.id))) ?? null,
  }),
}));

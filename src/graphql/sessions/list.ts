import {
  findSession,
  listSessions,
  encodeCursor,
  type SessionPage,
} from '../../domain/sessions.js';
import type { SessionRow } from '../../db/schema.js';
import { builder } from '../builder.js';
import { COUNTED_BY_PARENT, pagedCost } from '../cost.js';
import { scopeArgs, scopeForTag, scopeOf } from '../scope.js';
import { Session } from './session.js';

/* Reading sessions: a user's active sessions page by page, and one session by id. */

const PageInfo = builder
  .objectRef<{ hasNextPage: boolean; endCursor: string | null; startCursor: string | null }>(
    'PageInfo',
  )
  .implement({
    description: 'Where a page stands in the list (Relay).',
    fields: (t) => ({
      hasNextPage: t.exposeBoolean('hasNextPage', { description: 'More items after this page.' }),
      hasPreviousPage: t.boolean({
        description: 'Always false: the list pages forward only.',
        resolve: () => false,
      }),
      startCursor: t.exposeString('startCursor', {
        nullable: true,
        description: 'Cursor of the first item.',
      }),
      endCursor: t.exposeString('endCursor', {
        nullable: true,
        description: 'Pass as `after` for the next page.',
      }),
    }),
  });

const SessionEdge = builder.objectRef<SessionRow>('SessionEdge').implement({
  description: 'A session in a list, with its cursor.',
  fields: (t) => ({
    node: t.field({ type: Session, description: 'The session.', resolve: (s) => s }),
    cursor: t.string({
      description: 'Opaque position of this session.',
      resolve: (s) => encodeCursor(s),
    }),
  }),
});

const SessionConnection = builder.objectRef<SessionPage>('SessionConnection').implement({
  description: 'A page of sessions, newest first.',
  fields: (t) => ({
    edges: t.field({
      type: [SessionEdge],
      description: 'The sessions of this page.',
      complexity: COUNTED_BY_PARENT,
      resolve: (p) => p.rows,
    }),
    nodes: t.field({
      type: [Session],
      description: 'The sessions of this page, without cursors.',
      complexity: COUNTED_BY_PARENT,
      resolve: (p) => p.rows,
    }),
    pageInfo: t.field({
      type: PageInfo,
      description: 'Paging.',
      resolve: (p) => ({
        hasNextPage: p.hasNextPage,
        startCursor: p.rows[0] ? encodeCursor(p.rows[0]) : null,
        endCursor: p.rows.at(-1) ? encodeCursor(p.rows.at(-1)!) : null,
      }),
    }),
    totalCount: t.int({
      description: 'Every active session of the list, on all pages.',
      resolve: (p) => p.totalCount(),
    }),
  }),
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
      listSessions(ctx.services, await scopeForTag(ctx, args, args.tag), args),
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

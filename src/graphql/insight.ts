import type { ActivityRow, SessionRow, SessionUserRow } from '../db/schema.js';
import {
  OPERATIONS,
  findSessionUser,
  listActivity,
  listSessionUsers,
  sessionDashboard,
  sessionHistory,
  type Dashboard,
  type DashboardPeriod,
} from '../domain/activity/index.js';
import type { Scope } from '../domain/callers.js';
import { builder } from './builder.js';
import { connectionOf, connectionType, pageArgs } from './connection.js';
import {
  COUNTED_BY_PARENT,
  CURSOR_COST,
  IDENTIFIER_COST,
  dashboardCost,
  pagedCost,
} from './cost.js';
import { seqIdField } from './events.js';
import { scopeArgs, scopeForTag, sessionTypeArgs, tagFilterArgs } from './scope.js';
import { Session } from './sessions/session.js';
import { describedEnum, dateTimeField } from './fields.js';

/** A user of a tag, with the product and env it was read in (for its own fields' queries). */
type UserInScope = SessionUserRow & { readonly scope: Scope };

const SessionUser = builder.objectRef<UserInScope>('SessionUser').implement({
  description: 'Someone who has had a session of a tag (Ductape’s fetchUsers).',
  fields: (t) => ({
    identifier: t.exposeString('identifier', {
      description: 'The user, as the selector picks it.',
      complexity: IDENTIFIER_COST,
    }),
    tag: t.exposeString('tag', { description: 'The session type.' }),
    firstSeenAt: dateTimeField(t, 'firstSeenAt', 'Their first session’s start.'),
    lastSeenAt: dateTimeField(
      t,
      'lastSeenAt',
      'Their latest start, refresh, touch or verify (verify counts at most once a minute).',
    ),
    totalSessions: t.exposeInt('totalSessions', { description: 'Sessions they ever started.' }),
    activeSessions: t.int({
      description: 'Their sessions that are live now (batched across a page of users).',
      resolve: (u, _args, ctx) =>
        ctx.loaders.activeSessionsOfUser.load({
          scope: u.scope,
          tag: u.tag,
          identifier: u.identifier,
        }),
    }),
    sessions: t.field({
      type: SessionHistoryConnection,
      description:
        'Their session history, every status, newest first (Ductape’s fetchUserDetails).',
      complexity: pagedCost,
      args: pageArgs,
      resolve: async (u, args, ctx) => {
        const page = await sessionHistory(ctx.services.db, u.scope, {
          tag: u.tag,
          identifier: u.identifier,
          first: args.first,
          after: args.after,
        });
        return connectionOf(page, page.cursorOf);
      },
    }),
  }),
});

const SessionHistoryConnection = connectionType<SessionRow>('SessionHistory', Session, {
  connection: 'A page of a user’s sessions, newest first.',
  node: 'A session in a user’s history',
  total: 'All their stored sessions.',
  cursorCost: CURSOR_COST,
});

const SessionUserConnection = connectionType<UserInScope>('SessionUser', SessionUser, {
  connection: 'A page of users.',
  node: 'A user in a list',
  total: 'Every user of the tag.',
  cursorCost: CURSOR_COST,
});

const UserOrder = describedEnum('SessionUserOrder', 'How users are sorted.', {
  LAST_SEEN_DESC: 'Most recently seen first (the default).',
  LAST_SEEN_ASC: 'Least recently seen first.',
});

const OperationEnum = builder.enumType('SessionOperation', {
  description: 'An operation of the session API, as the activity log names it.',
  values: Object.fromEntries(
    OPERATIONS.map((op) => [op.toUpperCase(), { value: op, description: `The ${op} operation.` }]),
  ) as Record<
    Uppercase<(typeof OPERATIONS)[number]>,
    { value: (typeof OPERATIONS)[number]; description: string }
  >,
});

const OperationStatus = describedEnum('OperationStatus', 'How an operation ended.', {
  SUCCESS: 'It succeeded.',
  FAILURE: 'It failed; `errorCode` says why.',
});

/**
 * The `ActivityEntry` type: one `activity_log` row, its id the scope's number (`seq`).
 * session-controls.ts adds `actor`.
 */
export const ActivityEntry = builder.objectRef<ActivityRow>('ActivityEntry').implement({
  description:
    'One operation in the activity log (successful verifies, and failed verifies and refreshes, are counted in the dashboard, not logged).',
  fields: (t) => ({
    id: seqIdField(
      t,
      'Its number in the product and env (counts only this product’s entries, never another’s).',
    ),
    operation: t.field({
      type: OperationEnum,
      description: 'What was done.',
      resolve: (a) => a.operation as (typeof OPERATIONS)[number],
    }),
    status: t.expose('status', { type: OperationStatus, description: 'How it ended.' }),
    errorCode: t.exposeString('errorCode', {
      nullable: true,
      description: 'The error code of a failure.',
    }),
    tag: t.exposeString('tag', { nullable: true, description: 'The session type.' }),
    sessionId: t.exposeID('sessionId', { nullable: true, description: 'The session, when known.' }),
    identifier: t.exposeString('identifier', {
      nullable: true,
      description: 'The user, when known.',
      complexity: IDENTIFIER_COST,
    }),
    durationMs: t.exposeFloat('durationMs', { description: 'How long it took, in milliseconds.' }),
    at: dateTimeField(t, 'at', 'When it started.'),
  }),
});

const ActivityConnection = connectionType<ActivityRow>('Activity', ActivityEntry, {
  connection: 'A page of the activity log, newest first.',
  node: 'An entry of the activity log',
  total: 'Every entry matching the filters.',
  cursorCost: CURSOR_COST,
});

const Grouping = describedEnum(
  'DashboardGrouping',
  'The length of a dashboard period (UTC; weeks start on Monday).',
  {
    HOUR: 'Hours.',
    DAY: 'Days.',
    WEEK: 'ISO weeks.',
    MONTH: 'Calendar months.',
  },
);

const DashboardPeriodRef = builder.objectRef<DashboardPeriod>('DashboardPeriod').implement({
  description: 'Figures for one period of a dashboard.',
  fields: (t) => ({
    start: dateTimeField(t, 'start', 'When the period starts.'),
    sessionsCreated: t.exposeInt('sessionsCreated', { description: 'Sessions started.' }),
    sessionsExpired: t.exposeInt('sessionsExpired', {
      description: 'Sessions found run out by the sweep.',
    }),
    activeSessions: t.exposeInt('activeSessions', {
      description:
        'Sessions live at the end of the period (at `to` if the range ends sooner, at now for the current period): started before it and not yet revoked, run out or idle past their timeout. Counted from the stored sessions: ended sessions deleted after their retention (SESSION_RETENTION_DAYS) no longer count for the periods they were live in.',
    }),
    sessionsRevoked: t.exposeInt('sessionsRevoked', {
      description:
        'Sessions revoked in the period while live, whatever did it (revokeSession, revokeAllSessions counts each session, session limits, config deletion, reuse detection). A session revoked after it had already run out is not counted. Counted from the stored sessions, like `activeSessions`.',
    }),
    starts: t.exposeInt('starts', { description: 'startSession calls.' }),
    verifies: t.exposeInt('verifies', { description: 'verifySession and isSessionValid calls.' }),
    refreshes: t.exposeInt('refreshes', { description: 'refreshSession calls.' }),
    revokes: t.exposeInt('revokes', { description: 'revokeSession and revokeAllSessions calls.' }),
    successes: t.exposeInt('successes', { description: 'Operations that succeeded.' }),
    failures: t.exposeInt('failures', { description: 'Operations that failed.' }),
    averageDurationMs: t.exposeFloat('averageDurationMs', {
      nullable: true,
      description: 'Mean operation duration; null without operations.',
    }),
  }),
});

const SessionDashboard = builder.objectRef<Dashboard>('SessionDashboard').implement({
  description: 'A tag’s dashboard (Ductape’s fetchDashboard): totals now, and figures per period.',
  fields: (t) => ({
    from: dateTimeField(t, 'from', 'Start of the range.'),
    to: dateTimeField(t, 'to', 'End of the range (excluded).'),
    groupBy: t.expose('groupBy', { type: Grouping, description: 'The period length.' }),
    totalUsers: t.exposeInt('totalUsers', {
      description: 'Everyone who has had a session of the tag.',
    }),
    activeUsers: t.exposeInt('activeUsers', { description: 'Users seen in the last 24 hours.' }),
    totalSessions: t.exposeInt('totalSessions', {
      description: 'Sessions stored now (ended ones until the sweep deletes them).',
    }),
    activeSessions: t.exposeInt('activeSessions', { description: 'Live sessions now.' }),
    expiredSessions: t.exposeInt('expiredSessions', {
      description: 'Stored sessions that ran out.',
    }),
    revokedSessions: t.exposeInt('revokedSessions', {
      description: 'Stored sessions that were revoked.',
    }),
    successes: t.exposeInt('successes', { description: 'Operations that succeeded in the range.' }),
    failures: t.exposeInt('failures', { description: 'Operations that failed in the range.' }),
    successRate: t.exposeFloat('successRate', {
      nullable: true,
      description: 'successes / operations; null without operations.',
    }),
    errorRate: t.exposeFloat('errorRate', {
      nullable: true,
      description: 'failures / operations; null without operations.',
    }),
    averageDurationMs: t.exposeFloat('averageDurationMs', {
      nullable: true,
      description: 'Mean operation duration in the range.',
    }),
    periods: t.field({
      type: [DashboardPeriodRef],
      description:
        'Figures per period that had any (operations, or sessions active or revoked), oldest first.',
      // Counted by sessionDashboard, from its range.
      complexity: COUNTED_BY_PARENT,
      resolve: (d) => d.periods,
    }),
  }),
});

builder.queryFields((t) => ({
  sessionUsers: t.field({
    type: SessionUserConnection,
    description: 'Everyone who has had a session of a tag, by last seen (Ductape’s fetchUsers).',
    complexity: pagedCost,
    args: {
      ...sessionTypeArgs,
      orderBy: t.arg({ type: UserOrder, description: 'Sort order (default LAST_SEEN_DESC).' }),
      ...pageArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeForTag(ctx, args, args.tag);
      const page = await listSessionUsers(ctx.services.db, scope, args);
      return connectionOf(page, page.cursorOf, (row) => ({ ...row, scope }));
    },
  }),
  sessionUser: t.field({
    type: SessionUser,
    nullable: true,
    description:
      'One user of a tag with their session history (Ductape’s fetchUserDetails); null if unknown.',
    args: {
      ...sessionTypeArgs,
      identifier: t.arg.string({ required: true, description: 'The user.' }),
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeForTag(ctx, args, args.tag);
      const user = await findSessionUser(ctx.services.db, scope, args.tag, args.identifier);
      return user ? { ...user, scope } : null;
    },
  }),
  activityLog: t.field({
    type: ActivityConnection,
    description:
      'Operations on sessions, newest first (Ductape’s fetchActivityLogs). Every operation is logged except successful verifies, which are counted in the dashboard instead.',
    complexity: pagedCost,
    args: {
      ...scopeArgs,
      ...tagFilterArgs,
      operation: t.arg({ type: OperationEnum, description: 'Only this operation.' }),
      status: t.arg({ type: OperationStatus, description: 'Only successes or only failures.' }),
      since: t.arg({ type: 'DateTime', description: 'Only entries at or after this instant.' }),
      until: t.arg({ type: 'DateTime', description: 'Only entries at or before this instant.' }),
      ...pageArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeForTag(ctx, args, args.tag);
      // What this instance recorded so far is written first, so a reader sees its own calls.
      await ctx.services.activity.flush();
      const page = await listActivity(ctx.services.db, scope, args);
      return connectionOf(page, page.cursorOf);
    },
  }),
  sessionDashboard: t.field({
    type: SessionDashboard,
    description:
      'Dashboard figures for a tag over [from, to), grouped by period (Ductape’s fetchDashboard).',
    complexity: (args) => dashboardCost(args),
    args: {
      ...sessionTypeArgs,
      from: t.arg({ type: 'DateTime', required: true, description: 'Start of the range.' }),
      to: t.arg({
        type: 'DateTime',
        required: true,
        description: 'End of the range (excluded); at most 800 days after `from`.',
      }),
      groupBy: t.arg({ type: Grouping, required: true, description: 'Period length.' }),
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeForTag(ctx, args, args.tag);
      await ctx.services.activity.flush();
      // A scan of the tag's sessions: a few at a time per instance, the pool kept for the rest.
      return ctx.services.insightGate.run(() => sessionDashboard(ctx.services.db, scope, args));
    },
  }),
}));

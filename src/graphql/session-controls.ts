import type { ActivityRow, SessionEventRow, SessionRow } from '../db/schema.js';
import type { Scope } from '../domain/callers.js';
import { ServiceError, productNotFound } from '../domain/errors.js';
import { findProductByTag } from '../domain/keys.js';
import {
  MAX_DEVICE_NAME_LENGTH,
  currentSessionIdAmong,
  listUserSessions,
  markSessionFresh,
  notBeforeWatermarks,
  revokeSessionsStartedBefore,
  revokeUserSessions,
  setSessionDeviceName,
  type PastDevice,
} from '../domain/sessions/controls.js';
import { MAX_PAGE_SIZE } from '../domain/paging.js';
import { builder, type BuilderTypes } from './builder.js';
import type { Context } from './context.js';
import {
  connectionOf,
  connectionTypes,
  pageArgs,
  type Connection,
  type Edge,
} from './connection.js';
import { pagedCost, textCost } from './cost.js';
import { DEVICE_HISTORY_LIMIT } from '../domain/sessions/controls-rules.js';
import { MAX_IDENTIFIER_LENGTH } from '../domain/sessions/shared.js';
import { MAX_ACTOR_LENGTH } from '../domain/sessions/start.js';
import { SessionEvent } from './events.js';
import { ActivityEntry } from './insight.js';
import { scopeArgs, scopeForTag, scopeOf, sessionAddressArgs, tagFilterArgs } from './scope.js';
import { deviceFields, Session, VerifiedSession } from './sessions/index.js';
import { tracked, trackedOnSession, type Subject } from './tracking.js';

/**
 * The scopes a user-wide operation covers: the caller's env, or, for the admin key naming a
 * product and no env, every env of that product.
 */
async function userScopes(
  ctx: Context,
  args: { product?: string | null; env?: string | null },
): Promise<Scope[]> {
  const caller = await ctx.caller();
  if (caller.kind === 'admin' && args.product != null && args.env == null) {
    const product = await findProductByTag(ctx.services.db, args.product);
    if (!product) throw productNotFound(args.product);
    return product.envs.map((env) => ({ productId: product.id, productTag: product.tag, env }));
  }
  return [await scopeOf(ctx, args)];
}

/**
 * The scopes that may use a tag: for a single env, its answer (NOT_FOUND for a tag that names
 * no config of the env, FORBIDDEN for another env's); across the product's envs (the admin
 * key), the envs owning or sharing the config, and NOT_FOUND when the tag names none of them.
 */
async function scopesUsingTag(ctx: Context, scopes: Scope[], tag: string): Promise<Scope[]> {
  const configs = ctx.services.sessionConfigs;
  if (scopes.length === 1) {
    await configs.checkAccess(ctx.services.db, scopes[0]!, tag);
    return scopes;
  }
  const usable: Scope[] = [];
  let refusal: ServiceError | undefined;
  for (const scope of scopes) {
    try {
      await configs.checkAccess(ctx.services.db, scope, tag);
      usable.push(scope);
    } catch (error) {
      if (!(error instanceof ServiceError) || !['FORBIDDEN', 'NOT_FOUND'].includes(error.code)) {
        throw error;
      }
      // A tag no env knows is NOT_FOUND, rather than one env's FORBIDDEN.
      if (refusal === undefined || error.code === 'NOT_FOUND') refusal = error;
    }
  }
  if (usable.length === 0) throw refusal!;
  return usable;
}

/** What the activity log records of a session these operations return, its actor included. */
const sessionSubject = (s: SessionRow): Subject => ({
  sessionId: s.id,
  identifier: s.identifier,
  actor: s.actor,
});

const userScopeArgs = builder.args((t) => ({
  product: t.string({
    description: 'Admin key only: the product’s tag. A secret key acts in its own product.',
  }),
  env: t.string({
    description:
      'Admin key only: one environment; leave it out to cover every environment of the product. A secret key acts in its own environment.',
  }),
}));

// --- Session fields the controls add ---------------------------------------------------------

const PastDeviceRef = builder.objectRef<PastDevice>('PastDevice').implement({
  description: 'A device a session was used from before its current one.',
  fields: (t) => ({
    ...deviceFields(t),
    until: t.field({
      type: 'DateTime',
      description: 'When the session moved to another device (at a refresh).',
      resolve: (d) => new Date(d.until),
    }),
  }),
});

builder.objectFields(Session, (t) => ({
  env: t.exposeString('env', { description: 'The environment the session lives in.' }),
  authenticatedAt: t.expose('authenticatedAt', {
    type: 'DateTime',
    description:
      'When the user last proved who they are: the start, or the latest markSessionFresh. Refreshes keep it.',
  }),
  actor: t.exposeString('actor', {
    nullable: true,
    description: 'Impersonation: the operator acting as the user; null for the user’s own session.',
    complexity: textCost(MAX_ACTOR_LENGTH),
  }),
  deviceName: t.exposeString('deviceName', {
    nullable: true,
    description: 'The display name a client gave this device (setSessionDeviceName).',
    complexity: textCost(MAX_DEVICE_NAME_LENGTH),
  }),
  deviceHistory: t.field({
    type: [PastDeviceRef],
    complexity: { field: 1, multiplier: DEVICE_HISTORY_LIMIT },
    description: 'The devices used before the current one, newest first (at most 5).',
    resolve: (s) => (s.deviceHistory as PastDevice[] | null) ?? [],
  }),
}));

builder.objectFields(VerifiedSession, (t) => ({
  authenticatedAt: t.expose('authenticatedAt', {
    type: 'DateTime',
    description: 'When the user last proved who they are (start or markSessionFresh).',
  }),
  actor: t.exposeString('actor', {
    nullable: true,
    description: 'Impersonation: the operator acting as the user; null for the user’s own session.',
    complexity: textCost(MAX_ACTOR_LENGTH),
  }),
}));

builder.objectFields(SessionEvent, (t) => ({
  actor: t.field({
    type: 'String',
    nullable: true,
    description: 'Impersonation: the operator acting as the user, for an impersonated session.',
    complexity: textCost(MAX_ACTOR_LENGTH),
    resolve: (e: SessionEventRow) => e.actor ?? null,
  }),
}));

builder.objectFields(ActivityEntry, (t) => ({
  actor: t.field({
    type: 'String',
    nullable: true,
    description: 'Impersonation: the operator acting as the user, when the session was one.',
    complexity: textCost(MAX_ACTOR_LENGTH),
    resolve: (a: ActivityRow) => a.actor ?? null,
  }),
}));

// --- A user's sessions across tags ------------------------------------------------------------

/** A user's session on a page, and whether it is the one of the `currentToken` passed. */
type UserSessionEdgeShape = Edge<SessionRow> & { readonly current: boolean };
type UserSessionConnectionShape = Connection<SessionRow, UserSessionEdgeShape> & {
  readonly currentSessionId: string | null;
};

const { connection: UserSessionConnection, edge: UserSessionEdge } = connectionTypes<
  SessionRow,
  UserSessionEdgeShape,
  UserSessionConnectionShape
>('UserSession', Session, {
  connection: 'A page of one user’s active sessions across session types, newest first.',
  node: 'One of a user’s sessions',
  total: 'Every active session of the user in the envs covered, on all pages.',
});

builder.objectFields(UserSessionEdge, (t) => ({
  current: t.boolean({
    description: 'True for the session of the `currentToken` passed (this device).',
    resolve: (e) => e.current,
  }),
}));

builder.objectFields(UserSessionConnection, (t) => ({
  currentSessionId: t.id({
    nullable: true,
    description: 'The id of the session of `currentToken`, when it is on this page.',
    resolve: (c) => c.currentSessionId,
  }),
}));

const RevokeUserSessionsResult = builder
  .objectRef<{ count: number }>('RevokeUserSessionsResult')
  .implement({
    description: 'The outcome of revokeUserSessions.',
    fields: (t) => ({
      count: t.exposeInt('count', {
        description: 'How many sessions were revoked now, one REVOKED event each.',
      }),
    }),
  });

/** What a not-before revocation is: the tag it covers (null: all) and its instant. */
type NotBeforeShape = { readonly tag: string | null; readonly notBefore: Date };

/** The fields of a not-before revocation, for `NotBeforeRevocation` and `VerifierNotBefore`. */
export const notBeforeFields = (
  t: PothosSchemaTypes.ObjectFieldBuilder<BuilderTypes, NotBeforeShape>,
  notBeforeDescription: string,
) => ({
  tag: t.exposeString('tag', {
    nullable: true,
    description: 'The session type it covers; null: every session of the environment.',
  }),
  notBefore: t.expose('notBefore', { type: 'DateTime', description: notBeforeDescription }),
});

const NotBeforeRevocation = builder
  .objectRef<{ count: number; notBefore: Date; tag: string | null }>('NotBeforeRevocation')
  .implement({
    description: 'A not-before revocation: sessions started before `notBefore` are revoked.',
    fields: (t) => ({
      ...notBeforeFields(t, 'Sessions started before this instant never verify or refresh again.'),
      count: t.exposeInt('count', {
        description:
          'How many sessions this call revoked (one REVOKED event each, reason not_before); 0 when listed.',
      }),
    }),
  });

builder.queryFields((t) => ({
  userSessions: t.field({
    type: UserSessionConnection,
    description:
      'One user’s active sessions across every session type of the environment (or one `tag`), newest first; the admin key naming only a product covers all its environments. Pass the caller’s own session token as `currentToken` to mark its session.',
    complexity: pagedCost,
    args: {
      identifier: t.arg.string({
        required: true,
        description: `The user, up to ${MAX_IDENTIFIER_LENGTH} characters.`,
      }),
      ...tagFilterArgs,
      ...pageArgs,
      currentToken: t.arg.string({
        description: 'The session token of the device asking: its session is marked `current`.',
      }),
      ...userScopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scopes = await userScopes(ctx, args);
      const usable = args.tag == null ? scopes : await scopesUsingTag(ctx, scopes, args.tag);
      const page = await listUserSessions(ctx.services, usable, args);
      const currentSessionId = await currentSessionIdAmong(
        ctx.services,
        scopes,
        args.currentToken,
        page.rows,
      );
      const connection = connectionOf(page, page.cursorOf);
      return {
        ...connection,
        edges: connection.edges.map((e) => ({ ...e, current: e.node.id === currentSessionId })),
        currentSessionId,
      };
    },
  }),
  notBeforeRevocations: t.field({
    type: [NotBeforeRevocation],
    description:
      'The not-before revocations in force in the environment (at most 101: one per session type and one for the whole env).',
    // One watermark per config a product may hold, and one for the env.
    complexity: { field: 1, multiplier: MAX_PAGE_SIZE + 1 },
    args: { ...scopeArgs },
    resolve: async (_root, args, ctx) => {
      const marks = await notBeforeWatermarks(ctx.services, await scopeOf(ctx, args));
      return marks.map((m) => ({ ...m, count: 0 }));
    },
  }),
}));

builder.mutationFields((t) => ({
  revokeUserSessions: t.field({
    type: RevokeUserSessionsResult,
    description:
      'Signs a user out everywhere: revokes every active session of the identifier across all session types of the environment (the admin key naming only a product: of every environment), impersonations included, but `exceptSessionId`. One REVOKED event per session (reason signed_out_everywhere).',
    args: {
      identifier: t.arg.string({
        required: true,
        description: `The user, up to ${MAX_IDENTIFIER_LENGTH} characters.`,
      }),
      exceptSessionId: t.arg.id({ description: 'A session to keep (the current one).' }),
      ...userScopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scopes = await userScopes(ctx, args);
      const count = await revokeUserSessions(
        ctx.services,
        scopes,
        args.identifier,
        args.exceptSessionId == null ? null : String(args.exceptSessionId),
      );
      return { count };
    },
  }),
  revokeSessionsStartedBefore: t.field({
    type: NotBeforeRevocation,
    description:
      'Not-before revocation (after a key leak or a breach): revokes every session of `tag` (or, without it, of the whole environment) started before `before` (default: now), keeping the config. Verify and refresh refuse those sessions from the moment this starts; the rows are marked in batches of 500, each with its REVOKED events (reason not_before). Run it again to finish an interrupted call.',
    args: {
      tag: t.arg.string({
        description:
          'The session type; leave out for every session of the env. NOT_FOUND, with the tag in `extensions.tag`, without a live session config of the environment.',
      }),
      before: t.arg({
        type: 'DateTime',
        description: 'Sessions started before this instant (not in the future); default: now.',
      }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeForTag(ctx, args, args.tag);
      const run = () =>
        revokeSessionsStartedBefore(ctx.services, scope, { tag: args.tag, before: args.before });
      const result =
        args.tag != null
          ? await tracked(ctx, scope, args.tag, 'revoke_started_before', run, () => ({}))
          : await run();
      return { ...result, tag: args.tag ?? null };
    },
  }),
  markSessionFresh: t.field({
    type: Session,
    description:
      'Step-up: records that the user just proved who they are again (password, second factor...), so `verifySession(maxAge:)` accepts the session. Not for impersonation sessions (FORBIDDEN).',
    args: {
      ...sessionAddressArgs,
      ...scopeArgs,
    },
    resolve: (_root, args, ctx) =>
      trackedOnSession(
        ctx,
        args,
        'mark_fresh',
        (scope, sessionId) => markSessionFresh(ctx.services, scope, args.tag, sessionId),
        sessionSubject,
      ),
  }),
  setSessionDeviceName: t.field({
    type: Session,
    description: 'Gives a session’s device a display name, shown in lists; null clears it.',
    args: {
      ...sessionAddressArgs,
      name: t.arg.string({
        description: `The name, 1 to ${MAX_DEVICE_NAME_LENGTH} characters; null to clear.`,
      }),
      ...scopeArgs,
    },
    resolve: (_root, args, ctx) =>
      trackedOnSession(
        ctx,
        args,
        'set_device_name',
        (scope, sessionId) =>
          setSessionDeviceName(ctx.services, scope, args.tag, sessionId, args.name ?? null),
        sessionSubject,
      ),
  }),
}));

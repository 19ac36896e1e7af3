import type { SessionRow } from '../db/schema.js';
import { ServiceError } from '../domain/errors.js';
import {
  encodeCursor,
  idleExpiresAt,
  findSession,
  listSessions,
  refreshSession,
  revokeAllSessions,
  revokeSession,
  sessionData,
  sessionStatus,
  startSession,
  verifySession,
  normalizeDevice,
  type SessionPage,
  type SessionTokens as SessionTokensShape,
  type VerifiedSession as VerifiedSessionShape,
} from '../domain/sessions/index.js';
import { builder } from './builder.js';
import {
  COUNTED_BY_PARENT,
  IDENTIFIER_COST,
  JSON_DATA_COST,
  MAX_USER_AGENT_CHARS,
  TOKEN_COST,
  pagedCost,
  textCost,
} from './cost.js';
import { tracked } from './tracking.js';
import type { Context } from './context.js';
import { SessionConfig } from './session-configs.js';
import { scopeArgs, scopeForTag, scopeOf } from './scope.js';

const SessionStatus = builder.enumType('SessionStatus', {
  description: 'Where a session stands.',
  values: {
    ACTIVE: { description: 'Usable, or refreshable with its refresh token.' },
    EXPIRED: { description: 'Past its refresh token’s expiry: nothing can revive it.' },
    REVOKED: {
      description: 'Ended by a revocation (logout, revoke all, reuse detected, config deleted).',
    },
  },
});

const Device = builder.objectRef<Pick<SessionRow, 'userAgent' | 'ip'>>('Device').implement({
  description: 'The client a session was started from.',
  fields: (t) => ({
    userAgent: t.exposeString('userAgent', {
      nullable: true,
      description: 'Its User-Agent.',
      complexity: textCost(MAX_USER_AGENT_CHARS),
    }),
    ip: t.exposeString('ip', { nullable: true, description: 'Its IP address.' }),
  }),
});

export const Session = builder.objectRef<SessionRow>('Session').implement({
  description: 'One started session of a user (identifier) under a session type (tag).',
  fields: (t) => ({
    id: t.exposeID('id', {
      description: 'The session id, as verify returns it and revoke takes it.',
    }),
    tag: t.exposeString('tag', { description: 'The session type.' }),
    config: t.field({
      type: SessionConfig,
      description: 'The session type’s config (batched across sessions).',
      resolve: async (s, _args, ctx) => {
        const config = await ctx.loaders.configById.load(s.configId);
        if (!config) throw new Error(`session ${s.id} has no config row`);
        return { config, env: s.env };
      },
    }),
    identifier: t.exposeString('identifier', {
      description:
        'Who the session is for: what the selector picked out of the data, or the identifier given at start.',
      complexity: IDENTIFIER_COST,
    }),
    data: t.field({
      type: 'JSON',
      description: 'The session data, decrypted.',
      complexity: JSON_DATA_COST,
      resolve: (s, _args, ctx) => sessionData(ctx.services.keyring, s),
    }),
    status: t.field({
      type: SessionStatus,
      description: 'Active, expired or revoked, now.',
      resolve: (s) => sessionStatus(s, new Date()),
    }),
    device: t.field({ type: Device, description: 'Where it was started from.', resolve: (s) => s }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it started.' }),
    expiresAt: t.expose('expiresAt', {
      type: 'DateTime',
      description: 'When its latest session token expires.',
    }),
    refreshExpiresAt: t.expose('refreshExpiresAt', {
      type: 'DateTime',
      description: 'When its latest refresh token expires; after that the session is over.',
    }),
    lastActiveAt: t.expose('lastActiveAt', {
      type: 'DateTime',
      description:
        'Its last activity: start, refresh, touch, or verify (recorded at most once a minute).',
    }),
    idleExpiresAt: t.field({
      type: 'DateTime',
      nullable: true,
      description:
        'When it ends if unused (last activity plus the idle timeout); null without one.',
      resolve: (s) => idleExpiresAt(s),
    }),
    timeRemaining: t.int({
      description:
        'Whole seconds (the unit of every duration in this API) until `expiresAt`; 0 once past: refresh or extend it.',
      resolve: (s) => Math.max(0, Math.floor((s.expiresAt.getTime() - Date.now()) / 1000)),
    }),
    version: t.exposeInt('version', {
      description:
        'Version of the data, bumped by every change; pass it as `expectedVersion` to write safely.',
    }),
    value: t.field({
      type: 'JSON',
      nullable: true,
      description: 'One top-level key of the data; null when absent.',
      complexity: JSON_DATA_COST,
      args: { key: t.arg.string({ required: true, description: 'The key.' }) },
      resolve: (s, { key }, ctx) => {
        const data = sessionData(ctx.services.keyring, s);
        return Object.hasOwn(data, key) ? data[key] : null;
      },
    }),
    revokedAt: t.expose('revokedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When it was revoked, if it was.',
    }),
    revokeReason: t.exposeString('revokeReason', {
      nullable: true,
      description:
        'Why it was revoked: revoked, revoked_all, config_deleted, refresh_token_reused, session_limit, signed_out_everywhere or not_before.',
    }),
  }),
});

type TokensWithSession = SessionTokensShape & { session?: SessionRow };

const SessionTokens = builder.objectRef<TokensWithSession>('SessionTokens').implement({
  description: 'A session token with its refresh token. Hand both to the client; we keep neither.',
  fields: (t) => ({
    token: t.exposeString('token', {
      description: 'The session token (JWE): send it with every request; verify it.',
      complexity: TOKEN_COST,
    }),
    refreshToken: t.exposeString('refreshToken', {
      description:
        'Single use: exchange it with refreshSession for a new pair before the token expires.',
    }),
    sessionId: t.exposeID('sessionId', { description: 'The session’s id.' }),
    expiresAt: t.expose('expiresAt', {
      type: 'DateTime',
      description: 'When the session token expires.',
    }),
    session: t.field({
      type: Session,
      description: 'The session itself.',
      resolve: async (r, _args, ctx) => r.session ?? (await requireSessionRow(ctx, r.sessionId)),
    }),
  }),
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

async function requireSessionRow(ctx: Context, id: string): Promise<SessionRow> {
  const row = await ctx.loaders.sessionRecord.load(id);
  if (!row) throw new ServiceError('NOT_FOUND', 'The session no longer exists.');
  return row;
}

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
      expiresAt: t.expose('expiresAt', {
        type: 'DateTime',
        description: 'When the session expires unless refreshed or extended.',
      }),
      session: t.field({
        type: Session,
        description: 'The session row.',
        resolve: (v) => v.session,
      }),
    }),
  });

export const PageInfo = builder
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

const RevokeAllResult = builder.objectRef<{ count: number }>('RevokeAllResult').implement({
  description: 'The outcome of revokeAllSessions.',
  fields: (t) => ({
    count: t.exposeInt('count', {
      description: 'How many sessions were revoked now (already revoked ones not counted).',
    }),
  }),
});

export const DeviceInput = builder.inputType('DeviceInput', {
  description: 'Your end user’s client, when you start a session on its behalf from your backend.',
  fields: (t) => ({
    userAgent: t.string({ required: false, description: 'Its User-Agent, up to 512 characters.' }),
    ip: t.string({ required: false, description: 'Its IPv4 or IPv6 address.' }),
  }),
});

const StartSessionInput = builder.inputType('StartSessionInput', {
  description: 'A session to start (Ductape’s sessions.start).',
  fields: (t) => ({
    tag: t.string({ required: true, description: 'The session type.' }),
    data: t.field({
      type: 'JSON',
      required: true,
      description:
        'The session data: a JSON object (up to 16 KiB) matching the config’s schema. Encrypted in the token and at rest.',
    }),
    identifier: t.string({
      required: false,
      description:
        'Who the session is for, up to 256 characters; default: what the config’s selector picks from data.',
    }),
    expiresIn: t.int({
      required: false,
      description:
        'Session token lifetime in seconds (10 to 31,536,000); default: the config’s expiry.',
    }),
    expiresAt: t.field({
      type: 'DateTime',
      required: false,
      description:
        'Instead of `expiresIn`: the instant the session token expires, 10 seconds to 365 days from now (not both).',
    }),
    actor: t.string({
      required: false,
      description:
        'Impersonation: who (an operator’s id, up to 256 characters) starts this session as the user. Shown in verify, events and the activity log; the session lives at most IMPERSONATION_MAX_SECONDS (1 hour by default).',
    }),
    device: t.field({
      type: DeviceInput,
      required: false,
      description: 'The end user’s client; default: this request’s.',
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

builder.mutationFields((t) => ({
  startSession: t.field({
    type: SessionTokens,
    description: 'Starts a session: returns the session token, the refresh token and the expiry.',
    authScopes: { sessions: true },
    args: {
      input: t.arg({
        type: StartSessionInput,
        required: true,
        description: 'The session type, its data and, optionally, identifier, lifetime and device.',
      }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeOf(ctx, args);
      return tracked(
        ctx,
        scope,
        args.input.tag,
        'start',
        async () => {
          return startSession(ctx.services, scope, args.input, ctx.requestDevice);
        },
        (r) => ({
          sessionId: r.sessionId,
          identifier: r.identifier,
          actor: args.input.actor ?? null,
        }),
      );
    },
  }),
  refreshSession: t.field({
    type: SessionTokens,
    description:
      'Exchanges a refresh token for a new pair. Racing refreshes with one token get the same pair; a spent token replayed later revokes the session (REFRESH_TOKEN_REUSED).',
    authScopes: { sessions: true },
    args: {
      tag: t.arg.string({ required: true, description: 'The session type.' }),
      refreshToken: t.arg.string({ required: true, description: 'The refresh token.' }),
      device: t.arg({
        type: DeviceInput,
        required: false,
        description:
          'The end user’s client now; default: this request’s. A change moves the previous device into the session’s `deviceHistory`.',
      }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeOf(ctx, args);
      return tracked(
        ctx,
        scope,
        args.tag,
        'refresh',
        async () => {
          return refreshSession(
            ctx.services,
            scope,
            args.tag,
            args.refreshToken,
            normalizeDevice(args.device, ctx.requestDevice),
          );
        },
        (r) => ({ sessionId: r.sessionId, identifier: r.identifier, actor: r.actor }),
      );
    },
  }),
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

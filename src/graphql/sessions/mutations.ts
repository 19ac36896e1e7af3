import type { SessionRow } from '../../db/schema.js';
import {
  normalizeDevice,
  refreshSession,
  revokeAllSessions,
  revokeSession,
  startSession,
  type SessionTokens as SessionTokensShape,
} from '../../domain/sessions/index.js';
import type { Scope } from '../../domain/callers.js';
import { MAX_USER_AGENT_LENGTH } from '../../domain/sessions/start.js';
import { builder } from '../builder.js';
import type { Context } from '../context.js';
import { TOKEN_COST } from '../cost.js';
import { scopeArgs, scopeForTag, scopeOf, sessionTypeArgs } from '../scope.js';
import { tracked } from '../tracking.js';
import { requireSessionRow, Session } from './session.js';
import { dateTimeField } from '../fields.js';

/*
 * The session mutations: issuing tokens (startSession hands out the first pair, refreshSession
 * each next one) and ending sessions (one, or every session of a user but one).
 */

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
    expiresAt: dateTimeField(t, 'expiresAt', 'When the session token expires.'),
    session: t.field({
      type: Session,
      description: 'The session itself.',
      resolve: async (r, _args, ctx) => r.session ?? (await requireSessionRow(ctx, r.sessionId)),
    }),
  }),
});

/**
 * The `DeviceInput` input of start and refresh: the end user's client as the calling backend saw it
 * (`normalizeDevice` checks it).
 */
export const DeviceInput = builder.inputType('DeviceInput', {
  description:
    'Your end user’s client, as your backend saw it when it starts or refreshes a session on the user’s behalf. A part left out is not taken from this request (your backend’s own User-Agent and IP) unless `fromRequest` asks for it.',
  fields: (t) => ({
    userAgent: t.string({
      required: false,
      description: `Its User-Agent, up to ${MAX_USER_AGENT_LENGTH} characters.`,
    }),
    ip: t.string({ required: false, description: 'Its IPv4 or IPv6 address.' }),
    fromRequest: t.boolean({
      required: false,
      description:
        'True: the parts left out are this request’s own User-Agent and IP (the client address TRUST_PROXY_HOPS gives), for a caller whose request is the end user’s. Default false.',
    }),
  }),
});

const StartSessionInput = builder.inputType('StartSessionInput', {
  description: 'A session to start (Ductape’s sessions.start).',
  fields: (t) => ({
    tag: t.string({
      required: true,
      description:
        'The session type: a live session config of the environment; NOT_FOUND, with the tag in `extensions.tag`, otherwise.',
    }),
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
      description:
        'The end user’s client; left out, none is recorded (`{ fromRequest: true }`: this request’s).',
    }),
  }),
});

/**
 * Hands out a pair (start or refresh) in the caller's scope, tracked: the activity log records
 * the pair's session, user and actor (if any).
 */
async function issue(
  ctx: Context,
  args: { product?: string | null; env?: string | null },
  tag: string,
  operation: 'start' | 'refresh',
  run: (scope: Scope) => Promise<SessionTokensShape>,
): Promise<SessionTokensShape> {
  const scope = await scopeOf(ctx, args);
  return tracked(
    ctx,
    scope,
    tag,
    operation,
    () => run(scope),
    (tokens) => ({
      sessionId: tokens.sessionId,
      identifier: tokens.identifier,
      actor: tokens.actor ?? null,
    }),
  );
}

const RevokeAllResult = builder.objectRef<{ count: number }>('RevokeAllResult').implement({
  description: 'The outcome of revokeAllSessions.',
  fields: (t) => ({
    count: t.exposeInt('count', {
      description: 'How many sessions were revoked now (already revoked ones not counted).',
    }),
  }),
});

builder.mutationFields((t) => ({
  startSession: t.field({
    type: SessionTokens,
    description: 'Starts a session: returns the session token, the refresh token and the expiry.',
    args: {
      input: t.arg({
        type: StartSessionInput,
        required: true,
        description: 'The session type, its data and, optionally, identifier, lifetime and device.',
      }),
      ...scopeArgs,
    },
    resolve: (_root, args, ctx) =>
      issue(ctx, args, args.input.tag, 'start', (scope) =>
        startSession(ctx.services, scope, args.input, ctx.requestDevice),
      ),
  }),
  refreshSession: t.field({
    type: SessionTokens,
    description:
      'Exchanges a refresh token for a new pair. Racing refreshes with one token get the same pair; a spent token replayed later revokes the session (REFRESH_TOKEN_REUSED).',
    args: {
      refreshToken: t.arg.string({ required: true, description: 'The refresh token.' }),
      device: t.arg({
        type: DeviceInput,
        required: false,
        description:
          'The end user’s client now; left out, the session keeps its device (`{ fromRequest: true }`: this request’s). A change moves the previous device into the session’s `deviceHistory`.',
      }),
      ...sessionTypeArgs,
    },
    resolve: (_root, args, ctx) =>
      issue(ctx, args, args.tag, 'refresh', (scope) =>
        refreshSession(
          ctx.services,
          scope,
          args.tag,
          args.refreshToken,
          normalizeDevice(args.device, ctx.requestDevice, 'device'),
        ),
      ),
  }),
  revokeSession: t.field({
    type: Session,
    description: 'Ends one session (logout) everywhere on the next verify. Idempotent.',
    args: {
      sessionId: t.arg.id({
        required: true,
        description: 'The session id (verifySession returns it).',
      }),
      ...sessionTypeArgs,
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
    args: {
      identifier: t.arg.string({ required: true, description: 'The user.' }),
      excludeSessionId: t.arg.id({ description: 'A session to keep (the current one).' }),
      ...sessionTypeArgs,
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

import type { SessionRow } from '../../db/schema.js';
import { sessionGone } from '../../domain/errors.js';
import { idleExpiresAt, sessionData, sessionStatus } from '../../domain/sessions/index.js';
import { builder, type BuilderTypes } from '../builder.js';
import { IDENTIFIER_COST, JSON_DATA_COST, USER_AGENT_COST } from '../cost.js';
import type { Context } from '../context.js';
import { SessionConfig } from '../session-configs.js';
import { describedEnum, dateTimeField, nullableDateTimeField } from '../fields.js';

/*
 * The shared `Session` type and the small types it shows. Every operation that returns a
 * session (list, verify, start/refresh, revoke, state changes, insight) imports it from here.
 */

const SessionStatus = describedEnum('SessionStatus', 'Where a session stands.', {
  ACTIVE: 'Usable, or refreshable with its refresh token.',
  EXPIRED: 'Past its refresh token’s expiry: nothing can revive it.',
  REVOKED: 'Ended by a revocation (logout, revoke all, reuse detected, config deleted).',
});

/** What a device is known by: the User-Agent and IP address a session was used with. */
type DeviceShape = Pick<SessionRow, 'userAgent' | 'ip'>;

/** The fields of a device, for `Device` and the `PastDevice` of a session's device history. */
export const deviceFields = (
  t: PothosSchemaTypes.ObjectFieldBuilder<BuilderTypes, DeviceShape>,
) => ({
  userAgent: t.exposeString('userAgent', {
    nullable: true,
    description: 'Its User-Agent.',
    complexity: USER_AGENT_COST,
  }),
  ip: t.exposeString('ip', { nullable: true, description: 'Its IP address.' }),
});

const Device = builder.objectRef<DeviceShape>('Device').implement({
  description: 'The client a session was started from.',
  fields: deviceFields,
});

/**
 * The `Session` type: a `sessions` row, its data decrypted only when asked for, its config batched
 * across a page. session-controls.ts adds `env`, `authenticatedAt`, `actor` and the device's name
 * and history.
 */
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
    createdAt: dateTimeField(t, 'createdAt', 'When it started.'),
    expiresAt: dateTimeField(t, 'expiresAt', 'When its latest session token expires.'),
    refreshExpiresAt: dateTimeField(
      t,
      'refreshExpiresAt',
      'When its latest refresh token expires; after that the session is over.',
    ),
    lastActiveAt: dateTimeField(
      t,
      'lastActiveAt',
      'Its last activity: start, refresh, touch, or verify (recorded at most once a minute).',
    ),
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
    revokedAt: nullableDateTimeField(t, 'revokedAt', 'When it was revoked, if it was.'),
    revokeReason: t.exposeString('revokeReason', {
      nullable: true,
      description:
        'Why it was revoked: revoked, revoked_all, config_deleted, refresh_token_reused, session_limit, signed_out_everywhere or not_before.',
    }),
  }),
});

/** The session row by id, through the request's loader: NOT_FOUND once it has been deleted. */
export async function requireSessionRow(ctx: Context, id: string): Promise<SessionRow> {
  const row = await ctx.loaders.sessionRecord.load(id);
  if (!row) throw sessionGone();
  return row;
}

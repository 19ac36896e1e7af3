import type { SessionEventRow } from '../db/schema.js';
import { badInput } from '../domain/errors.js';
import { SESSION_EVENT_TYPES, type SessionEventType } from '../contract/enums.js';
import { latestEventId } from '../domain/events.js';
import { MAX_IDENTIFIER_LENGTH } from '../domain/sessions/shared.js';
import { MAX_TAG_LENGTH } from '../domain/validation.js';
import { builder, type BuilderTypes } from './builder.js';
import { IDENTIFIER_COST } from './cost.js';
import type { Context } from './context.js';
import { scopeArgs, scopeForTag, scopeOf, tagFilterArgs } from './scope.js';
import { dateTimeField } from './fields.js';

/** What each event type means, for the schema's documentation: one line per type of the list. */
const EVENT_TYPE_DESCRIPTIONS: Readonly<Record<SessionEventType, string>> = {
  STARTED: 'A session was started.',
  REFRESHED: 'Its refresh token was exchanged for a new pair.',
  REVOKED: 'It was revoked; `reason` says why.',
  EXPIRED: 'It ran out and was cleaned up.',
  REUSE_DETECTED: 'A spent refresh token was replayed; the session was revoked.',
  EXTENDED: 'Its lifetime was extended.',
  DATA_UPDATED: 'Its data was changed.',
};

/** The GraphQL enum, derived from the contract's list (src/contract/enums.ts). */
export const SessionEventTypeEnum = builder.enumType('SessionEventType', {
  description: 'What happened to a session.',
  values: Object.fromEntries(
    SESSION_EVENT_TYPES.map((type) => [
      type,
      { value: type, description: EVENT_TYPE_DESCRIPTIONS[type] },
    ]),
  ) as Record<SessionEventType, { value: SessionEventType; description: string }>,
});

/**
 * The `id` of what a product's env numbers in order (its events, its activity log): the row's
 * `seq`, counted within the product and env only.
 */
export const seqIdField = (
  t: PothosSchemaTypes.ObjectFieldBuilder<BuilderTypes, { readonly seq: number | null }>,
  description: string,
) => t.id({ description, resolve: (row) => String(row.seq) });

/**
 * The `SessionEvent` type: a `session_events` row as the two event subscriptions send it, its id
 * the scope's number (`seq`). session-controls.ts adds `actor`.
 */
export const SessionEvent = builder.objectRef<SessionEventRow>('SessionEvent').implement({
  description:
    'Something that happened to a session. Ids increase in commit order within a product and env.',
  fields: (t) => ({
    id: seqIdField(
      t,
      'Its number in the product and env, in commit order (counts only this product’s events): pass the last id you received as `after` to resume without gap or duplicate.',
    ),
    type: t.expose('type', { type: SessionEventTypeEnum, description: 'What happened.' }),
    sessionId: t.exposeID('sessionId', { description: 'The session it happened to.' }),
    tag: t.exposeString('tag', { description: 'The session type.' }),
    identifier: t.exposeString('identifier', {
      description: 'The user.',
      complexity: IDENTIFIER_COST,
    }),
    at: dateTimeField(t, 'at', 'When it was committed.'),
    reason: t.exposeString('reason', {
      nullable: true,
      description: 'Why, for revocations and reuse.',
    }),
  }),
});

function parseAfter(after: string | number | null | undefined): number | null {
  if (after == null) return null;
  const text = String(after);
  if (!/^\d{1,15}$/.test(text))
    throw badInput('after', 'expected an event id, as a previous event gave it');
  return Number(text);
}

async function subscribeEvents(
  ctx: Context,
  args: {
    product?: string | null;
    env?: string | null;
    tag?: string | null;
    identifier?: string | null;
    after?: string | number | null;
  },
  types: readonly SessionEventType[] | null,
) {
  if (args.tag != null && args.tag.length > MAX_TAG_LENGTH)
    throw badInput('tag', `must be at most ${MAX_TAG_LENGTH} characters`);
  if (args.identifier != null && args.identifier.length > MAX_IDENTIFIER_LENGTH) {
    throw badInput('identifier', `must be at most ${MAX_IDENTIFIER_LENGTH} characters`);
  }
  const after = parseAfter(args.after);
  const scope = await scopeForTag(ctx, args, args.tag);
  const caller = await ctx.caller();
  return ctx.services.events.subscribe(
    { productId: scope.productId, env: scope.env },
    {
      filter: { tag: args.tag, identifier: args.identifier, types },
      after,
      keyId: caller.kind === 'secret' ? caller.keyId : caller.kind,
      ready: ctx.subscriptionTransport?.ready,
      onSlow: ctx.subscriptionTransport?.onSlow,
    },
  );
}

builder.queryField('latestSessionEventId', (t) =>
  t.id({
    nullable: true,
    description:
      'The id of the newest event in the caller’s product and env (null when there is none): subscribe with it as `after` and nothing committed from now on can be missed, even before the first event arrives.',
    args: { ...scopeArgs },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeOf(ctx, args);
      const latest = await latestEventId(ctx.services.db, scope);
      return latest === 0 ? null : String(latest);
    },
  }),
);

builder.subscriptionType({
  description: 'Live session events, over GraphQL over WebSocket (graphql-ws) or over SSE.',
  // As for queries and mutations (builder.ts), checked when a subscription starts.
  authScopes: { sessions: true },
});

/** What both event subscriptions filter by: the scope, a session type and a user. */
const eventFilterArgs = {
  ...scopeArgs,
  ...tagFilterArgs,
  ...builder.args((t) => ({
    identifier: t.string({ description: 'Only this user.' }),
  })),
};

builder.subscriptionFields((t) => ({
  sessionRevoked: t.field({
    type: SessionEvent,
    description:
      'Each revocation in the caller’s product and env (logout, revoke all, reuse detected, config deleted), optionally for one tag and one user.',
    args: {
      ...eventFilterArgs,
      after: t.arg.id({ description: 'Replay the revocations after this event id first.' }),
    },
    subscribe: (_root, args, ctx) => subscribeEvents(ctx, args, ['REVOKED']),
    resolve: (event) => event,
  }),
  sessionEvents: t.field({
    type: SessionEvent,
    description:
      'Every session event in the caller’s product and env, filtered by tag, user and type. With `after`, what was missed is replayed first, in order.',
    args: {
      ...eventFilterArgs,
      types: t.arg({ type: [SessionEventTypeEnum], description: 'Only these kinds of event.' }),
      after: t.arg.id({
        description: 'Replay the events after this id first, then continue live.',
      }),
    },
    subscribe: (_root, args, ctx) =>
      subscribeEvents(ctx, args, args.types ? [...new Set(args.types)] : null),
    resolve: (event) => event,
  }),
}));

import type { WebhookAttemptRow, WebhookEndpointRow } from '../db/schema.js';
import type { SessionEventType } from '../domain/events.js';
import {
  ATTEMPTS_SHOWN,
  listDeliveries,
  redeliver,
  withAttempts,
  type DeliveryWithAttempts,
} from '../domain/webhooks/deliveries.js';
import {
  MAX_WEBHOOK_DESCRIPTION_CHARS,
  createEndpoint,
  deleteEndpoint,
  getEndpoint,
  listEndpoints,
  rotateSecret,
  updateEndpoint,
  type EndpointWithSecret,
} from '../domain/webhooks/endpoints.js';
import { MAX_URL_CHARS } from '../domain/webhooks/url-policy.js';
import { builder } from './builder.js';
import { COUNTED_BY_PARENT, pagedCost, textCost, webhookEndpointsCost } from './cost.js';
import { SessionEventTypeEnum } from './events.js';
import { scopeArgs, scopeOf } from './scope.js';
import { describedEnum, dateTimeField, nullableDateTimeField } from './fields.js';

const WebhookDeliveryStatus = describedEnum(
  'WebhookDeliveryStatus',
  'Where a webhook delivery stands.',
  {
    PENDING: 'Not yet accepted by the endpoint: due now or at `nextAttemptAt`.',
    DELIVERED: 'The endpoint answered 2xx.',
    FAILED: 'Given up after WEBHOOK_MAX_ATTEMPTS attempts; `redeliverWebhook` retries it.',
  },
);

const WebhookAttempt = builder.objectRef<WebhookAttemptRow>('WebhookAttempt').implement({
  description: 'One HTTP request of a delivery.',
  fields: (t) => ({
    at: dateTimeField(t, 'at', 'When it was made.'),
    succeeded: t.exposeBoolean('succeeded', { description: 'Whether the endpoint answered 2xx.' }),
    responseCode: t.exposeInt('responseCode', {
      nullable: true,
      description: 'The HTTP status answered (null: no answer: timeout, refused, unreachable).',
    }),
    latencyMs: t.exposeFloat('latencyMs', { description: 'How long it took, in milliseconds.' }),
    error: t.exposeString('error', {
      nullable: true,
      description: 'Why it failed, in a few words (`HTTP 500`, `timeout after 10000 ms`).',
    }),
    nextAttemptAt: nullableDateTimeField(
      t,
      'nextAttemptAt',
      'When the next attempt was scheduled after this one (null: none).',
    ),
  }),
});

const WebhookDelivery = builder.objectRef<DeliveryWithAttempts>('WebhookDelivery').implement({
  description: 'One event sent to one endpoint, with its attempts.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The delivery’s id (for `redeliverWebhook`).' }),
    messageId: t.string({
      description:
        'The `webhook-id` header it is sent with, the same on every attempt: receivers dedupe by it.',
      resolve: (d) => `msg_${d.id}`,
    }),
    eventId: t.id({
      description: 'The event’s id (`SessionEvent.id`, `data.id` in the payload).',
      resolve: (d) => String(d.eventSeq),
    }),
    eventType: t.field({
      type: SessionEventTypeEnum,
      description: 'What happened.',
      resolve: (d) => d.eventType as SessionEventType,
    }),
    status: t.field({
      type: WebhookDeliveryStatus,
      description: 'Where it stands.',
      resolve: (d) => d.status.toUpperCase() as 'PENDING' | 'DELIVERED' | 'FAILED',
    }),
    attempts: t.exposeInt('attempts', { description: 'Attempts made in its current run.' }),
    nextAttemptAt: nullableDateTimeField(
      t,
      'nextAttemptAt',
      'When it is next tried (null unless PENDING). A delivery waits for the endpoint’s earlier ones: events go out in order.',
    ),
    lastResponseCode: t.exposeInt('lastResponseCode', {
      nullable: true,
      description: 'The HTTP status of its latest attempt (null: none, or no answer).',
    }),
    lastError: t.exposeString('lastError', {
      nullable: true,
      description: 'Why its latest attempt failed.',
    }),
    createdAt: dateTimeField(t, 'createdAt', 'When it was queued.'),
    deliveredAt: nullableDateTimeField(t, 'deliveredAt', 'When the endpoint accepted it.'),
    attemptLog: t.field({
      type: [WebhookAttempt],
      description: `Its attempts, oldest first (the newest ${ATTEMPTS_SHOWN}).`,
      complexity: { field: 1, multiplier: ATTEMPTS_SHOWN },
      resolve: (d) => d.attemptLog,
    }),
  }),
});

const WebhookEndpoint = builder.objectRef<WebhookEndpointRow>('WebhookEndpoint').implement({
  description:
    'An HTTP endpoint that receives the session events of one product and env, signed (Standard Webhooks).',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The endpoint’s id.' }),
    url: t.exposeString('url', {
      description: 'Where events are POSTed.',
      complexity: textCost(MAX_URL_CHARS),
    }),
    description: t.exposeString('description', {
      description: 'What it is for.',
      complexity: textCost(MAX_WEBHOOK_DESCRIPTION_CHARS),
    }),
    env: t.exposeString('env', { description: 'The environment whose events it receives.' }),
    eventTypes: t.field({
      type: [SessionEventTypeEnum],
      nullable: true,
      description: 'Only these event types are sent (null: every type).',
      complexity: COUNTED_BY_PARENT,
      resolve: (e) => (e.eventTypes as SessionEventType[] | null) ?? null,
    }),
    enabled: t.exposeBoolean('enabled', {
      description:
        'Whether events are delivered. A disabled endpoint’s events wait in the event table (EVENT_RETENTION_DAYS) and go out, from where it stopped, once it is enabled again.',
    }),
    disabledAt: nullableDateTimeField(t, 'disabledAt', 'When it was disabled.'),
    disabledReason: t.exposeString('disabledReason', {
      nullable: true,
      description: 'Why: `disabled` (by a call) or the run of failed attempts that disabled it.',
    }),
    failureRun: t.exposeInt('failureRun', {
      description:
        'Failed attempts in a row; at WEBHOOK_DISABLE_AFTER_FAILURES the endpoint is disabled.',
    }),
    previousSecretExpiresAt: nullableDateTimeField(
      t,
      'previousSecretExpiresAt',
      'After a rotation: until when the previous secret still signs beside the new one.',
    ),
    createdAt: dateTimeField(t, 'createdAt', 'When it was created.'),
    updatedAt: dateTimeField(t, 'updatedAt', 'When it was last changed.'),
    deliveries: t.field({
      type: [WebhookDelivery],
      description:
        'Its deliveries, newest event first, `first` at a time (20 by default, at most 100).',
      args: {
        first: t.arg.int({ description: 'How many (0 to 100; default 20).' }),
        before: t.arg.id({
          description:
            'Only deliveries of events before this event id (the last `eventId` of the previous page).',
        }),
        status: t.arg({
          type: WebhookDeliveryStatus,
          description: 'Only deliveries in this state.',
        }),
      },
      complexity: (args) => pagedCost(args),
      resolve: (e, args, ctx) =>
        listDeliveries(ctx.services.db, e.id, {
          first: args.first,
          before: args.before == null ? null : String(args.before),
          status: args.status
            ? (args.status.toLowerCase() as 'pending' | 'delivered' | 'failed')
            : null,
        }),
    }),
  }),
});

const WebhookEndpointWithSecret = builder
  .objectRef<EndpointWithSecret>('WebhookEndpointWithSecret')
  .implement({
    description: 'An endpoint with its signing secret: shown in this answer only.',
    fields: (t) => ({
      endpoint: t.expose('endpoint', { type: WebhookEndpoint, description: 'The endpoint.' }),
      secret: t.exposeString('secret', {
        description:
          'The signing secret (`whsec_…`), for `new Webhook(secret)` of the `standardwebhooks` library. Store it now: it is never shown again.',
      }),
    }),
  });

const CreateWebhookEndpointInput = builder.inputType('CreateWebhookEndpointInput', {
  description: 'A new webhook endpoint.',
  fields: (t) => ({
    url: t.string({
      required: true,
      description: `Where to POST events: https (http only where WEBHOOK_ALLOW_HTTP allows), at most ${MAX_URL_CHARS} characters, resolving to public addresses only.`,
    }),
    description: t.string({
      description: `What it is for (at most ${MAX_WEBHOOK_DESCRIPTION_CHARS} characters).`,
    }),
    eventTypes: t.field({
      type: [SessionEventTypeEnum],
      description: 'Only these event types (omit or null: every type).',
    }),
  }),
});

const UpdateWebhookEndpointInput = builder.inputType('UpdateWebhookEndpointInput', {
  description: 'What to change on an endpoint; fields left out stay as they are.',
  fields: (t) => ({
    url: t.string({ description: 'A new URL (checked as on creation).' }),
    description: t.string({ description: 'A new description.' }),
    eventTypes: t.field({
      type: [SessionEventTypeEnum],
      description: 'Only these event types from now on.',
    }),
    allEventTypes: t.boolean({
      description: 'true: every event type from now on (drops the filter).',
    }),
    enabled: t.boolean({
      description:
        'false disables delivery; true enables it again, resets the failure run and resumes where it stopped.',
    }),
  }),
});

/** The arguments that name one endpoint of the caller's product and env. */
const endpointArgs = {
  ...scopeArgs,
  ...builder.args((t) => ({
    id: t.id({ required: true, description: 'The endpoint’s id.' }),
  })),
};

builder.queryFields((t) => ({
  webhookEndpoints: t.field({
    type: [WebhookEndpoint],
    description: 'The webhook endpoints of the caller’s product and env, oldest first.',
    args: { ...scopeArgs },
    complexity: webhookEndpointsCost,
    resolve: async (_root, args, ctx) => listEndpoints(ctx.services.db, await scopeOf(ctx, args)),
  }),
  webhookEndpoint: t.field({
    type: WebhookEndpoint,
    description:
      'One webhook endpoint of the caller’s product and env (NOT_FOUND for any other’s).',
    args: endpointArgs,
    resolve: async (_root, args, ctx) =>
      getEndpoint(ctx.services.db, await scopeOf(ctx, args), String(args.id)),
  }),
}));

builder.mutationFields((t) => ({
  createWebhookEndpoint: t.field({
    type: WebhookEndpointWithSecret,
    description:
      'Creates an endpoint that receives the session events committed from now on, with its signing secret (shown once). Secret keys for their env; the admin key for any.',
    args: {
      ...scopeArgs,
      input: t.arg({
        type: CreateWebhookEndpointInput,
        required: true,
        description: 'The endpoint.',
      }),
    },
    resolve: async (_root, args, ctx) =>
      createEndpoint(ctx.services.webhooks, await scopeOf(ctx, args), args.input),
  }),
  updateWebhookEndpoint: t.field({
    type: WebhookEndpoint,
    description: 'Changes an endpoint’s URL, description, event types, or enables/disables it.',
    args: {
      ...endpointArgs,
      input: t.arg({
        type: UpdateWebhookEndpointInput,
        required: true,
        description: 'What to change.',
      }),
    },
    resolve: async (_root, args, ctx) =>
      updateEndpoint(ctx.services.webhooks, await scopeOf(ctx, args), String(args.id), args.input),
  }),
  disableWebhookEndpoint: t.field({
    type: WebhookEndpoint,
    description:
      'Stops delivering to an endpoint (`updateWebhookEndpoint` with `enabled: true` resumes).',
    args: endpointArgs,
    resolve: async (_root, args, ctx) =>
      updateEndpoint(ctx.services.webhooks, await scopeOf(ctx, args), String(args.id), {
        enabled: false,
      }),
  }),
  deleteWebhookEndpoint: t.id({
    description: 'Deletes an endpoint with its deliveries; returns its id.',
    args: endpointArgs,
    resolve: async (_root, args, ctx) =>
      deleteEndpoint(ctx.services.db, await scopeOf(ctx, args), String(args.id)),
  }),
  rotateWebhookSecret: t.field({
    type: WebhookEndpointWithSecret,
    description:
      'Gives an endpoint a new signing secret (shown once). The previous one keeps signing beside it for `overlapSeconds`, so receivers switch without a gap.',
    args: {
      ...endpointArgs,
      overlapSeconds: t.arg.int({
        description: 'How long the previous secret still signs (0 to 604800; default 86400).',
      }),
    },
    resolve: async (_root, args, ctx) =>
      rotateSecret(
        ctx.services.webhooks,
        await scopeOf(ctx, args),
        String(args.id),
        args.overlapSeconds,
      ),
  }),
  redeliverWebhook: t.field({
    type: WebhookDelivery,
    description:
      'Sends a delivery again, now, with a fresh run of attempts and the same `webhook-id`.',
    args: {
      ...scopeArgs,
      deliveryId: t.arg.id({
        required: true,
        description: 'The delivery’s id (`WebhookDelivery.id`).',
      }),
    },
    resolve: async (_root, args, ctx) => {
      const row = await redeliver(
        ctx.services.db,
        await scopeOf(ctx, args),
        String(args.deliveryId),
      );
      const [withLog] = await withAttempts(ctx.services.db, [row]);
      return withLog!;
    },
  }),
}));

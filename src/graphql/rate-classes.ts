import { GraphQLError, type GraphQLFieldConfig, type GraphQLSchema } from 'graphql';
import type { RateClass, RateSubject } from '../limits/rate-limits.js';
import type { Context } from './context.js';

/**
 * The rate class of every operation of the API. The schema is refused at build time (so the
 * server does not start) if a root field is missing here, or if this names a field that does
 * not exist: an operation cannot be added without deciding how it is limited.
 */
export const RATE_CLASS_OF: Readonly<Record<string, Readonly<Record<string, RateClass>>>> = {
  Query: {
    verifySession: 'verify',
    isSessionValid: 'verify',
    session: 'read',
    sessions: 'read',
    userSessions: 'read',
    notBeforeRevocations: 'read',
    sessionConfig: 'read',
    sessionConfigs: 'read',
    sessionUser: 'read',
    sessionUsers: 'read',
    latestSessionEventId: 'read',
    verifierKeys: 'read',
    verifierSnapshot: 'read',
    activityLog: 'insight',
    sessionDashboard: 'insight',
    products: 'admin',
    webhookEndpoints: 'read',
    webhookEndpoint: 'read',
  },
  Mutation: {
    startSession: 'start',
    refreshSession: 'refresh',
    revokeSession: 'write',
    revokeAllSessions: 'write',
    revokeUserSessions: 'write',
    revokeSessionsStartedBefore: 'write',
    markSessionFresh: 'write',
    setSessionDeviceName: 'write',
    touchSession: 'write',
    extendSession: 'write',
    setSessionExpiration: 'write',
    updateSessionData: 'write',
    mergeSessionData: 'write',
    setSessionValue: 'write',
    removeSessionValue: 'write',
    clearSessionData: 'write',
    createSessionConfig: 'config',
    updateSessionConfig: 'config',
    deleteSessionConfig: 'config',
    createProduct: 'admin',
    createApiKey: 'admin',
    revokeApiKey: 'admin',
    createWebhookEndpoint: 'config',
    updateWebhookEndpoint: 'config',
    disableWebhookEndpoint: 'config',
    deleteWebhookEndpoint: 'config',
    rotateWebhookSecret: 'config',
    redeliverWebhook: 'write',
  },
  Subscription: {
    sessionEvents: 'subscribe',
    sessionRevoked: 'subscribe',
    verifierFeed: 'subscribe',
  },
};

/** Who a call counts against: its key, and its product and env with the client's address. */
async function subjectOf(ctx: Context): Promise<RateSubject> {
  const caller = await ctx.caller();
  const ip = ctx.requestDevice.ip ?? null;
  switch (caller.kind) {
    case 'secret':
    case 'publishable':
      return { key: caller.keyId, scope: `${caller.productId}|${caller.env}`, ip };
    case 'admin':
      return { key: 'admin', scope: 'admin', ip };
    default:
      // No key, or an unknown one: refused anyway, but still counted per address.
      return { key: null, scope: 'none', ip };
  }
}

/** Counts one call of a class against the caller's limits (RATE_LIMITED beyond them). */
export async function withinRateLimits(ctx: Context, rateClass: RateClass): Promise<void> {
  await ctx.services.rateLimits.consume(rateClass, await subjectOf(ctx));
}

/**
 * Puts every root field of the schema behind its rate class: each call (each alias, each
 * subscription started) is counted before anything else runs, authorization included.
 */
export function applyRateClasses(schema: GraphQLSchema): GraphQLSchema {
  const subscriptionType = schema.getSubscriptionType();
  const roots = [schema.getQueryType(), schema.getMutationType(), subscriptionType];
  const problems: string[] = [];
  for (const root of roots) {
    if (!root) continue;
    const classes = RATE_CLASS_OF[root.name] ?? {};
    const fields = root.getFields();
    for (const name of Object.keys(classes)) {
      if (!(name in fields)) problems.push(`${root.name}.${name} is classed but does not exist`);
    }
    for (const [name, field] of Object.entries(fields)) {
      const rateClass = classes[name];
      if (!rateClass) {
        problems.push(`${root.name}.${name} has no rate class`);
        continue;
      }
      // graphql-js reads `resolve` and `subscribe` from the field at execution: wrapped here,
      // once, before the schema serves anything.
      const config = field as unknown as GraphQLFieldConfig<unknown, Context>;
      if (root === subscriptionType && config.subscribe) {
        const subscribe = config.subscribe;
        config.subscribe = async (source, args, ctx, info) => {
          await withinRateLimits(ctx, rateClass);
          return subscribe(source, args, ctx, info);
        };
      } else {
        const resolve = config.resolve;
        if (!resolve) {
          problems.push(`${root.name}.${name} has no resolver`);
          continue;
        }
        config.resolve = async (source, args, ctx, info) => {
          await withinRateLimits(ctx, rateClass);
          return resolve(source, args, ctx, info);
        };
      }
    }
  }
  if (problems.length > 0) {
    throw new GraphQLError(`Rate classes do not match the schema: ${problems.join('; ')}`);
  }
  return schema;
}

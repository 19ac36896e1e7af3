import type { SessionConfigRow } from '../db/schema.js';
import {
  createSessionConfig,
  deleteSessionConfig,
  findUsableSessionConfig,
  listSessionConfigs,
  refreshLifetimeSeconds,
  updateSessionConfig,
} from '../domain/configs.js';
import { MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS } from '../domain/validation.js';
import { builder } from './builder.js';
import type { Context } from './context.js';
import { DESCRIPTION_COST, JSON_DATA_COST, NAME_COST, SELECTOR_COST, configsCost } from './cost.js';
import { scopeArgs, scopeOf } from './scope.js';
import { describedEnum } from './fields.js';

/** Only the admin key creates, changes or deletes product-wide configs. */
const isAdmin = async (ctx: Context) => (await ctx.caller()).kind === 'admin';

/** A config as seen from one environment (its active-session count is per env). */
export interface ConfigView {
  readonly config: SessionConfigRow;
  readonly env: string;
}

/**
 * The `ExpiryPeriod` enum: the unit of a config's `expiry`, its values the domain's own
 * (`PERIOD_SECONDS` gives each in seconds).
 */
export const ExpiryPeriod = describedEnum(
  'ExpiryPeriod',
  'The unit of a session config’s `expiry`.',
  {
    SECONDS: 'Seconds.',
    MINUTES: 'Minutes (60 seconds).',
    HOURS: 'Hours (3,600 seconds).',
    DAYS: 'Days (86,400 seconds).',
    WEEKS: 'Weeks (7 days).',
  },
);

/**
 * The `SessionConfig` type: a config as one environment sees it (its live-session count is that
 * env's, batched per env).
 */
export const SessionConfig = builder.objectRef<ConfigView>('SessionConfig').implement({
  description:
    'A session type of the product (Ductape’s session config): what a session holds and how long it lives.',
  fields: (t) => ({
    name: t.string({
      description: 'Display name.',
      complexity: NAME_COST,
      resolve: (v) => v.config.name,
    }),
    tag: t.string({
      description: 'Unique within the product; names the session type in every call.',
      resolve: (v) => v.config.tag,
    }),
    env: t.string({
      nullable: true,
      description:
        'The environment that owns the config: only its keys use, change or delete it. Null: product-wide, used by every environment and changed or deleted only with the admin key.',
      resolve: (v) => v.config.env,
    }),
    description: t.string({
      description: 'What the session type is for.',
      complexity: DESCRIPTION_COST,
      resolve: (v) => v.config.description,
    }),
    schema: t.field({
      type: 'JSON',
      description:
        'A sample of the session data; started sessions must match the types of its keys.',
      complexity: JSON_DATA_COST,
      resolve: (v) => v.config.schema,
    }),
    selector: t.string({
      description:
        'Where the identifier is in the data, as "$Session{userId}" or "$Session{details}{username}".',
      complexity: SELECTOR_COST,
      resolve: (v) => v.config.selector,
    }),
    expiry: t.int({
      description: 'The session token’s lifetime, in `period` units.',
      resolve: (v) => v.config.expiry,
    }),
    period: t.field({
      type: ExpiryPeriod,
      description: 'The unit of `expiry`.',
      resolve: (v) => v.config.period,
    }),
    refreshExpiresIn: t.int({
      description: 'Seconds a refresh token stays usable (each refresh issues a new one).',
      resolve: (v) => refreshLifetimeSeconds(v.config),
    }),
    idleTimeout: t.int({
      nullable: true,
      description: 'Seconds of inactivity after which a session is over; null: no idle timeout.',
      resolve: (v) => v.config.idleTimeoutSeconds,
    }),
    maxSessionsPerIdentifier: t.int({
      nullable: true,
      description:
        'Most live sessions one identifier may have; starting one more revokes the oldest. Null: no cap.',
      resolve: (v) => v.config.maxSessionsPerIdentifier,
    }),
    activeSessionCount: t.int({
      description:
        'Sessions of this type in the caller’s environment that are neither revoked nor expired (batched).',
      resolve: (v, _args, ctx) =>
        ctx.loaders.activeSessionCount.load({ env: v.env, configId: v.config.id }),
    }),
    createdAt: t.field({
      type: 'DateTime',
      description: 'When it was created.',
      resolve: (v) => v.config.createdAt,
    }),
    updatedAt: t.field({
      type: 'DateTime',
      description: 'When it last changed.',
      resolve: (v) => v.config.updatedAt,
    }),
  }),
});

const CreateSessionConfigInput = builder.inputType('CreateSessionConfigInput', {
  description: 'A new session type, as Ductape’s `sessions.create` takes it.',
  fields: (t) => ({
    name: t.string({
      required: true,
      description: `Display name, up to ${MAX_NAME_CHARS} characters.`,
    }),
    tag: t.string({
      required: true,
      description: 'Unique in the product: ^[a-z0-9][a-z0-9_-]{0,63}$.',
    }),
    description: t.string({
      required: true,
      description: `Up to ${MAX_DESCRIPTION_CHARS.toLocaleString('en-US')} characters.`,
    }),
    schema: t.field({
      type: 'JSON',
      required: true,
      description: 'A sample JSON object of the session data (up to 16 KiB, 10 levels).',
    }),
    selector: t.string({
      required: true,
      description:
        'The identifier’s place in the data: "$Session{userId}", "$Session{details}{username}".',
    }),
    expiry: t.int({
      required: true,
      description: 'Session token lifetime in `period` units (10 seconds to 365 days).',
    }),
    period: t.field({ type: ExpiryPeriod, required: true, description: 'Unit of `expiry`.' }),
    refreshExpiresIn: t.int({
      required: false,
      description:
        'Refresh token lifetime in seconds; default 30 days, never less than the token lifetime, at most 400 days.',
    }),
    idleTimeout: t.int({
      required: false,
      description:
        'Seconds of inactivity (no verify, refresh or touch) after which a session is over; default none.',
    }),
    maxSessionsPerIdentifier: t.int({
      required: false,
      description:
        'Most live sessions per identifier (1 to 1,000); starting one more revokes the oldest. Default: no cap.',
    }),
    shared: t.boolean({
      required: false,
      description:
        'Admin key only (FORBIDDEN otherwise): true makes the config product-wide, used by every environment and changed or deleted only with the admin key. Default false: the config belongs to the environment of the key (for the admin key, the `env` it names).',
    }),
  }),
});

const UpdateSessionConfigInput = builder.inputType('UpdateSessionConfigInput', {
  description: 'The fields to change; the others keep their value (a merge, as Ductape’s update).',
  fields: (t) => ({
    name: t.string({ required: false, description: 'New display name.' }),
    tag: t.string({
      required: false,
      description:
        'New tag; refused (CONFLICT) while the config has a live session: create a new config instead, or revoke its sessions first.',
    }),
    description: t.string({ required: false, description: 'New description.' }),
    schema: t.field({ type: 'JSON', required: false, description: 'New sample data.' }),
    selector: t.string({
      required: false,
      description: 'New selector; must resolve in the (new) schema.',
    }),
    expiry: t.int({ required: false, description: 'New lifetime, in `period` units.' }),
    period: t.field({ type: ExpiryPeriod, required: false, description: 'New unit of `expiry`.' }),
    refreshExpiresIn: t.int({
      required: false,
      description: 'New refresh token lifetime, seconds.',
    }),
    idleTimeout: t.int({
      required: false,
      description:
        'New idle timeout in seconds; 0 removes it. Applies to sessions started afterwards.',
    }),
    maxSessionsPerIdentifier: t.int({
      required: false,
      description: 'New cap on live sessions per identifier; 0 removes it.',
    }),
  }),
});

builder.queryFields((t) => ({
  sessionConfigs: t.field({
    type: [SessionConfig],
    description:
      'Every session config the caller’s environment may use (its own and the product-wide ones), oldest first (Ductape’s fetchAll).',
    // As many as a product may hold.
    complexity: configsCost,
    args: scopeArgs,
    resolve: async (_root, args, ctx) => {
      const scope = await scopeOf(ctx, args);
      const configs = await listSessionConfigs(ctx.services.db, scope);
      return configs.map((config) => ({ config, env: scope.env }));
    },
  }),
  sessionConfig: t.field({
    type: SessionConfig,
    nullable: true,
    description:
      'One session config by tag, or null (Ductape’s fetch); FORBIDDEN for a config of another environment.',
    args: {
      tag: t.arg.string({ required: true, description: 'The config’s tag.' }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeOf(ctx, args);
      const config = await findUsableSessionConfig(ctx.services.db, scope, args.tag);
      return config ? { config, env: scope.env } : null;
    },
  }),
}));

builder.mutationFields((t) => ({
  createSessionConfig: t.field({
    type: SessionConfig,
    description:
      'Creates a session type, owned by the key’s environment (or product-wide with `shared`). BAD_USER_INPUT names the field at fault; CONFLICT when the tag is taken; LIMIT_EXCEEDED at MAX_CONFIGS_PER_PRODUCT.',
    args: {
      input: t.arg({
        type: CreateSessionConfigInput,
        required: true,
        description: 'The session type to create.',
      }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeOf(ctx, args);
      const config = await createSessionConfig(ctx.services.db, scope, args.input, {
        admin: await isAdmin(ctx),
        maxConfigs: ctx.services.maxConfigsPerProduct,
      });
      return { config, env: scope.env };
    },
  }),
  updateSessionConfig: t.field({
    type: SessionConfig,
    description:
      'Changes only the given fields of a session config. Live sessions keep the tokens they have. FORBIDDEN on another environment’s config, and on a product-wide one but with the admin key.',
    args: {
      tag: t.arg.string({
        required: true,
        description:
          'The config to change; NOT_FOUND, with the tag in `extensions.tag`, without a live one.',
      }),
      input: t.arg({
        type: UpdateSessionConfigInput,
        required: true,
        description: 'The fields to change; the others keep their value.',
      }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      const scope = await scopeOf(ctx, args);
      const config = await updateSessionConfig(ctx.services.db, scope, args.tag, args.input, {
        admin: await isAdmin(ctx),
      });
      return { config, env: scope.env };
    },
  }),
  deleteSessionConfig: t.boolean({
    description:
      'Deletes a session config and revokes all its sessions (in every environment for a product-wide one). True when done.',
    args: {
      tag: t.arg.string({
        required: true,
        description:
          'The config to delete; NOT_FOUND, with the tag in `extensions.tag`, without a live one.',
      }),
      ...scopeArgs,
    },
    resolve: async (_root, args, ctx) => {
      await deleteSessionConfig(ctx.services.db, await scopeOf(ctx, args), args.tag, {
        admin: await isAdmin(ctx),
      });
      return true;
    },
  }),
}));

import type { ApiKeyRow, ProductRow } from '../db/schema.js';
import { createApiKey, createProduct, listProducts, revokeApiKey } from '../domain/keys.js';
import { MAX_NAME_CHARS } from '../domain/validation.js';
import { builder } from './builder.js';
import { ENVS_COST, NAME_COST, NOMINAL_LIST } from './cost.js';
import { dateTimeField, nullableDateTimeField } from './fields.js';

const ApiKeyKind = builder.enumType('ApiKeyKind', {
  description:
    'What a key may do: SECRET manages sessions on a backend; PUBLISHABLE is for browsers.',
  values: {
    SECRET: {
      value: 'secret',
      description: 'A backend key (`sk_<env>_...`): the whole session API for its product and env.',
    },
    PUBLISHABLE: {
      value: 'publishable',
      description: 'A browser key (`pk_<env>_...`): refused by the session management API.',
    },
  } as const,
});

/**
 * The `ApiKey` type: a stored key, never its secret part (shown once, by `createApiKey`). Only the
 * admin key reaches it.
 */
export const ApiKey = builder.objectRef<ApiKeyRow>('ApiKey').implement({
  description: 'An API key of one product and environment. Its secret part is never shown again.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Pass to revokeApiKey.' }),
    kind: t.expose('kind', { type: ApiKeyKind, description: 'Secret or publishable.' }),
    name: t.exposeString('name', {
      description: 'The name given at creation, to tell keys apart.',
      complexity: NAME_COST,
    }),
    env: t.exposeString('env', { description: 'The environment the key acts in.' }),
    prefix: t.exposeString('prefix', {
      description: 'The first characters of the key, safe to display.',
    }),
    createdAt: dateTimeField(t, 'createdAt', 'When the key was created.'),
    revokedAt: nullableDateTimeField(
      t,
      'revokedAt',
      'When the key was revoked; null while it works.',
    ),
  }),
});

/**
 * The `Product` type, for the admin key: its tag, name, environments and keys (the keys batched
 * across products).
 */
export const Product = builder.objectRef<ProductRow>('Product').implement({
  description: 'A product: the tenant that owns session configs, sessions and keys.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Internal id.' }),
    tag: t.exposeString('tag', { description: 'Unique name of the product, used in arguments.' }),
    name: t.exposeString('name', {
      description: 'Display name.',
      complexity: NAME_COST,
    }),
    envs: t.exposeStringList('envs', {
      description: 'Its environments, for example dev, snd, prd.',
      complexity: ENVS_COST,
    }),
    createdAt: dateTimeField(t, 'createdAt', 'When it was created.'),
    apiKeys: t.field({
      type: [ApiKey],
      description: 'Every key of the product, revoked ones included (batched across products).',
      complexity: { field: 1, multiplier: NOMINAL_LIST.apiKeysPerProduct },
      resolve: (product, _args, ctx) => ctx.loaders.apiKeysByProduct.load(product.id),
    }),
  }),
});

const CreatedApiKey = builder
  .objectRef<{ key: string; apiKey: ApiKeyRow }>('CreatedApiKey')
  .implement({
    description: 'A new key. `key` is shown this once and cannot be recovered: store it now.',
    fields: (t) => ({
      key: t.exposeString('key', { description: 'The key itself. Shown only in this response.' }),
      apiKey: t.field({ type: ApiKey, description: 'The stored key.', resolve: (r) => r.apiKey }),
    }),
  });

const CreateProductInput = builder.inputType('CreateProductInput', {
  description: 'A new product.',
  fields: (t) => ({
    tag: t.string({ required: true, description: 'Unique, ^[a-z0-9][a-z0-9_-]{0,63}$.' }),
    name: t.string({
      required: true,
      description: `Display name, up to ${MAX_NAME_CHARS} characters.`,
    }),
    envs: t.stringList({
      required: false,
      description: 'Its environments (default ["dev", "snd", "prd"]); up to 10.',
    }),
  }),
});

const CreateApiKeyInput = builder.inputType('CreateApiKeyInput', {
  description: 'A new key for one product and environment.',
  fields: (t) => ({
    product: t.string({ required: true, description: 'Tag of the product.' }),
    env: t.string({ required: true, description: 'One of the product’s environments.' }),
    kind: t.field({ type: ApiKeyKind, required: true, description: 'Secret or publishable.' }),
    name: t.string({
      required: true,
      description: `A name to tell the key apart, up to ${MAX_NAME_CHARS} characters.`,
    }),
  }),
});

builder.queryField('products', (t) =>
  t.field({
    type: [Product],
    description: 'Every product, oldest first. Admin key only.',
    authScopes: { admin: true },
    complexity: { field: 1, multiplier: NOMINAL_LIST.products },
    resolve: (_root, _args, ctx) => listProducts(ctx.services.db),
  }),
);

builder.mutationField('createProduct', (t) =>
  t.field({
    type: Product,
    description:
      'Creates a product with its environments. Admin key only. CONFLICT when the tag is taken.',
    authScopes: { admin: true },
    args: {
      input: t.arg({
        type: CreateProductInput,
        required: true,
        description: 'The product’s tag, name and environments.',
      }),
    },
    resolve: (_root, { input }, ctx) => createProduct(ctx.services.db, input),
  }),
);

builder.mutationField('createApiKey', (t) =>
  t.field({
    type: CreatedApiKey,
    description:
      'Creates a secret or publishable key; the key is in this response only. Admin key only.',
    authScopes: { admin: true },
    args: {
      input: t.arg({
        type: CreateApiKeyInput,
        required: true,
        description: 'The product, environment, kind and name of the key.',
      }),
    },
    resolve: (_root, { input }, ctx) => createApiKey(ctx.services.db, input),
  }),
);

builder.mutationField('revokeApiKey', (t) =>
  t.field({
    type: ApiKey,
    description: 'Revokes a key: its next request is UNAUTHENTICATED. Idempotent. Admin key only.',
    authScopes: { admin: true },
    args: { id: t.arg.id({ required: true, description: 'The key’s id.' }) },
    resolve: async (_root, { id }, ctx) => {
      const key = await revokeApiKey(ctx.services.db, String(id));
      // This instance forgets it now; the others on the key-revoked NOTIFY.
      ctx.services.callers.forgetKey(key.id);
      return key;
    },
  }),
);

import { expect } from 'vitest';
import { describe, it } from './support/test.js';
import { failure, gql, ok } from './support/graphql.js';
import { ductapeConfig, newProduct, uniqueTag } from './support/fixtures.js';

const LIST_CONFIGS = `{ sessionConfigs { tag } }`;
const CREATE_CONFIG = `mutation($input: CreateSessionConfigInput!, $product: String, $env: String) {
  createSessionConfig(input: $input, product: $product, env: $env) { tag } }`;

describe('who may call what', () => {
  it('a request with no key is UNAUTHENTICATED', async ({ t }) => {
    expect((await failure(t.app, { query: LIST_CONFIGS })).code).toBe('UNAUTHENTICATED');
  });

  it('an unknown key, of any shape, is UNAUTHENTICATED', async ({ t }) => {
    for (const key of [
      'sk_dev_nope',
      'ak_0000000000000000000000000000000000',
      'garbage',
      'pk_dev_x'.repeat(100),
    ]) {
      expect((await failure(t.app, { query: LIST_CONFIGS, key })).code).toBe('UNAUTHENTICATED');
    }
  });

  it('an Authorization header that is not a bearer key is UNAUTHENTICATED', async ({ t }) => {
    const response = await gql(t.app, {
      query: LIST_CONFIGS,
      headers: { authorization: 'Basic Zm9vOmJhcg==' },
    });
    expect(response.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('a revoked key fails on its very next request', async ({ t, product }) => {
    await ok(t.app, { query: LIST_CONFIGS, key: product.secret.dev });
    const keys = await ok<{
      products: { tag: string; apiKeys: { id: string; env: string; kind: string }[] }[];
    }>(t.app, { key: t.adminKey, query: `{ products { tag apiKeys { id env kind } } }` });
    const mine = keys.products.find((p) => p.tag === product.tag)!;
    const devSecret = mine.apiKeys.find((k) => k.env === 'dev' && k.kind === 'SECRET')!;
    const revoked = await ok<{ revokeApiKey: { revokedAt: string | null } }>(t.app, {
      key: t.adminKey,
      query: `mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }`,
      variables: { id: devSecret.id },
    });
    expect(revoked.revokeApiKey.revokedAt).not.toBeNull();
    expect((await failure(t.app, { query: LIST_CONFIGS, key: product.secret.dev })).code).toBe(
      'UNAUTHENTICATED',
    );
    // The product's other keys keep working.
    await ok(t.app, { query: LIST_CONFIGS, key: product.secret.prd });
  });

  it('a publishable key is FORBIDDEN on the session management API', async ({ t, product }) => {
    expect((await failure(t.app, { query: LIST_CONFIGS, key: product.publishable })).code).toBe(
      'FORBIDDEN',
    );
    const started = await failure(t.app, {
      key: product.publishable,
      query: `mutation { startSession(input: { tag: "x", data: {} }) { token } }`,
    });
    expect(started.code).toBe('FORBIDDEN');
  });

  it('a secret key naming another product or env is FORBIDDEN', async ({ t }) => {
    const mine = await newProduct(t);
    const other = await newProduct(t);
    const wrongProduct = await failure(t.app, {
      key: mine.secret.dev,
      query: CREATE_CONFIG,
      variables: { input: ductapeConfig(uniqueTag()), product: other.tag },
    });
    expect(wrongProduct.code).toBe('FORBIDDEN');
    const wrongEnv = await failure(t.app, {
      key: mine.secret.dev,
      query: `query { sessionConfigs(env: "prd") { tag } }`,
    });
    expect(wrongEnv.code).toBe('FORBIDDEN');
  });

  it('a secret key sees only its own product', async ({ t }) => {
    const mine = await newProduct(t);
    const other = await newProduct(t);
    const tag = uniqueTag();
    await ok(t.app, {
      key: other.secret.dev,
      query: CREATE_CONFIG,
      variables: { input: ductapeConfig(tag) },
    });
    const listed = await ok<{ sessionConfigs: { tag: string }[] }>(t.app, {
      key: mine.secret.dev,
      query: LIST_CONFIGS,
    });
    expect(listed.sessionConfigs).toEqual([]);
    const fetched = await ok<{ sessionConfig: unknown }>(t.app, {
      key: mine.secret.dev,
      query: `query($tag: String!) { sessionConfig(tag: $tag) { tag } }`,
      variables: { tag },
    });
    expect(fetched.sessionConfig).toBeNull();
  });

  it('secret and publishable keys cannot use the admin operations', async ({ t, product }) => {
    for (const key of [product.secret.dev, product.publishable]) {
      expect((await failure(t.app, { key, query: `{ products { tag } }` })).code).toBe('FORBIDDEN');
      const create = await failure(t.app, {
        key,
        query: `mutation { createProduct(input: { tag: "${uniqueTag()}", name: "x" }) { tag } }`,
      });
      expect(create.code).toBe('FORBIDDEN');
    }
  });

  it('the admin key acts on any product and env it names, and must name them', async ({
    t,
    product,
  }) => {
    const tag = uniqueTag();
    await ok(t.app, {
      key: t.adminKey,
      query: CREATE_CONFIG,
      variables: { input: ductapeConfig(tag), product: product.tag, env: 'prd' },
    });
    const seen = await ok<{ sessionConfigs: { tag: string }[] }>(t.app, {
      key: product.secret.prd,
      query: LIST_CONFIGS,
    });
    expect(seen.sessionConfigs.map((c) => c.tag)).toEqual([tag]);
    const missing = await failure(t.app, { key: t.adminKey, query: LIST_CONFIGS });
    expect(missing).toMatchObject({ code: 'BAD_USER_INPUT', field: 'product' });
    const unknown = await failure(t.app, {
      key: t.adminKey,
      query: `{ sessionConfigs(product: "${uniqueTag()}", env: "dev") { tag } }`,
    });
    expect(unknown.code).toBe('NOT_FOUND');
    const noSuchEnv = await failure(t.app, {
      key: t.adminKey,
      query: `{ sessionConfigs(product: "${product.tag}", env: "snd") { tag } }`,
    });
    expect(noSuchEnv.code).toBe('NOT_FOUND');
  });
});

describe('products and keys', () => {
  it('keys are shown once, carry their prefix and at least 192 random bits, and are stored only as hashes', async ({
    t,
  }) => {
    const product = await newProduct(t);
    expect(product.secret.dev).toMatch(/^sk_dev_[A-Za-z0-9_-]{43}$/);
    expect(product.publishable).toMatch(/^pk_dev_[A-Za-z0-9_-]{43}$/);
    const listed = await ok<{ products: { tag: string; apiKeys: Record<string, unknown>[] }[] }>(
      t.app,
      {
        key: t.adminKey,
        query: `{ products { tag apiKeys { id kind name env prefix createdAt revokedAt } } }`,
      },
    );
    const keys = listed.products.find((p) => p.tag === product.tag)!.apiKeys;
    expect(keys).toHaveLength(3);
    for (const k of keys) {
      expect(JSON.stringify(k)).not.toContain(product.secret.dev);
      expect(String(k.prefix).length).toBeLessThan(16);
    }
    // The table holds hashes, never the key.
    const table = await t.database.db.execute<{ row: string }>(
      (await import('drizzle-orm')).sql`select row_to_json(k)::text as row from api_keys k`,
    );
    const text = JSON.stringify(table);
    for (const key of [product.secret.dev, product.secret.prd, product.publishable]) {
      expect(text).not.toContain(key);
      expect(text).not.toContain(key.slice(10));
    }
  });

  it('createProduct rejects bad input naming the field, and a taken tag with CONFLICT', async ({
    t,
  }) => {
    const bad = async (input: Record<string, unknown>) =>
      failure(t.app, {
        key: t.adminKey,
        query: `mutation($input: CreateProductInput!) { createProduct(input: $input) { tag } }`,
        variables: { input },
      });
    expect(await bad({ tag: 'Bad Tag', name: 'x' })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.tag',
    });
    expect(await bad({ tag: uniqueTag(), name: '  ' })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.name',
    });
    expect(await bad({ tag: uniqueTag(), name: 'x', envs: ['dev', 'dev'] })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.envs',
    });
    expect(await bad({ tag: uniqueTag(), name: 'x', envs: ['d_v'] })).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.envs[0]',
    });
    const product = await newProduct(t);
    expect((await bad({ tag: product.tag, name: 'again' })).code).toBe('CONFLICT');
  });

  it('a product gets dev, snd and prd when no envs are given', async ({ t }) => {
    const tag = uniqueTag();
    const created = await ok<{ createProduct: { envs: string[] } }>(t.app, {
      key: t.adminKey,
      query: `mutation { createProduct(input: { tag: "${tag}", name: "Defaults" }) { envs } }`,
    });
    expect(created.createProduct.envs).toEqual(['dev', 'snd', 'prd']);
  });

  it('createApiKey names the field at fault', async ({ t, product }) => {
    const noEnv = await failure(t.app, {
      key: t.adminKey,
      query: `mutation { createApiKey(input: { product: "${product.tag}", env: "snd", kind: SECRET, name: "k" }) { key } }`,
    });
    expect(noEnv).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.env' });
    const noProduct = await failure(t.app, {
      key: t.adminKey,
      query: `mutation { createApiKey(input: { product: "${uniqueTag()}", env: "dev", kind: SECRET, name: "k" }) { key } }`,
    });
    expect(noProduct.code).toBe('NOT_FOUND');
  });

  it('revoking an unknown key is NOT_FOUND', async ({ t }) => {
    const r = await failure(t.app, {
      key: t.adminKey,
      query: `mutation { revokeApiKey(id: "00000000-0000-4000-8000-000000000000") { id } }`,
    });
    expect(r.code).toBe('NOT_FOUND');
  });
});

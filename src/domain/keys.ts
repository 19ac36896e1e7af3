import { and, asc, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { adminKeys, apiKeys, products, type ApiKeyRow, type ProductRow } from '../db/schema.js';
import { constantTimeEqual, hashSecret, randomSecret } from '../tokens/secrets.js';
import type { Caller, Scope } from './callers.js';
import {
  ServiceError,
  apiKeyNotFound,
  badInput,
  environmentNotFound,
  productNotFound,
} from './errors.js';
import { ENV_PATTERN, MAX_NAME_CHARS, UUID_PATTERN, checkTag, checkText } from './validation.js';

/** Bytes of randomness in every key: 256 bits (the contract asks for at least 192). */
const KEY_RANDOM_BYTES = 32;
/** How many random characters of a key are kept to tell keys apart (36 of its 256 bits). */
const PREFIX_RANDOM_CHARS = 6;
const MAX_BEARER_LENGTH = 256;

/**
 * A secret key (`sk_<env>_...`) manages sessions from a backend; a publishable key (`pk_<env>_...`)
 * is for browsers, and the session management API refuses it.
 */
export type ApiKeyKind = 'secret' | 'publishable';

/** Where the admin key comes from: the operator's `ADMIN_KEY`, or keys the server generated. */
export interface AdminKeySource {
  /** SHA-256 of `ADMIN_KEY` when it is set; then stored admin keys are ignored. */
  readonly configuredHash: string | undefined;
}

/** Makes a new admin key (`ak_...`). */
export function generateAdminKey(): string {
  return `ak_${randomSecret(KEY_RANDOM_BYTES)}`;
}

/**
 * Stores the hash of a newly generated admin key when there is none yet, and returns the key so
 * it can be shown once. Returns undefined when an admin key already exists.
 */
export async function ensureGeneratedAdminKey(db: Database): Promise<string | undefined> {
  const existing = await db.select({ id: adminKeys.id }).from(adminKeys).limit(1);
  if (existing.length > 0) return undefined;
  const key = generateAdminKey();
  await db.insert(adminKeys).values({ keyHash: hashSecret(key) });
  return key;
}

/**
 * Establishes the caller from a bearer key. A missing key is anonymous; a key that matches
 * nothing, or a revoked one, is unknown. Lookups go by hash, and the hash is compared again in
 * constant time, so the key never reaches the database nor a timing side channel.
 */
export async function authenticate(
  db: Database,
  admin: AdminKeySource,
  bearer: string | undefined,
): Promise<Caller> {
  if (bearer === undefined || bearer === '') return { kind: 'anonymous' };
  if (bearer.length > MAX_BEARER_LENGTH) return { kind: 'unknown-key' };
  const hash = hashSecret(bearer);
  if (bearer.startsWith('ak_')) {
    if (admin.configuredHash !== undefined) {
      return constantTimeEqual(hash, admin.configuredHash)
        ? { kind: 'admin' }
        : { kind: 'unknown-key' };
    }
    const rows = await db
      .select({ keyHash: adminKeys.keyHash })
      .from(adminKeys)
      .where(eq(adminKeys.keyHash, hash));
    const row = rows[0];
    return row && constantTimeEqual(row.keyHash, hash)
      ? { kind: 'admin' }
      : { kind: 'unknown-key' };
  }
  if (!bearer.startsWith('sk_') && !bearer.startsWith('pk_')) return { kind: 'unknown-key' };
  const rows = await db
    .select({
      id: apiKeys.id,
      keyHash: apiKeys.keyHash,
      kind: apiKeys.kind,
      env: apiKeys.env,
      productId: apiKeys.productId,
      productTag: products.tag,
    })
    .from(apiKeys)
    .innerJoin(products, eq(products.id, apiKeys.productId))
    .where(and(eq(apiKeys.keyHash, hash), isNull(apiKeys.revokedAt)));
  const row = rows[0];
  if (!row || !constantTimeEqual(row.keyHash, hash)) return { kind: 'unknown-key' };
  return {
    kind: row.kind,
    keyId: row.id,
    productId: row.productId,
    productTag: row.productTag,
    env: row.env,
  };
}

/**
 * The product and env an operation acts on. A secret key acts in its own; naming another is
 * FORBIDDEN. An admin key must name both.
 */
export async function resolveScope(
  db: Database,
  caller: Caller,
  requested: { product?: string | null; env?: string | null },
): Promise<Scope> {
  if (caller.kind === 'secret') {
    if (
      (requested.product != null && requested.product !== caller.productTag) ||
      (requested.env != null && requested.env !== caller.env)
    ) {
      throw new ServiceError(
        'FORBIDDEN',
        'This key belongs to another product or environment than the one named.',
      );
    }
    return { productId: caller.productId, productTag: caller.productTag, env: caller.env };
  }
  if (caller.kind !== 'admin') {
    throw new ServiceError('FORBIDDEN', 'This operation needs a secret key or the admin key.');
  }
  if (requested.product == null) {
    throw badInput('product', 'required with the admin key: name the product to act on');
  }
  if (requested.env == null) {
    throw badInput('env', 'required with the admin key: name the environment to act on');
  }
  const product = await findProductByTag(db, requested.product);
  if (!product) throw productNotFound(requested.product);
  if (!product.envs.includes(requested.env)) {
    throw environmentNotFound(product.tag, requested.env);
  }
  return { productId: product.id, productTag: product.tag, env: requested.env };
}

/**
 * The product with this tag, or undefined. A tag longer than any tag can be (64 characters) is not
 * looked up.
 */
export async function findProductByTag(db: Database, tag: string): Promise<ProductRow | undefined> {
  if (tag.length > 64) return undefined;
  const rows = await db.select().from(products).where(eq(products.tag, tag));
  return rows[0];
}

/** The environments a product gets when its creation names none. */
export const DEFAULT_ENVS = ['dev', 'snd', 'prd'] as const;

/**
 * A new product as the admin key gives it, unchecked: {@link createProduct} checks the tag, the
 * name and the environments (1 to {@link MAX_ENVS_PER_PRODUCT}, no duplicate; absent:
 * {@link DEFAULT_ENVS}).
 */
export interface CreateProductInput {
  readonly tag: string;
  readonly name: string;
  readonly envs?: readonly string[] | null;
}

/** The most environments a product may have. */
export const MAX_ENVS_PER_PRODUCT = 10;

/** Creates a product with its environments (by default dev, snd and prd). */
export async function createProduct(db: Database, input: CreateProductInput): Promise<ProductRow> {
  const tag = checkTag('input.tag', input.tag);
  const name = checkText('input.name', input.name, MAX_NAME_CHARS);
  const envs = [...(input.envs ?? DEFAULT_ENVS)];
  if (envs.length === 0 || envs.length > MAX_ENVS_PER_PRODUCT) {
    throw badInput('input.envs', `expected 1 to ${MAX_ENVS_PER_PRODUCT} environments`);
  }
  envs.forEach((env, i) => {
    if (!ENV_PATTERN.test(env)) {
      throw badInput(
        `input.envs[${i}]`,
        'expected 1 to 16 characters: lower-case letters, digits or "-", starting with a letter',
      );
    }
  });
  if (new Set(envs).size !== envs.length)
    throw badInput('input.envs', 'names an environment twice');
  const inserted = await db
    .insert(products)
    .values({ tag, name, envs })
    .onConflictDoNothing({ target: products.tag })
    .returning();
  const row = inserted[0];
  if (!row) throw new ServiceError('CONFLICT', `A product with tag "${tag}" already exists.`);
  return row;
}

/** Every product, oldest first, in one list (not paged): the admin key's `products` query. */
export async function listProducts(db: Database): Promise<ProductRow[]> {
  return db.select().from(products).orderBy(asc(products.createdAt), asc(products.id));
}

/** The API keys of many products in one query, for the batched `Product.apiKeys` field. */
export async function listApiKeysOfProducts(
  db: Database,
  productIds: readonly string[],
): Promise<ApiKeyRow[]> {
  if (productIds.length === 0) return [];
  return db
    .select()
    .from(apiKeys)
    .where(inArray(apiKeys.productId, [...productIds]))
    .orderBy(asc(apiKeys.createdAt), asc(apiKeys.id));
}

/**
 * A new key as the admin key asks for it: the product's tag, one of its environments, the kind, and
 * a name to tell keys apart.
 */
export interface CreateApiKeyInput {
  readonly product: string;
  readonly env: string;
  readonly kind: ApiKeyKind;
  readonly name: string;
}

/** Creates a key and returns it with its plaintext, which is never stored nor shown again. */
export async function createApiKey(
  db: Database,
  input: CreateApiKeyInput,
): Promise<{ key: string; apiKey: ApiKeyRow }> {
  const name = checkText('input.name', input.name, MAX_NAME_CHARS);
  const product = await findProductByTag(db, input.product);
  if (!product) throw productNotFound(input.product);
  if (!product.envs.includes(input.env)) {
    throw badInput(
      'input.env',
      `product "${product.tag}" has no environment "${input.env}" (it has ${product.envs.join(', ')})`,
    );
  }
  const key = `${input.kind === 'secret' ? 'sk' : 'pk'}_${input.env}_${randomSecret(KEY_RANDOM_BYTES)}`;
  const inserted = await db
    .insert(apiKeys)
    .values({
      productId: product.id,
      env: input.env,
      kind: input.kind,
      name,
      prefix: key.slice(0, `sk_${input.env}_`.length + PREFIX_RANDOM_CHARS),
      keyHash: hashSecret(key),
    })
    .returning();
  return { key, apiKey: inserted[0]! };
}

/** The NOTIFY channel that tells every instance a key was revoked (payload: the key's id). */
export const KEY_REVOKED_CHANNEL = 'session_service_key_revoked';

/**
 * Revokes a key: its next request fails, and every instance ends the subscriptions it opened.
 * Revoking a revoked key changes nothing.
 */
export async function revokeApiKey(db: Database, id: string): Promise<ApiKeyRow> {
  if (!UUID_PATTERN.test(id)) {
    throw apiKeyNotFound();
  }
  return db.transaction(async (tx) => {
    const updated = await tx
      .update(apiKeys)
      .set({ revokedAt: sql`now()` })
      .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
      .returning();
    if (updated[0]) {
      await tx.execute(sql`select pg_notify(${KEY_REVOKED_CHANNEL}, ${updated[0].id})`);
      return updated[0];
    }
    const existing = await tx.select().from(apiKeys).where(eq(apiKeys.id, id));
    if (!existing[0]) throw apiKeyNotFound();
    return existing[0];
  });
}

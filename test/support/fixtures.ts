import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { TestApp } from './app.js';
import { CREATE_API_KEY, CREATE_CONFIG, CREATE_PRODUCT, START } from './documents.js';
import { ok, type VariablesOf } from './graphql.js';

// The common documents live in ./documents.ts; these names stay importable from here.
export { REFRESH, REVOKE, VERIFY } from './documents.js';

export const uniqueTag = (prefix = 't') => `${prefix}-${randomBytes(6).toString('hex')}`;

export interface TestProduct {
  tag: string;
  /** Secret keys by env. */
  secret: { dev: string; prd: string };
  publishable: string;
}

/** A fresh product with envs dev and prd, a secret key for each and a publishable dev key. */
export async function newProduct(t: TestApp): Promise<TestProduct> {
  const tag = uniqueTag('p');
  await ok(t.app, {
    key: t.adminKey,
    query: CREATE_PRODUCT,
    variables: { input: { tag, name: `Product ${tag}`, envs: ['dev', 'prd'] } },
  });
  const key = async (env: string, kind: 'SECRET' | 'PUBLISHABLE') => {
    const data = await ok(t.app, {
      key: t.adminKey,
      query: CREATE_API_KEY,
      variables: { input: { product: tag, env, kind, name: `${kind} ${env}` } },
    });
    return data.createApiKey.key;
  };
  return {
    tag,
    secret: { dev: await key('dev', 'SECRET'), prd: await key('prd', 'SECRET') },
    publishable: await key('dev', 'PUBLISHABLE'),
  };
}

/** The config of the Ductape docs: a userId and nested details, selected by userId. */
export const ductapeConfig = (tag = 'user-session', overrides: Record<string, unknown> = {}) => ({
  name: 'User session',
  tag,
  description: 'Signed-in users',
  schema: {
    userId: '191010192-19198829819',
    details: { username: 'ductape-user', email: 'santos@ductape.app' },
  },
  selector: '$Session{userId}',
  expiry: 7,
  period: 'HOURS',
  ...overrides,
});

export async function newConfig(
  t: TestApp,
  key: string,
  overrides: Record<string, unknown> = {},
): Promise<string> {
  const tag = uniqueTag('s');
  await ok(t.app, {
    key,
    query: CREATE_CONFIG,
    // The overrides are the caller's (any config field), so the input is typed here.
    variables: { input: ductapeConfig(tag, overrides) as ConfigInput },
  });
  return tag;
}

type ConfigInput = VariablesOf<typeof CREATE_CONFIG>['input'];

export interface Started {
  token: string;
  refreshToken: string;
  sessionId: string;
  expiresAt: string;
}

export async function start(
  t: TestApp,
  key: string,
  tag: string,
  data: Record<string, unknown> = {
    userId: 'user-123',
    details: { username: 'ada', email: 'ada@example.com' },
  },
  extra: Record<string, unknown> = {},
): Promise<Started> {
  const result = await ok(t.app, {
    key,
    query: START,
    variables: { input: { tag, data, ...extra } },
  });
  return result.startSession;
}

/**
 * The rows of `t.database.db.execute(sql\`...\`)`, whichever driver ran it: postgres.js returns
 * the rows as an array, PGlite returns `{ rows }`.
 */
export function rowsOf<T = Record<string, unknown>>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  const rows = (result as { rows?: unknown } | null | undefined)?.rows;
  if (Array.isArray(rows)) return rows as T[];
  throw new Error(`not a query result: ${JSON.stringify(result)?.slice(0, 200)}`);
}

/** The types of a session's event rows, in commit order, read straight from `session_events`. */
export async function eventTypesOf(t: TestApp, sessionId: string): Promise<string[]> {
  const result = await t.database.db.execute(
    sql`select type from session_events where session_id = ${sessionId} order by seq`,
  );
  return rowsOf<{ type: string }>(result).map((r) => r.type);
}

/** The database ids behind a product tag and one of its session config tags. */
export async function configIdsOf(
  t: TestApp,
  productTag: string,
  configTag: string,
): Promise<{ productId: string; configId: string }> {
  const rows = rowsOf<{ product_id: string; config_id: string }>(
    await t.database.db.execute(
      sql`select p.id as product_id, c.id as config_id
          from session_configs c join products p on p.id = c.product_id
          where p.tag = ${productTag} and c.tag = ${configTag} and c.deleted_at is null`,
    ),
  );
  if (!rows[0]) throw new Error(`no config ${configTag} in product ${productTag}`);
  return { productId: rows[0].product_id, configId: rows[0].config_id };
}

/**
 * A session's row straight from `sessions` (column names as in SQL, timestamps as Postgres
 * prints them, to the microsecond), or undefined once it is deleted. Two reads are equal only
 * if nothing in the row changed.
 */
export async function sessionRowOf(
  t: TestApp,
  sessionId: string,
): Promise<Record<string, unknown> | undefined> {
  const rows = rowsOf<{ row: string }>(
    await t.database.db.execute(
      sql`select row_to_json(s)::text as row from sessions s where s.id = ${sessionId}`,
    ),
  );
  return rows[0] ? (JSON.parse(rows[0].row) as Record<string, unknown>) : undefined;
}

/**
 * A product-wide config (every env of the product uses it; only the admin key changes or
 * deletes it), created by the admin key with `shared: true`.
 */
export async function newSharedConfig(
  t: TestApp,
  productTag: string,
  overrides: Record<string, unknown> = {},
): Promise<string> {
  const tag = uniqueTag('s');
  await ok(t.app, {
    key: t.adminKey,
    query: `mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input, product: "${productTag}", env: "dev") { tag } }`,
    variables: { input: { ...ductapeConfig(tag, overrides), shared: true } },
  });
  return tag;
}

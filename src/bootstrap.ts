import { hkdfSync, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from './config.js';
import { eq } from 'drizzle-orm';
import type { Database } from './db/client.js';
import { products, secretFingerprints } from './db/schema.js';
import { createSessionConfig } from './domain/configs.js';
import {
  createApiKey,
  createProduct,
  ensureGeneratedAdminKey,
  findProductByTag,
} from './domain/keys.js';
import { hashSecret, randomSecret } from './tokens/secrets.js';
import type { AdminKeySource } from './domain/keys.js';

/**
 * The master secret: `SESSION_SECRET` when set; otherwise one generated on first start and kept
 * in `DATA_DIR` (never in production, where the config demands it).
 */
export function resolveSessionSecret(config: Config): { secret: string; generated: boolean } {
  if (config.sessionSecret) return { secret: config.sessionSecret, generated: false };
  const file = path.join(config.dataDir, 'session-secret');
  if (existsSync(file)) return { secret: readFileSync(file, 'utf8').trim(), generated: false };
  mkdirSync(config.dataDir, { recursive: true });
  const secret = randomSecret(48);
  writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return { secret, generated: true };
}

/**
 * A fingerprint of the master secret: HKDF-SHA256 under a label used for nothing else, so it
 * can be stored and compared but gives nothing usable about the secret or the keys derived
 * from it (they use other labels; a plain hash of the secret is used nowhere).
 */
export function secretFingerprint(secret: string): string {
  return Buffer.from(
    hkdfSync('sha256', secret, 'session-service', 'secret-fingerprint\u0000v1', 32),
  ).toString('base64url');
}

/** Thrown when this instance's secret is not the one its database was first started with. */
export class SecretMismatchError extends Error {
  constructor(generated: boolean, dataDir: string) {
    super(
      [
        'SESSION_SECRET does not match the secret this database was first started with:',
        'tokens minted by the other instances on this database would be TOKEN_INVALID here,',
        'and theirs here. Refusing to start.',
        generated
          ? `SESSION_SECRET is unset, so this instance uses the secret it generated in ${path.join(dataDir, 'session-secret')}.`
          : 'SESSION_SECRET is set, to another value than on the first instance.',
        'Fix: set the same SESSION_SECRET on every instance that shares this database.',
        'To change the secret deliberately (every token and stored session data become',
        'unusable): stop every instance, run `DELETE FROM secret_fingerprints;` on the',
        'database, and start them with the new SESSION_SECRET (docs/operations/security.md).',
      ].join('\n'),
    );
    this.name = 'SecretMismatchError';
  }
}

/**
 * Records the secret's fingerprint on the first start on this database, or checks it against
 * the recorded one. Instances starting together race on the insert; the database keeps one
 * and every instance compares with that one. Throws {@link SecretMismatchError} on a mismatch.
 */
export async function checkSecretFingerprint(
  db: Database,
  secret: string,
  context: { generated: boolean; dataDir: string },
): Promise<'recorded' | 'matched'> {
  const mine = secretFingerprint(secret);
  let stored: { fingerprint: string } | undefined;
  try {
    const inserted = await db
      .insert(secretFingerprints)
      .values({ name: 'session-secret', fingerprint: mine })
      .onConflictDoNothing()
      .returning({ name: secretFingerprints.name });
    if (inserted.length > 0) return 'recorded';
    [stored] = await db
      .select({ fingerprint: secretFingerprints.fingerprint })
      .from(secretFingerprints)
      .where(eq(secretFingerprints.name, 'session-secret'));
  } catch (error) {
    // The driver's message carries the query's parameters: never let it reach the output.
    throw new Error('could not record or check the session secret fingerprint in the database', {
      cause: error,
    });
  }
  const a = Buffer.from(mine);
  const b = Buffer.from(stored?.fingerprint ?? '');
  if (a.length === b.length && timingSafeEqual(a, b)) return 'matched';
  throw new SecretMismatchError(context.generated, context.dataDir);
}

/**
 * What `authenticate` checks an admin key against: the hash of `ADMIN_KEY` when the configuration
 * sets it (the keys the server generated are then refused); otherwise none, and the generated
 * keys stored in the database decide. The key itself is not kept.
 */
export function adminKeySource(config: Config): AdminKeySource {
  return { configuredHash: config.adminKey ? hashSecret(config.adminKey) : undefined };
}

/** The session config the demo product ships with: the tag of Ductape's examples. */
export const DEMO_SESSION_TAG = 'user-session';

/** What a first start created and must show once, or what the operator must do next. */
export interface FirstStart {
  readonly adminKey?: string;
  readonly demoSecretKey?: string;
  /**
   * In production on a Postgres database with no product yet: say how to make a product and a
   * key (no demo is made there).
   */
  readonly showProductCommands?: boolean;
}

/**
 * First-start setup: an admin key when `ADMIN_KEY` is unset and none was generated before, and a
 * `demo` product with a `dev` env, a secret key to try things with and a `user-session` config:
 * on the embedded database when it has no `demo` product; on Postgres when the database has no
 * product at all, outside production (in production the banner says how to make one instead).
 *
 * Instances starting together on one database must run it one at a time (main.ts runs it under
 * `DatabaseHandle.exclusive`), so that each key is made, and shown, once. The demo is made in one
 * transaction: a start that fails halfway leaves none, and the next start makes it.
 */
export async function firstStart(db: Database, config: Config): Promise<FirstStart> {
  const adminKey = config.adminKey ? undefined : await ensureGeneratedAdminKey(db);
  let makeDemo: boolean;
  let showProductCommands = false;
  if (!config.databaseUrl) {
    makeDemo = !(await findProductByTag(db, 'demo'));
  } else {
    const empty = (await db.select({ id: products.id }).from(products).limit(1)).length === 0;
    makeDemo = empty && config.nodeEnv !== 'production';
    showProductCommands = empty && config.nodeEnv === 'production';
  }
  const demoSecretKey = makeDemo ? await makeDemoProduct(db, config) : undefined;
  return { adminKey, demoSecretKey, showProductCommands };
}

/** The `demo` product, its `user-session` config and a dev secret key, whose key it returns. */
async function makeDemoProduct(db: Database, config: Config): Promise<string> {
  return db.transaction(async (transaction) => {
    const tx = transaction as unknown as Database;
    const demo = await createProduct(tx, { tag: 'demo', name: 'Demo', envs: ['dev'] });
    // The session type of Ductape's examples, so that GraphiQL's StartSession tab works at once.
    await createSessionConfig(
      tx,
      { productId: demo.id, productTag: demo.tag, env: 'dev' },
      {
        name: 'User session',
        tag: DEMO_SESSION_TAG,
        description: 'Signed-in users of the demo (created on first start)',
        schema: { userId: 'user-123', details: { username: 'ada', email: 'ada@example.com' } },
        selector: '$Session{userId}',
        expiry: 1,
        period: 'HOURS',
      },
      // Owned by the demo's dev env, as a dev secret key would create it.
      { admin: false, maxConfigs: config.maxConfigsPerProduct },
    );
    const created = await createApiKey(tx, {
      product: 'demo',
      env: 'dev',
      kind: 'secret',
      name: 'demo key (created on first start)',
    });
    return created.key;
  });
}

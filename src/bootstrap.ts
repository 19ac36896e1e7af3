import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
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

export function adminKeySource(config: Config): AdminKeySource {
  return { configuredHash: config.adminKey ? hashSecret(config.adminKey) : undefined };
}

/** The session config the demo product ships with: the tag of Ductape's examples. */
export const DEMO_SESSION_TAG = 'user-session';

/** What a first start created and must show once. */
export interface FirstStart {
  readonly adminKey?: string;
  readonly demoSecretKey?: string;
}

/**
 * First-start setup: an admin key when `ADMIN_KEY` is unset and none was generated before, and,
 * on the embedded database, a `demo` product with a `dev` env, a secret key to try things with and
 * a `user-session` config.
 */
export async function firstStart(db: Database, config: Config): Promise<FirstStart> {
  const adminKey = config.adminKey ? undefined : await ensureGeneratedAdminKey(db);
  let demoSecretKey: string | undefined;
  if (!config.databaseUrl && !(await findProductByTag(db, 'demo'))) {
    const demo = await createProduct(db, { tag: 'demo', name: 'Demo', envs: ['dev'] });
    // The session type of Ductape's examples, so that GraphiQL's StartSession tab works at once.
    await createSessionConfig(
      db,
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
    const created = await createApiKey(db, {
      product: 'demo',
      env: 'dev',
      kind: 'secret',
      name: 'demo key (created on first start)',
    });
    demoSecretKey = created.key;
  }
  return { adminKey, demoSecretKey };
}

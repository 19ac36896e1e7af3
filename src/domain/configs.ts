import { and, asc, count, desc, eq, inArray, isNotNull, isNull, or, sql } from 'drizzle-orm';
import { type Database, type Transaction } from '../db/client.js';
import { UNIQUE_VIOLATION, hasErrorCode } from '../db/errors.js';
import { products, sessionConfigs, sessions, type SessionConfigRow } from '../db/schema.js';
import type { Scope } from './callers.js';
import { JSON_LIMITS, checkJsonObject } from './data-schema.js';
import { ServiceError, badInput, configNotFound, forbidden } from './errors.js';
import { isLive, liveSessionCounts } from './liveness.js';
import { revokeSessionsWhere } from './revocation.js';
import { parseSelector, pickPath } from './selector.js';
import {
  MAX_DESCRIPTION_CHARS,
  MAX_NAME_CHARS,
  TAG_PATTERN,
  checkTag,
  checkText,
} from './validation.js';

/** The live config of the product that holds the tag (whichever env owns it). */
export const holdsTag = (scope: Scope, tag: string) =>
  and(
    eq(sessionConfigs.productId, scope.productId),
    eq(sessionConfigs.tag, tag),
    isNull(sessionConfigs.deletedAt),
  );

/**
 * The unit of a config's `expiry`: `SECONDS` to `WEEKS` ({@link PERIOD_SECONDS} gives each in
 * seconds).
 */
export type ExpiryPeriod = SessionConfigRow['period'];

/** Seconds in one unit of each period. */
export const PERIOD_SECONDS: Record<ExpiryPeriod, number> = {
  SECONDS: 1,
  MINUTES: 60,
  HOURS: 3_600,
  DAYS: 86_400,
  WEEKS: 604_800,
};

/** Bounds on lifetimes, in seconds. */
export const LIFETIME_LIMITS = {
  minTokenSeconds: 10,
  maxTokenSeconds: 365 * 86_400,
  defaultRefreshSeconds: 30 * 86_400,
  maxRefreshSeconds: 400 * 86_400,
} as const;

/**
 * The refresh token lifetime a config gives, in seconds: the one set, or by default 30 days
 * (the token lifetime if that is longer).
 */
export function refreshLifetimeSeconds(
  config: Pick<SessionConfigRow, 'expiry' | 'period' | 'refreshExpirySeconds'>,
): number {
  return (
    config.refreshExpirySeconds ??
    Math.max(LIFETIME_LIMITS.defaultRefreshSeconds, tokenLifetimeSeconds(config))
  );
}

/** The session token lifetime a config gives, in seconds. */
export function tokenLifetimeSeconds(config: Pick<SessionConfigRow, 'expiry' | 'period'>): number {
  return config.expiry * PERIOD_SECONDS[config.period];
}

/**
 * A new session config as the caller gives it, unchecked: the create operation checks each part
 * (tag, texts, schema, selector, lifetimes, limits) and refuses the first bad one as BAD_USER_INPUT
 * on its field. `refreshExpiresIn` and `idleTimeout` are in seconds.
 */
export interface SessionConfigInput {
  readonly name: string;
  readonly tag: string;
  readonly description: string;
  readonly schema?: unknown;
  readonly selector: string;
  readonly expiry: number;
  readonly period: ExpiryPeriod;
  readonly refreshExpiresIn?: number | null;
  readonly idleTimeout?: number | null;
  readonly maxSessionsPerIdentifier?: number | null;
  /** Admin key only: a product-wide config (env null) instead of one owned by the scope's env. */
  readonly shared?: boolean | null;
}

/** The fields to change; null or absent leaves a field as it is. The owner never changes. */
export type SessionConfigPatch = {
  readonly [K in Exclude<keyof SessionConfigInput, 'shared'>]?: SessionConfigInput[K] | null;
};

/** Who asks for a change: only the admin key creates, changes or deletes product-wide configs. */
export interface ConfigActor {
  readonly admin: boolean;
}

/**
 * Who may use a config: its own env, or every env for a product-wide one. A config of another
 * env is FORBIDDEN, and the answer says nothing about it but that.
 */
export function checkUsable(config: SessionConfigRow, scope: Scope): SessionConfigRow {
  if (config.env !== null && config.env !== scope.env) {
    throw forbidden(
      `The session config "${config.tag}" belongs to another environment of this product; a key of this environment cannot use it.`,
    );
  }
  return config;
}

/** Who may change or delete a config: its env's keys; for a product-wide one, the admin key. */
function checkWritable(config: SessionConfigRow, scope: Scope, actor: ConfigActor): void {
  checkUsable(config, scope);
  if (config.env === null && !actor.admin) {
    throw forbidden(
      `The session config "${config.tag}" is product-wide (shared by every environment): change or delete it with the admin key.`,
    );
  }
}

/** The config's row, locked until the transaction ends (FOR UPDATE: starts on it wait). */
async function lockSessionConfig(
  tx: Transaction,
  scope: Scope,
  tag: string,
): Promise<SessionConfigRow> {
  checkTag('tag', tag);
  const rows = await tx.select().from(sessionConfigs).where(holdsTag(scope, tag)).for('update');
  if (!rows[0]) throw configNotFound(tag);
  return rows[0];
}

/**
 * A whole config as {@link checkConfig} checks it, for create and update alike (on update, the
 * current config with the patch applied). Lifetimes are in seconds, except `expiry`, which counts
 * `period`s.
 */
export interface CheckedConfig {
  name: string;
  tag: string;
  description: string;
  schema: Record<string, unknown>;
  selector: string;
  expiry: number;
  period: ExpiryPeriod;
  /** Null: the default, 30 days or the token lifetime if longer, following the lifetime. */
  refreshExpirySeconds: number | null;
  idleTimeoutSeconds: number | null;
  maxSessionsPerIdentifier: number | null;
}

/** Bounds on the optional per-config limits. */
export const CONFIG_LIMITS = {
  minIdleSeconds: 10,
  maxSessionsPerIdentifier: 1_000,
} as const;

/** Every rule a whole config must satisfy, checked in one place for create and update alike. */
export function checkConfig(input: CheckedConfig): CheckedConfig {
  const tag = checkTag('input.tag', input.tag);
  const name = checkText('input.name', input.name, MAX_NAME_CHARS);
  const description = checkText(
    'input.description',
    input.description,
    MAX_DESCRIPTION_CHARS,
    true,
  );
  // Re-parsed: GraphQL hands over objects without a prototype, which the driver cannot bind.
  const schema = JSON.parse(
    checkJsonObject('input.schema', input.schema, JSON_LIMITS.schemaBytes),
  ) as Record<string, unknown>;
  const path = parseSelector('input.selector', input.selector);
  const picked = pickPath(schema, path);
  if (!['string', 'number', 'boolean'].includes(typeof picked)) {
    throw badInput(
      'input.selector',
      `${input.selector} must name a string, number or boolean key of the schema`,
    );
  }
  if (!Number.isInteger(input.expiry) || input.expiry <= 0) {
    throw badInput('input.expiry', 'expected a positive whole number');
  }
  if (!(input.period in PERIOD_SECONDS)) {
    throw badInput('input.period', 'expected one of SECONDS, MINUTES, HOURS, DAYS, WEEKS');
  }
  const lifetime = input.expiry * PERIOD_SECONDS[input.period];
  if (lifetime < LIFETIME_LIMITS.minTokenSeconds || lifetime > LIFETIME_LIMITS.maxTokenSeconds) {
    throw badInput(
      'input.expiry',
      `expiry and period give ${lifetime} seconds; a session token lives from ${LIFETIME_LIMITS.minTokenSeconds} seconds to 365 days`,
    );
  }
  const refresh = input.refreshExpirySeconds;
  if (
    refresh !== null &&
    (!Number.isInteger(refresh) || refresh > LIFETIME_LIMITS.maxRefreshSeconds)
  ) {
    throw badInput('input.refreshExpiresIn', 'expected whole seconds, at most 400 days');
  }
  if (refresh !== null && refresh < lifetime) {
    throw badInput(
      'input.refreshExpiresIn',
      `the refresh token (${refresh} s) must live at least as long as the session token (${lifetime} s)`,
    );
  }
  const idle = input.idleTimeoutSeconds;
  if (
    idle !== null &&
    (!Number.isInteger(idle) ||
      idle < CONFIG_LIMITS.minIdleSeconds ||
      idle > LIFETIME_LIMITS.maxRefreshSeconds)
  ) {
    throw badInput(
      'input.idleTimeout',
      `expected whole seconds from ${CONFIG_LIMITS.minIdleSeconds} to 400 days, or null for none`,
    );
  }
  const cap = input.maxSessionsPerIdentifier;
  if (
    cap !== null &&
    (!Number.isInteger(cap) || cap < 1 || cap > CONFIG_LIMITS.maxSessionsPerIdentifier)
  ) {
    throw badInput(
      'input.maxSessionsPerIdentifier',
      `expected a whole number from 1 to ${CONFIG_LIMITS.maxSessionsPerIdentifier}, or null for no cap`,
    );
  }
  return {
    tag,
    name,
    description,
    schema,
    selector: input.selector,
    expiry: input.expiry,
    period: input.period,
    refreshExpirySeconds: refresh,
    idleTimeoutSeconds: idle,
    maxSessionsPerIdentifier: cap,
  };
}

/**
 * Creates a session config, owned by the scope's env (or product-wide: `shared`, admin key only).
 * CONFLICT when the product already has one with that tag (whatever its owner); LIMIT_EXCEEDED
 * when the product already has `maxConfigs` live configs. Creates of one product queue on its
 * row, so concurrent creates never pass the cap.
 */
export async function createSessionConfig(
  db: Database,
  scope: Scope,
  input: SessionConfigInput,
  options: ConfigActor & { readonly maxConfigs: number },
): Promise<SessionConfigRow> {
  if (input.shared && !options.admin) {
    throw forbidden('Only the admin key creates product-wide (shared) session configs.');
  }
  const checked = checkConfig({
    ...input,
    schema: input.schema as Record<string, unknown>,
    refreshExpirySeconds: input.refreshExpiresIn ?? null,
    idleTimeoutSeconds: input.idleTimeout ?? null,
    maxSessionsPerIdentifier: input.maxSessionsPerIdentifier ?? null,
  });
  return db.transaction(async (tx) => {
    // FOR NO KEY UPDATE: serialises config creates of the product, never its starts (whose
    // foreign keys take KEY SHARE on the same row).
    await tx
      .select({ id: products.id })
      .from(products)
      .where(eq(products.id, scope.productId))
      .for('no key update');
    const live = await tx
      .select({ n: count() })
      .from(sessionConfigs)
      .where(and(eq(sessionConfigs.productId, scope.productId), isNull(sessionConfigs.deletedAt)));
    if (Number(live[0]?.n ?? 0) >= options.maxConfigs) {
      throw new ServiceError(
        'LIMIT_EXCEEDED',
        `This product already has ${options.maxConfigs} session configs, the most this server allows (MAX_CONFIGS_PER_PRODUCT); delete one first.`,
      );
    }
    const inserted = await tx
      .insert(sessionConfigs)
      .values({ ...checked, productId: scope.productId, env: input.shared ? null : scope.env })
      .onConflictDoNothing()
      .returning();
    if (!inserted[0]) throw conflict(checked.tag);
    return inserted[0];
  });
}

const conflict = (tag: string) =>
  new ServiceError(
    'CONFLICT',
    `A session config with tag "${tag}" already exists in this product.`,
  );

/** A limit as an update sets it: left out or null keeps the current one, an explicit 0 removes it. */
function patchedLimit(patch: number | null | undefined, current: number | null): number | null {
  if (patch == null) return current;
  return patch === 0 ? null : patch;
}

/**
 * Merges the given fields into a config (Ductape's update); fields left out keep their value.
 * A new tag is refused (CONFLICT on input.tag) while the config has a live session in any env:
 * sessions belong to their config and keep its tag, so a rename would orphan them. The config's
 * row is held FOR UPDATE while live sessions are counted, so a start cannot slip in between.
 */
export async function updateSessionConfig(
  db: Database,
  scope: Scope,
  tag: string,
  patch: SessionConfigPatch,
  actor: ConfigActor,
): Promise<SessionConfigRow> {
  return db.transaction((tx) => updateLocked(tx, scope, tag, patch, actor));
}

async function updateLocked(
  tx: Transaction,
  scope: Scope,
  tag: string,
  patch: SessionConfigPatch,
  actor: ConfigActor,
): Promise<SessionConfigRow> {
  const current = await lockSessionConfig(tx, scope, tag);
  checkWritable(current, scope, actor);
  const checked = checkConfig({
    name: patch.name ?? current.name,
    tag: patch.tag ?? current.tag,
    description: patch.description ?? current.description,
    schema: (patch.schema ?? current.schema) as Record<string, unknown>,
    selector: patch.selector ?? current.selector,
    expiry: patch.expiry ?? current.expiry,
    period: patch.period ?? current.period,
    // Left out, an explicit refresh lifetime stays (and must still fit); a default one follows.
    refreshExpirySeconds: patch.refreshExpiresIn ?? current.refreshExpirySeconds,
    idleTimeoutSeconds: patchedLimit(patch.idleTimeout, current.idleTimeoutSeconds),
    maxSessionsPerIdentifier: patchedLimit(
      patch.maxSessionsPerIdentifier,
      current.maxSessionsPerIdentifier,
    ),
  });
  if (checked.tag !== current.tag) {
    const live = await tx
      .select({ n: count() })
      .from(sessions)
      .where(and(eq(sessions.configId, current.id), isLive));
    const n = Number(live[0]?.n ?? 0);
    if (n > 0) {
      throw new ServiceError(
        'CONFLICT',
        `The session config "${current.tag}" still has ${n} live session(s), which keep its tag: it cannot be renamed while a session could still be valid. Create a new config with the new tag instead, or revoke the old sessions first (revokeAllSessions) and rename then.`,
        'input.tag',
      );
    }
  }
  try {
    const updated = await tx
      .update(sessionConfigs)
      .set({ ...checked, updatedAt: sql`now()` })
      .where(and(eq(sessionConfigs.id, current.id), isNull(sessionConfigs.deletedAt)))
      .returning();
    if (!updated[0]) throw configNotFound(tag, null);
    await notifyConfigChanged(tx, scope);
    return updated[0];
  } catch (error) {
    if (hasErrorCode(error, UNIQUE_VIOLATION)) throw conflict(checked.tag);
    throw error;
  }
}

/**
 * The NOTIFY channel that tells every instance a product's session configs changed (payload: the
 * product's id). Sent inside the transaction that renames, changes or deletes a config.
 */
export const CONFIG_CHANGED_CHANNEL = 'session_service_config_changed';

/** Tells every instance's config cache (see `SessionConfigCache`), once this commits. */
async function notifyConfigChanged(tx: Transaction, scope: Scope): Promise<void> {
  await tx.execute(sql`select pg_notify(${CONFIG_CHANGED_CHANNEL}, ${scope.productId})`);
}

/**
 * Deletes a config and revokes every session started under it: those of its env, or of every env
 * of the product for a product-wide one. Its tag is free again at once. The row is locked first
 * (FOR UPDATE), so a racing start either lands before and is revoked, or finds no config.
 */
export async function deleteSessionConfig(
  db: Database,
  scope: Scope,
  tag: string,
  actor: ConfigActor,
): Promise<void> {
  await db.transaction(async (tx) => {
    const config = await lockSessionConfig(tx, scope, tag);
    checkWritable(config, scope, actor);
    await tx
      .update(sessionConfigs)
      .set({ deletedAt: sql`now()`, updatedAt: sql`now()` })
      .where(eq(sessionConfigs.id, config.id));
    await revokeSessionsWhere(tx, eq(sessions.configId, config.id), 'config_deleted');
    await notifyConfigChanged(tx, scope);
  });
}

/** A config row as read, with the row version it was read at (its `xmin`). */
export interface VersionedConfig {
  readonly config: SessionConfigRow;
  /**
   * The row version (`xmin` as text): any change to the row (rename, delete, new lifetimes)
   * writes a new version, so a statement that requires this one acts on exactly what was read.
   */
  readonly version: string;
}

/** The live config holding the tag in the scope's product, with its row version; no cache. */
export async function readVersionedConfig(
  db: Database,
  scope: Scope,
  tag: string,
): Promise<VersionedConfig | undefined> {
  if (!TAG_PATTERN.test(tag)) return undefined;
  const rows = await db
    .select({ config: sessionConfigs, version: sql<string>`session_configs.xmin::text` })
    .from(sessionConfigs)
    .where(holdsTag(scope, tag));
  return rows[0];
}

/** The live config holding the tag in the scope's product; no cache. */
export async function findSessionConfig(
  db: Database,
  scope: Scope,
  tag: string,
): Promise<SessionConfigRow | undefined> {
  return (await readVersionedConfig(db, scope, tag))?.config;
}

/** The live config with that tag if the scope may use it; FORBIDDEN for another env's. */
export async function findUsableSessionConfig(
  db: Database,
  scope: Scope,
  tag: string,
): Promise<SessionConfigRow | undefined> {
  const config = await findSessionConfig(db, scope, tag);
  return config && checkUsable(config, scope);
}

/** The live config with that tag: NOT_FOUND without one, FORBIDDEN for another env's. */
export async function requireSessionConfig(
  db: Database,
  scope: Scope,
  tag: string,
): Promise<SessionConfigRow> {
  const config = await findUsableSessionConfig(db, scope, tag);
  if (!config) throw configNotFound(tag);
  return config;
}

/**
 * The config each tag names for the scope: the live config that holds it (whichever env owns
 * it; one read on the live-tag index), else, for the tags left, the one the scope's env (or the
 * whole product) had under that tag most recently before deleting it, whose sessions, events and
 * history stay reachable (a second read, only then). A tag missing from the answer names no
 * config of the scope.
 */
export async function readTagConfigs(
  db: Database,
  scope: Scope,
  tags: readonly string[],
): Promise<Map<string, VersionedConfig>> {
  const valid = [...new Set(tags.filter((tag) => TAG_PATTERN.test(tag)))];
  const found = new Map<string, VersionedConfig>();
  if (valid.length === 0) return found;
  const columns = { config: sessionConfigs, version: sql<string>`session_configs.xmin::text` };
  const ofProduct = (named: string[]) =>
    and(eq(sessionConfigs.productId, scope.productId), inArray(sessionConfigs.tag, named));
  const live = await db
    .select(columns)
    .from(sessionConfigs)
    .where(and(ofProduct(valid), isNull(sessionConfigs.deletedAt)));
  for (const row of live) found.set(row.config.tag, row);
  const rest = valid.filter((tag) => !found.has(tag));
  if (rest.length === 0) return found;
  const deleted = await db
    .selectDistinctOn([sessionConfigs.tag], columns)
    .from(sessionConfigs)
    .where(
      and(
        ofProduct(rest),
        isNotNull(sessionConfigs.deletedAt),
        or(isNull(sessionConfigs.env), eq(sessionConfigs.env, scope.env)),
      ),
    )
    .orderBy(sessionConfigs.tag, desc(sessionConfigs.deletedAt));
  for (const row of deleted) found.set(row.config.tag, row);
  return found;
}

/**
 * Whether an operation of the scope may name the tag, from what {@link readTagConfigs} found:
 * NOT_FOUND (`extensions.tag`) when it names no config of the scope, FORBIDDEN when its live
 * config belongs to another env. A deleted config's tag passes: its sessions stay reachable.
 */
export function checkTagConfig(
  found: VersionedConfig | undefined,
  scope: Scope,
  tag: string,
): void {
  if (!found) throw configNotFound(tag);
  if (found.config.deletedAt === null) checkUsable(found.config, scope);
}

/**
 * The check of every operation that names a tag (lists, revocations, the data operations,
 * insight, event filters; verify and refresh only once a token failed): BAD_USER_INPUT on
 * `field` for what is not a tag, then {@link checkTagConfig}. One read; see
 * `SessionConfigCache.checkAccess` for the cached form.
 */
export async function checkConfigAccess(
  db: Database,
  scope: Scope,
  tag: string,
  field = 'tag',
): Promise<void> {
  checkTag(field, tag);
  checkTagConfig((await readTagConfigs(db, scope, [tag])).get(tag), scope, tag);
}

/** The configs the scope may use: its env's and the product-wide ones, oldest first. */
export async function listSessionConfigs(db: Database, scope: Scope): Promise<SessionConfigRow[]> {
  return db
    .select()
    .from(sessionConfigs)
    .where(
      and(
        eq(sessionConfigs.productId, scope.productId),
        isNull(sessionConfigs.deletedAt),
        or(isNull(sessionConfigs.env), eq(sessionConfigs.env, scope.env)),
      ),
    )
    .orderBy(asc(sessionConfigs.createdAt), asc(sessionConfigs.id));
}

/** Configs by id (deleted ones included: old sessions still name theirs), in one query. */
export async function sessionConfigsByIds(
  db: Database,
  ids: readonly string[],
): Promise<SessionConfigRow[]> {
  if (ids.length === 0) return [];
  return db
    .select()
    .from(sessionConfigs)
    .where(inArray(sessionConfigs.id, [...ids]));
}

/**
 * Live sessions (see `isLive`) of many configs in one env, in one query:
 * the batch function behind `SessionConfig.activeSessionCount`.
 */
export function activeSessionCounts(
  db: Database,
  env: string,
  configIds: readonly string[],
): Promise<Map<string, number>> {
  return liveSessionCounts(db, sessions.configId, configIds, eq(sessions.env, env));
}

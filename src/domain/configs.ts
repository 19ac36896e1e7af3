import { and, asc, count, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { sessionConfigs, sessions, type SessionConfigRow } from '../db/schema.js';
import type { Scope } from './callers.js';
import { JSON_LIMITS, checkJsonObject } from './data-schema.js';
import { ServiceError, badInput, notFound } from './errors.js';
import { isLive } from './liveness.js';
import { revokeSessionsWhere } from './revocation.js';
import { parseSelector, pickPath } from './selector.js';
import { checkTag, checkText } from './validation.js';

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
}

/** The fields to change; null or absent leaves a field as it is. */
export type SessionConfigPatch = {
  readonly [K in keyof SessionConfigInput]?: SessionConfigInput[K] | null;
};

interface CheckedConfig {
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
function checkConfig(input: CheckedConfig): CheckedConfig {
  const tag = checkTag('input.tag', input.tag);
  const name = checkText('input.name', input.name, 200);
  const description = checkText('input.description', input.description, 2_000, true);
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

/** Creates a session config; CONFLICT when the product already has one with that tag. */
export async function createSessionConfig(
  db: Database,
  scope: Scope,
  input: SessionConfigInput,
): Promise<SessionConfigRow> {
  const checked = checkConfig({
    ...input,
    schema: input.schema as Record<string, unknown>,
    refreshExpirySeconds: input.refreshExpiresIn ?? null,
    idleTimeoutSeconds: input.idleTimeout ?? null,
    maxSessionsPerIdentifier: input.maxSessionsPerIdentifier ?? null,
  });
  const inserted = await db
    .insert(sessionConfigs)
    .values({ ...checked, productId: scope.productId })
    .onConflictDoNothing()
    .returning();
  if (!inserted[0]) throw conflict(checked.tag);
  return inserted[0];
}

const conflict = (tag: string) =>
  new ServiceError(
    'CONFLICT',
    `A session config with tag "${tag}" already exists in this product.`,
  );

/** Merges the given fields into a config (Ductape's update); fields left out keep their value. */
export async function updateSessionConfig(
  db: Database,
  scope: Scope,
  tag: string,
  patch: SessionConfigPatch,
): Promise<SessionConfigRow> {
  const current = await requireSessionConfig(db, scope, tag);
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
    // For these two, an explicit 0 removes the limit (null means "leave as it is").
    idleTimeoutSeconds:
      patch.idleTimeout === undefined || patch.idleTimeout === null
        ? current.idleTimeoutSeconds
        : patch.idleTimeout === 0
          ? null
          : patch.idleTimeout,
    maxSessionsPerIdentifier:
      patch.maxSessionsPerIdentifier === undefined || patch.maxSessionsPerIdentifier === null
        ? current.maxSessionsPerIdentifier
        : patch.maxSessionsPerIdentifier === 0
          ? null
          : patch.maxSessionsPerIdentifier,
  });
  try {
    const updated = await db
      .update(sessionConfigs)
      .set({ ...checked, updatedAt: sql`now()` })
      .where(and(eq(sessionConfigs.id, current.id), isNull(sessionConfigs.deletedAt)))
      .returning();
    if (!updated[0]) throw notFound(`No session config with tag "${tag}".`);
    return updated[0];
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(checked.tag);
    throw error;
  }
}

function isUniqueViolation(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code === '23505') return true;
  }
  return false;
}

/**
 * Deletes a config and revokes every session started under it, in every env of the product.
 * Its tag is free again at once.
 */
export async function deleteSessionConfig(db: Database, scope: Scope, tag: string): Promise<void> {
  await db.transaction(async (tx) => {
    const deleted = await tx
      .update(sessionConfigs)
      .set({ deletedAt: sql`now()`, updatedAt: sql`now()` })
      .where(
        and(
          eq(sessionConfigs.productId, scope.productId),
          eq(sessionConfigs.tag, tag),
          isNull(sessionConfigs.deletedAt),
        ),
      )
      .returning({ id: sessionConfigs.id });
    const config = deleted[0];
    if (!config) throw notFound(`No session config with tag "${tag}".`);
    await revokeSessionsWhere(tx, eq(sessions.configId, config.id), 'config_deleted');
  });
}

export async function findSessionConfig(
  db: Database,
  scope: Scope,
  tag: string,
): Promise<SessionConfigRow | undefined> {
  if (tag.length > 64) return undefined;
  const rows = await db
    .select()
    .from(sessionConfigs)
    .where(
      and(
        eq(sessionConfigs.productId, scope.productId),
        eq(sessionConfigs.tag, tag),
        isNull(sessionConfigs.deletedAt),
      ),
    );
  return rows[0];
}

export async function requireSessionConfig(
  db: Database,
  scope: Scope,
  tag: string,
): Promise<SessionConfigRow> {
  const config = await findSessionConfig(db, scope, tag);
  if (!config) throw notFound(`No session config with tag "${tag}" in this product.`);
  return config;
}

export async function listSessionConfigs(db: Database, scope: Scope): Promise<SessionConfigRow[]> {
  return db
    .select()
    .from(sessionConfigs)
    .where(and(eq(sessionConfigs.productId, scope.productId), isNull(sessionConfigs.deletedAt)))
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
export async function activeSessionCounts(
  db: Database,
  env: string,
  configIds: readonly string[],
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (configIds.length === 0) return counts;
  const rows = await db
    .select({ configId: sessions.configId, n: count() })
    .from(sessions)
    .where(and(inArray(sessions.configId, [...configIds]), eq(sessions.env, env), isLive))
    .groupBy(sessions.configId);
  for (const row of rows) counts.set(row.configId, Number(row.n));
  return counts;
}

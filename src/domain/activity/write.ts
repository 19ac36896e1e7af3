import { sql } from 'drizzle-orm';
import type { Database, Transaction } from '../../db/client.js';
import { activityLog, activityLogCounters, activityRollups } from '../../db/schema.js';
import type { Operation } from './operations.js';

/** One finished operation, as the recorder receives it. */
export interface ActivityRecord {
  readonly productId: string;
  readonly env: string;
  readonly tag: string;
  readonly operation: Operation;
  readonly status: 'SUCCESS' | 'FAILURE';
  readonly errorCode: string | null;
  readonly durationMs: number;
  readonly sessionId: string | null;
  readonly identifier: string | null;
  /** The operator acting as the user (impersonated sessions); absent otherwise. */
  readonly actor?: string | null;
  readonly at: Date;
}

/** Counts for one (scope, tag, hour, operation), added to what is stored. */
export interface RollupIncrement {
  readonly productId: string;
  readonly env: string;
  readonly tag: string;
  readonly hour: Date;
  readonly operation: string;
  readonly successes: number;
  readonly failures: number;
  readonly durationMsTotal: number;
}

/** The hour an instant falls in (UTC), the rollups' granularity. */
export function hourOf(at: Date): Date {
  const hour = new Date(at);
  hour.setUTCMinutes(0, 0, 0);
  return hour;
}

/** Writes a batch of log rows and rollup increments in one transaction. */
export async function writeActivity(
  db: Database,
  rows: readonly ActivityRecord[],
  increments: readonly RollupIncrement[],
): Promise<void> {
  if (rows.length === 0 && increments.length === 0) return;
  await db.transaction(async (tx) => {
    if (rows.length > 0) await tx.insert(activityLog).values(await numbered(tx, rows));
    await addToRollups(tx, increments);
  });
}

/**
 * Numbers log rows within their product and env, from each scope's counter (advanced once per
 * batch, scopes in a fixed order so concurrent writers never deadlock): the ids a product sees
 * count its own rows only.
 */
async function numbered(
  tx: Transaction,
  rows: readonly ActivityRecord[],
): Promise<(ActivityRecord & { seq: number })[]> {
  const scopeOf = (r: ActivityRecord) => `${r.productId}|${r.env}`;
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(scopeOf(row), (counts.get(scopeOf(row)) ?? 0) + 1);
  const next = new Map<string, number>();
  for (const scope of [...counts.keys()].sort()) {
    const [productId, env] = scope.split('|') as [string, string];
    const n = counts.get(scope)!;
    const [counter] = await tx
      .insert(activityLogCounters)
      .values({ productId, env, lastSeq: n })
      .onConflictDoUpdate({
        target: [activityLogCounters.productId, activityLogCounters.env],
        set: { lastSeq: sql`${activityLogCounters.lastSeq} + excluded.last_seq` },
      })
      .returning({ lastSeq: activityLogCounters.lastSeq });
    next.set(scope, Number(counter!.lastSeq) - n + 1);
  }
  return rows.map((row) => {
    const seq = next.get(scopeOf(row))!;
    next.set(scopeOf(row), seq + 1);
    return { ...row, seq };
  });
}

/** Adds increments to the hourly rollups (insert or add). */
export async function addToRollups(
  tx: Transaction | Database,
  increments: readonly RollupIncrement[],
): Promise<void> {
  if (increments.length === 0) return;
  // Sorted, so that concurrent writers lock rollup rows in the same order.
  const sorted = [...increments].sort((a, b) =>
    `${a.productId}${a.env}${a.tag}${a.hour.toISOString()}${a.operation}` <
    `${b.productId}${b.env}${b.tag}${b.hour.toISOString()}${b.operation}`
      ? -1
      : 1,
  );
  await tx
    .insert(activityRollups)
    .values(sorted)
    .onConflictDoUpdate({
      target: [
        activityRollups.productId,
        activityRollups.env,
        activityRollups.tag,
        activityRollups.hour,
        activityRollups.operation,
      ],
      set: {
        successes: sql`${activityRollups.successes} + excluded.successes`,
        failures: sql`${activityRollups.failures} + excluded.failures`,
        durationMsTotal: sql`${activityRollups.durationMsTotal} + excluded.duration_ms_total`,
      },
    });
}

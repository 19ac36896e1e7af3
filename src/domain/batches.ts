import { setImmediate as yieldToRequests } from 'node:timers/promises';
import { sql, type SQL } from 'drizzle-orm';
import type { PgTable } from 'drizzle-orm/pg-core';
import { type Database, rowsOf } from '../db/client.js';

/**
 * Runs `batch` (which returns how many rows it handled) until one handles fewer than `size`,
 * letting requests run between batches; returns the total.
 */
export async function inBatches(size: number, batch: () => Promise<number>): Promise<number> {
  let total = 0;
  for (;;) {
    const handled = await batch();
    total += handled;
    // Let requests run between batches: on PGlite, queries alone never yield the event loop.
    await yieldToRequests();
    if (handled < size) return total;
  }
}

/**
 * Deletes the rows of `table` (keyed by `id`) that match `where`, `size` at a time, each batch
 * taking its rows with `FOR UPDATE SKIP LOCKED` so that concurrent cleaners share the work and
 * never wait for each other; returns how many were deleted.
 */
export function deleteInBatches(
  db: Database,
  table: PgTable,
  where: SQL,
  size: number,
): Promise<number> {
  return inBatches(
    size,
    async () =>
      rowsOf<{ id: unknown }>(
        await db.execute(sql`
          delete from ${table} where id in (
            select id from ${table} where ${where}
            limit ${size}
            for update skip locked
          )
          returning id`),
      ).length,
  );
}

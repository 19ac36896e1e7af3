import { sql } from 'drizzle-orm';
import { type Database, rowsOf } from '../../db/client.js';

/** Deletes log rows and rollups older than their retention, in batches. */
export async function pruneActivity(
  db: Database,
  options: { logRetentionSeconds: number; rollupRetentionSeconds: number; batchSize: number },
): Promise<number> {
  let pruned = 0;
  for (;;) {
    const n = rowsOf<{ id: number }>(
      await db.execute(sql`
        delete from activity_log where id in (
          select id from activity_log
          where at < now() - make_interval(secs => ${options.logRetentionSeconds})
          limit ${options.batchSize})
        returning id`),
    ).length;
    pruned += n;
    if (n < options.batchSize) break;
  }
  await db.execute(
    sql`delete from activity_rollups where hour < now() - make_interval(secs => ${options.rollupRetentionSeconds})`,
  );
  return pruned;
}

import { sql } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { activityLog } from '../../db/schema.js';
import { deleteInBatches } from '../batches.js';

/** Deletes log rows and rollups older than their retention, the log in batches. */
export async function pruneActivity(
  db: Database,
  options: { logRetentionSeconds: number; rollupRetentionSeconds: number; batchSize: number },
): Promise<number> {
  const pruned = await deleteInBatches(
    db,
    activityLog,
    sql`at < now() - make_interval(secs => ${options.logRetentionSeconds})`,
    options.batchSize,
  );
  await db.execute(
    sql`delete from activity_rollups where hour < now() - make_interval(secs => ${options.rollupRetentionSeconds})`,
  );
  return pruned;
}

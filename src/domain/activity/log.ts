import { and, desc, eq, gte, lt, lte, or, type SQL } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { activityLog, type ActivityRow } from '../../db/schema.js';
import type { Scope } from '../callers.js';
import {
  counter,
  decodeInstantCursor,
  encodeCursor,
  pageOf,
  pageSize,
  type Page,
} from '../paging.js';
import type { Operation } from './operations.js';

export interface ActivityFilter {
  readonly tag?: string | null;
  readonly operation?: Operation | null;
  readonly status?: 'SUCCESS' | 'FAILURE' | null;
  readonly since?: Date | null;
  readonly until?: Date | null;
  readonly first?: number | null;
  readonly after?: string | null;
}

/** The activity log, newest first, filtered (keyset pagination on time and the scope's number). */
export async function listActivity(
  db: Database,
  scope: Scope,
  filter: ActivityFilter,
): Promise<Page<ActivityRow>> {
  const first = pageSize(filter.first);
  const matching = and(
    eq(activityLog.productId, scope.productId),
    eq(activityLog.env, scope.env),
    filter.tag != null ? eq(activityLog.tag, filter.tag) : undefined,
    filter.operation != null ? eq(activityLog.operation, filter.operation) : undefined,
    filter.status != null ? eq(activityLog.status, filter.status) : undefined,
    filter.since != null ? gte(activityLog.at, filter.since) : undefined,
    filter.until != null ? lte(activityLog.at, filter.until) : undefined,
  );
  let where: SQL | undefined = matching;
  if (filter.after != null) {
    const { at: when, key: id } = decodeInstantCursor(filter.after, /^\d{1,15}$/);
    where = and(
      matching,
      or(lt(activityLog.at, when), and(eq(activityLog.at, when), lt(activityLog.seq, Number(id)))),
    );
  }
  const rows = await db
    .select()
    .from(activityLog)
    .where(where)
    .orderBy(desc(activityLog.at), desc(activityLog.seq))
    .limit(first + 1);
  return pageOf(
    rows,
    first,
    (row) => encodeCursor([row.at.toISOString(), String(row.seq)]),
    counter(db, activityLog, matching),
  );
}

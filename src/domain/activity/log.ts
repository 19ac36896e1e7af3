import { and, eq, gte, lte } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { activityLog, type ActivityRow } from '../../db/schema.js';
import { ownedBy, type Scope } from '../callers.js';
import { instantCursor, instantKeysetPage, type InstantKeyset, type Page } from '../paging.js';
import type { Operation } from './operations.js';

/**
 * What `activityLog` narrows the log to; null or absent leaves a part open. `since` and `until` are
 * inclusive; `first` and `after` page as every list does (paging.ts).
 */
export interface ActivityFilter {
  readonly tag?: string | null;
  readonly operation?: Operation | null;
  readonly status?: 'SUCCESS' | 'FAILURE' | null;
  readonly since?: Date | null;
  readonly until?: Date | null;
  readonly first?: number | null;
  readonly after?: string | null;
}

/** The activity log, newest first: keyset on time and the scope's number of the entry. */
const ACTIVITY_KEYSET: InstantKeyset<typeof activityLog> = {
  table: activityLog,
  at: activityLog.at,
  key: activityLog.seq,
  keyPattern: /^\d{1,15}$/,
  keyValue: Number,
  cursorOf: (row) => instantCursor(row.at, row.seq),
};

/** The activity log, newest first, filtered (keyset pagination on time and the scope's number). */
export function listActivity(
  db: Database,
  scope: Scope,
  filter: ActivityFilter,
): Promise<Page<ActivityRow>> {
  const matching = and(
    ownedBy(activityLog, scope, filter.tag ?? undefined),
    filter.operation != null ? eq(activityLog.operation, filter.operation) : undefined,
    filter.status != null ? eq(activityLog.status, filter.status) : undefined,
    filter.since != null ? gte(activityLog.at, filter.since) : undefined,
    filter.until != null ? lte(activityLog.at, filter.until) : undefined,
  );
  return instantKeysetPage(db, ACTIVITY_KEYSET, matching, filter);
}

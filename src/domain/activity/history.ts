import { and, desc, eq } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { sessions, type SessionRow } from '../../db/schema.js';
import { ownedBy, type Scope } from '../callers.js';
import { counter, pageOf, pageSize, type Page } from '../paging.js';
import { afterSessionCursor, sessionCursor } from '../sessions/list.js';

/**
 * Every stored session of one user under a tag, whatever its status, newest first: the keyset
 * and cursors of the session list.
 */
export async function sessionHistory(
  db: Database,
  scope: Scope,
  args: { tag: string; identifier: string; first?: number | null; after?: string | null },
): Promise<Page<SessionRow>> {
  const first = pageSize(args.first);
  const owner = and(ownedBy(sessions, scope, args.tag), eq(sessions.identifier, args.identifier));
  const rows = await db
    .select()
    .from(sessions)
    .where(args.after != null ? and(owner, afterSessionCursor(args.after)) : owner)
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
    .limit(first + 1);
  return pageOf(rows, first, sessionCursor, counter(db, sessions, owner));
}

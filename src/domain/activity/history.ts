import { and, eq } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { sessions, type SessionRow } from '../../db/schema.js';
import { ownedBy, type Scope } from '../callers.js';
import type { Page } from '../paging.js';
import { sessionPage } from '../sessions/list.js';

/**
 * Every stored session of one user under a tag, whatever its status, newest first: the keyset
 * and cursors of the session list.
 */
export function sessionHistory(
  db: Database,
  scope: Scope,
  args: { tag: string; identifier: string; first?: number | null; after?: string | null },
): Promise<Page<SessionRow>> {
  const owner = and(ownedBy(sessions, scope, args.tag), eq(sessions.identifier, args.identifier));
  return sessionPage(db, owner, args);
}

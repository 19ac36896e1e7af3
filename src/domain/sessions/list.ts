import { and, eq, type SQL } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { sessions, type SessionRow } from '../../db/schema.js';
import type { Scope } from '../callers.js';
import { isLive } from '../liveness.js';
import {
  afterInstantCursor,
  instantCursor,
  instantKeysetPage,
  type InstantKeyset,
  type Page,
} from '../paging.js';
import { UUID_PATTERN, checkLength } from '../validation.js';
import { MAX_IDENTIFIER_LENGTH, inScope } from './shared.js';
import type { SessionDeps } from './types.js';

/** A page of sessions (the GraphQL layer reads rows, hasNextPage, cursorOf, totalCount). */
export type SessionPage = Page<SessionRow>;

/** Sessions are listed newest first: keyset over (createdAt desc, id desc). */
export function sessionCursor(row: Pick<SessionRow, 'createdAt' | 'id'>): string {
  return instantCursor(row.createdAt, row.id);
}

/** Every list of sessions: newest first; the session list's cursors of before are still read. */
const SESSION_KEYSET: InstantKeyset<typeof sessions> = {
  table: sessions,
  at: sessions.createdAt,
  key: sessions.id,
  keyPattern: UUID_PATTERN,
  pipeSeparated: true,
  cursorOf: sessionCursor,
};

/**
 * The sessions after a cursor of {@link sessionCursor}: older, or as old with a lower id. The
 * session list's cursors of before (`<instant>|<uuid>`) are still read.
 */
export function afterSessionCursor(after: string): SQL {
  return afterInstantCursor(SESSION_KEYSET, after);
}

/** One page of the sessions `owner` selects, newest first (every list of sessions). */
export function sessionPage(
  db: Database,
  owner: SQL | undefined,
  args: { first?: number | null; after?: string | null },
): Promise<SessionPage> {
  return instantKeysetPage(db, SESSION_KEYSET, owner, args);
}

/** One page of an identifier's live sessions under a tag, newest first (keyset pagination). */
export async function listSessions(
  deps: Pick<SessionDeps, 'db'>,
  scope: Scope,
  args: { tag: string; identifier: string; first?: number | null; after?: string | null },
): Promise<SessionPage> {
  checkLength('identifier', args.identifier, MAX_IDENTIFIER_LENGTH);
  const owner = and(
    inScope(scope),
    eq(sessions.tag, args.tag),
    eq(sessions.identifier, args.identifier),
    isLive,
  );
  return sessionPage(deps.db, owner, args);
}

/** One session of the caller's product and env, or undefined. */
export async function findSession(
  deps: Pick<SessionDeps, 'db'>,
  scope: Scope,
  sessionId: string,
): Promise<SessionRow | undefined> {
  if (!UUID_PATTERN.test(sessionId)) return undefined;
  const rows = await deps.db
    .select()
    .from(sessions)
    .where(and(inScope(scope), eq(sessions.id, sessionId.toLowerCase())));
  return rows[0];
}

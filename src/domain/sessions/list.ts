import { and, desc, eq, lt, or, type SQL } from 'drizzle-orm';
import { sessions, type SessionRow } from '../../db/schema.js';
import type { Scope } from '../callers.js';
import { isLive } from '../liveness.js';
import {
  counter,
  decodeInstantCursor,
  encodeCursor,
  pageOf,
  pageSize,
  type Page,
} from '../paging.js';
import { UUID_PATTERN, checkLength } from '../validation.js';
import { MAX_IDENTIFIER_LENGTH, inScope } from './shared.js';
import type { SessionDeps } from './types.js';

/** A page of sessions (the GraphQL layer reads rows, hasNextPage, cursorOf, totalCount). */
export type SessionPage = Page<SessionRow>;

/** Sessions are listed newest first: keyset over (createdAt desc, id desc). */
export function sessionCursor(row: Pick<SessionRow, 'createdAt' | 'id'>): string {
  return encodeCursor([row.createdAt.toISOString(), row.id]);
}

/**
 * The sessions after a cursor of {@link sessionCursor}: older, or as old with a lower id. The
 * session list's cursors of before (`<instant>|<uuid>`) are still read.
 */
export function afterSessionCursor(after: string): SQL {
  const { at: createdAt, key: id } = decodeInstantCursor(after, UUID_PATTERN, {
    pipeSeparated: true,
  });
  return or(
    lt(sessions.createdAt, createdAt),
    and(eq(sessions.createdAt, createdAt), lt(sessions.id, id)),
  )!;
}

/** One page of an identifier's live sessions under a tag, newest first (keyset pagination). */
export async function listSessions(
  deps: Pick<SessionDeps, 'db'>,
  scope: Scope,
  args: { tag: string; identifier: string; first?: number | null; after?: string | null },
): Promise<SessionPage> {
  checkLength('identifier', args.identifier, MAX_IDENTIFIER_LENGTH);
  const first = pageSize(args.first);
  const owner = and(
    inScope(scope),
    eq(sessions.tag, args.tag),
    eq(sessions.identifier, args.identifier),
    isLive,
  );
  const rows = await deps.db
    .select()
    .from(sessions)
    .where(args.after != null ? and(owner, afterSessionCursor(args.after)) : owner)
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
    .limit(first + 1);
  return pageOf(rows, first, sessionCursor, counter(deps.db, sessions, owner));
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

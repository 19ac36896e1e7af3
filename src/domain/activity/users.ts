import { and, asc, desc, eq, sql, type SQL } from 'drizzle-orm';
import type { Database, Transaction } from '../../db/client.js';
import { sessionUsers, sessions, type SessionRow, type SessionUserRow } from '../../db/schema.js';
import { ownedBy, type Scope } from '../callers.js';
import { badCursor } from '../errors.js';
import { liveSessionCounts } from '../liveness.js';
import { checkLength } from '../validation.js';
import { counter, decodeCursor, encodeCursor, pageOf, pageSize, type Page } from '../paging.js';

/** `now()` at the precision cursors carry (milliseconds), so keyset paging is exact. */
const nowMs = sql`date_trunc('milliseconds', now())`;

/** Records that a session's user was seen now (refresh, touch, verify once a minute). */
export async function recordUserSeen(
  tx: Transaction | Database,
  session: Pick<SessionRow, 'productId' | 'env' | 'tag' | 'identifier'>,
): Promise<void> {
  await tx
    .update(sessionUsers)
    .set({ lastSeenAt: nowMs })
    .where(
      and(
        ownedBy(sessionUsers, session, session.tag),
        eq(sessionUsers.identifier, session.identifier),
      ),
    );
}

/** An instant as text with microseconds, in UTC: what the users' cursors carry. */
const exactInstant = (column: typeof sessionUsers.lastSeenAt) =>
  sql<string>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
const EXACT_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/**
 * How {@link listSessionUsers} sorts: by last seen, newest first (the default) or oldest first;
 * ties by identifier.
 */
export type UserOrder = 'LAST_SEEN_DESC' | 'LAST_SEEN_ASC';

/** Everyone who has had a session of a tag, by last seen (keyset pagination). */
export async function listSessionUsers(
  db: Database,
  scope: Scope,
  args: { tag: string; first?: number | null; after?: string | null; orderBy?: UserOrder | null },
): Promise<Page<SessionUserRow>> {
  const first = pageSize(args.first);
  const ascending = args.orderBy === 'LAST_SEEN_ASC';
  const owner = ownedBy(sessionUsers, scope, args.tag);
  let where: SQL | undefined = owner;
  if (args.after != null) {
    const [at, identifier] = decodeCursor(args.after, 2) as [string, string];
    // The cursor keeps the database's microseconds: users seen within one millisecond are
    // still told apart.
    if (!EXACT_INSTANT.test(at)) throw badCursor();
    const seen = sql`${at}::timestamptz`;
    const beyond = ascending ? sql`>` : sql`<`;
    where = and(
      owner,
      sql`(${sessionUsers.lastSeenAt} ${beyond} ${seen} or (${sessionUsers.lastSeenAt} = ${seen} and ${sessionUsers.identifier} ${beyond} ${identifier}))`,
    );
  }
  const order = ascending
    ? [asc(sessionUsers.lastSeenAt), asc(sessionUsers.identifier)]
    : [desc(sessionUsers.lastSeenAt), desc(sessionUsers.identifier)];
  const found = await db
    .select({ user: sessionUsers, seenKey: exactInstant(sessionUsers.lastSeenAt) })
    .from(sessionUsers)
    .where(where)
    .orderBy(...order)
    .limit(first + 1);
  const keys = new WeakMap<SessionUserRow, string>();
  const rows = found.map((r) => {
    keys.set(r.user, r.seenKey);
    return r.user;
  });
  return pageOf(
    rows,
    first,
    (row) => encodeCursor([keys.get(row) ?? row.lastSeenAt.toISOString(), row.identifier]),
    counter(db, sessionUsers, owner),
  );
}

/** One user of a tag, or undefined. */
export async function findSessionUser(
  db: Database,
  scope: Scope,
  tag: string,
  identifier: string,
): Promise<SessionUserRow | undefined> {
  checkLength('identifier', identifier, 256);
  const rows = await db
    .select()
    .from(sessionUsers)
    .where(and(ownedBy(sessionUsers, scope, tag), eq(sessionUsers.identifier, identifier)));
  return rows[0];
}

/** Live sessions of many identifiers of one tag, in one query (for a page of users). */
export function activeSessionsByIdentifier(
  db: Database,
  scope: Scope,
  tag: string,
  identifiers: readonly string[],
): Promise<Map<string, number>> {
  return liveSessionCounts(db, sessions.identifier, identifiers, ownedBy(sessions, scope, tag));
}

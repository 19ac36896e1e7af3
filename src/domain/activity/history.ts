import { and, count, desc, eq, lt, or, type SQL } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { sessions, type SessionRow } from '../../db/schema.js';
import type { Scope } from '../callers.js';
import { badInput } from '../errors.js';
import { UUID_PATTERN } from '../validation.js';
import { decode, encode, instant, pageSize, type Page } from './paging.js';

/** Every stored session of one user under a tag, whatever its status, newest first. */
export async function sessionHistory(
  db: Database,
  scope: Scope,
  args: { tag: string; identifier: string; first?: number | null; after?: string | null },
): Promise<Page<SessionRow>> {
  const first = pageSize(args.first);
  const owner = and(
    eq(sessions.productId, scope.productId),
    eq(sessions.env, scope.env),
    eq(sessions.tag, args.tag),
    eq(sessions.identifier, args.identifier),
  );
  let where: SQL | undefined = owner;
  if (args.after != null) {
    const [at, id] = decode(args.after, 2) as [string, string];
    const createdAt = instant(at);
    if (!UUID_PATTERN.test(id)) throw badInput('after', 'is not a cursor this API returned');
    where = and(
      owner,
      or(
        lt(sessions.createdAt, createdAt),
        and(eq(sessions.createdAt, createdAt), lt(sessions.id, id)),
      ),
    );
  }
  const rows = await db
    .select()
    .from(sessions)
    .where(where)
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
    .limit(first + 1);
  return {
    rows: rows.slice(0, first),
    hasNextPage: rows.length > first,
    cursorOf: (row) => encode([row.createdAt.toISOString(), row.id]),
    totalCount: async () =>
      Number((await db.select({ n: count() }).from(sessions).where(owner))[0]?.n ?? 0),
  };
}

import { and, count, desc, eq, lt, or } from 'drizzle-orm';
import { sessions, type SessionRow } from '../../db/schema.js';
import type { Scope } from '../callers.js';
import { badInput } from '../errors.js';
import { isLive } from '../liveness.js';
import { UUID_PATTERN, checkLength, cursorInstant } from '../validation.js';
import { MAX_IDENTIFIER_LENGTH, inScope } from './shared.js';
import type { SessionDeps } from './types.js';

export interface SessionPage {
  readonly rows: SessionRow[];
  readonly hasNextPage: boolean;
  /** Counts every live session of the identifier; run only when asked for. */
  readonly totalCount: () => Promise<number>;
}

export const MAX_PAGE_SIZE = 100;
const DEFAULT_PAGE_SIZE = 20;

/** Keyset cursor over (createdAt desc, id desc); opaque to clients. */
export function encodeCursor(row: Pick<SessionRow, 'createdAt' | 'id'>): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const text = cursor.length <= 200 ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const [at, id] = text.split('|');
  const createdAt = cursorInstant(at);
  if (!id || !UUID_PATTERN.test(id) || createdAt === undefined) {
    throw badInput('after', 'is not a cursor this API returned');
  }
  return { createdAt, id };
}

/** One page of an identifier's live sessions under a tag, newest first (keyset pagination). */
export async function listSessions(
  deps: Pick<SessionDeps, 'db'>,
  scope: Scope,
  args: { tag: string; identifier: string; first?: number | null; after?: string | null },
): Promise<SessionPage> {
  checkLength('identifier', args.identifier, MAX_IDENTIFIER_LENGTH);
  const first = args.first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 0 || first > MAX_PAGE_SIZE) {
    throw badInput('first', `expected a whole number from 0 to ${MAX_PAGE_SIZE}`);
  }
  const owner = and(
    inScope(scope),
    eq(sessions.tag, args.tag),
    eq(sessions.identifier, args.identifier),
    isLive,
  );
  let where = owner;
  if (args.after != null) {
    const c = decodeCursor(args.after);
    where = and(
      owner,
      or(
        lt(sessions.createdAt, c.createdAt),
        and(eq(sessions.createdAt, c.createdAt), lt(sessions.id, c.id)),
      ),
    );
  }
  const rows = await deps.db
    .select()
    .from(sessions)
    .where(where)
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
    .limit(first + 1);
  return {
    rows: rows.slice(0, first),
    hasNextPage: rows.length > first,
    totalCount: async () => {
      const counted = await deps.db.select({ n: count() }).from(sessions).where(owner);
      return Number(counted[0]?.n ?? 0);
    },
  };
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

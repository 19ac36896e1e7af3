import { eq, inArray, sql, type SQL } from 'drizzle-orm';
import { expect } from 'vitest';
import { sessionConfigs, sessions } from '../src/db/schema.js';
import {
  configAccepts,
  configAcceptsSession,
  configAcceptsSql,
  configOfSession,
} from '../src/domain/sessions/refresh/usable.js';
import {
  configIdsOf,
  newConfig,
  newSharedConfig,
  rowsOf,
  start,
  uniqueTag,
} from './support/fixtures.js';
import { describe, it } from './support/test.js';

/*
 * "Does its config still accept this session?" is written once in
 * src/domain/sessions/refresh/usable.ts, as a SQL fragment and as its TypeScript twin. Here both
 * are evaluated on the same rows (sessions started through the API, their configs then moved into
 * every state with SQL) and on a table of values, and must agree with each other and with what
 * each case was made to be.
 */

/** Each case: the config the session is started on, and what is done to it afterwards. */
const CASES: {
  name: string;
  shared?: boolean;
  /** SQL `set` list for the config row; none: left as it is. */
  change?: (renamedTo: string) => SQL;
  accepts: boolean;
}[] = [
  { name: 'the env’s own config, untouched', accepts: true },
  { name: 'a product-wide config, untouched', shared: true, accepts: true },
  { name: 'config deleted', change: () => sql`deleted_at = now()`, accepts: false },
  { name: 'config renamed', change: (to) => sql`tag = ${to}`, accepts: false },
  { name: 'config moved to another env', change: () => sql`env = 'prd'`, accepts: false },
  {
    name: 'config made product-wide',
    change: () => sql`env = null`,
    accepts: true,
  },
  {
    name: 'config renamed and deleted',
    change: (to) => sql`tag = ${to}, deleted_at = now()`,
    accepts: false,
  },
  {
    name: 'product-wide config deleted',
    shared: true,
    change: () => sql`deleted_at = now()`,
    accepts: false,
  },
  {
    name: 'product-wide config renamed',
    shared: true,
    change: (to) => sql`tag = ${to}`,
    accepts: false,
  },
  {
    name: 'lifetimes changed only',
    change: () => sql`expiry = 9, updated_at = now()`,
    accepts: true,
  },
];

describe('config accepts session: the SQL fragment and its TypeScript twin', () => {
  it('agree on sessions whose configs were moved into every state', async ({ t, product }) => {
    const key = product.secret.dev;
    const made = await Promise.all(
      CASES.map(async (c, i) => {
        const tag = c.shared ? await newSharedConfig(t, product.tag) : await newConfig(t, key);
        const started = await start(t, key, tag, {
          userId: `user-${i}`,
          details: { username: 'ada', email: 'ada@example.com' },
        });
        const { configId } = await configIdsOf(t, product.tag, tag);
        if (c.change) {
          await t.database.db.execute(
            sql`update session_configs set ${c.change(uniqueTag('renamed'))} where id = ${configId}::uuid`,
          );
        }
        return { c, sessionId: started.sessionId, configId, tag };
      }),
    );
    const ids = made.map((m) => m.sessionId);
    // As verify and the refresh paths read it: the session with its config, outer-joined.
    const rows = await t.database.db
      .select({ session: sessions, config: configOfSession, bySql: configAcceptsSession })
      .from(sessions)
      .leftJoin(sessionConfigs, eq(sessionConfigs.id, sessions.configId))
      .where(inArray(sessions.id, ids));
    expect(rows).toHaveLength(CASES.length);
    const byId = new Map(rows.map((r) => [r.session.id, r]));
    for (const { c, sessionId, configId, tag } of made) {
      const row = byId.get(sessionId)!;
      expect({ case: c.name, sql: row.bySql, ts: configAccepts(row.config, row.session) }).toEqual({
        case: c.name,
        sql: c.accepts,
        ts: c.accepts,
      });
      // As start's insert and the snapshot statement use it: the config aliased, the session's
      // tag and env as values.
      const [aliased] = rowsOf<{ accepts: boolean }>(
        await t.database.db.execute(sql`
          select ${configAcceptsSql(
            { tag: sql`c.tag`, env: sql`c.env`, deletedAt: sql`c.deleted_at` },
            { tag, env: 'dev' },
          )} as accepts
          from session_configs c where c.id = ${configId}::uuid`),
      );
      expect({ case: c.name, aliased: aliased!.accepts }).toEqual({
        case: c.name,
        aliased: c.accepts,
      });
    }
  });

  it('agree on a table of values, a missing config row included', async ({ t }) => {
    const at = new Date('2026-01-01T00:00:00.000Z');
    const cases: {
      config: { tag: string; env: string | null; deletedAt: Date | null } | null;
      session: { tag: string; env: string };
    }[] = [];
    for (const session of [
      { tag: 'a', env: 'dev' },
      { tag: 'a', env: 'prd' },
    ]) {
      cases.push({ config: null, session });
      for (const tag of ['a', 'b'])
        for (const env of [null, 'dev', 'prd'])
          for (const deletedAt of [null, at])
            cases.push({ config: { tag, env, deletedAt }, session });
    }
    let accepted = 0;
    for (const { config, session } of cases) {
      const [row] = rowsOf<{ accepts: boolean }>(
        await t.database.db.execute(sql`
          select ${configAcceptsSql(
            {
              tag: sql`${config?.tag ?? null}::text`,
              env: sql`${config?.env ?? null}::text`,
              deletedAt: sql`${config?.deletedAt?.toISOString() ?? null}::timestamptz`,
            },
            { tag: session.tag, env: session.env },
          )} as accepts`),
      );
      const ts = configAccepts(config, session);
      expect({ config, session, sql: row!.accepts }).toEqual({ config, session, sql: ts });
      if (ts) accepted += 1;
    }
    // Live, same tag, product-wide or the session's env: two configs per session.
    expect(accepted).toBe(4);
  });
});

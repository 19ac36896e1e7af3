import { and, inArray, sql, type SQL } from 'drizzle-orm';
import { expect } from 'vitest';
import { sessions } from '../src/db/schema.js';
import {
  deadReason,
  idleRanOutAt,
  isLive,
  isLiveAt,
  isOver,
  isOverAt,
  liveAt,
  liveUntil,
  liveUntilOf,
  overAt,
  refreshRanOutAt,
} from '../src/domain/liveness.js';
import { sessionStatus } from '../src/domain/sessions/index.js';
import type { TestApp } from './support/app.js';
import { ok } from './support/graphql.js';
import {
  REFRESH,
  REVOKE,
  configIdsOf,
  newConfig,
  newProduct,
  rowsOf,
  start,
} from './support/fixtures.js';
import { test } from './support/test.js';

/*
 * "Is this session over?" is written once in src/domain/liveness.ts, as SQL fragments and as
 * their TypeScript twin. Here both are evaluated on the same rows (sessions made through the API,
 * then moved into every state with SQL) at the same instants, and must agree on every row.
 */

const IDLE = 600;

/** Each state: how to move the session there, relative to the instant T (ms precision), and what it is at T. */
const STATES: {
  name: string;
  idle: boolean;
  /** SQL `set` list; `T` stands for the reference instant. */
  set: (T: SQL) => SQL;
  revoke?: boolean;
  atT: 'ACTIVE' | 'EXPIRED' | 'REVOKED';
}[] = [
  {
    name: 'live',
    idle: false,
    set: (T) => sql`last_active_at = ${T} - interval '1 minute'`,
    atT: 'ACTIVE',
  },
  {
    name: 'live, idle timeout, active a minute ago',
    idle: true,
    set: (T) => sql`last_active_at = ${T} - interval '1 minute'`,
    atT: 'ACTIVE',
  },
  {
    name: 'no idle timeout, inactive for days',
    idle: false,
    set: (T) => sql`last_active_at = ${T} - interval '3 days'`,
    atT: 'ACTIVE',
  },
  {
    name: 'revoked, otherwise live',
    idle: true,
    revoke: true,
    set: (T) => sql`last_active_at = ${T} - interval '1 minute'`,
    atT: 'REVOKED',
  },
  {
    name: 'revoked and run out',
    idle: false,
    revoke: true,
    set: (T) =>
      sql`refresh_expires_at = ${T} - interval '1 second', expires_at = ${T} - interval '2 seconds'`,
    atT: 'REVOKED',
  },
  {
    name: 'swept (expired_at set), times still live',
    idle: false,
    set: (T) => sql`expired_at = ${T} - interval '1 second'`,
    atT: 'EXPIRED',
  },
  {
    name: 'refresh token ran out a second ago',
    idle: false,
    set: (T) =>
      sql`refresh_expires_at = ${T} - interval '1 second', expires_at = ${T} - interval '2 seconds'`,
    atT: 'EXPIRED',
  },
  {
    name: 'refresh token runs out exactly at T',
    idle: false,
    set: (T) => sql`refresh_expires_at = ${T}, expires_at = ${T} - interval '1 second'`,
    atT: 'EXPIRED',
  },
  {
    name: 'refresh token runs out 1 ms after T',
    idle: false,
    set: (T) =>
      sql`refresh_expires_at = ${T} + interval '1 millisecond', expires_at = ${T} - interval '1 second'`,
    atT: 'ACTIVE',
  },
  {
    name: 'idle past its timeout',
    idle: true,
    set: (T) => sql`last_active_at = ${T} - make_interval(secs => ${IDLE + 1})`,
    atT: 'EXPIRED',
  },
  {
    name: 'idle exactly its timeout at T',
    idle: true,
    set: (T) => sql`last_active_at = ${T} - make_interval(secs => ${IDLE})`,
    atT: 'EXPIRED',
  },
  {
    name: 'idle 1 ms short of its timeout at T',
    idle: true,
    set: (T) =>
      sql`last_active_at = ${T} - make_interval(secs => ${IDLE}) + interval '1 millisecond'`,
    atT: 'ACTIVE',
  },
  {
    name: 'idle past its timeout and refresh token ran out',
    idle: true,
    set: (T) =>
      sql`last_active_at = ${T} - interval '1 day', refresh_expires_at = ${T} - interval '1 hour', expires_at = ${T} - interval '2 hours'`,
    atT: 'EXPIRED',
  },
  {
    name: 'access token expired, still refreshable',
    idle: true,
    set: (T) =>
      sql`expires_at = ${T} - interval '1 second', last_active_at = ${T} - interval '10 seconds'`,
    atT: 'ACTIVE',
  },
];

const instant = (at: Date): SQL => sql`${at.toISOString()}::timestamptz`;

/** The session made in each of the STATES (its id by state name), and the instant T. */
interface States {
  ids: Map<string, string>;
  T: Date;
}

/** `states`: made once per file (the tests only read them). */
const it = test.extend('states', { scope: 'file' }, async ({ t }): Promise<States> => {
  const product = await newProduct(t);
  const key = product.secret.dev;
  const idleTag = await newConfig(t, key, { idleTimeout: IDLE });
  const plainTag = await newConfig(t, key);
  const ids = new Map<string, string>();
  await Promise.all(
    STATES.map(async (state, i) => {
      const tag = state.idle ? idleTag : plainTag;
      let started = await start(t, key, tag, {
        userId: `user-${i}`,
        details: { username: 'ada', email: 'ada@example.com' },
      });
      // Half of them rotated once through the API, so both write paths made the rows.
      if (i % 2 === 1) {
        const refreshed = await ok<{ refreshSession: typeof started }>(t.app, {
          key,
          query: REFRESH,
          variables: { tag, refreshToken: started.refreshToken },
        });
        started = refreshed.refreshSession;
      }
      if (state.revoke) {
        await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: started.sessionId } });
      }
      ids.set(state.name, started.sessionId);
    }),
  );
  const { productId } = await configIdsOf(t, product.tag, plainTag);
  const [row] = rowsOf<{ t: string }>(
    await t.database.db.execute(
      sql`select to_char(date_trunc('milliseconds', now()) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as t`,
    ),
  );
  const T = new Date(row!.t);
  // Every instant to the millisecond, as JavaScript reads it: the twin then sees the same row.
  await t.database.db.execute(sql`
    update sessions set last_active_at = date_trunc('milliseconds', last_active_at),
                        revoked_at = date_trunc('milliseconds', revoked_at)
    where product_id = ${productId}::uuid`);
  for (const state of STATES) {
    await t.database.db.execute(
      sql`update sessions set ${state.set(instant(T))} where id = ${ids.get(state.name)!}::uuid`,
    );
  }
  return { ids, T };
});
const describe = it.describe;

describe('liveness: the SQL fragments and their TypeScript twin', () => {
  /** The rows with the SQL verdicts at `at` (SQL), read in one statement. */
  async function evaluate(t: TestApp, ids: Map<string, string>, at: SQL) {
    return t.database.db
      .select({
        session: sessions,
        dbNow: sql`now()`.mapWith(sessions.createdAt),
        live: sql<boolean>`${liveAt(at)}`,
        over: sql<boolean>`${overAt(at)}`,
        // The sweep's two passes and its mark cover exactly what `overAt` calls over.
        sweepable: sql<boolean>`(${sessions.expiredAt} is not null or ${refreshRanOutAt(at)} or ${idleRanOutAt(at)})`,
        liveNow: sql<boolean>`${isLive}`,
        until: sql`${liveUntil}`.mapWith(sessions.createdAt),
        overNow: sql<boolean>`${isOver}`,
      })
      .from(sessions)
      .where(inArray(sessions.id, [...ids.values()]));
  }

  it('every state is what it was made to be at T, by SQL and by TypeScript alike', async ({
    t,
    states: { ids, T },
  }) => {
    const rows = await evaluate(t, ids, instant(T));
    expect(rows).toHaveLength(STATES.length);
    const byId = new Map(rows.map((r) => [r.session.id, r]));
    for (const state of STATES) {
      const r = byId.get(ids.get(state.name)!)!;
      const sqlStatus = r.session.revokedAt !== null ? 'REVOKED' : r.over ? 'EXPIRED' : 'ACTIVE';
      expect({ state: state.name, sql: sqlStatus }).toEqual({ state: state.name, sql: state.atT });
      expect({ state: state.name, ts: sessionStatus(r.session, T) }).toEqual({
        state: state.name,
        ts: state.atT,
      });
    }
  });

  it('agree on every row at instants around T, and on the database clock', async ({
    t,
    states: { ids, T },
  }) => {
    const offsets = [-86_400_000, -1_000, -1, 0, 1, 999, 1_000, 60_000, 3_600_000, 7 * 86_400_000];
    let compared = 0;
    for (const offset of offsets) {
      const at = new Date(T.getTime() + offset);
      for (const r of await evaluate(t, ids, instant(at))) {
        const where = { id: r.session.id, offset };
        expect({ ...where, live: Boolean(r.live) }).toEqual({
          ...where,
          live: isLiveAt(r.session, at),
        });
        expect({ ...where, over: Boolean(r.over) }).toEqual({
          ...where,
          over: isOverAt(r.session, at),
        });
        expect({ ...where, sweepable: Boolean(r.sweepable) }).toEqual({
          ...where,
          sweepable: Boolean(r.over),
        });
        // Until when it is live (what the dashboard's active sessions per period count): the
        // same instant by SQL and TypeScript, and after `at` exactly when it is live at `at`
        // (from T on: revocations and sweep marks are never ahead of the clock).
        expect({ ...where, until: (r.until as Date).getTime() }).toEqual({
          ...where,
          until: liveUntilOf(r.session).getTime(),
        });
        if (offset >= 0) {
          expect({ ...where, liveUntilAfter: (r.until as Date) > at }).toEqual({
            ...where,
            liveUntilAfter: Boolean(r.live),
          });
        }
        const reason = deadReason(r.session, at);
        expect(reason).toBe(r.session.revokedAt !== null ? 'revoked' : r.over ? 'expired' : null);
        compared++;
      }
    }
    // The constants, at the database's own clock (read in the same statement).
    for (const r of await evaluate(t, ids, sql`now()`)) {
      const now = r.dbNow as Date;
      expect({ id: r.session.id, live: Boolean(r.liveNow) }).toEqual({
        id: r.session.id,
        live: isLiveAt(r.session, now),
      });
      expect({ id: r.session.id, over: Boolean(r.overNow) }).toEqual({
        id: r.session.id,
        over: isOverAt(r.session, now),
      });
      compared++;
    }
    expect(compared).toBe(STATES.length * (offsets.length + 1));
  });

  it('isLive, which lists, counts and caps use, selects exactly the sessions live by the database clock', async ({
    t,
    states: { ids },
  }) => {
    const live = await t.database.db
      .select({ id: sessions.id })
      .from(sessions)
      .where(and(inArray(sessions.id, [...ids.values()]), isLive));
    // T is already past: the two states within a millisecond of their end at T are over by now.
    const expected = STATES.filter(
      (s) =>
        s.atT === 'ACTIVE' &&
        s.name !== 'refresh token runs out 1 ms after T' &&
        s.name !== 'idle 1 ms short of its timeout at T',
    ).map((s) => ids.get(s.name)!);
    expect(live.map((r) => r.id).sort()).toEqual(expected.sort());
  });
});

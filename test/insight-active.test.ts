import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import { TEST_DATABASE_URL, type TestApp } from './support/app.js';
import { freshPostgresDatabase } from './support/databases.js';
import { ok } from './support/graphql.js';
import { REVOKE, newConfig, newProduct, start } from './support/fixtures.js';
import {
  BOUNDARY_TIMEOUT,
  REVOKE_ALL,
  aroundNow,
  bindInsightApp,
  clearOfHourBoundary,
  dashboard,
  periodStart,
  sweep,
  type Dashboard,
  type Grouping,
} from './support/insight.js';
import { beforeAll, describe, it, test } from './support/test.js';

/*
 * Sessions active and revoked per dashboard period (issue #18): `activeSessions` (live at the
 * period's end) and `sessionsRevoked` (revoked while live, in the period).
 *
 * The first suite makes its sessions through the API, revokes and expires them through the API
 * and the sweep, then moves their instants into February and March 2026 with SQL (time travel:
 * a dashboard over several periods cannot wait for them), so every figure below is written out
 * by hand. On Postgres the file has a database of its own: a sweep of another file, on the shared
 * one, deletes sessions revoked longer ago than its retention (an hour), which all of these are.
 */
// Vitest reads a fixture's dependencies from its first parameter, which must be a pattern.
// eslint-disable-next-line no-empty-pattern
test.override('appOptions', { scope: 'file' }, async ({}, { onCleanup }) => {
  if (!TEST_DATABASE_URL) return {};
  const own = await freshPostgresDatabase();
  onCleanup(() => own.drop());
  return { databaseUrl: own.url };
});

let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
  bindInsightApp(app);
});

const at = (iso: string) => sql`${iso}::timestamptz`;
const IDLE_SECONDS = 600;

/** The dashboard's periods as [start to the minute, activeSessions, sessionsRevoked]. */
const figures = (d: Dashboard) =>
  d.periods.map((p) => [p.start.slice(0, 16), p.activeSessions, p.sessionsRevoked]);

const ACTIVE_DASHBOARD = `query($tag: String!, $from: DateTime!, $to: DateTime!, $groupBy: DashboardGrouping!) {
  sessionDashboard(tag: $tag, from: $from, to: $to, groupBy: $groupBy) {
    activeSessions revokedSessions totalSessions
    periods { start activeSessions sessionsRevoked sessionsCreated sessionsExpired starts revokes successes failures }
  }
}`;

/** The dashboard over [from, to), given to the minute in UTC. */
async function board(key: string, tag: string, groupBy: Grouping, from: string, to: string) {
  const variables = { tag, groupBy, from: `${from}:00Z`, to: `${to}:00Z` };
  return (await ok(t.app, { key, query: ACTIVE_DASHBOARD, variables }))
    .sessionDashboard as Dashboard;
}

describe('a timeline of nine sessions in February and March 2026 (moved there with SQL)', () => {
  let key: string;
  let tag: string;

  beforeAll(async () => {
    const product = await newProduct(t);
    key = product.secret.dev;
    // An idle timeout, so that one session can end by being idle.
    tag = await newConfig(t, key, { idleTimeout: IDLE_SECONDS });
    const started: Record<string, string> = {};
    for (const [name, user] of [
      ['g', 'gus'],
      ['f', 'fay'],
      ['i', 'ivy'],
      ['a', 'ada'],
      ['b', 'ben'],
      ['c', 'bob'],
      ['j', 'joe'],
      ['e', 'eve'],
      ['d', 'bob'],
    ] as const) {
      started[name] = (
        await start(t, key, tag, { userId: user, details: { username: user } })
      ).sessionId;
    }
    const revoke = (name: string) =>
      ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: started[name] } });
    await revoke('f');
    await revoke('b');
    // One call, two sessions.
    const all = await ok(t.app, { key, query: REVOKE_ALL, variables: { tag, identifier: 'bob' } });
    expect(all.revokeAllSessions.count).toBe(2);

    const move = (name: string, set: ReturnType<typeof sql>) =>
      t.database.db.execute(sql`update sessions set ${set} where id = ${started[name]}::uuid`);
    // g and e run out (their refresh tokens), and the sweep finds them.
    await move(
      'g',
      sql`refresh_expires_at = now() - interval '1 minute', expires_at = now() - interval '2 minutes'`,
    );
    await move(
      'e',
      sql`refresh_expires_at = now() - interval '1 minute', expires_at = now() - interval '2 minutes'`,
    );
    expect((await sweep()).expired).toBe(2);
    // i runs out (not swept) and is revoked a day later: it ended when it ran out.
    await move(
      'i',
      sql`refresh_expires_at = now() - interval '1 minute', expires_at = now() - interval '2 minutes'`,
    );
    await revoke('i');

    // Then every instant goes back in time.
    await move(
      'g',
      sql`created_at = ${at('2026-02-10T08:00Z')}, refresh_expires_at = ${at('2026-02-15T08:00Z')}, expires_at = ${at('2026-02-15T07:00Z')}`,
    );
    await move(
      'f',
      sql`created_at = ${at('2026-02-20T12:00Z')}, revoked_at = ${at('2026-03-02T10:50Z')}`,
    );
    await move(
      'i',
      sql`created_at = ${at('2026-03-02T09:10Z')}, refresh_expires_at = ${at('2026-03-02T13:00Z')}, expires_at = ${at('2026-03-02T12:00Z')}, revoked_at = ${at('2026-03-03T10:00Z')}`,
    );
    await move('a', sql`created_at = ${at('2026-03-02T10:20Z')}`);
    await move(
      'b',
      sql`created_at = ${at('2026-03-02T10:40Z')}, revoked_at = ${at('2026-03-02T12:10Z')}`,
    );
    await move(
      'c',
      sql`created_at = ${at('2026-03-02T11:05Z')}, revoked_at = ${at('2026-03-04T08:30Z')}`,
    );
    // Idle from 11:45: over at 11:55, not swept.
    await move(
      'j',
      sql`created_at = ${at('2026-03-02T11:15Z')}, last_active_at = ${at('2026-03-02T11:45Z')}`,
    );
    await move(
      'e',
      sql`created_at = ${at('2026-03-02T11:30Z')}, refresh_expires_at = ${at('2026-03-03T14:00Z')}, expires_at = ${at('2026-03-03T13:00Z')}`,
    );
    await move(
      'd',
      sql`created_at = ${at('2026-03-03T09:00Z')}, revoked_at = ${at('2026-03-04T08:30Z')}`,
    );
  });

  it('per HOUR: live at each hour’s end (f live before the range), revocations while live', async () => {
    // 09: +i. 10: +a +b, f revoked. 11: +c +j +e, j idle. 12: b revoked. 13: i ran out.
    const d = await board(key, tag, 'HOUR', '2026-03-02T09:00', '2026-03-02T15:00');
    expect(figures(d)).toEqual([
      ['2026-03-02T09:00', 2, 0],
      ['2026-03-02T10:00', 3, 1],
      ['2026-03-02T11:00', 5, 0],
      ['2026-03-02T12:00', 4, 1],
      ['2026-03-02T13:00', 3, 0],
      ['2026-03-02T14:00', 3, 0],
    ]);
    // No operation happened then: the other figures are zero.
    for (const p of d.periods) {
      expect(p).toMatchObject({ sessionsCreated: 0, sessionsExpired: 0, starts: 0, revokes: 0 });
      expect(p).toMatchObject({ successes: 0, failures: 0 });
    }
    // The totals are now's: a is the only live session.
    expect(d).toMatchObject({ activeSessions: 1, revokedSessions: 5, totalSessions: 9 });
  });

  const coarser: {
    groupBy: Grouping;
    title: string;
    range: [string, string];
    expected: [string, number, number][];
  }[] = [
    {
      groupBy: 'DAY',
      title: 'i, revoked after it ran out, counts as ended when it ran out, not as revoked',
      range: ['2026-03-01T00:00', '2026-03-06T00:00'],
      expected: [
        ['2026-03-01T00:00', 1, 0],
        // +i +a +b +c +j +e, f b i j ended; f and b revoked.
        ['2026-03-02T00:00', 3, 2],
        // +d, e ran out; i's revocation is not counted.
        ['2026-03-03T00:00', 3, 0],
        // revokeAllSessions: c and d, two sessions in one call.
        ['2026-03-04T00:00', 1, 2],
        ['2026-03-05T00:00', 1, 0],
      ],
    },
    {
      groupBy: 'WEEK',
      title: 'weeks from Monday; the week g started and ended in has no figures and is left out',
      range: ['2026-02-09T00:00', '2026-03-16T00:00'],
      expected: [
        ['2026-02-16T00:00', 1, 0],
        ['2026-02-23T00:00', 1, 0],
        ['2026-03-02T00:00', 1, 4],
        ['2026-03-09T00:00', 1, 0],
      ],
    },
    {
      groupBy: 'MONTH',
      title: 'January has none; f live from February',
      range: ['2026-01-01T00:00', '2026-05-01T00:00'],
      expected: [
        ['2026-02-01T00:00', 1, 0],
        ['2026-03-01T00:00', 1, 4],
        ['2026-04-01T00:00', 1, 0],
      ],
    },
  ];
  for (const { groupBy, title, range, expected } of coarser) {
    it(`per ${groupBy}: ${title}`, async () => {
      expect(figures(await board(key, tag, groupBy, ...range))).toEqual(expected);
    });
  }

  it('a range that ends inside a period counts at its end, and one that starts inside counts revocations from its start', async () => {
    // Before b's revocation at 12:10, then after it.
    const early = await board(key, tag, 'HOUR', '2026-03-02T11:00', '2026-03-02T12:05');
    expect(figures(early)).toEqual([
      ['2026-03-02T11:00', 5, 0],
      ['2026-03-02T12:00', 5, 0],
    ]);
    const later = await board(key, tag, 'HOUR', '2026-03-02T11:00', '2026-03-02T12:30');
    expect(figures(later).at(-1)).toEqual(['2026-03-02T12:00', 4, 1]);
    // From 10:55: the 10:00 period still ends with 3 live, but f's revocation at 10:50 is before the range.
    const from1055 = await board(key, tag, 'HOUR', '2026-03-02T10:55', '2026-03-02T12:00');
    expect(figures(from1055)).toEqual([
      ['2026-03-02T10:00', 3, 0],
      ['2026-03-02T11:00', 5, 0],
    ]);
  });

  it('a long range by the hour reads the sessions once: as many statements as a short one, every live hour listed', async () => {
    t.statements.length = 0;
    await board(key, tag, 'HOUR', '2026-03-02T09:00', '2026-03-02T10:00');
    const short = t.statements.filter((s) => /from "sessions"/.test(s)).length;
    t.statements.length = 0;
    // 43 days, 1032 hours.
    const d = await board(key, tag, 'HOUR', '2026-02-01T00:00', '2026-03-16T00:00');
    const long = t.statements.filter((s) => /from "sessions"/.test(s)).length;
    expect(long).toBe(short);
    expect(short).toBeGreaterThan(0);
    // g live from 02-10 08:00 to 02-15 08:00 (120 hours), f from 02-20 12:00 and a then on to
    // the range's end (564 hours).
    expect(d.periods).toHaveLength(120 + 564);
    expect(figures(d)[0]).toEqual(['2026-02-10T08:00', 1, 0]);
    expect(figures(d).at(-1)).toEqual(['2026-03-15T23:00', 1, 0]);
  });
});

describe('now: sessions started, revoked one by one and all at once, in the current period', () => {
  for (const groupBy of ['HOUR', 'DAY', 'WEEK', 'MONTH'] as const) {
    it(
      `grouped by ${groupBy}: the current period counts each revoked session and ends with the live ones now`,
      { timeout: BOUNDARY_TIMEOUT },
      async ({ key, config: tag }) => {
        // Everything in one hour, so in one period of every grouping.
        await clearOfHourBoundary(60);
        const startedAt = new Date();
        const s = [];
        for (const user of ['ann', 'cal', 'cal', 'cal', 'dee']) {
          s.push(await start(t, key, tag, { userId: user, details: { username: user } }));
        }
        await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: s[0]!.sessionId } });
        // Revoking it again changes nothing.
        await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: s[0]!.sessionId } });
        const all = await ok(t.app, {
          key,
          query: REVOKE_ALL,
          variables: { tag, identifier: 'cal' },
        });
        expect(all.revokeAllSessions.count).toBe(3);

        const { from, to } = aroundNow();
        const d = await dashboard(key, tag, groupBy, from, to);
        expect(d.periods).toHaveLength(1);
        expect(d.periods[0]).toMatchObject({
          start: periodStart(groupBy, startedAt),
          sessionsCreated: 5,
          // Three calls, four sessions.
          revokes: 3,
          sessionsRevoked: 4,
          activeSessions: 1,
        });
        expect(d.activeSessions).toBe(1);
      },
    );
  }
});

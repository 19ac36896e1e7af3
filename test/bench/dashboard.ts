/**
 * Benchmark figure (not a test): how fast sessionDashboard answers for a tag with 100,000
 * sessions of 10,000 users and ~2,000 hourly rollup rows over 90 days, next to a trivial
 * `{ __typename }` request through the same endpoint.
 *
 *   npx tsx test/bench/dashboard.ts                                           # PGlite in memory
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx test/bench/dashboard.ts
 *
 * Requests go through the real GraphQL endpoint in process (`app.fetch`, no socket). On
 * Postgres the benchmark's product is deleted at the end, so the database is left as it was.
 */
import { performance } from 'node:perf_hooks';
import { sql } from 'drizzle-orm';
import { TEST_DATABASE_URL, createTestApp } from '../support/app.js';
import { gql, type Call } from '../support/graphql.js';
import { configIdsOf, newConfig, newProduct, rowsOf } from '../support/fixtures.js';

const SESSIONS = 100_000;
const USERS = 10_000;
/** 500 hours (one every 4 hours, about 83 days) × 4 operations = 2,000 rollup rows. */
const ROLLUP_HOURS = 500;
const WARMUPS = 3;
const RUNS = 20;
const DAY_MS = 86_400_000;

const DASHBOARD = `query($tag: String!, $from: DateTime!, $to: DateTime!, $groupBy: DashboardGrouping!) {
  sessionDashboard(tag: $tag, from: $from, to: $to, groupBy: $groupBy) {
    totalUsers activeUsers totalSessions activeSessions expiredSessions revokedSessions
    successes failures successRate errorRate averageDurationMs
    periods { start sessionsCreated sessionsExpired activeSessions sessionsRevoked starts verifies refreshes revokes successes failures averageDurationMs }
  }
}`;

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

async function main(): Promise<void> {
  const database = TEST_DATABASE_URL ? 'Postgres (DATABASE_URL)' : 'PGlite (in memory)';
  console.log(`dashboard benchmark on ${database}`);
  const t = await createTestApp();
  let productId: string | undefined;
  try {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const ids = await configIdsOf(t, product.tag, tag);
    productId = ids.productId;
    const db = t.database.db;

    const seeding = performance.now();
    // Sessions: created over 90 days; one in ten revoked, one in seven run out, the rest live.
    await db.execute(sql`
      insert into sessions (id, product_id, env, config_id, tag, identifier, data_enc,
                            token_lifetime_seconds, created_at, last_active_at, expires_at,
                            refresh_expires_at, revoked_at, revoke_reason)
      select gen_random_uuid(), ${ids.productId}::uuid, 'dev', ${ids.configId}::uuid, ${tag},
             'user-' || (g % ${USERS}::int),
             'never-decrypted', 3600,
             now() - make_interval(mins => (g % 129600)),
             now() - make_interval(mins => (g % 129600)),
             now() - make_interval(mins => (g % 129600)) + interval '1 hour',
             case when g % 7 = 0 then now() - interval '1 minute' else now() + interval '30 days' end,
             case when g % 10 = 0 then now() - make_interval(mins => (g % 1000)) end,
             case when g % 10 = 0 then 'bench' end
      from generate_series(1, ${SESSIONS}::int) as g`);
    await db.execute(sql`
      insert into session_users (product_id, env, tag, identifier, first_seen_at, last_seen_at, total_sessions)
      select ${ids.productId}::uuid, 'dev', ${tag}, 'user-' || u,
             now() - interval '90 days' + make_interval(mins => u % 1440),
             now() - make_interval(mins => (u * 13) % 129600),
             ${SESSIONS / USERS}::int
      from generate_series(0, ${USERS - 1}::int) as u`);
    await db.execute(sql`
      insert into activity_rollups (product_id, env, tag, hour, operation, successes, failures, duration_ms_total)
      select ${ids.productId}::uuid, 'dev', ${tag},
             date_trunc('hour', now()) - make_interval(hours => h * 4),
             op, 50 + (h % 37), h % 5, (50 + (h % 37)) * 2.5
      from generate_series(0, ${ROLLUP_HOURS - 1}::int) as h,
           unnest(array['start', 'verify', 'refresh', 'revoke']) as op`);
    await db.execute(sql`analyze sessions`);
    await db.execute(sql`analyze session_users`);
    await db.execute(sql`analyze activity_rollups`);
    const counts = rowsOf<Record<string, string | number>>(
      await db.execute(sql`
        select (select count(*) from sessions where product_id = ${ids.productId}::uuid) as sessions,
               (select count(*) from session_users where product_id = ${ids.productId}::uuid) as users,
               (select count(*) from activity_rollups where product_id = ${ids.productId}::uuid) as rollups`),
    )[0]!;
    console.log(
      `seeded ${counts.sessions} sessions, ${counts.users} users, ${counts.rollups} rollup rows in ${Math.round(performance.now() - seeding)} ms`,
    );

    const now = Date.now();
    const dashboardCall = (groupBy: string, days: number): Call => ({
      key,
      query: DASHBOARD,
      variables: {
        tag,
        groupBy,
        from: new Date(now - days * DAY_MS).toISOString(),
        to: new Date(now + 3_600_000).toISOString(),
      },
    });

    /** Median and p95 in ms of one request, after warm-ups; fails on any error. */
    async function time(call: Call): Promise<{ median: number; p95: number }> {
      const samples: number[] = [];
      for (let i = 0; i < WARMUPS + RUNS; i++) {
        const began = performance.now();
        const response = await gql(t.app, call);
        const ms = performance.now() - began;
        if (response.errors?.length || !response.data) {
          throw new Error(`request failed: ${JSON.stringify(response).slice(0, 500)}`);
        }
        if (i >= WARMUPS) samples.push(ms);
      }
      samples.sort((a, b) => a - b);
      return { median: percentile(samples, 50), p95: percentile(samples, 95) };
    }

    const sample = await gql<{
      sessionDashboard: Record<string, unknown> & { periods: unknown[] };
    }>(t.app, dashboardCall('DAY', 90));
    const d = sample.data!.sessionDashboard;
    console.log(
      `DAY over 90 days: totalSessions ${d.totalSessions}, activeSessions ${d.activeSessions}, revokedSessions ${d.revokedSessions}, expiredSessions ${d.expiredSessions}, totalUsers ${d.totalUsers}, ${d.periods.length} periods`,
    );

    const baseline = await time({ key, query: '{ __typename }' });
    const results: [string, { median: number; p95: number }][] = [
      ['{ __typename } (baseline)', baseline],
      ['sessionDashboard DAY, 90 days', await time(dashboardCall('DAY', 90))],
      ['sessionDashboard HOUR, 7 days', await time(dashboardCall('HOUR', 7))],
      // The longest range by the hour the cost limit lets through (2,925 periods).
      ['sessionDashboard HOUR, 121 days', await time(dashboardCall('HOUR', 121))],
    ];
    console.log(`\n${RUNS} runs after ${WARMUPS} warm-ups, ms:`);
    for (const [name, r] of results) {
      const ratio =
        r === baseline ? '' : `  (${(r.median / baseline.median).toFixed(1)}× baseline)`;
      console.log(
        `  ${name.padEnd(32)} median ${r.median.toFixed(2).padStart(8)}  p95 ${r.p95.toFixed(2).padStart(8)}${ratio}`,
      );
    }
  } finally {
    if (TEST_DATABASE_URL && productId) {
      // Everything the benchmark wrote belongs to its product and goes with it.
      await t.database.db.execute(sql`delete from products where id = ${productId}::uuid`);
    }
    await t.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

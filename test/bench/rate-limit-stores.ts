/**
 * What a rate-limited call costs in each store, in this process (issue #14): CPU µs per
 * `RateLimits.consume` (one class: a per-key and a per-IP limit) and statements per call, with
 * limits in memory (the baseline, in the same run) and in the Postgres fleet counters.
 *
 *   BENCH_DATABASE_URL=postgres://... npx tsx test/bench/rate-limit-stores.ts
 *
 * Calls run in bursts of 200 concurrent consumes over 1,000 keys, yielding to the event loop
 * between bursts (so the counters' syncs run, as in a server); the Postgres figure includes the
 * syncs' Node CPU, and the statements they sent. For comparison, the store they replace:
 * rate-limiter-flexible's Postgres limiter (an upsert per limit per call), driven the same way.
 */
import { performance } from 'node:perf_hooks';
import { RateLimiterDrizzle, RateLimiterMemory } from 'rate-limiter-flexible';
import { openDatabase } from '../../src/db/client.js';
import { rateLimitCounters } from '../../src/db/schema.js';
import { createLogger } from '../../src/logger.js';
import { openRateLimitStore } from '../../src/limits/rate-limit-store.js';
import {
  RATE_CLASSES,
  RateLimits,
  type RateClass,
  type RateLimitStore,
} from '../../src/limits/rate-limits.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const url = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/bench';
const all = (n: number) =>
  Object.fromEntries(RATE_CLASSES.map((c) => [c, n])) as Record<RateClass, number>;

type Consume = (subject: { key: string; scope: string; ip: string }) => Promise<void>;

function consumerOf(store: RateLimitStore): Consume {
  const limits = new RateLimits(
    { windowSeconds: 60, perKey: all(1e8), perIp: all(1e8), refreshesPerSession: 1e8 },
    store,
  );
  return (subject) => limits.consume('verify', subject);
}

async function measure(consume: Consume): Promise<{ cpuUs: number; perSec: number }> {
  let calls = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  while (performance.now() - started < SECONDS * 1000) {
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        consume({
          key: `key-${(calls + i) % 1000}`,
          scope: 'product|dev',
          ip: `10.0.${i % 4}.1`,
        }),
      ),
    );
    calls += 200;
    await new Promise((resolve) => setImmediate(resolve));
  }
  const used = process.cpuUsage(cpu);
  const elapsed = (performance.now() - started) / 1000;
  return { cpuUs: (used.user + used.system) / calls, perSec: calls / elapsed };
}

const database = await openDatabase({ databaseUrl: url, maxConnections: 4 });
await database.migrate();
const logger = createLogger('silent');
const memory = await measure(consumerOf({ kind: 'memory' }));
/** A run's figures with the statements it sent per consume. */
async function withStatements(consume: Consume) {
  const before = database.statementsSent();
  const started = performance.now();
  const figures = await measure(consume);
  const seconds = (performance.now() - started) / 1000;
  const statements = database.statementsSent() - before;
  return {
    ...figures,
    statements: statements / (figures.perSec * seconds),
    perSecond: statements / seconds,
  };
}
const opened = await openRateLimitStore('postgres', { database, logger, syncMs: 200 });
const fleet = await withStatements(consumerOf(opened.store));
await opened.close();
const drizzleLimiter = (name: string) =>
  new RateLimiterDrizzle({
    points: 1e8,
    duration: 60,
    keyPrefix: `bench:${name}`,
    storeClient: database.db,
    schema: rateLimitCounters,
    clearExpiredByTimeout: false,
    insuranceLimiter: new RateLimiterMemory({ points: 1e8, duration: 60 }),
  });
const [byKey, byIp] = [drizzleLimiter('key'), drizzleLimiter('ip')];
const upserts = await withStatements(async (s) => {
  await Promise.all([byKey.consume(s.key), byIp.consume(`${s.scope}|${s.ip}`)]);
});
await database.close();
const row = (name: string, r: { cpuUs: number; perSec: number }, stmts: number) =>
  `| ${name} | ${Math.round(r.perSec)} | ${r.cpuUs.toFixed(2)} | ${(r.cpuUs / memory.cpuUs).toFixed(2)} | ${stmts.toFixed(5)} |`;
process.stdout.write(
  [
    `${SECONDS} s each; fleet counters' statements: ${fleet.perSecond.toFixed(1)}/s`,
    '',
    '| store | consumes/s | CPU µs/consume | ratio to memory | statements/consume |',
    '| --- | ---: | ---: | ---: | ---: |',
    row('memory (rate-limiter-flexible)', memory, 0),
    row('postgres, fleet counters (this store)', fleet, fleet.statements),
    row('postgres, an upsert per limit (replaced)', upserts, upserts.statements),
    '',
  ].join('\n'),
);

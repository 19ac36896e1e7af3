/* eslint-disable @typescript-eslint/no-explicit-any -- autocannon's per-connection context is untyped */
/**
 * `npm run bench`: loads our server (on Postgres, seeded) and a reference server (a stock
 * createYoga with a one-field schema) over HTTP at 50 connections (BENCH_CONNECTIONS), interleaving them, and prints
 * req/s, p50 and p99 of each scenario with its rate as a ratio to the reference's
 * `{ __typename }`, measured in the same run. Writes the table as JSON beside this file.
 *
 *   npm run bench                 # the table (about two minutes)
 *   npm run bench -- --scale      # also verify and list at 1 k and at 1 M stored sessions
 *   npm run bench -- --soak       # 10 minutes of verify load; RSS at start and end
 *   npm run bench -- --sweep      # also start and refresh at 1, 16 and 64 clients (BENCH_SWEEP)
 *
 * Postgres: BENCH_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/bench; that database is
 * dropped and created anew on every run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import postgres from 'postgres';
import { freshDatabase } from './fresh-database.js';
import { writeResults } from './results-file.js';
import { localTable, localVerifierBench, type LocalFigures } from './local-verifier.js';
import { RATE_CLASSES } from '../../src/limits/rate-limits.js';
import { VERIFY as CLIENT_VERIFY } from '../../src/client/documents.js';
import { documentId } from '../../scripts/trusted-documents.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const args = new Set(process.argv.slice(2));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const ADMIN_KEY = `ak_${randomBytes(32).toString('base64url')}`;
const SECRET = randomBytes(48).toString('base64url');

const baseUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/bench';

function startProcess(
  argv: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (ready.test(out)) resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => reject(new Error(`process exited (${code}):\n${out}`)));
    setTimeout(() => reject(new Error(`process did not start:\n${out}`)), 60_000).unref();
  });
}

async function gql(url: string, key: string, query: string, variables?: unknown) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: any; errors?: unknown[] };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

interface Scenario {
  name: string;
  target: 'ours' | 'reference';
  requests: autocannon.Request[];
  headers: Record<string, string>;
}

interface Row {
  name: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  ratio?: number;
  /** CPU of the server process (ours or the reference) per request, µs. */
  nodeUsPerOp?: number;
  /** CPU of the Postgres backends serving the bench database per request, µs. */
  pgUsPerOp?: number;
  /** Statements the server sent to Postgres per request (round trips when not pipelined). */
  statementsPerOp?: number;
  /** WAL bytes Postgres wrote per request (the whole cluster's: run the bench on a quiet one). */
  walBytesPerOp?: number;
}

/** What a scenario cost, read before and after it runs. */
interface Cost {
  nodeUs: number;
  pgUs: number;
  statements: number;
  /** The cluster's WAL insert position, bytes. */
  walBytes: number;
}

const CLOCK_TICK_US = 1e6 / 100; // USER_HZ: /proc reports CPU time in 1/100 s

/** User + system CPU time of a process so far, µs (0 once it is gone). */
function cpuUsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_US;
  } catch {
    return 0;
  }
}

async function load(
  url: string,
  scenario: Scenario,
  seconds: number,
  connections = CONNECTIONS,
): Promise<autocannon.Result> {
  return autocannon({
    url,
    connections,
    duration: seconds,
    headers: { 'content-type': 'application/json', ...scenario.headers },
    requests: scenario.requests,
  });
}

const post = (body: unknown): autocannon.Request => ({
  method: 'POST',
  body: JSON.stringify(body),
});

const METRICS_TOKEN = randomBytes(24).toString('hex');

/** Statements our server has sent to Postgres (its `db_statements_sent` metric). */
async function statementsSent(url: string): Promise<number> {
  const response = await fetch(url.replace(/\/graphql$/, '/metrics'), {
    headers: { authorization: `Bearer ${METRICS_TOKEN}` },
  });
  const text = await response.text();
  return Number(/^db_statements_sent (\d+)/m.exec(text)?.[1] ?? NaN);
}

async function main() {
  await freshDatabase(baseUrl);
  const databaseName = new URL(baseUrl).pathname.slice(1);
  const observer = postgres(baseUrl.replace(/\/[^/]*$/, '/postgres'), {
    max: 1,
    onnotice: () => {},
  });
  /** CPU of every backend connected to the bench database (the service's pool and listener). */
  const pgCpuUs = async () => {
    const rows = await observer<{ pid: number }[]>`
      select pid from pg_stat_activity where datname = ${databaseName}`;
    return rows.reduce((n, r) => n + cpuUsOf(r.pid), 0);
  };
  const walPosition = async () => {
    const [row] = await observer<{ bytes: string }[]>`
      select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::text as bytes`;
    return Number(row!.bytes);
  };
  const ourPort = 4300 + Math.floor(Math.random() * 200);
  const refPort = ourPort + 1;
  const ourEnv = {
    DATABASE_URL: baseUrl,
    ADMIN_KEY,
    SESSION_SECRET: SECRET,
    PORT: String(ourPort),
    HOST: '127.0.0.1',
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    SWEEP_INTERVAL_SECONDS: '0',
    // /metrics beside GraphQL, for the statements counter (production needs a token there).
    METRICS_PORT: 'main',
    METRICS_TOKEN,
    // Where rate limits count (default without REDIS_URL: postgres, the fleet counters).
    ...(process.env.BENCH_RATE_LIMIT_STORE
      ? { RATE_LIMIT_STORE: process.env.BENCH_RATE_LIMIT_STORE }
      : {}),
    // The benchmark measures throughput, not the limits: each connection refreshes its own
    // session in a loop, which the per-session limit is there to stop.
    RATE_LIMIT_REFRESHES_PER_SESSION: '100000',
    // One key and one address send everything here: raise every class's limit past what
    // the run can send, so the figures are of the work, not of RATE_LIMITED refusals.
    ...Object.fromEntries(RATE_CLASSES.map((c) => [`RATE_LIMIT_${c.toUpperCase()}`, '100000000'])),
  };
  const ours = await startProcess(
    [
      ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      '--import',
      'tsx',
      'src/main.ts',
    ],
    ourEnv,
    /ready:/,
  );
  let second: ChildProcess | undefined;
  const reference = await startProcess(
    ['--import', 'tsx', 'test/bench/reference-server.ts', String(refPort)],
    {},
    /listening/,
  );
  const ourUrl = `http://127.0.0.1:${ourPort}/graphql`;
  const refUrl = `http://127.0.0.1:${refPort}/graphql`;
  try {
    // Seed through the API: a product, a key, a config, sessions to verify and refresh, and one
    // user with a page of sessions to list.
    const tag = `bench-${randomBytes(4).toString('hex')}`;
    await gql(
      ourUrl,
      ADMIN_KEY,
      `mutation($i: CreateProductInput!) { createProduct(input: $i) { tag } }`,
      {
        i: { tag, name: 'Benchmark', envs: ['prd'] },
      },
    );
    const { createApiKey } = await gql(
      ourUrl,
      ADMIN_KEY,
      `mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }`,
      { i: { product: tag, env: 'prd', kind: 'SECRET', name: 'bench' } },
    );
    const key: string = createApiKey.key;
    await gql(
      ourUrl,
      key,
      `mutation($i: CreateSessionConfigInput!) { createSessionConfig(input: $i) { tag } }`,
      {
        i: {
          name: 'Bench',
          tag: 'user-session',
          description: 'benchmark',
          schema: { userId: 'u', role: 'user' },
          selector: '$Session{userId}',
          expiry: 1,
          period: 'HOURS',
        },
      },
    );
    const START = `mutation($i: StartSessionInput!) { startSession(input: $i) { token refreshToken sessionId } }`;
    const started: { token: string; refreshToken: string }[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          gql(ourUrl, key, START, {
            i: { tag: 'user-session', data: { userId: `user-${batch * 50 + i}`, role: 'user' } },
          }),
        ),
      );
      for (const r of results) started.push(r.startSession);
    }
    await Promise.all(
      Array.from({ length: 20 }, () =>
        gql(ourUrl, key, START, {
          i: { tag: 'user-session', data: { userId: 'list-user', role: 'user' } },
        }),
      ),
    );

    // Statistics as a running database has them (autovacuum would analyze in its own time).
    const analyze = postgres(baseUrl, { max: 1, onnotice: () => {} });
    await analyze`analyze`;
    await analyze.end();

    const auth = { authorization: `Bearer ${key}` };
    const VERIFY = `query($t: String!) { verifySession(tag: "user-session", token: $t) { sessionId identifier data } }`;
    const REFRESH = `mutation($r: String!) { refreshSession(tag: "user-session", refreshToken: $r) { token refreshToken } }`;
    let verifyCursor = 0;
    // The sessions the refresh scenario renews (450 of them, more than the connections), each
    // with its current pair, and those not being refreshed right now.
    const refreshChains = started.slice(500, 950).map((s) => ({ refreshToken: s.refreshToken }));
    const idleRefreshes = refreshChains.map((_, i) => i);
    let refreshFailures = 0;
    let startCursor = 0;
    const scenarios: Scenario[] = [
      {
        name: 'reference { __typename }',
        target: 'reference',
        headers: {},
        requests: [post({ query: '{ __typename }' })],
      },
      {
        name: 'our { __typename }',
        target: 'ours',
        headers: {},
        requests: [post({ query: '{ __typename }' })],
      },
      {
        name: 'verifySession',
        target: 'ours',
        headers: auth,
        requests: [
          {
            method: 'POST',
            setupRequest: (req) => ({
              ...req,
              body: JSON.stringify({
                query: VERIFY,
                variables: { t: started[verifyCursor++ % started.length]!.token },
              }),
            }),
          },
        ],
      },
      // The client package's verify, as it sends it (its id and its text; the server runs its
      // own copy by id), and by its id alone (a trusted document, nothing to read but the id).
      clientVerify('verifySession, client document, id + text', auth, () => ({
        documentId: documentId(CLIENT_VERIFY),
        query: CLIENT_VERIFY,
        variables: { tag: 'user-session', token: started[verifyCursor++ % started.length]!.token },
      })),
      clientVerify('verifySession, client document, id only', auth, () => ({
        documentId: documentId(CLIENT_VERIFY),
        variables: { tag: 'user-session', token: started[verifyCursor++ % started.length]!.token },
      })),
      {
        name: 'startSession',
        target: 'ours',
        headers: auth,
        requests: [
          {
            method: 'POST',
            // A new user for each start, as logins are: one user's starts queue on their row.
            setupRequest: (req) => ({
              ...req,
              body: JSON.stringify({
                query: START,
                variables: {
                  i: {
                    tag: 'user-session',
                    data: { userId: `load-${startCursor++}`, role: 'user' },
                  },
                },
              }),
            }),
          },
        ],
      },
      {
        name: 'refreshSession',
        target: 'ours',
        headers: auth,
        requests: [
          {
            method: 'POST',
            // Each request refreshes an idle session with the last pair it got back. autocannon
            // resets a connection's context after every request (the sequence here is one
            // request long), so the chains live here; a context only carries a request's
            // session to its response. (Kept in the context, every request after the first
            // 450 replayed a spent token: grace-window answers, then REUSE_DETECTED.)
            setupRequest: (req, context: any) => {
              const index = idleRefreshes.shift()!;
              context.index = index;
              return {
                ...req,
                body: JSON.stringify({
                  query: REFRESH,
                  variables: { r: refreshChains[index]!.refreshToken },
                }),
              };
            },
            onResponse: (status, body, context: any) => {
              const parsed = JSON.parse(body);
              if (parsed.data?.refreshSession) {
                refreshChains[context.index] = parsed.data.refreshSession;
              } else {
                refreshFailures++;
              }
              idleRefreshes.push(context.index);
            },
          },
        ],
      },
      {
        name: 'sessions(...) list',
        target: 'ours',
        headers: auth,
        requests: [
          post({
            query: `{ sessions(tag: "user-session", identifier: "list-user", first: 20) { totalCount edges { node { id createdAt expiresAt lastActiveAt } } } }`,
          }),
        ],
      },
    ];

    // At 1 k stored sessions, then at 1 M: the same figures show the indexes fit the queries.
    let scale: unknown;
    if (args.has('--scale')) scale = await scaleRun(ourUrl, key, started, tag);

    const only = process.env.BENCH_ONLY?.split(',');
    const results = new Map<string, autocannon.Result[]>();
    const costs = new Map<string, Cost>();
    const costNow = async (scenario: Scenario): Promise<Cost> => ({
      nodeUs: cpuUsOf((scenario.target === 'ours' ? ours : reference).pid!),
      pgUs: await pgCpuUs(),
      statements: scenario.target === 'ours' ? await statementsSent(ourUrl) : 0,
      walBytes: await walPosition(),
    });
    for (let round = 0; round < ROUNDS; round++) {
      for (const scenario of scenarios) {
        if (only && scenario.target === 'ours' && !only.some((o) => scenario.name.startsWith(o))) {
          continue;
        }
        const before = await costNow(scenario);
        const result = await load(scenario.target === 'ours' ? ourUrl : refUrl, scenario, SECONDS);
        const after = await costNow(scenario);
        const sum = costs.get(scenario.name) ?? {
          nodeUs: 0,
          pgUs: 0,
          statements: 0,
          walBytes: 0,
        };
        costs.set(scenario.name, {
          nodeUs: sum.nodeUs + after.nodeUs - before.nodeUs,
          pgUs: sum.pgUs + after.pgUs - before.pgUs,
          statements: sum.statements + after.statements - before.statements,
          walBytes: sum.walBytes + after.walBytes - before.walBytes,
        });
        results.set(scenario.name, [...(results.get(scenario.name) ?? []), result]);
        process.stderr.write(
          `round ${round + 1} ${scenario.name}: ${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms, errors ${result.errors}, non2xx ${result.non2xx}\n`,
        );
      }
    }
    // Start and refresh at 1, 16 and 64 clients: what batching and contention do to the
    // Postgres CPU and the WAL a write costs, as the load grows.
    const sweep: { scenario: string; clients: number; row: Row }[] = [];
    if (args.has('--sweep')) {
      const counts = (process.env.BENCH_SWEEP ?? '1,16,64').split(',').map(Number);
      for (const clients of counts) {
        for (const scenario of scenarios.filter((s) => /^(start|refresh)Session/.test(s.name))) {
          const before = await costNow(scenario);
          const result = await load(ourUrl, scenario, SECONDS, clients);
          const after = await costNow(scenario);
          const n = result.requests.total;
          sweep.push({
            scenario: scenario.name,
            clients,
            row: {
              name: `${scenario.name} × ${clients}`,
              reqPerSec: Math.round(n / result.duration),
              p50: result.latency.p50,
              p99: result.latency.p99,
              errors: result.errors,
              non2xx: result.non2xx,
              nodeUsPerOp: Math.round((after.nodeUs - before.nodeUs) / n),
              pgUsPerOp: Math.round((after.pgUs - before.pgUs) / n),
              statementsPerOp: Math.round(((after.statements - before.statements) / n) * 100) / 100,
              walBytesPerOp: Math.round((after.walBytes - before.walBytes) / n),
            },
          });
          process.stderr.write(
            `sweep ${scenario.name} at ${clients} clients: ${Math.round(n / result.duration)} req/s\n`,
          );
        }
      }
    }
    const rows: Row[] = scenarios
      .filter((s) => results.has(s.name))
      .map((s) => {
        const runs = results.get(s.name)!;
        const total = runs.reduce((n, r) => n + r.requests.total, 0);
        const seconds = runs.reduce((n, r) => n + r.duration, 0);
        const cost = costs.get(s.name)!;
        return {
          name: s.name,
          nodeUsPerOp: Math.round(cost.nodeUs / total),
          pgUsPerOp: Math.round(cost.pgUs / total),
          statementsPerOp: Math.round((cost.statements / total) * 100) / 100,
          walBytesPerOp: Math.round(cost.walBytes / total),
          reqPerSec: Math.round(total / seconds),
          p50: Math.max(...runs.map((r) => r.latency.p50)),
          p99: Math.max(...runs.map((r) => r.latency.p99)),
          errors: runs.reduce((n, r) => n + r.errors, 0),
          non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
        };
      });
    const baseline = rows[0]!.reqPerSec;
    for (const row of rows) row.ratio = Math.round((row.reqPerSec / baseline) * 100) / 100;

    // The local verifier (issue #15), against this run's server verifySession; revocations
    // through a second instance on the same database. BENCH_LOCAL=0 skips it.
    let local: LocalFigures | undefined;
    const serverVerify = rows.find((r) => r.name === 'verifySession')?.reqPerSec;
    if (process.env.BENCH_LOCAL !== '0' && serverVerify !== undefined) {
      second = await startProcess(
        ['--import', 'tsx', 'src/main.ts'],
        { ...ourEnv, PORT: String(ourPort + 2), METRICS_PORT: String(ourPort + 3) },
        /ready:/,
      );
      local = await localVerifierBench({
        url: ourUrl,
        secondUrl: `http://127.0.0.1:${ourPort + 2}/graphql`,
        key,
        tag: 'user-session',
        tokens: started.slice(0, 500).map((s) => s.token),
        serverVerifyPerSec: serverVerify,
        seconds: Math.max(2, Math.min(SECONDS, 5)),
      });
      process.stdout.write(`\n${localTable(local, serverVerify)}\n`);
    }

    let soak: unknown;
    if (args.has('--soak')) soak = await soakRun(ourUrl, key, started, ours.pid!);

    const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
    const table = [
      `| scenario | req/s | p50 ms | p99 ms | ratio to reference | Node µs/op | PG µs/op | statements/op | WAL bytes/op |`,
      `| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`,
      ...rows.map(
        (r) =>
          `| ${r.name} | ${r.reqPerSec} | ${r.p50} | ${r.p99} | ${r.ratio} | ${r.nodeUsPerOp} | ${r.pgUsPerOp} | ${r.statementsPerOp} | ${r.walBytesPerOp} |`,
      ),
    ].join('\n');
    process.stdout.write(
      `\n${machine}; ${CONNECTIONS} connections, ${ROUNDS} × ${SECONDS} s each, interleaved\n\n${table}\n`,
    );
    if (sweep.length > 0) {
      process.stdout.write(
        `\n| scenario × clients | req/s | p99 ms | Node µs/op | PG µs/op | statements/op | WAL bytes/op |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n${sweep
          .map(
            ({ row: r }) =>
              `| ${r.name} | ${r.reqPerSec} | ${r.p99} | ${r.nodeUsPerOp} | ${r.pgUsPerOp} | ${r.statementsPerOp} | ${r.walBytesPerOp} |`,
          )
          .join('\n')}\n`,
      );
    }
    if (refreshFailures > 0)
      process.stdout.write(`\nWARNING: ${refreshFailures} refreshes answered an error\n`);
    const failures = rows.filter((r) => r.errors > 0 || r.non2xx > 0);
    if (failures.length > 0)
      process.stdout.write(`\nWARNING: errors in ${failures.map((f) => f.name).join(', ')}\n`);
    await writeResults('latest.json', {
      at: new Date().toISOString(),
      machine,
      connections: CONNECTIONS,
      seconds: SECONDS,
      rounds: ROUNDS,
      rows,
      sweep: sweep.length > 0 ? sweep.map((s) => s.row) : undefined,
      local,
      scale,
      soak,
    });
  } finally {
    ours.kill('SIGTERM');
    second?.kill('SIGTERM');
    reference.kill('SIGTERM');
    await observer.end();
  }
}

/** Verifies of a token picked at random among the seeded sessions. */
/** A scenario of verifies whose body `body` makes, one per request. */
function clientVerify(
  name: string,
  headers: Record<string, string>,
  body: () => Record<string, unknown>,
): Scenario {
  return {
    name,
    target: 'ours',
    headers,
    requests: [
      { method: 'POST', setupRequest: (req) => ({ ...req, body: JSON.stringify(body()) }) },
    ],
  };
}

function randomVerify(name: string, key: string, started: { token: string }[]): Scenario {
  return {
    name,
    target: 'ours',
    headers: { authorization: `Bearer ${key}` },
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => ({
          ...req,
          body: JSON.stringify({
            query: `query($t: String!) { verifySession(tag: "user-session", token: $t) { sessionId } }`,
            variables: { t: started[Math.floor(Math.random() * started.length)]!.token },
          }),
        }),
      },
    ],
  };
}

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

async function scaleRun(
  url: string,
  key: string,
  started: { token: string }[],
  productTag: string,
) {
  const sql = postgres(baseUrl, { max: 2, onnotice: () => {} });
  const measure = async (label: string) => {
    const verify = await load(url, randomVerify('verify', key, started), SECONDS);
    const list = await load(
      url,
      {
        name: 'list',
        target: 'ours',
        headers: { authorization: `Bearer ${key}` },
        requests: [
          post({
            query: `{ sessions(tag: "user-session", identifier: "list-user", first: 20) { totalCount edges { node { id } } } }`,
          }),
        ],
      },
      SECONDS,
    );
    const counted = await sql`select count(*)::int as n from sessions`;
    return {
      label,
      storedSessions: Number(counted[0]?.n),
      verify: { reqPerSec: Math.round(verify.requests.average), p99: verify.latency.p99 },
      list: { reqPerSec: Math.round(list.requests.average), p99: list.latency.p99 },
    };
  };
  const small = await measure('before seeding');
  const [product] = await sql`select id from products where tag = ${productTag}`;
  const [config] =
    await sql`select id from session_configs where product_id = ${product!.id} and tag = 'user-session'`;
  const existing = (await sql`select count(*)::int as n from sessions`)[0]!.n as number;
  const toAdd = Math.max(0, 1_000_000 - existing);
  process.stderr.write(`seeding ${toAdd} sessions with generate_series…\n`);
  for (let done = 0; done < toAdd; done += 250_000) {
    const n = Math.min(250_000, toAdd - done);
    await sql`
      insert into sessions (id, product_id, env, config_id, tag, identifier, data_enc, token_lifetime_seconds,
                            created_at, expires_at, refresh_expires_at, last_active_at)
      select gen_random_uuid(), ${product!.id}, 'prd', ${config!.id}, 'user-session', 'filler-' || (g % 100000),
             'x', 3600, now() - (g || ' seconds')::interval, now() + interval '1 hour', now() + interval '30 days', now()
      from generate_series(1, ${n}) g`;
  }
  await sql`analyze sessions`;
  const large = await measure('after seeding');
  await sql.end();
  return { small, large };
}

async function soakRun(url: string, key: string, started: { token: string }[], pid: number) {
  const rssStart = rssOf(pid);
  const result = await load(url, randomVerify('soak verify', key, started), 600);
  const rssEnd = rssOf(pid);
  const soak = {
    seconds: 600,
    reqPerSec: Math.round(result.requests.average),
    p99: result.latency.p99,
    errors: result.errors,
    rssStartMiB: Math.round(rssStart / 2 ** 20),
    rssEndMiB: Math.round(rssEnd / 2 ** 20),
  };
  process.stdout.write(`\nsoak: ${JSON.stringify(soak)}\n`);
  return soak;
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});

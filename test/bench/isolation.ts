/**
 * `npx tsx test/bench/isolation.ts`: how much one key's heaviest requests slow another product.
 *
 * Starts this server on Postgres (a fresh `isolation` database, loopback only), seeds a "heavy"
 * product (100 configs with 16 KiB schemas and 2,000-character descriptions, a user with 100
 * sessions of 16 KiB data) and a "victim" product, then measures the victim's `isSessionValid`
 * latency idle, and again under each of three floods of the heavy key:
 *
 * - aliases: from HEAVY_WORKERS parallel loops, the heaviest requests the server accepts: the
 *   issue's reproductions (20 aliases of `sessionConfigs { schema description }` and of
 *   `sessions(first: 100) { … data }`) when they are accepted, else the most aliases of each that
 *   are;
 * - heartbeat flood: `verifierFeed` subscriptions over graphql-ws. The issue's reproduction
 *   first (300 feeds at `heartbeatMs: 100`, the answers recorded), then 100 feeds at the fastest
 *   heartbeat accepted, of which as many as the server accepts are kept open while the victim is
 *   measured: all with the same 20 tags (one heartbeat read shared by all), then, with a second
 *   key, each with 20 tags of its own (no read shared). A RATE_LIMITED answer is retried after
 *   its `retryAfterSeconds`;
 * - dashboard aliases: 100,000 stored sessions seeded with SQL for one tag, then, from
 *   HEAVY_WORKERS loops, the most `sessionDashboard` aliases (DAY over 90 days) one request may
 *   hold; 20 first, the refusal recorded.
 *
 * The floods run in child processes: reading their answers must not slow the victim's client.
 * Each phase first waits 11 s (what came before reaches the statistics), then runs QUIET_SECONDS
 * (10) with the flood alone (or nothing, idle), then with the victim's verifies; for both windows
 * it gives the server's CPU, the CPU of its Postgres backends, Postgres commits a second
 * (`pg_stat_database.xact_commit`) and what `pg_stat_activity` showed, and the server's RSS with
 * the victim. The victim is also measured idle just before each flood (the machine may be
 * shared), and each ratio is given to both idles.
 *
 * Bounded: each phase measures at least VERIFIES verifies at VICTIM_CONCURRENCY and lasts at
 * least PHASE_MIN_SECONDS (15), at most PHASE_DEADLINE_MS; opening the feeds has a deadline too,
 * and every child process and connection the bench starts is ended before it exits.
 * ISOLATION_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/isolation) is dropped and
 * created anew. ISOLATION_LABEL names the results file (test/bench/results/isolation-<label>.json).
 */
import { spawn, type ChildProcess, type Serializable } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { freshDatabase } from './fresh-database.js';
import { writeResults } from './results-file.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const VERIFIES = Number(process.env.VERIFIES ?? 400);
const PHASE_MIN_MS = Number(process.env.PHASE_MIN_SECONDS ?? 15) * 1000;
/** Each phase first runs this long without the victim (the database's figures of the flood alone). */
const QUIET_MS = Number(process.env.QUIET_SECONDS ?? 10) * 1000;
/** PostgreSQL's PGSTAT_IDLE_INTERVAL (10 s) and a second: see `measure`. */
const STATS_SETTLE_MS = 11_000;
const VICTIM_CONCURRENCY = 4;
const HEAVY_WORKERS = Number(process.env.HEAVY_WORKERS ?? 4);
const PHASE_DEADLINE_MS = 120_000;
/** Opening the feeds, a wait for the rate limit's window included. */
const FEEDS_DEADLINE_MS = 150_000;
const CONFIGS = 100;
const SESSIONS = 100;
/**
 * The heartbeat flood: the issue's 300 feeds at 100 ms, then 100 at 1 s (past the cap of 64 per
 * key), each plan over 4 sockets (at most 100 operations each).
 */
const REPRODUCTION_FEEDS = 300;
const FEED_ATTEMPTS = 100;
const FEED_SOCKETS = 4;
/** The dashboard flood: stored sessions of one tag, of 10,000 users, created over 90 days. */
const DASHBOARD_SESSIONS = 100_000;
const DASHBOARD_USERS = 10_000;
const DASHBOARD_TAG = 'c1';
const DAY_MS = 86_400_000;
/** The target of issue 23: under a flood, the victim's p99 stays within this many idle p99s. */
const P99_TARGET_RATIO = 3;
const ADMIN_KEY = `ak_${randomBytes(32).toString('base64url')}`;
const SECRET = randomBytes(48).toString('base64url');
const DATABASE_URL =
  process.env.ISOLATION_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/isolation';
const LABEL = process.env.ISOLATION_LABEL ?? 'latest';

if (!/^postgres(ql)?:\/\/[^/]*@?(127\.0\.0\.1|localhost)(:\d+)?\//.test(DATABASE_URL)) {
  throw new Error('isolation bench: loopback Postgres only');
}

/** Every child process the bench starts, ended in `main`'s `finally` whatever happened. */
const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function startServer(port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          DATABASE_URL,
          ADMIN_KEY,
          SESSION_SECRET: SECRET,
          PORT: String(port),
          HOST: '127.0.0.1',
          NODE_ENV: 'production',
          LOG_LEVEL: 'error',
          SWEEP_INTERVAL_SECONDS: '0',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (/listening|ready:/.test(out)) resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
    child.on('exit', (code) => reject(new Error(`server exited (${code}):\n${out}`)));
    setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 60_000).unref();
  });
}

interface Answer {
  bytes: number;
  body: { data?: Record<string, unknown> | null; errors?: { extensions?: { code?: string } }[] };
}

async function post(url: string, key: string, query: string, variables?: unknown): Promise<Answer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  return { bytes: Buffer.byteLength(text), body: JSON.parse(text) as Answer['body'] };
}

async function must(url: string, key: string, query: string, variables?: unknown) {
  const { body } = await post(url, key, query, variables);
  if (body.errors || !body.data) throw new Error(JSON.stringify(body).slice(0, 500));
  return body.data as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

function jsonOf(bytes: number, userId: string) {
  const base = JSON.stringify({ userId, pad: '' }).length;
  return { userId, pad: 'x'.repeat(bytes - base) };
}

const aliases = (n: number, field: (alias: string) => string) =>
  Array.from({ length: n }, (_, i) => field(`a${i}`)).join(' ');

const HEAVY_KINDS = {
  configs: (n: number) => `{ ${aliases(n, (a) => `${a}: sessionConfigs { schema description }`)} }`,
  sessions: (n: number) =>
    `query($tag: String!) { ${aliases(n, (a) => `${a}: sessions(tag: $tag, identifier: "heavy", first: 100) { edges { cursor node { id identifier data } } }`)} }`,
};

/** `n` aliases of a dashboard with every figure and every period's figures. */
const dashboardQuery = (n: number) =>
  `query($tag: String!, $from: DateTime!, $to: DateTime!) { ${aliases(
    n,
    (a) => `${a}: sessionDashboard(tag: $tag, from: $from, to: $to, groupBy: DAY) {
      totalUsers activeUsers totalSessions activeSessions expiredSessions revokedSessions
      successes failures successRate errorRate averageDurationMs
      periods { start sessionsCreated sessionsExpired activeSessions sessionsRevoked starts verifies refreshes revokes successes failures averageDurationMs } }`,
  )} }`;

const FEED_QUERY = `subscription($tags: [String!]!, $after: ID!, $heartbeatMs: Int) {
  verifierFeed(tags: $tags, after: $after, heartbeatMs: $heartbeatMs) {
    position at entry { sessionId state } notBefore { tag notBefore } } }`;

interface LoadTally {
  requests: number;
  bytes: number;
  /** Answers without an error. */
  answered: number;
  /** Error codes in the answers (an aliased answer may hold several). */
  errorCodes: Record<string, number>;
}

/**
 * A child process of HEAVY_WORKERS loops sending `queries` in turn (with `variables`), reading
 * the bytes and looking only for the error codes.
 */
function startHeavyLoad(url: string, key: string, queries: string[], variables: unknown) {
  const script = `
    const { url, key, queries, variables, workers, deadlineMs } = JSON.parse(process.env.HEAVY);
    let stop = false;
    const tally = { requests: 0, bytes: 0, answered: 0, errorCodes: {} };
    const loops = Array.from({ length: workers }, async (_, w) => {
      for (let i = w; !stop; i++) {
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + key }, body: JSON.stringify({ query: queries[i % queries.length], variables }) });
        const body = Buffer.from(await response.arrayBuffer());
        tally.bytes += body.byteLength;
        tally.requests++;
        const at = body.indexOf('"errors":');
        if (at < 0) { tally.answered++; continue; }
        for (const [, code] of body.subarray(at, at + 65536).toString().matchAll(/"code":"([A-Z_]+)"/g)) {
          tally.errorCodes[code] = (tally.errorCodes[code] ?? 0) + 1;
        }
      }
    });
    const end = async () => { stop = true; await Promise.all(loops); process.send(tally); process.exit(0); };
    process.on('message', end);
    process.on('disconnect', () => process.exit(0));
    setTimeout(() => process.exit(0), deadlineMs).unref();
  `;
  const child = track(
    spawn(process.execPath, ['-e', script], {
      env: {
        PATH: process.env.PATH ?? '',
        HEAVY: JSON.stringify({
          url,
          key,
          queries,
          variables,
          workers: HEAVY_WORKERS,
          deadlineMs: 2 * PHASE_DEADLINE_MS,
        }),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  return {
    stop: () =>
      new Promise<LoadTally>((resolve, reject) => {
        child.once('message', (m) => resolve(m as LoadTally));
        child.once('exit', (code) => reject(new Error(`heavy load exited (${code})`)));
        child.send('stop');
      }),
  };
}

interface FeedPlan {
  /** The key the feeds are opened with (on FEED_SOCKETS sockets of its own). */
  key: string;
  heartbeatMs: number;
  /** The tags of each feed: `tags[i % tags.length]`. */
  tags: string[][];
  count: number;
  /** Keep the feeds that open (else ended at once), and retry RATE_LIMITED answers. */
  keep: boolean;
}

/** What opening a plan's feeds got: the final answer of each attempt, by code (OPEN: it beat). */
interface FeedOpening {
  answers: Record<string, number>;
  /** RATE_LIMITED answers retried after the window, and the seconds waited for it. */
  rateLimitedRetried: number;
  waitedSeconds: number;
  seconds: number;
}

/** The feeds held open from `mark` to `close`, and their heartbeats in that time. */
interface FeedsHeld {
  open: number;
  heartbeats: number;
  seconds: number;
}

/**
 * A child process that opens verifierFeed subscriptions over graphql-ws when told (`open`: all
 * of a plan's at once, on FEED_SOCKETS sockets of the plan's key) and reports what the server
 * answered. A feed counts as open when its first heartbeat arrives. The feeds kept open are
 * counted (heartbeats between `mark` and `close`) and all end, with their sockets, at `close`.
 */
function startFeedFlood(wsUrl: string, after: string) {
  const script = `
    const { createClient } = require('graphql-ws');
    const WebSocket = require('ws');
    const { wsUrl, after, query, sockets, deadlineMs } = JSON.parse(process.env.FEEDS);
    let clients = [], kept = [], beats = 0, markedAt = Date.now();
    const codeOf = (e) => {
      const first = Array.isArray(e) ? e[0] : e;
      if (first && first.extensions) return { code: first.extensions.code || 'NO_CODE', retryAfterSeconds: first.extensions.retryAfterSeconds };
      if (first && typeof first.code === 'number') return { code: 'SOCKET_CLOSED_' + first.code };
      return { code: 'ERROR' };
    };
    const attempt = (client, variables) => new Promise((resolve) => {
      let settled = false, dispose;
      const finish = (r) => { if (!settled) { settled = true; clearTimeout(timer); resolve(r); } };
      const timer = setTimeout(() => { dispose && dispose(); finish({ code: 'NO_ANSWER' }); }, 30000);
      dispose = client.subscribe({ query, variables }, {
        next: (v) => {
          if (v.errors) return finish(codeOf(v.errors));
          if (settled) beats++; else finish({ code: 'OPEN', dispose });
        },
        error: (e) => finish(codeOf(e)),
        complete: () => finish({ code: 'COMPLETED' }),
      });
    });
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    async function open(plan) {
      const began = Date.now();
      const deadline = began + deadlineMs;
      const mine = Array.from({ length: sockets }, () => createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: 'Bearer ' + plan.key }, retryAttempts: 0, lazy: true }));
      clients.push(...mine);
      const answers = {};
      let pending = Array.from({ length: plan.count }, (_, i) => i);
      let rateLimitedRetried = 0, waited = 0;
      while (pending.length > 0) {
        const results = await Promise.all(pending.map((i) => attempt(mine[i % mine.length], { tags: plan.tags[i % plan.tags.length], after, heartbeatMs: plan.heartbeatMs })));
        const limited = [];
        let retryAfter = 0;
        results.forEach((r, j) => {
          if (r.code === 'OPEN' && !plan.keep) r.dispose();
          else if (r.code === 'OPEN') kept.push(r.dispose);
          if (r.code === 'RATE_LIMITED' && plan.keep) {
            limited.push(pending[j]);
            retryAfter = Math.max(retryAfter, r.retryAfterSeconds || 1);
          } else answers[r.code] = (answers[r.code] || 0) + 1;
        });
        if (limited.length === 0) break;
        const wait = Math.min(retryAfter + 1, 65) * 1000;
        if (Date.now() + wait > deadline) { answers.RATE_LIMITED = (answers.RATE_LIMITED || 0) + limited.length; break; }
        rateLimitedRetried += limited.length;
        waited += wait / 1000;
        await sleep(wait);
        pending = limited;
      }
      return { answers, rateLimitedRetried, waitedSeconds: waited, seconds: (Date.now() - began) / 1000 };
    }
    process.on('message', async (m) => {
      if (m.cmd === 'open') process.send({ kind: 'opened', opening: await open(m.plan) });
      else if (m.cmd === 'mark') { beats = 0; markedAt = Date.now(); }
      else if (m.cmd === 'close') {
        const held = { open: kept.length, heartbeats: beats, seconds: (Date.now() - markedAt) / 1000 };
        for (const dispose of kept) dispose();
        await Promise.all(clients.map((c) => c.dispose()));
        kept = [];
        clients = [];
        process.send({ kind: 'closed', held });
      } else process.exit(0);
    });
    process.on('disconnect', () => process.exit(0));
    setTimeout(() => process.exit(0), 2 * deadlineMs + 4 * ${PHASE_DEADLINE_MS}).unref();
  `;
  const child = track(
    spawn(process.execPath, ['-e', script], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        FEEDS: JSON.stringify({
          wsUrl,
          after,
          query: FEED_QUERY,
          sockets: FEED_SOCKETS,
          deadlineMs: FEEDS_DEADLINE_MS,
        }),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const ask = <T>(message: Serializable, kind: string) => {
    const answer = new Promise<T>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`feed flood exited (${code})`));
      const onMessage = (m: { kind: string }) => {
        if (m.kind !== kind) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(m as T);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
    child.send(message);
    return answer;
  };
  return {
    open: (plan: FeedPlan) =>
      ask<{ opening: FeedOpening }>(
        { cmd: 'open', plan } as unknown as Serializable,
        'opened',
      ).then((m) => m.opening),
    mark: () => child.send({ cmd: 'mark' }),
    close: () => ask<{ held: FeedsHeld }>({ cmd: 'close' }, 'closed').then((m) => m.held),
    exit: () => child.send({ cmd: 'exit' }),
  };
}

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

interface VictimFigures {
  count: number;
  p50: number;
  p99: number;
}

/**
 * The victim's isSessionValid calls at VICTIM_CONCURRENCY, at least VERIFIES of them and for at
 * least PHASE_MIN_MS, at most PHASE_DEADLINE_MS; latencies in ms.
 */
async function victimRun(
  url: string,
  key: string,
  tag: string,
  tokens: string[],
  minMs = PHASE_MIN_MS,
): Promise<VictimFigures> {
  const latencies: number[] = [];
  const began = Date.now();
  let next = 0;
  const query = `query($tag: String!, $token: String!) { isSessionValid(tag: $tag, token: $token) }`;
  const more = () =>
    Date.now() < began + PHASE_DEADLINE_MS && (next < VERIFIES || Date.now() < began + minMs);
  await Promise.all(
    Array.from({ length: VICTIM_CONCURRENCY }, async () => {
      while (more()) {
        const token = tokens[next++ % tokens.length]!;
        const begin = performance.now();
        const { body } = await post(url, key, query, { tag, token });
        latencies.push(performance.now() - begin);
        if (body.data?.isSessionValid !== true) throw new Error(JSON.stringify(body));
      }
    }),
  );
  const sorted = latencies.sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: +percentile(sorted, 50).toFixed(1),
    p99: +percentile(sorted, 99).toFixed(1),
  };
}

type Sql = ReturnType<typeof postgres>;

/** What the database did in a phase, read from its statistics views on a connection of its own. */
async function databaseWatch(sql: Sql) {
  const commits = async () =>
    Number(
      (
        await sql<{ n: string }[]>`
          select xact_commit::text as n from pg_stat_database where datname = current_database()`
      )[0]!.n,
    );
  /** The server's backends (not this one) and their CPU seconds so far. */
  const backends = async () => {
    const rows = await sql<{ pid: number }[]>`
      select pid from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid()`;
    const cpu = new Map<number, number>();
    for (const { pid } of rows) {
      try {
        cpu.set(pid, cpuSeconds(pid));
      } catch {
        // Ended since.
      }
    }
    return cpu;
  };
  /** This connection's own transactions after the first count: taken off the server's. */
  let own = 0;
  const commitsBefore = await commits();
  const cpuBefore = await backends();
  const wallBefore = performance.now();
  // pg_stat_activity every 250 ms: how many of the server's backends were active, on what.
  let samples = 0;
  let active = 0;
  let activeMost = 0;
  const waits = new Map<string, number>();
  const queries = new Map<string, number>();
  let sampling: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    sampling = sampling.then(async () => {
      const rows = await sql<{ wait: string | null; query: string }[]>`
        select coalesce(wait_event_type || ':' || wait_event, 'CPU') as wait,
               regexp_replace(left(query, 70), '\\s+', ' ', 'g') as query
        from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and state = 'active'
          and backend_type = 'client backend'`;
      samples++;
      own++;
      active += rows.length;
      activeMost = Math.max(activeMost, rows.length);
      for (const row of rows) {
        waits.set(row.wait ?? 'CPU', (waits.get(row.wait ?? 'CPU') ?? 0) + 1);
        queries.set(row.query, (queries.get(row.query) ?? 0) + 1);
      }
    });
  }, 250);
  const top = (counts: Map<string, number>, n: number) =>
    Object.fromEntries(
      [...counts]
        .sort((a, b) => b[1] - a[1])
        .slice(0, n)
        .map(([k, v]) => [k, +(v / Math.max(1, samples)).toFixed(2)]),
    );
  return {
    async end() {
      clearInterval(timer);
      await sampling;
      const seconds = (performance.now() - wallBefore) / 1000;
      const cpuAfter = await backends();
      own += 2; // the two reads of the backends
      let cpu = 0;
      for (const [pid, after] of cpuAfter) cpu += after - (cpuBefore.get(pid) ?? after);
      return {
        commitsPerSecond: ((await commits()) - commitsBefore - own) / seconds,
        backendsCpuPercent: +((cpu / seconds) * 100).toFixed(0),
        activeBackends: { mean: +(active / Math.max(1, samples)).toFixed(2), most: activeMost },
        /** Mean active backends waiting on each event (CPU: none), the five most common. */
        activeByWait: top(waits, 5),
        /** Mean active backends running each statement (its first 70 characters), top three. */
        activeByQuery: top(queries, 3),
      };
    },
  };
}

/**
 * One phase: STATS_SETTLE_MS, then QUIET_MS with what runs already (a flood, or nothing) and no
 * victim, for the database's own figures, then the victim measured; the server's and the
 * database's figures of both windows.
 */
async function measure(
  url: string,
  victimKey: string,
  tokens: string[],
  pid: number,
  sql: Sql,
  onStart: () => void = () => {},
) {
  onStart();
  // What backends did before the phase reaches pg_stat_database up to 10 s late (a backend
  // left idle publishes its last counts after PGSTAT_IDLE_INTERVAL): let it land first.
  await sleep(STATS_SETTLE_MS);
  const quietCpu = cpuSeconds(pid);
  const quietWall = performance.now();
  const quiet = await databaseWatch(sql);
  await sleep(QUIET_MS);
  const withoutVictim = await quiet.end();
  const quietSeconds = (performance.now() - quietWall) / 1000;
  const quietCpuPercent = ((cpuSeconds(pid) - quietCpu) / quietSeconds) * 100;

  const rssBefore = rssMiB(pid);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB(pid))), 50);
  const cpuBefore = cpuSeconds(pid);
  const wallBefore = performance.now();
  const database = await databaseWatch(sql);
  const victim = await victimRun(url, victimKey, 'user-session', tokens);
  const db = await database.end();
  clearInterval(sampler);
  const wall = (performance.now() - wallBefore) / 1000;
  const cpu = cpuSeconds(pid) - cpuBefore;
  return {
    victim,
    seconds: +wall.toFixed(1),
    serverCpuPercent: +((cpu / wall) * 100).toFixed(0),
    rssBeforeMiB: +rssBefore.toFixed(0),
    rssPeakMiB: +rssPeak.toFixed(0),
    rssGrowthMiB: +(rssPeak - rssBefore).toFixed(0),
    database: { ...db, commitsPerSecond: +db.commitsPerSecond.toFixed(0) },
    /** The QUIET_MS before the victim's verifies: what the flood alone (or nothing) costs. */
    withoutVictim: {
      seconds: +quietSeconds.toFixed(1),
      serverCpuPercent: +quietCpuPercent.toFixed(0),
      database: {
        ...withoutVictim,
        commitsPerSecond: +withoutVictim.commitsPerSecond.toFixed(0),
      },
    },
  };
}

type Phase = Awaited<ReturnType<typeof measure>>;

const ratioOf = (under: VictimFigures, idle: VictimFigures) => ({
  p50: +(under.p50 / idle.p50).toFixed(1),
  p99: +(under.p99 / idle.p99).toFixed(1),
});

async function main() {
  const loadBefore = loadAverage();
  await freshDatabase(DATABASE_URL);
  const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  const port = 4500 + Math.floor(Math.random() * 200);
  try {
    const server = await startServer(port);
    const pid = server.pid!;
    const url = `http://127.0.0.1:${port}/graphql`;
    const apiKey = async (tag: string, name: string) => {
      const { createApiKey } = await must(
        url,
        ADMIN_KEY,
        `mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }`,
        { i: { product: tag, env: 'prd', kind: 'SECRET', name } },
      );
      return createApiKey.key as string;
    };
    const product = async (tag: string) => {
      await must(
        url,
        ADMIN_KEY,
        `mutation($i: CreateProductInput!) { createProduct(input: $i) { tag } }`,
        {
          i: { tag, name: tag, envs: ['prd'] },
        },
      );
      return apiKey(tag, 'bench');
    };
    const createConfig = `mutation($i: CreateSessionConfigInput!) { createSessionConfig(input: $i) { tag } }`;
    const config = (tag: string, schema: unknown, description: string) => ({
      i: {
        name: tag,
        tag,
        description,
        schema,
        selector: '$Session{userId}',
        expiry: 1,
        period: 'HOURS',
      },
    });

    // The heavy tenant: as many large configs as a product may hold, a user with 100 large sessions.
    const heavyKey = await product('heavy');
    for (let i = 0; i < CONFIGS; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, (_, j) =>
          must(
            url,
            heavyKey,
            createConfig,
            config(`c${i + j}`, jsonOf(16 * 1024, 'u'), 'd'.repeat(2_000)),
          ),
        ),
      );
    }
    for (let i = 0; i < SESSIONS; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, () =>
          must(
            url,
            heavyKey,
            `mutation($i: StartSessionInput!) { startSession(input: $i) { sessionId } }`,
            {
              i: { tag: 'c0', identifier: 'heavy', data: jsonOf(16 * 1024, 'heavy') },
            },
          ),
        ),
      );
    }
    // The victim: one small config and 50 sessions to verify.
    const victimKey = await product('victim');
    await must(url, victimKey, createConfig, config('user-session', { userId: 'u' }, 'victim'));
    const tokens: string[] = [];
    for (let i = 0; i < 50; i++) {
      const { startSession } = await must(
        url,
        victimKey,
        `mutation($i: StartSessionInput!) { startSession(input: $i) { token } }`,
        { i: { tag: 'user-session', data: { userId: `user-${i}` } } },
      );
      tokens.push(startSession.token);
    }

    // The heaviest accepted request of each kind: the issue's 20 aliases, else fewer.
    const heavy: { kind: string; aliases: number; bytes: number; refused20: string | null }[] = [];
    for (const [kind, build] of Object.entries(HEAVY_KINDS)) {
      let refused20: string | null = null;
      for (let n = 20; n >= 1; n--) {
        const answer = await post(url, heavyKey, build(n), { tag: 'c0' });
        if (!answer.body.errors) {
          heavy.push({ kind, aliases: n, bytes: answer.bytes, refused20 });
          break;
        }
        if (n === 20) refused20 = answer.body.errors[0]?.extensions?.code ?? 'no code';
      }
    }

    await victimRun(url, victimKey, 'user-session', tokens, 0); // warm-up
    const idle = await measure(url, victimKey, tokens, pid, sql);
    console.log(`idle: victim ${JSON.stringify(idle.victim)}`);

    // Scenario 1: the heaviest aliased reads.
    const load = startHeavyLoad(
      url,
      heavyKey,
      heavy.map((h) => HEAVY_KINDS[h.kind as keyof typeof HEAVY_KINDS](h.aliases)),
      { tag: 'c0' },
    );
    const loaded = await measure(url, victimKey, tokens, pid, sql);
    const aliasTally = await load.stop();
    console.log(`aliases: victim ${JSON.stringify(loaded.victim)}`);

    // Scenario 2: the heartbeat flood. The issue's reproduction first (300 feeds at 100 ms),
    // then FEED_ATTEMPTS feeds at the floor of 1 s, kept open while the victim is measured: all
    // with the same 20 tags (their heartbeat reads shared), then, with another key of the heavy
    // product, each with 20 tags of its own (no read shared: the heaviest a key can hold).
    const { latestSessionEventId } = await must(url, heavyKey, `{ latestSessionEventId }`);
    const flood = startFeedFlood(
      url.replace(/^http/, 'ws'),
      (latestSessionEventId as string | null) ?? '0',
    );
    const twenty = (first: number) =>
      Array.from({ length: 20 }, (_, j) => `c${(first + j) % CONFIGS}`);
    const reproduction = await flood.open({
      key: heavyKey,
      heartbeatMs: 100,
      tags: [['c0']],
      count: REPRODUCTION_FEEDS,
      keep: false,
    });
    console.log(`feeds at 100 ms: ${JSON.stringify(reproduction)}`);
    const feedVariants = [
      { name: 'sharedTags', key: heavyKey, tags: [twenty(0)] },
      {
        name: 'ownTags',
        key: await apiKey('heavy', 'bench-2'),
        tags: Array.from({ length: FEED_ATTEMPTS }, (_, i) => twenty(i)),
      },
    ];
    const feedRuns = [];
    for (const variant of feedVariants) {
      // The box is shared: the victim idle again just before, to tell the flood from the noise.
      const idleBefore = await measure(url, victimKey, tokens, pid, sql);
      const opening = await flood.open({
        key: variant.key,
        heartbeatMs: 1_000,
        tags: variant.tags,
        count: FEED_ATTEMPTS,
        keep: true,
      });
      console.log(`feeds at 1 s, ${variant.name}: ${JSON.stringify(opening)}`);
      const under = await measure(url, victimKey, tokens, pid, sql, flood.mark);
      const held = await flood.close();
      console.log(`heartbeat flood, ${variant.name}: victim ${JSON.stringify(under.victim)}`);
      feedRuns.push({ variant, idleBefore, opening, under, held });
    }
    flood.exit();

    // Scenario 3: dashboards over 100,000 stored sessions of one tag, seeded with SQL as the
    // server would have stored them (the sessions and their users; the data is never read).
    const seeding = performance.now();
    const [ids] = await sql<{ product_id: string; config_id: string }[]>`
      select p.id as product_id, c.id as config_id
      from products p join session_configs c on c.product_id = p.id
      where p.tag = 'heavy' and c.tag = ${DASHBOARD_TAG}`;
    // Created over 90 days; one in ten revoked, one in seven run out, the rest live.
    await sql`
      insert into sessions (id, product_id, env, config_id, tag, identifier, data_enc,
                            token_lifetime_seconds, created_at, last_active_at, expires_at,
                            refresh_expires_at, revoked_at, revoke_reason)
      select gen_random_uuid(), ${ids!.product_id}::uuid, 'prd', ${ids!.config_id}::uuid,
             ${DASHBOARD_TAG}, 'user-' || (g % ${DASHBOARD_USERS}::int), 'never-decrypted', 3600,
             now() - make_interval(mins => (g % 129600)),
             now() - make_interval(mins => (g % 129600)),
             now() - make_interval(mins => (g % 129600)) + interval '1 hour',
             case when g % 7 = 0 then now() - interval '1 minute' else now() + interval '30 days' end,
             case when g % 10 = 0 then now() - make_interval(mins => (g % 1000)) end,
             case when g % 10 = 0 then 'bench' end
      from generate_series(1, ${DASHBOARD_SESSIONS}::int) as g`;
    await sql`
      insert into session_users (product_id, env, tag, identifier, first_seen_at, last_seen_at,
                                 total_sessions)
      select ${ids!.product_id}::uuid, 'prd', ${DASHBOARD_TAG}, 'user-' || u,
             now() - interval '90 days' + make_interval(mins => u % 1440),
             now() - make_interval(mins => (u * 13) % 129600),
             ${DASHBOARD_SESSIONS / DASHBOARD_USERS}::int
      from generate_series(0, ${DASHBOARD_USERS - 1}::int) as u`;
    await sql`analyze sessions`;
    await sql`analyze session_users`;
    const [seeded] = await sql<{ stored: number }[]>`
      select count(*)::int as stored from sessions
      where product_id = ${ids!.product_id}::uuid and tag = ${DASHBOARD_TAG}`;
    const stored = seeded!.stored;
    const seedSeconds = (performance.now() - seeding) / 1000;

    // The most dashboards one request may hold: the issue's 20 aliases first.
    const now = Date.now();
    const dashboardVariables = {
      tag: DASHBOARD_TAG,
      from: new Date(now - 90 * DAY_MS).toISOString(),
      to: new Date(now + 3_600_000).toISOString(),
    };
    let dashboards: { aliases: number; bytes: number; refused20: string | null } | undefined;
    let dashboardRefused20: string | null = null;
    for (let n = 20; n >= 1 && !dashboards; n--) {
      const answer = await post(url, heavyKey, dashboardQuery(n), dashboardVariables);
      if (!answer.body.errors) dashboards = { aliases: n, bytes: answer.bytes, refused20: null };
      else if (n === 20) dashboardRefused20 = answer.body.errors[0]?.extensions?.code ?? 'no code';
    }
    if (!dashboards) throw new Error('no sessionDashboard request was accepted');
    dashboards.refused20 = dashboardRefused20;
    const idleSeeded = await measure(url, victimKey, tokens, pid, sql);
    console.log(`idle after the seed: victim ${JSON.stringify(idleSeeded.victim)}`);
    const dashboardLoad = startHeavyLoad(
      url,
      heavyKey,
      [dashboardQuery(dashboards.aliases)],
      dashboardVariables,
    );
    const underDashboards = await measure(url, victimKey, tokens, pid, sql);
    const dashboardTally = await dashboardLoad.stop();
    console.log(`dashboard aliases: victim ${JSON.stringify(underDashboards.victim)}`);

    /** The victim under a flood against its idle at the start and just before the flood. */
    const scenario = (under: { victim: VictimFigures }, before: { victim: VictimFigures }) => {
      const ratio = ratioOf(under.victim, idle.victim);
      return {
        victim: under.victim,
        ratio,
        p99TargetMet: ratio.p99 <= P99_TARGET_RATIO,
        victimIdleJustBefore: before.victim,
        ratioToIdleJustBefore: ratioOf(under.victim, before.victim),
      };
    };
    const result = {
      label: LABEL,
      /** Issue 23's target: under either flood, the victim's p99 at most 3× its idle p99. */
      p99TargetRatio: P99_TARGET_RATIO,
      loadAverage: { before: loadBefore, after: loadAverage() },
      heavyRequests: heavy,
      victimIdle: idle.victim,
      victimLoaded: loaded.victim,
      ratio: ratioOf(loaded.victim, idle.victim),
      p99TargetMet: ratioOf(loaded.victim, idle.victim).p99 <= P99_TARGET_RATIO,
      idle: { ...idle, victim: undefined },
      underLoad: {
        ...loaded,
        victim: undefined,
        heavyResponses: aliasTally.requests,
        heavyMiB: +(aliasTally.bytes / 1024 / 1024).toFixed(1),
      },
      heartbeatFlood: {
        reproduction: { feeds: REPRODUCTION_FEEDS, heartbeatMs: 100, ...reproduction },
        ...Object.fromEntries(
          feedRuns.map(({ variant, idleBefore, opening, under, held }) => [
            variant.name,
            {
              ...scenario(under, idleBefore),
              feeds: {
                attempts: FEED_ATTEMPTS,
                heartbeatMs: 1_000,
                tagsPerFeed: 20,
                distinctTagSetsTried: new Set(variant.tags.map((t) => t.join())).size,
                ...opening,
                heldOpen: held.open,
                heartbeatsPerSecond: +(held.heartbeats / held.seconds).toFixed(1),
              },
              phase: { ...under, victim: undefined },
            },
          ]),
        ),
      },
      dashboardAliases: {
        ...scenario(underDashboards, idleSeeded),
        storedSessions: stored,
        seedSeconds: +seedSeconds.toFixed(1),
        request: { groupBy: 'DAY', days: 90, ...dashboards },
        load: {
          requests: dashboardTally.requests,
          answered: dashboardTally.answered,
          dashboardsAnswered: dashboardTally.answered * dashboards.aliases,
          errorCodes: dashboardTally.errorCodes,
        },
        phase: { ...underDashboards, victim: undefined },
      },
    };
    console.log(JSON.stringify(result, null, 2));
    const line = (name: string, phase: Phase, before?: Phase) => {
      const { p50, p99 } = phase.victim;
      let text = `${name.padEnd(28)} p50 ${String(p50).padStart(6)} ms  p99 ${String(p99).padStart(6)} ms`;
      if (phase !== idle) {
        const ratio = ratioOf(phase.victim, idle.victim);
        const met = ratio.p99 <= P99_TARGET_RATIO ? 'met' : 'NOT met';
        text += `  ${ratio.p50}× / ${ratio.p99}× idle (p99 ≤ ${P99_TARGET_RATIO}×: ${met}`;
        if (before)
          text += `; ${ratioOf(phase.victim, before.victim).p99}× the idle p99 just before`;
        text += ')';
      }
      const commits = `${phase.withoutVictim.database.commitsPerSecond}/${phase.database.commitsPerSecond}`;
      console.log(`${text}  commits/s alone/with victim ${commits}`);
    };
    console.log(
      `\nvictim verify (load average ${loadBefore.join(' ')} → ${loadAverage().join(' ')})`,
    );
    line('idle', idle);
    line('aliases (configs, sessions)', loaded);
    for (const run of feedRuns)
      line(`heartbeat flood, ${run.variant.name}`, run.under, run.idleBefore);
    line('dashboard aliases', underDashboards, idleSeeded);
    await writeResults(`isolation-${LABEL}.json`, result);
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await sql.end();
  }
}

await main();

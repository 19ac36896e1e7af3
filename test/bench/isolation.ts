/**
 * `npx tsx test/bench/isolation.ts`: how much one key's heaviest requests slow another product.
 *
 * Starts this server on Postgres (a fresh `isolation` database, loopback only), seeds a "heavy"
 * product (100 configs with 16 KiB schemas and 2,000-character descriptions, a user with 100
 * sessions of 16 KiB data) and a "victim" product, then measures the victim's `isSessionValid`
 * latency idle, and again while the heavy key sends, from HEAVY_WORKERS parallel loops, the
 * heaviest requests the server accepts: the issue's reproductions (20 aliases of
 * `sessionConfigs { schema description }` and of `sessions(first: 100) { … data }`) when they
 * are accepted, else the most aliases of each that are. Prints the response sizes, the victim's
 * p50/p99 idle and under load with their ratios, the server's CPU and its RSS growth.
 *
 * Bounded: VERIFIES verifies per phase at VICTIM_CONCURRENCY, and a deadline per phase.
 * ISOLATION_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/isolation) is dropped and
 * created anew. ISOLATION_LABEL names the results file (test/bench/results/isolation-<label>.json).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freshDatabase } from './fresh-database.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const VERIFIES = Number(process.env.VERIFIES ?? 400);
const VICTIM_CONCURRENCY = 4;
const HEAVY_WORKERS = Number(process.env.HEAVY_WORKERS ?? 4);
const PHASE_DEADLINE_MS = 120_000;
const CONFIGS = 100;
const SESSIONS = 100;
const ADMIN_KEY = `ak_${randomBytes(32).toString('base64url')}`;
const SECRET = randomBytes(48).toString('base64url');
const DATABASE_URL =
  process.env.ISOLATION_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/isolation';
const LABEL = process.env.ISOLATION_LABEL ?? 'latest';

if (!/^postgres(ql)?:\/\/[^/]*@?(127\.0\.0\.1|localhost)(:\d+)?\//.test(DATABASE_URL)) {
  throw new Error('isolation bench: loopback Postgres only');
}

function startServer(port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
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
    });
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

/** A child process of HEAVY_WORKERS loops sending `queries` in turn, reading only the bytes. */
function startHeavyLoad(url: string, key: string, queries: string[]) {
  const script = `
    const { url, key, queries, workers } = JSON.parse(process.env.HEAVY);
    let stop = false, requests = 0, bytes = 0;
    const loops = Array.from({ length: workers }, async (_, w) => {
      for (let i = w; !stop; i++) {
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + key }, body: JSON.stringify({ query: queries[i % queries.length], variables: { tag: 'c0' } }) });
        bytes += (await response.arrayBuffer()).byteLength;
        requests++;
      }
    });
    process.on('message', async () => { stop = true; await Promise.all(loops); process.send({ requests, bytes }); process.exit(0); });
  `;
  const child = spawn(process.execPath, ['-e', script], {
    env: {
      PATH: process.env.PATH ?? '',
      HEAVY: JSON.stringify({ url, key, queries, workers: HEAVY_WORKERS }),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return {
    stop: () =>
      new Promise<{ requests: number; bytes: number }>((resolve) => {
        child.once('message', (m) => resolve(m as { requests: number; bytes: number }));
        child.send('stop');
      }),
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

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

/** VERIFIES isSessionValid calls of the victim at VICTIM_CONCURRENCY; latencies in ms. */
async function victimRun(url: string, key: string, tag: string, tokens: string[]) {
  const latencies: number[] = [];
  const deadline = Date.now() + PHASE_DEADLINE_MS;
  let next = 0;
  const query = `query($tag: String!, $token: String!) { isSessionValid(tag: $tag, token: $token) }`;
  await Promise.all(
    Array.from({ length: VICTIM_CONCURRENCY }, async () => {
      while (next < VERIFIES && Date.now() < deadline) {
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

async function main() {
  await freshDatabase(DATABASE_URL);
  const port = 4500 + Math.floor(Math.random() * 200);
  const server = await startServer(port);
  const pid = server.pid!;
  const url = `http://127.0.0.1:${port}/graphql`;
  try {
    const product = async (tag: string) => {
      await must(
        url,
        ADMIN_KEY,
        `mutation($i: CreateProductInput!) { createProduct(input: $i) { tag } }`,
        {
          i: { tag, name: tag, envs: ['prd'] },
        },
      );
      const { createApiKey } = await must(
        url,
        ADMIN_KEY,
        `mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }`,
        { i: { product: tag, env: 'prd', kind: 'SECRET', name: 'bench' } },
      );
      return createApiKey.key as string;
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

    await victimRun(url, victimKey, 'user-session', tokens); // warm-up
    const idle = await victimRun(url, victimKey, 'user-session', tokens);

    const rssBefore = rssMiB(pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB(pid))), 50);
    const cpuBefore = cpuSeconds(pid);
    const wallBefore = performance.now();
    // The heavy key's loops run in their own process: reading its answers must not slow the
    // victim's client.
    const load = startHeavyLoad(
      url,
      heavyKey,
      heavy.map((h) => HEAVY_KINDS[h.kind as keyof typeof HEAVY_KINDS](h.aliases)),
    );
    const loaded = await victimRun(url, victimKey, 'user-session', tokens);
    const { requests: heavyRequests, bytes: heavyBytes } = await load.stop();
    clearInterval(sampler);
    const wall = (performance.now() - wallBefore) / 1000;
    const cpu = cpuSeconds(pid) - cpuBefore;

    const result = {
      label: LABEL,
      heavyRequests: heavy,
      victimIdle: idle,
      victimLoaded: loaded,
      ratio: { p50: +(loaded.p50 / idle.p50).toFixed(1), p99: +(loaded.p99 / idle.p99).toFixed(1) },
      underLoad: {
        seconds: +wall.toFixed(1),
        heavyResponses: heavyRequests,
        heavyMiB: +(heavyBytes / 1024 / 1024).toFixed(1),
        serverCpuPercent: +((cpu / wall) * 100).toFixed(0),
        rssBeforeMiB: +rssBefore.toFixed(0),
        rssPeakMiB: +rssPeak.toFixed(0),
        rssGrowthMiB: +(rssPeak - rssBefore).toFixed(0),
      },
    };
    console.log(JSON.stringify(result, null, 2));
    const dir = path.join(import.meta.dirname, 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, `isolation-${LABEL}.json`),
      JSON.stringify(result, null, 2) + '\n',
    );
  } finally {
    server.kill('SIGTERM');
  }
}

await main();

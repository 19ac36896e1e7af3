/**
 * `npm run bench:start`: how long a server process takes from spawn to its first healthy answer
 * (`GET /health` 200, which comes once it listens: after migrations and the first start's setup).
 * Runs the compiled server (`node dist/main.js`, built by the npm script just before) and, for
 * comparison, the tsx start (`node --import tsx src/main.ts`), each `BENCH_START_RUNS` times
 * (default 5), interleaved so that the machine's swings fall on both:
 *
 * - Postgres, up to date: a restart on a migrated database (a rolling deploy, a failover);
 * - Postgres, empty: a first start on a database created just before (migrations, demo product);
 * - embedded, fresh: a first start in a new `DATA_DIR` (initdb, migrations, demo product).
 *
 * Prints median and max per scenario and writes them to `results/start.json` with the load
 * average. Postgres: BENCH_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/bench_start (a
 * loopback server only; its databases are dropped and made anew).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freshDatabase } from './fresh-database.js';
import { writeResults } from './results-file.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const RUNS = Number(process.env.BENCH_START_RUNS ?? 5);
const baseUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/bench_start';
const SECRET = randomBytes(48).toString('base64url');
const ADMIN_KEY = `ak_${randomBytes(32).toString('base64url')}`;

const COMPILED = ['dist/main.js'];
const TSX = ['--import', 'tsx', 'src/main.ts'];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** User + system CPU time of a live process so far, ms (USER_HZ: /proc counts 1/100 s). */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Spawns the server and polls `/health` until it answers 200; returns the ms it took, and the
 * CPU ms the process had used by then (which a busy machine disturbs far less than wall time).
 */
async function timeToHealthy(
  argv: string[],
  env: Record<string, string>,
): Promise<{ ms: number; cpuMs: number }> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      SWEEP_INTERVAL_SECONDS: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  let gone = false;
  void exited.then(() => (gone = true));
  try {
    for (;;) {
      if (gone) throw new Error(`server exited before it was healthy:\n${output}`);
      if (performance.now() - started > 120_000)
        throw new Error(`not healthy in 120 s:\n${output}`);
      const healthy = await fetch(`http://127.0.0.1:${port}/health`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (healthy) return { ms: performance.now() - started, cpuMs: cpuMsOf(child.pid!) };
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

function databaseUrl(name: string): string {
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

interface Scenario {
  name: string;
  argv: string[];
  /** The environment of one run (made anew for each: a new database or directory). */
  prepare(): Promise<{ env: Record<string, string>; cleanup(): Promise<void> }>;
}

const dataDirs = mkdtempSync(path.join(os.tmpdir(), 'bench-start-'));
const baseName = new URL(baseUrl).pathname.slice(1);

const postgresUpToDate = async () => ({
  env: { DATABASE_URL: baseUrl, SESSION_SECRET: SECRET, ADMIN_KEY },
  cleanup: async () => {},
});
const postgresEmpty = async () => {
  const url = databaseUrl(`${baseName}_empty`);
  await freshDatabase(url);
  return { env: { DATABASE_URL: url, SESSION_SECRET: SECRET, ADMIN_KEY }, cleanup: async () => {} };
};
const embeddedFresh = async () => {
  const dir = mkdtempSync(path.join(dataDirs, 'data-'));
  return {
    env: { DATA_DIR: dir, ADMIN_KEY },
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
};

const scenarios: Scenario[] = [
  { name: 'compiled, Postgres up to date', argv: COMPILED, prepare: postgresUpToDate },
  { name: 'tsx, Postgres up to date', argv: TSX, prepare: postgresUpToDate },
  { name: 'compiled, Postgres empty', argv: COMPILED, prepare: postgresEmpty },
  { name: 'tsx, Postgres empty', argv: TSX, prepare: postgresEmpty },
  { name: 'compiled, embedded fresh DATA_DIR', argv: COMPILED, prepare: embeddedFresh },
  { name: 'tsx, embedded fresh DATA_DIR', argv: TSX, prepare: embeddedFresh },
];

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main() {
  const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
  const chosen = scenarios.filter((s) => !only || only.some((o) => s.name.includes(o)));
  const loadBefore = os.loadavg();
  // The up-to-date database: made and migrated once, by a first start not measured.
  await freshDatabase(baseUrl);
  await timeToHealthy(COMPILED, { DATABASE_URL: baseUrl, SESSION_SECRET: SECRET, ADMIN_KEY });
  const times = new Map<string, number[]>(chosen.map((s) => [s.name, []]));
  const cpu = new Map<string, number[]>(chosen.map((s) => [s.name, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const scenario of chosen) {
      const { env, cleanup } = await scenario.prepare();
      try {
        const { ms, cpuMs } = await timeToHealthy(scenario.argv, env);
        times.get(scenario.name)!.push(ms);
        cpu.get(scenario.name)!.push(cpuMs);
        process.stdout.write(`${scenario.name}: ${ms.toFixed(0)} ms, ${cpuMs} ms CPU\n`);
      } finally {
        await cleanup();
      }
    }
  }
  const loadAfter = os.loadavg();
  rmSync(dataDirs, { recursive: true, force: true });
  const rows = chosen.map((s) => {
    const ms = times.get(s.name)!;
    return {
      scenario: s.name,
      runs: ms.length,
      medianMs: Math.round(median(ms)),
      maxMs: Math.round(Math.max(...ms)),
      medianCpuMs: Math.round(median(cpu.get(s.name)!)),
    };
  });
  const load = (l: number[]) => l.map((n) => n.toFixed(2)).join(' ');
  process.stdout.write(
    `\nspawn to healthy, ${RUNS} runs each, ${os.cpus().length} cores, load ${load(loadBefore)} ` +
      `before, ${load(loadAfter)} after\n\n`,
  );
  process.stdout.write(
    '| scenario | median ms | max ms | median CPU ms |\n| --- | ---: | ---: | ---: |\n',
  );
  for (const r of rows) {
    process.stdout.write(`| ${r.scenario} | ${r.medianMs} | ${r.maxMs} | ${r.medianCpuMs} |\n`);
  }
  await writeResults('start.json', {
    date: new Date().toISOString(),
    node: process.version,
    cores: os.cpus().length,
    loadBefore,
    loadAfter,
    rows,
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : error}\n`);
  process.exit(1);
});

import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, rmSync, statSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * A real production topology for failover tests, made by scripts/pg-topology.sh on spare ports:
 * a primary and a synchronous streaming standby (PostgreSQL 15), and pgbouncer in transaction
 * pool mode in front of the first primary (it does not follow failovers).
 */
export interface Topology {
  /** The first primary (node A). */
  primaryUrl: string;
  /** The first standby (node B). */
  standbyUrl: string;
  /** Both nodes, `target_session_attrs=read-write`: whichever is the primary. */
  multiHostUrl: string;
  /** pgbouncer (transaction pooling) in front of node A. */
  poolerUrl: string;
  /** The directory of the data directories, sockets and logs (removed by `down`). */
  dir: string;
  /**
   * kill -9 of the primary (postmaster and backends), `delaySeconds` (default 1) of operator
   * reaction time, then promotion of the standby with `synchronous_standby_names = ''`.
   * Times are epoch milliseconds; `primaryPort` is the new primary's port.
   */
  failover(
    delaySeconds?: number,
  ): Promise<{ killedAt: number; promotedAt: number; primaryPort: number }>;
  /** Re-creates the dead node as the synchronous standby of the current primary. */
  rebuild(): Promise<void>;
  /** The script's `status` output (roles of both nodes, replication, pgbouncer). */
  status(): Promise<string>;
  /** Stops everything and removes `dir`; safe to call more than once. */
  down(): Promise<void>;
}

const ROOT = path.resolve(import.meta.dirname, '../..');
const SCRIPT = path.join(ROOT, 'scripts', 'pg-topology.sh');
const PG_BIN = '/usr/lib/postgresql/15/bin';
/** Longest a script command may run; the script's own waits each have a 60 s deadline. */
const COMMAND_TIMEOUT_MS = 300_000;

function findPgbouncer(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const file = path.join(dir, 'pgbouncer');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** PostgreSQL 15's binaries and pgbouncer are installed (CI installs pgbouncer). */
export const TOPOLOGY_AVAILABLE: boolean =
  existsSync(path.join(PG_BIN, 'initdb')) && findPgbouncer() !== undefined;

/** Distinct free ports on 127.0.0.1: all listened on at once (port 0), read, then closed. */
async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(
      servers.map(
        (s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())),
      ),
    );
  }
}

/**
 * Where the topology's directory goes: os.tmpdir(), unless (as root, the servers running as
 * `postgres`) user postgres cannot reach it, or it is too long for the unix socket paths inside
 * it (108 bytes on Linux): then /tmp.
 */
function tmpBase(): string {
  const base = os.tmpdir();
  if (base.length > 60) return '/tmp';
  if (process.getuid?.() !== 0) return base;
  for (let dir = path.resolve(base); ; dir = path.dirname(dir)) {
    try {
      if ((statSync(dir).mode & 0o001) === 0) return '/tmp';
    } catch {
      return '/tmp';
    }
    if (dir === path.dirname(dir)) return base;
  }
}

interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs `bash scripts/pg-topology.sh ARGS` with ENV; rejects (stderr included) unless it exits 0. */
function runScript(args: string[], env: Record<string, string>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `pg-topology.sh ${args.join(' ')} did not finish within ${COMMAND_TIMEOUT_MS} ms\n${stderr}`,
        ),
      );
    }, COMMAND_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'close': exited and both pipes drained (the servers it starts do not hold them).
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else
        reject(
          new Error(
            `pg-topology.sh ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${stderr}${stdout}`,
          ),
        );
    });
  });
}

/** The KEY=VALUE lines of the script's stdout. */
function parseKeys(stdout: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) keys.set(m[1]!, m[2]!);
  }
  return keys;
}

function required(keys: Map<string, string>, key: string, stdout: string): string {
  const value = keys.get(key);
  if (!value) throw new Error(`pg-topology.sh printed no ${key}=; stdout:\n${stdout}`);
  return value;
}

function requiredNumber(keys: Map<string, string>, key: string, stdout: string): number {
  const n = Number(required(keys, key, stdout));
  if (!Number.isFinite(n))
    throw new Error(`pg-topology.sh printed a non-number ${key}; stdout:\n${stdout}`);
  return n;
}

/** Topologies not yet down: stopped when the process exits (a test that forgot, or crashed). */
const live = new Map<string, Record<string, string>>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [dir, env] of live) {
      spawnSync('bash', [SCRIPT, 'down'], { env: { ...process.env, ...env }, stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** Starts a topology on three free ports in a fresh temporary directory. */
export async function startTopology(): Promise<Topology> {
  const [portA, portB, portPooler] = (await freePorts(3)) as [number, number, number];
  const dir = await mkdtemp(path.join(tmpBase(), 'pg-topology-'));
  // The servers run as user postgres when we are root; the script chowns the directory to it.
  await chmod(dir, 0o755);
  const env = {
    PGTOPO_DIR: dir,
    PGTOPO_PORT_A: String(portA),
    PGTOPO_PORT_B: String(portB),
    PGTOPO_PORT_POOLER: String(portPooler),
  };
  installExitHook();
  live.set(dir, env);

  let up: RunResult;
  try {
    up = await runScript(['up'], env);
  } catch (err) {
    // `up` cleans up after itself on failure; make sure of it.
    await runScript(['down'], env).catch(() => {});
    await rm(dir, { recursive: true, force: true });
    live.delete(dir);
    throw err;
  }
  const keys = parseKeys(up.stdout);

  // One script command at a time per topology (a failover must not overlap a rebuild).
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const result = queue.then(fn, fn);
    queue = result.catch(() => {});
    return result;
  };
  let downed: Promise<void> | undefined;
  const run = (args: string[]): Promise<RunResult> => {
    if (downed) return Promise.reject(new Error(`pg-topology ${dir} is down`));
    return serial(() => runScript(args, env));
  };

  const topology: Topology = {
    primaryUrl: required(keys, 'PRIMARY_URL', up.stdout),
    standbyUrl: required(keys, 'STANDBY_URL', up.stdout),
    multiHostUrl: required(keys, 'MULTIHOST_URL', up.stdout),
    poolerUrl: required(keys, 'POOLER_URL', up.stdout),
    dir,
    async failover(delaySeconds = 1) {
      const { stdout } = await run(['failover', String(delaySeconds)]);
      const k = parseKeys(stdout);
      return {
        killedAt: requiredNumber(k, 'KILLED_AT', stdout),
        promotedAt: requiredNumber(k, 'PROMOTED_AT', stdout),
        primaryPort: requiredNumber(k, 'PRIMARY_PORT', stdout),
      };
    },
    async rebuild() {
      await run(['rebuild']);
    },
    async status() {
      return (await run(['status'])).stdout;
    },
    down() {
      downed ??= serial(async () => {
        await runScript(['down'], env);
        await rm(dir, { recursive: true, force: true });
        live.delete(dir);
      }).catch((err: unknown) => {
        downed = undefined; // let a second call try again
        throw err;
      });
      return downed;
    },
  };
  return topology;
}

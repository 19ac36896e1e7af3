import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkSecretFingerprint,
  SecretMismatchError,
  secretFingerprint,
} from '../src/bootstrap.js';
import { openDatabase, type DatabaseHandle } from '../src/db/client.js';
import { hashSecret, randomSecret } from '../src/tokens/secrets.js';
import { TEST_DATABASE_URL } from './support/app.js';
import { freshPostgresDatabase } from './support/databases.js';
import {
  newProductOverHttp,
  post,
  runServerExpectingExit,
  startServerProcess,
} from './support/server-process.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});
const tempDir = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sessions-fp-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

/** A database of its own, never started on: a fresh Postgres database, or in-memory PGlite. */
async function freshDatabase(): Promise<DatabaseHandle> {
  let database: DatabaseHandle;
  if (TEST_DATABASE_URL) {
    const fresh = await freshPostgresDatabase();
    database = await openDatabase({ databaseUrl: fresh.url, maxConnections: 10 });
    cleanups.push(() => fresh.drop());
  } else {
    database = await openDatabase({ dataDir: 'memory://' });
  }
  cleanups.unshift(() => database.close());
  await database.migrate();
  return database;
}

const context = { generated: false, dataDir: '/unused' };

// Each test spawns server processes (a start is seconds on a busy 2-core machine, more on a new
// embedded database): a liveness bound of 3 minutes a test, not a timing claim.
describe('the secret fingerprint', { timeout: 180_000 }, () => {
  it('is derived under a label of its own: stable, distinct per secret, never the secret or its plain hash', () => {
    const secret = randomSecret(48);
    const fingerprint = secretFingerprint(secret);
    expect(secretFingerprint(secret)).toBe(fingerprint);
    expect(secretFingerprint(randomSecret(48))).not.toBe(fingerprint);
    expect(fingerprint).not.toContain(secret);
    expect(fingerprint).not.toBe(hashSecret(secret));
    expect(Buffer.from(fingerprint, 'base64url').toString('hex')).not.toBe(hashSecret(secret));
    expect(fingerprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('is recorded on the first start and matched on the next; another secret is refused with what to do, and nothing secret in the message', async () => {
    const database = await freshDatabase();
    const secret = randomSecret(48);
    const other = randomSecret(48);
    expect(await checkSecretFingerprint(database.db, secret, context)).toBe('recorded');
    expect(await checkSecretFingerprint(database.db, secret, context)).toBe('matched');
    const refused = await checkSecretFingerprint(database.db, other, {
      generated: true,
      dataDir: '/srv/data',
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SecretMismatchError);
    const message = (refused as Error).message;
    expect(message).toMatch(/same SESSION_SECRET on every instance/);
    expect(message).toMatch(/DELETE FROM secret_fingerprints/);
    expect(message).toContain(path.join('/srv/data', 'session-secret'));
    for (const s of [secret, other, secretFingerprint(secret), secretFingerprint(other)]) {
      expect(message).not.toContain(s);
    }
    // The refusal changes nothing: the first secret still matches.
    expect(await checkSecretFingerprint(database.db, secret, context)).toBe('matched');
  });

  it('first start of several instances at once: the database keeps one secret, every instance with it starts, every other is refused', async () => {
    const database = await freshDatabase();
    const secrets = [randomSecret(48), randomSecret(48), randomSecret(48)];
    // Twelve concurrent first starts, four per secret, over real connections.
    const attempts = Array.from({ length: 12 }, (_, i) => secrets[i % 3]!);
    const results = await Promise.all(
      attempts.map((secret) =>
        checkSecretFingerprint(database.db, secret, context).then(
          (outcome) => ({ secret, outcome }),
          (error: unknown) => ({ secret, outcome: error }),
        ),
      ),
    );
    const recorded = results.filter((r) => r.outcome === 'recorded');
    expect(recorded).toHaveLength(1);
    const winner = recorded[0]!.secret;
    for (const r of results) {
      if (r.secret === winner) expect(['recorded', 'matched']).toContain(r.outcome);
      else expect(r.outcome).toBeInstanceOf(SecretMismatchError);
    }
  });

  it.runIf(TEST_DATABASE_URL)(
    'two server processes on one Postgres without SESSION_SECRET, each with its own DATA_DIR: the second refuses to start (exit 1, says what to do); with the first one’s secret it starts and opens its tokens',
    async () => {
      const fresh = await freshPostgresDatabase();
      cleanups.push(() => fresh.drop());
      const adminKey = `ak_${randomSecret(30)}`;
      const common = { DATABASE_URL: fresh.url, ADMIN_KEY: adminKey, SWEEP_INTERVAL_SECONDS: '0' };
      const firstDir = tempDir();
      const first = await startServerProcess({ ...common, DATA_DIR: firstDir });
      cleanups.push(() => {
        if (first.child.exitCode === null) first.child.kill('SIGKILL');
      });
      const { key, tag } = await newProductOverHttp(first.url, adminKey);
      const started = await post(
        first.url,
        key,
        `mutation($input: StartSessionInput!) { startSession(input: $input) { token } }`,
        { input: { tag, data: { userId: 'u1', details: { username: 'n', email: 'e@x.io' } } } },
      );
      const token = (started.data!.startSession as { token: string }).token;

      const second = await runServerExpectingExit({
        ...common,
        DATA_DIR: tempDir(),
        HOST: '127.0.0.1',
        PORT: '0',
      });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/SESSION_SECRET does not match/);
      expect(second.stderr).toMatch(/same SESSION_SECRET on every instance/);
      expect(second.stdout).not.toMatch(/ready/);
      const firstSecret = readFileSync(path.join(firstDir, 'session-secret'), 'utf8').trim();
      expect(second.stderr + second.stdout).not.toContain(firstSecret);

      // The first instance is untouched, and with its secret a second instance joins it.
      const third = await startServerProcess({
        ...common,
        DATA_DIR: tempDir(),
        SESSION_SECRET: firstSecret,
      });
      cleanups.push(() => {
        if (third.child.exitCode === null) third.child.kill('SIGKILL');
      });
      const verify = `query($tag: String!, $token: String!) { verifySession(tag: $tag, token: $token) { sessionId } }`;
      for (const server of [first, third]) {
        const verified = await post(server.url, key, verify, { tag, token });
        expect(verified.errors).toBeUndefined();
      }
      first.child.kill('SIGTERM');
      third.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      expect(await third.exited).toBe(0);
    },
    600_000,
  );

  it('an embedded database restarted with another SESSION_SECRET refuses to start; with its own it starts', async () => {
    const dataDir = tempDir();
    const secret = randomSecret(48);
    const first = await startServerProcess({ DATA_DIR: dataDir, SESSION_SECRET: secret });
    first.child.kill('SIGTERM');
    const firstExit = await first.exited;
    expect({ code: firstExit, signal: first.child.signalCode, stderr: first.stderr() }).toEqual({
      code: 0,
      signal: null,
      stderr: '',
    });
    const refused = await runServerExpectingExit({
      DATA_DIR: dataDir,
      SESSION_SECRET: randomSecret(48),
      HOST: '127.0.0.1',
      PORT: '0',
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/SESSION_SECRET does not match/);
    const again = await startServerProcess({ DATA_DIR: dataDir, SESSION_SECRET: secret });
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  }, 600_000);
});

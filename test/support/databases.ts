import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { TEST_DATABASE_URL } from './app.js';

/**
 * A new, empty Postgres database next to the test database (for tests that need a first start
 * on a database of their own), and a `drop()` that removes it. Only when DATABASE_URL is set.
 */
export async function freshPostgresDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (!TEST_DATABASE_URL) throw new Error('freshPostgresDatabase needs DATABASE_URL');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    },
  };
}

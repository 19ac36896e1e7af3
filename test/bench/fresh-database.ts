import postgres from 'postgres';

/**
 * Drops and re-creates the database a bench runs on, so that its figures never depend on
 * earlier runs' rows. Loopback Postgres only: a bench never touches another host.
 */
export async function freshDatabase(url: string): Promise<void> {
  const target = new URL(url);
  if (!['127.0.0.1', 'localhost'].includes(target.hostname)) {
    throw new Error('benchmarks run on loopback Postgres only');
  }
  const name = target.pathname.slice(1);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop database if exists "${name}" with (force)`);
  await sql.unsafe(`create database "${name}"`);
  await sql.end();
}

/**
 * `npx tsx test/bench/static-pages.ts`: CPU µs per request for GraphiQL and the console as the
 * server sends them (precompressed, from memory), next to what GraphiQL cost before (rendered
 * per request, 9 MB uncompressed) and what compressing per request would cost, and a
 * `{ __typename }` POST as the baseline of the same run. In process (`app.fetch`), on PGlite.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { graphiqlOptions } from '../../src/graphiql.js';
import { CONSOLE_BUILD_DIR } from '../../src/http/console.js';
import { createTestApp } from '../support/app.js';

const t = await createTestApp({ appOptions: { console: true } });
const script = readdirSync(path.join(CONSOLE_BUILD_DIR, 'assets')).find((n) => n.endsWith('.js'))!;

async function measure(name: string, iterations: number, run: () => Promise<number>) {
  await run(); // warm: the first request compresses the page once
  const cpu = process.cpuUsage();
  let bytes = 0;
  for (let i = 0; i < iterations; i++) bytes = await run();
  const used = process.cpuUsage(cpu);
  return { name, cpuUsPerOp: (used.user + used.system) / iterations, bytes };
}

const fetchBytes = async (pathname: string, headers: Record<string, string>) => {
  const response = await t.app.fetch(`http://bench.local${pathname}`, { headers });
  return (await response.arrayBuffer()).byteLength;
};
const br = { 'accept-encoding': 'gzip, deflate, br' };
const graphiqlEtag = (
  await t.app.fetch('http://bench.local/graphql', { headers: { accept: 'text/html', ...br } })
).headers.get('etag')!;

const rows = [
  await measure('baseline: POST { __typename }', 2000, async () => {
    const response = await t.app.fetch('http://bench.local/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"query":"{ __typename }"}',
    });
    return (await response.arrayBuffer()).byteLength;
  }),
  await measure('GraphiQL page, brotli (now)', 200, () =>
    fetchBytes('/graphql', { accept: 'text/html', ...br }),
  ),
  await measure('GraphiQL page, 304 revalidation (now)', 2000, () =>
    fetchBytes('/graphql', { accept: 'text/html', ...br, 'if-none-match': graphiqlEtag }),
  ),
  await measure('GraphiQL page rendered per request, plain (before)', 50, async () =>
    Buffer.byteLength(renderGraphiQL(graphiqlOptions())),
  ),
  await measure(
    'GraphiQL page gzipped per request (not done)',
    10,
    async () => gzipSync(renderGraphiQL(graphiqlOptions()), { level: 6 }).length,
  ),
  await measure('console page, brotli', 2000, () => fetchBytes('/console/', br)),
  await measure('console script, brotli', 2000, () => fetchBytes(`/console/assets/${script}`, br)),
];
const baseline = rows[0]!.cpuUsPerOp;
for (const row of rows) {
  process.stdout.write(
    `${row.name.padEnd(52)} ${row.cpuUsPerOp.toFixed(0).padStart(9)} µs CPU/op  ${(
      row.cpuUsPerOp / baseline
    )
      .toFixed(2)
      .padStart(8)}× baseline  ${String(row.bytes).padStart(9)} bytes sent\n`,
  );
}
await t.close();

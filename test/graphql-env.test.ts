import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateOutput } from '@gql.tada/cli-utils';
import { format, resolveConfig } from 'prettier';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The tests' typed documents read schema.graphql through test/support/graphql-env.d.ts; a stale
 * copy would type-check the tests against an old schema. `npm run schema` (or `npm run
 * schema:tada` alone) regenerates it.
 */
const COMMITTED = 'test/support/graphql-env.d.ts';
const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

describe('test/support/graphql-env.d.ts', () => {
  it('is what gql.tada generates from schema.graphql now (run `npm run schema:tada` if not)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'graphql-env-'));
    dirs.push(dir);
    const fresh = path.join(dir, 'graphql-env.d.ts');
    await generateOutput({ output: fresh, tsconfig: 'test/tsconfig.json' });
    const options = await resolveConfig(COMMITTED);
    const expected = await format(await readFile(fresh, 'utf8'), {
      ...options,
      filepath: COMMITTED,
    });
    expect(await readFile(COMMITTED, 'utf8')).toBe(expected);
  });
});

import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

/**
 * Pure tests: no database, no server process, no test app. They run without the database set-up
 * (`npx vitest run --project unit` takes seconds); a file moves here only if it needs none of
 * test/support's app, database or process helpers.
 */
const UNIT = [
  'test/client-timeouts.test.ts',
  'test/config.test.ts',
  'test/console-build.test.ts',
  'test/contract.test.ts',
  'test/doc-comments.test.ts',
  'test/docs.test.ts',
  'test/import-cycles.test.ts',
  'test/function-lengths.test.ts',
  'test/graphql-env.test.ts',
  'test/rules.test.ts',
  'test/schema.test.ts',
  'test/token-cache.test.ts',
];

/**
 * Files whose subject is the same on either database: the pure tests, the client (its package,
 * its calls), the framework adapters, the example apps (they reach the service over its API) and
 * the GraphiQL page. CI runs the suite twice, on PGlite and on Postgres; these run in the
 * embedded pass only, unless `TEST_EVERY_DATABASE=true`. Everything that reads or writes the database runs in both.
 */
const SAME_ON_EVERY_DATABASE = [
  ...UNIT,
  'test/client-package.test.ts',
  'test/middleware-*.test.ts',
  'test/examples.browser.test.ts',
  'test/client.test.ts',
  'test/graphiql.test.ts',
  'test/graphiql.browser.test.ts',
];
const once =
  Boolean(process.env.DATABASE_URL) && process.env.TEST_EVERY_DATABASE !== 'true'
    ? SAME_ON_EVERY_DATABASE
    : [];

export default defineConfig({
  // One copy of graphql for everything, as in production (Node resolves yoga's, armor's and ours
  // to the same CommonJS build); otherwise instanceof GraphQLError fails across the two copies.
  resolve: { alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }] },
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Vitest's default is one fork less than the cores: a single fork on a 2-core CI machine,
    // where every sleep, spawned server and Postgres round trip then leaves a core idle. Most
    // files wait more than they compute, so run one fork more than the cores.
    maxWorkers: availableParallelism() + 1,
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT, exclude: once } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...UNIT, ...once],
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
    ],
  },
});

import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  // One copy of graphql for everything, as in production (Node resolves yoga's, armor's and ours
  // to the same CommonJS build); otherwise instanceof GraphQLError fails across the two copies.
  resolve: { alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }] },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Vitest's default is one fork less than the cores: a single fork on a 2-core CI machine,
    // where every sleep, spawned server and Postgres round trip then leaves a core idle. Most
    // files wait more than they compute, so run one fork more than the cores.
    maxWorkers: availableParallelism() + 1,
  },
});

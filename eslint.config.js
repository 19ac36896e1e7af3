import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Layer order of the server's modules, lowest first. A module imports from its own layer and the
 * layers below it, never from one above: no arrow between folders points up.
 *
 * - contract/: the API's lists and token format, shared with the published client; imports
 *   nothing (its own fence below).
 * - paths.ts: where the project's files are.
 * - tokens/: keys, secrets and the session token format; throws its own errors, never the API's.
 * - db/: the database handle, its schema, and its LISTEN connection.
 * - domain/: the rules (sessions, configs, keys, events, webhooks, activity); never GraphQL.
 * - observability/: metrics and logs' redaction.
 * - workers/: what runs for the life of the process: the event sequencer and bus, the webhook
 *   worker, the activity recorder, the sweeper, the fleet rate-limit counters.
 * - limits/: rate limits and the concurrency gate (counted by workers/fleet-counters.ts).
 * - http/: the transport around the schema: error contract, body and response limits, the
 *   console's static files, the /metrics endpoint.
 * - services.ts: the process's parts wired together (what a request's context reaches).
 * - graphql/: the schema, its resolvers and plugins (the input guard beside the context).
 * - the rest of src/*.ts: assembly (app, server, main, bootstrap, config, graphiql, logger).
 *
 * src/client/ is apart: it is published, and imports only src/contract/ (its fences below).
 */
const LAYERS = [
  ['contract/'],
  ['paths.ts'],
  ['tokens/'],
  ['db/'],
  ['domain/'],
  ['observability/'],
  ['workers/'],
  ['limits/'],
  ['http/'],
  ['services.ts'],
  ['graphql/'],
  ['app.ts', 'server.ts', 'main.ts', 'bootstrap.ts', 'config.ts', 'graphiql.ts', 'logger.ts'],
];

/** Deepest folder nesting under a layer's folder that the fences cover (src/domain/a/b/c.ts: 3). */
const MAX_DEPTH = 4;

/** A regex fragment matching what a relative import names, once it has reached src/. */
const named = (entry) =>
  entry.endsWith('/')
    ? entry.replace(/[.-]/g, '\\$&')
    : `${entry.replace(/\.ts$/, '').replace(/[.-]/g, '\\$&')}\\.js$`;

/**
 * One `no-restricted-imports` fence per layer and folder depth: a file `depth` folders under
 * src/ reaches src/ with exactly `depth` `../`, and must not go on into a higher layer. The
 * domain's fence also keeps GraphQL's packages out.
 */
function layerFences() {
  const fences = [];
  for (const [index, layer] of LAYERS.entries()) {
    const above = LAYERS.slice(index + 1).flat();
    if (above.length === 0 || layer.includes('contract/')) continue;
    const higher = `(${above.map(named).join('|')})`;
    const message = `Layer order (eslint.config.js): ${layer.join(', ')} must not import ${above.join(', ')}.`;
    for (const entry of layer) {
      const extra = entry === 'domain/' ? [DOMAIN_NO_GRAPHQL] : [];
      if (!entry.endsWith('/')) {
        fences.push(fence([`src/${entry}`], [{ regex: `^\\./${higher}`, message }, ...extra]));
        continue;
      }
      for (let depth = 1; depth <= MAX_DEPTH; depth++) {
        const files = [`src/${entry}${'*/'.repeat(depth - 1)}*.ts`];
        const up = '\\.\\./'.repeat(depth);
        fences.push(fence(files, [{ regex: `^${up}${higher}`, message }, ...extra]));
      }
    }
  }
  return fences;
}

const DOMAIN_NO_GRAPHQL = {
  group: ['graphql', 'graphql-*', '@pothos/*'],
  message: 'The domain must not import GraphQL.',
};

const fence = (files, patterns) => ({
  files,
  rules: { 'no-restricted-imports': ['error', { patterns }] },
});

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'drizzle/',
      '.data/',
      'coverage/',
      'test/artifacts/',
      'console/build/',
      'packages/client/build/',
      'dist/',
      '.dist-*/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-console': 'error',
    },
  },
  {
    // Only the config module reads the environment.
    files: ['src/**/*.ts'],
    ignores: ['src/config.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'Read configuration in src/config.ts only.',
        },
      ],
    },
  },
  ...layerFences(),
  {
    // The contract's lists are imported by the server and the published client: no imports.
    files: ['src/contract/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['*'], message: 'src/contract/ must import nothing.' }] },
      ],
    },
  },
  {
    // The client is published as built JS: of the server's side, it imports only the contract.
    files: ['src/client/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^\\.\\./(?!contract/)',
              message: 'The client imports only src/contract/ from outside src/client/.',
            },
          ],
        },
      ],
    },
  },
  {
    // The same one folder down (the server helpers): src/client/ is `..`, the contract `../../`.
    files: ['src/client/*/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^\\.\\./\\.\\./(?!contract/)',
              message: 'The client imports only src/contract/ from outside src/client/.',
            },
          ],
        },
      ],
    },
  },
  {
    // The examples are small apps that print where they listen.
    files: ['examples/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['test/**/*.ts'],
    rules: { 'no-console': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);

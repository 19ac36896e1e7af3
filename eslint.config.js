import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
  {
    // The domain never imports GraphQL.
    files: ['src/domain/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['graphql', 'graphql-*', '@pothos/*', '../graphql/*'],
              message: 'The domain must not import GraphQL.',
            },
          ],
        },
      ],
    },
  },
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

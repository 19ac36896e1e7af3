/**
 * Writes the GraphQL schema, as the code defines it, to `schema.graphql` at the repository root:
 * `npm run schema`. test/schema.test.ts fails when the committed file and the code differ.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
// The CommonJS entry, as Node (and so Pothos) loads it: under vitest a bare 'graphql' would resolve
// to the ES module build, a second copy that refuses the schema's types.
import { lexicographicSortSchema, printSchema } from 'graphql/index.js';
import { schema } from '../src/graphql/index.js';

/** Where the committed schema lives. */
export const SCHEMA_FILE = path.resolve(import.meta.dirname, '../schema.graphql');

/** The schema as SDL, sorted so that the file changes only when the API does. */
export function printedSchema(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  writeFileSync(SCHEMA_FILE, printedSchema());
  process.stdout.write(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}\n`);
}

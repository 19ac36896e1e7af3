import { existsSync, readFileSync } from 'node:fs';
import {
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isIntrospectionType,
  isObjectType,
  isSpecifiedScalarType,
} from 'graphql/index.js'; // the copy Pothos uses (see scripts/print-schema.ts)
import { describe, expect, it } from 'vitest';
import { printedSchema, SCHEMA_FILE } from '../scripts/print-schema.js';
import { schema } from '../src/graphql/index.js';

describe('the committed schema.graphql', () => {
  it('is the schema the code defines (run `npm run schema` after changing the API)', () => {
    const committed = existsSync(SCHEMA_FILE) ? readFileSync(SCHEMA_FILE, 'utf8') : '';
    const current = printedSchema();
    if (committed !== current) {
      const committedLines = committed.split('\n');
      const currentLines = current.split('\n');
      let line = 0;
      while (line < currentLines.length && currentLines[line] === committedLines[line]) line++;
      expect.fail(
        `schema.graphql is out of date: run \`npm run schema\` and commit the result.\n` +
          `First difference at line ${line + 1}:\n` +
          `  committed: ${JSON.stringify(committedLines[line] ?? '<end of file>')}\n` +
          `  code:      ${JSON.stringify(currentLines[line] ?? '<end of file>')}`,
      );
    }
  });
});

/** Every element of the schema a user reads in GraphiQL's docs, by its coordinate. */
function undocumented(): string[] {
  const missing: string[] = [];
  const check = (coordinate: string, description: string | null | undefined) => {
    if (!description?.trim()) missing.push(coordinate);
  };
  for (const type of Object.values(schema.getTypeMap())) {
    if (isIntrospectionType(type) || isSpecifiedScalarType(type)) continue;
    check(type.name, type.description);
    if (isObjectType(type) || isInterfaceType(type)) {
      for (const field of Object.values(type.getFields())) {
        check(`${type.name}.${field.name}`, field.description);
        for (const arg of field.args) {
          check(`${type.name}.${field.name}(${arg.name}:)`, arg.description);
        }
      }
    } else if (isInputObjectType(type)) {
      for (const field of Object.values(type.getFields())) {
        check(`${type.name}.${field.name}`, field.description);
      }
    } else if (isEnumType(type)) {
      for (const value of type.getValues()) check(`${type.name}.${value.name}`, value.description);
    }
  }
  return missing;
}

describe('the schema’s documentation', () => {
  it('describes every type, field, argument, input field and enum value', () => {
    expect(undocumented(), 'add a `description` to each of these in src/graphql/').toEqual([]);
  });
});

import { readFileSync } from 'node:fs';
import { isEnumType } from 'graphql/index.js'; // the copy Pothos uses (see scripts/print-schema.ts)
import { describe, expect, it } from 'vitest';
import { API_ERROR_CODES, SESSION_EVENT_TYPES } from '../src/contract/enums.js';
import { API_ERROR_CODES as CLIENT_ERROR_CODES } from '../src/client/index.js';
import { sessionEvents } from '../src/db/schema.js';
import { schema } from '../src/graphql/index.js';

describe('the contract’s lists, written once (src/contract/enums.ts)', () => {
  it('the GraphQL SessionEventType enum has exactly the listed event types', () => {
    const type = schema.getType('SessionEventType');
    expect(isEnumType(type)).toBe(true);
    const values = isEnumType(type) ? type.getValues().map((v) => v.name) : [];
    expect([...values].sort()).toEqual([...SESSION_EVENT_TYPES].sort());
  });

  it('the session_events.type column allows exactly the listed event types', () => {
    expect(sessionEvents.type.enumValues).toEqual([...SESSION_EVENT_TYPES]);
  });

  it('the client exports the same error codes, and the errors reference explains each', () => {
    expect(CLIENT_ERROR_CODES).toBe(API_ERROR_CODES);
    const errors = readFileSync(new URL('../docs/reference/errors.md', import.meta.url), 'utf8');
    for (const code of API_ERROR_CODES) expect(errors, code).toContain(`| \`${code}\``);
  });
});

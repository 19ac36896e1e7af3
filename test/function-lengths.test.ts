import { describe, expect, it } from 'vitest';
import { FUNCTION_LINE_LIMIT, functionsOver } from '../scripts/function-lengths.js';

/**
 * TEMPORARY: long functions not split yet. main (src/main.ts), openDatabase and loadConfig and
 * startSession are in files other branches of the tidy-up (workers, embedded start time, limits)
 * are changing now; subscriptionTransport was left for lack of time. Empty it as they are split.
 */
const TEMPORARY_NOT_YET_SPLIT = new Set<string>([
  'src/client/subscriptions.ts subscriptionTransport',
]);

const allowed = TEMPORARY_NOT_YET_SPLIT;

describe(`functions in src/ (at most ${FUNCTION_LINE_LIMIT} lines)`, () => {
  const over = functionsOver(FUNCTION_LINE_LIMIT);
  const named = over.map((fn) => `${fn.file} ${fn.name}`);

  it('finds the functions it measures (a function over the limit is reported)', () => {
    expect(functionsOver(1).length).toBeGreaterThan(100);
  });

  it('has none over the limit: split a long function into named parts', () => {
    const offenders = over
      .filter((fn) => !allowed.has(`${fn.file} ${fn.name}`))
      .map((fn) => `${fn.file}:${fn.line} ${fn.name} (${fn.lines} lines)`);
    expect(offenders).toEqual([]);
  });

  it('allows only functions still over the limit (remove an entry once it is split)', () => {
    expect([...allowed].filter((key) => !named.includes(key))).toEqual([]);
  });
});

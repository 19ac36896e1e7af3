import { describe, expect, it } from 'vitest';
import { FUNCTION_LINE_LIMIT, functionsOver } from '../scripts/function-lengths.js';

describe(`functions in src/ (at most ${FUNCTION_LINE_LIMIT} lines)`, () => {
  it('finds the functions it measures (a function over the limit is reported)', () => {
    expect(functionsOver(1).length).toBeGreaterThan(100);
  });

  it('has none over the limit: split a long function into named parts', () => {
    const offenders = functionsOver(FUNCTION_LINE_LIMIT).map(
      (fn) => `${fn.file}:${fn.line} ${fn.name} (${fn.lines} lines)`,
    );
    expect(offenders).toEqual([]);
  });
});

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  exportedDeclarations,
  exportsInFile,
  undocumentedExports,
} from '../scripts/doc-comments.js';

/** A scratch file for the rule's own cases, removed after the file's tests. */
const scratch = mkdtempSync(path.join(tmpdir(), 'doc-comments-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function exportsOf(text: string): { name: string; line: number; documented: boolean }[] {
  const file = path.join(scratch, 'case.ts');
  writeFileSync(file, text);
  return exportsInFile(file, scratch).map(({ name, line, documented }) => ({
    name,
    line,
    documented,
  }));
}

describe('doc comments on the exports of src/ (outside src/client/)', () => {
  it('finds the exports it checks, and none of the client', () => {
    const all = exportedDeclarations();
    expect(all.length).toBeGreaterThan(500);
    expect(all.filter((d) => d.file.startsWith(`src${path.sep}client${path.sep}`))).toEqual([]);
    expect(all.map((d) => d.name)).toEqual(
      expect.arrayContaining(['ServiceError', 'SessionRow', 'openDatabase', 'MAX_PAGE_SIZE']),
    );
  });

  it('tells a doc comment from none, and skips what needs none', () => {
    const found = exportsOf(
      [
        '/** Documented. */',
        'export function a(): void {}',
        '// A line comment is no doc comment.',
        'export const b = 1;',
        '/* Nor is a block comment. */',
        'export type C = string;',
        '/** Too far: a blank line stands between. */',
        '',
        'export interface D {}',
        '/** Documented, an eslint directive between. */',
        '// eslint-disable-next-line @typescript-eslint/no-explicit-any',
        'export let e: any;',
        'export enum F {',
        '  /** Members of an export need none. */',
        '  G,',
        '}',
        'export class H {',
        '  method(): void {}',
        '}',
        'export const i = 1, j = 2;',
        'export function k(x: string): string;',
        'export function k(x: number): number;',
        'export function k(x: unknown): unknown {',
        '  return x;',
        '}',
        'const l = 1;',
        'export { l };',
        "export * from './elsewhere.js';",
        'function m(): void {}',
      ].join('\n'),
    );
    expect(found).toEqual([
      { name: 'a', line: 2, documented: true },
      { name: 'b', line: 4, documented: false },
      { name: 'C', line: 6, documented: false },
      { name: 'D', line: 9, documented: false },
      { name: 'e', line: 12, documented: true },
      { name: 'F', line: 13, documented: false },
      { name: 'H', line: 17, documented: false },
      { name: 'i, j', line: 20, documented: false },
      { name: 'k', line: 21, documented: false },
    ]);
  });

  it('has none without one: `npx tsx scripts/doc-comments.ts` lists them', () => {
    const missing = undocumentedExports().map((d) => `${d.file}:${d.line} ${d.name}`);
    expect(missing).toEqual([]);
  });
});

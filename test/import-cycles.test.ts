import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/*
 * The domain has no import circle: each file's imports (type-only ones included, as they still
 * tie the files together) form no cycle. Pure: reads the sources, runs nothing.
 */

const DOMAIN = resolve(import.meta.dirname, '../src/domain');

function sourcesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourcesUnder(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The files under the domain that `file` imports or re-exports from. */
function importsOf(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return importedFiles
    .map(({ fileName }) => fileName)
    .filter((name) => name.startsWith('.'))
    .map((name) => {
      const path = resolve(dirname(file), name).replace(/\.js$/, '.ts');
      return existsSync(path) ? path : join(path.replace(/\.ts$/, ''), 'index.ts');
    })
    .filter((path) => path.startsWith(DOMAIN + '/') && existsSync(path));
}

/** Every cycle found by a depth-first walk, as the files on it (relative to the domain). */
function cyclesOf(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (file: string) => {
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      const at = path.indexOf(next);
      if (at >= 0) cycles.push(path.slice(at).map((f) => relative(DOMAIN, f)));
      else if (!done.has(next)) visit(next);
    }
    path.pop();
    done.add(file);
  };
  for (const file of graph.keys()) if (!done.has(file)) visit(file);
  return cycles;
}

describe('src/domain imports', () => {
  it('form no cycle', () => {
    const files = sourcesUnder(DOMAIN);
    const graph = new Map(files.map((file) => [file, importsOf(file)]));
    // The walk sees the imports at all: the session rules import their types.
    expect(graph.get(join(DOMAIN, 'sessions/verify.ts'))).toContain(
      join(DOMAIN, 'sessions/types.ts'),
    );
    expect(cyclesOf(graph)).toEqual([]);
  });

  it('finds a cycle when there is one', () => {
    const graph = new Map([
      ['/a.ts', ['/b.ts']],
      ['/b.ts', ['/c.ts']],
      ['/c.ts', ['/a.ts']],
      ['/d.ts', ['/a.ts']],
    ]);
    expect(cyclesOf(graph)).toHaveLength(1);
  });
});

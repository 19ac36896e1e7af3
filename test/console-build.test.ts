import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build } from 'vite';
import { afterAll, describe, expect, it } from 'vitest';
import { CONSOLE_BUILD_DIR } from '../src/http/console.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const out = mkdtempSync(path.join(tmpdir(), 'console-build-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Every file of a directory, by relative path, with its content. */
function filesOf(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    files.set(path.relative(dir, full), readFileSync(full, 'utf8'));
  }
  return files;
}

describe('the committed console build', () => {
  it(
    'is what `npm run console:build` makes from console/src today',
    { timeout: 120_000 },
    async () => {
      await build({
        configFile: path.join(ROOT, 'console/vite.config.ts'),
        logLevel: 'silent',
        build: { outDir: out, emptyOutDir: true },
      });
      const fresh = filesOf(out);
      const committed = filesOf(CONSOLE_BUILD_DIR);
      expect(
        [...committed.keys()].sort(),
        'run `npm run console:build` and commit console/build/',
      ).toEqual([...fresh.keys()].sort());
      for (const [name, content] of fresh) {
        expect(committed.get(name) === content, `${name}: run \`npm run console:build\``).toBe(
          true,
        );
      }
    },
  );
});

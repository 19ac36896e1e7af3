import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { format } from 'prettier';

/**
 * Writes a bench's figures to `test/bench/results/<name>`, as JSON formatted the way the repo's
 * format check (`prettier --check .`) wants it, so that a result can be committed as written.
 */
export async function writeResults(name: string, value: unknown): Promise<void> {
  const dir = path.join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, name), await format(JSON.stringify(value), { parser: 'json' }));
}

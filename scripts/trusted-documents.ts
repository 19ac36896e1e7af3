/**
 * Writes the trusted documents' manifest, src/graphql/trusted-documents.json: every operation the
 * client package and the web console send, as `sha256:<hex of the exact text>` → text (`npm run
 * documents`; `npm run schema` runs it too). test/trusted-documents.test.ts fails when the
 * committed file and the documents differ.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { format } from 'prettier';
import * as clientControls from '../src/client/controls.js';
import * as clientDocuments from '../src/client/documents.js';
import * as localVerifier from '../src/client/local-verifier.js';
import * as consoleDocuments from '../console/src/documents.js';

/** Where the committed manifest lives. */
export const MANIFEST_FILE = path.resolve(
  import.meta.dirname,
  '../src/graphql/trusted-documents.json',
);

/** A document's id: SHA-256 of its exact UTF-8 text, as the client package computes it. */
export function documentId(text: string): string {
  return `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;
}

/** An exported string that is an operation (a fragment alone is never sent). */
const isOperation = (value: unknown): value is string =>
  typeof value === 'string' && /^\s*(query|mutation|subscription)\b/.test(value);

/** Every document the client package and the console send, each once. */
export function sentDocuments(): string[] {
  const modules: object[] = [clientDocuments, clientControls, localVerifier, consoleDocuments];
  const texts = new Set<string>();
  for (const module of modules) {
    for (const value of Object.values(module)) if (isOperation(value)) texts.add(value);
  }
  return [...texts];
}

/** The manifest as committed: ids sorted, formatted as the format check wants it. */
export async function printedManifest(): Promise<string> {
  const entries = sentDocuments()
    .map((text) => [documentId(text), text] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return format(JSON.stringify(Object.fromEntries(entries)), { parser: 'json' });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  writeFileSync(MANIFEST_FILE, await printedManifest());
  process.stdout.write(`wrote ${path.relative(process.cwd(), MANIFEST_FILE)}\n`);
}

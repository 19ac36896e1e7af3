import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSchema, type GraphQLObjectType } from 'graphql';
import { describe, expect, it } from 'vitest';
import { RATE_LIMIT_DEFAULTS } from '../src/config.js';
import { API_ERROR_CODES } from '../src/contract/enums.js';

/**
 * The README and docs/: every relative link and anchor resolves, the README stays short, titles
 * carry no issue numbers, and the references cover every environment variable, operation and
 * error code the code has.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

function markdownUnder(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const file = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) return markdownUnder(file);
    return entry.name.endsWith('.md') ? [file] : [];
  });
}

/** The files this test holds to its rules (paths from the repository root). */
const FILES = ['README.md', 'packages/client/README.md', ...markdownUnder('docs')];

/** The file's text outside fenced code blocks (```), whose lines are blanked. */
function prose(text: string): string {
  let fenced = false;
  return text
    .split('\n')
    .map((line) => {
      if (/^\s*```/.test(line)) {
        fenced = !fenced;
        return '';
      }
      return fenced ? '' : line;
    })
    .join('\n');
}

/** The ATX headings (`## Title`) of a markdown file, outside code blocks. */
const headings = (text: string): string[] =>
  [...prose(text).matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)].map((m) => m[1]!);

/** A heading's anchor as GitHub makes it (github-slugger, applied to the rendered text). */
function slug(heading: string): string {
  const rendered = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
    .replace(/`([^`]*)`/g, '$1') // code spans: their content
    .replace(/(\*\*|__)(.+?)\1/g, '$2') // strong
    .replace(/(^|\W)[*_](.+?)[*_](?=\W|$)/g, '$1$2'); // emphasis
  return rendered
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a file's headings make, duplicates numbered as GitHub numbers them. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const heading of headings(text)) {
    const base = slug(heading);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

/** The targets of a file's inline links and images, outside code blocks and code spans. */
const linkTargets = (text: string): string[] =>
  [
    ...prose(text)
      .replace(/`[^`]*`/g, '')
      .matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g),
  ].map((m) => m[1]!);

describe('the README and docs/', () => {
  it('finds the files it checks', () => {
    expect(FILES).toEqual(
      expect.arrayContaining([
        'docs/reference/configuration.md',
        'docs/reference/errors.md',
        'docs/reference/api.md',
        'docs/operations/performance.md',
      ]),
    );
  });

  it('makes anchors as GitHub does', () => {
    expect(slug('1. Define a session type (Ductape `sessions.create`)')).toBe(
      '1-define-a-session-type-ductape-sessionscreate',
    );
    expect(slug('Rate limits on Postgres: the fleet counters')).toBe(
      'rate-limits-on-postgres-the-fleet-counters',
    );
    expect(slug('Which URL goes where')).toBe('which-url-goes-where');
    expect([...anchors('# A\n\n```\n# not a heading\n```\n\n## A\n')]).toEqual(['a', 'a-1']);
  });

  it.each(FILES)('%s: every relative link and anchor resolves', (file) => {
    const broken: string[] = [];
    for (const target of linkTargets(read(file))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:: not ours to check
      const [pathPart = '', anchor] = target.split('#', 2);
      const resolved = pathPart
        ? path.posix.normalize(path.posix.join(path.posix.dirname(file), decodeURI(pathPart)))
        : file;
      if (resolved.startsWith('..') || !existsSync(path.join(ROOT, resolved))) {
        broken.push(`${target}: no file ${resolved}`);
        continue;
      }
      if (anchor === undefined) continue;
      if (!resolved.endsWith('.md') || statSync(path.join(ROOT, resolved)).isDirectory()) {
        broken.push(`${target}: an anchor into a file that is not markdown`);
      } else if (!anchors(read(resolved)).has(anchor)) {
        broken.push(`${target}: no heading of ${resolved} makes #${anchor}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('the README is at most 250 lines, and states the test command CI runs', () => {
    const readme = read('README.md');
    expect(readme.split('\n').length).toBeLessThanOrEqual(250);
    expect(readme).toContain('npm install && npm start');
    expect(readme).toMatch(/^npm test\b/m);
    expect(read('.ci/run')).toMatch(/^[^#\n]*\bnpm test\b/m);
  });

  it.each(FILES)('%s: no title names an issue number', (file) => {
    const text = read(file);
    expect(headings(text).filter((h) => /\bissues?\b\s*#?\d|\(#\d+\)/i.test(h))).toEqual([]);
    expect(prose(text)).not.toMatch(/\bissue #\d+/i);
  });
});

describe('the references cover the code', () => {
  it('every environment variable src/config.ts reads is in docs/reference/configuration.md', () => {
    const source = read('src/config.ts');
    const schemaStart = source.indexOf('const envSchema = z.object({');
    expect(schemaStart).toBeGreaterThan(0);
    const schemaEnd = source.indexOf('\n});', schemaStart);
    const variables = new Set<string>([
      ...[...source.slice(schemaStart, schemaEnd).matchAll(/^ {2}([A-Z][A-Z0-9_]*):/gm)].map(
        (m) => m[1]!,
      ),
      ...[...source.matchAll(/\benv\.([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!),
    ]);
    // `RATE_LIMIT_<CLASS>` and `RATE_LIMIT_<CLASS>_PER_IP`, built from the rate classes.
    const rateVariables = Object.keys(RATE_LIMIT_DEFAULTS).map(
      (c) => `RATE_LIMIT_${c.toUpperCase()}`,
    );
    for (const name of rateVariables) variables.add(name).add(`${name}_PER_IP`);
    expect(variables.size).toBeGreaterThan(50);
    expect(variables).toContain('DATABASE_URL');

    const doc = read('docs/reference/configuration.md');
    const perIpTemplate = doc.includes('`RATE_LIMIT_<CLASS>_PER_IP`');
    const missing = [...variables].filter((name) => {
      if (doc.includes(`\`${name}\``)) return false;
      // A per-IP variable is documented by the template and its class's own variable.
      const perClass = /^(RATE_LIMIT_[A-Z]+)_PER_IP$/.exec(name);
      return !(perClass && perIpTemplate && doc.includes(`\`${perClass[1]}\``));
    });
    expect(missing).toEqual([]);
  });

  it('every query, mutation and subscription of schema.graphql has its entry in docs/reference/api.md', () => {
    const schema = buildSchema(read('schema.graphql'));
    const doc = read('docs/reference/api.md');
    const sections = new Map<string, string>();
    for (const part of prose(doc).split(/^### /m).slice(1)) {
      const [title = '', ...body] = part.split('\n');
      sections.set(title.replace(/`/g, '').trim(), body.join('\n'));
    }
    const fields = (['Query', 'Mutation', 'Subscription'] as const).flatMap((name) =>
      Object.keys((schema.getType(name) as GraphQLObjectType).getFields()),
    );
    expect(fields.length).toBeGreaterThan(40);
    const missing = fields.filter((field) => !sections.has(field));
    expect(missing).toEqual([]);
    // Each entry has its signature (a graphql block), a sentence, and a link to a guide.
    for (const field of fields) {
      expect(doc, field).toContain(`### ${field}\n\n\`\`\`graphql\n${field}`);
      expect(sections.get(field), field).toMatch(/\w[^\n]*\.[^\n]*\]\([^)]+\)/);
    }
  });

  it('every error code is in docs/reference/errors.md', () => {
    // The API's codes, the transport's (src/http/error-contract.ts), the client's own and its
    // middleware's (src/client/).
    const codeLiterals = (text: string): string[] =>
      [...text.matchAll(/'([A-Z]+(?:_[A-Z]+)+)'/g)].map((m) => m[1]!);
    const unionMembers = (file: string, type: string): string[] => {
      const text = read(file);
      const start = text.indexOf(`export type ${type} =`);
      expect(start, `${type} in ${file}`).toBeGreaterThan(0);
      return codeLiterals(text.slice(start, text.indexOf(';', start)));
    };
    const clientFiles = typescriptUnder('src/client');
    const thrownByClient = clientFiles.flatMap((file) =>
      [...read(file).matchAll(/new SessionServiceError\(\s*'([A-Z_]+)'/g)].map((m) => m[1]!),
    );
    const codes = new Set<string>([
      ...API_ERROR_CODES,
      ...codeLiterals(read('src/http/error-contract.ts')),
      ...unionMembers('src/client/errors.ts', 'ClientErrorCode'),
      ...unionMembers('src/client/server/auth.ts', 'AuthFailureCode'),
      ...thrownByClient,
    ]);
    expect(codes).toContain('COOKIE_TOO_LARGE');
    expect(codes).toContain('GRAPHQL_PARSE_FAILED');
    const doc = read('docs/reference/errors.md');
    expect([...codes].filter((code) => !doc.includes(`| \`${code}\``))).toEqual([]);
  });
});

/** The TypeScript files under a directory of the repository. */
function typescriptUnder(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const file = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) return typescriptUnder(file);
    return entry.name.endsWith('.ts') ? [file] : [];
  });
}

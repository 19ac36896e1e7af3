/**
 * Lists the functions in src/ longer than a limit, longest first: `npx tsx scripts/function-lengths.ts [lines]`
 * (default 80). A function is a declaration, an arrow function, a method, an accessor, a constructor or
 * a function expression; its length is its whole span in lines, nested functions included.
 * test/function-lengths.test.ts holds src/ to {@link FUNCTION_LINE_LIMIT} lines.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

/** The longest a function in src/ may be, in lines. */
export const FUNCTION_LINE_LIMIT = 120;

/** The repository's source directory, the one the limit holds for. */
export const SOURCE_DIR = path.resolve(import.meta.dirname, '../src');

/** One function and its length. */
export interface FunctionLength {
  /** The file, relative to the repository root. */
  file: string;
  /** The function's name: its own, its variable's or property's, or `(anonymous)`. */
  name: string;
  /** The line it starts on, 1-based. */
  line: number;
  /** Its span in lines, first and last included. */
  lines: number;
}

/** The TypeScript files under `dir`, recursively, declaration files (`.d.ts`) left out. */
export function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return /\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}

function nameOf(node: ts.FunctionLikeDeclaration): string {
  if (node.name) return node.name.getText();
  const parent = node.parent;
  if (
    (ts.isVariableDeclaration(parent) ||
      ts.isPropertyAssignment(parent) ||
      ts.isPropertyDeclaration(parent)) &&
    parent.name
  ) {
    return parent.name.getText();
  }
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  return '(anonymous)';
}

function isFunction(node: ts.Node): node is ts.FunctionLikeDeclaration {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node) ||
    ts.isConstructorDeclaration(node)
  );
}

/** Every function in one file with its length. */
export function functionLengthsInFile(
  file: string,
  root = path.dirname(SOURCE_DIR),
): FunctionLength[] {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: FunctionLength[] = [];
  const visit = (node: ts.Node): void => {
    if (isFunction(node) && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      found.push({
        file: path.relative(root, file),
        name: nameOf(node),
        line: start + 1,
        lines: end - start + 1,
      });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The functions under `dir` longer than `limit` lines, longest first. */
export function functionsOver(limit: number, dir = SOURCE_DIR): FunctionLength[] {
  return sourceFiles(dir)
    .flatMap((file) => functionLengthsInFile(file))
    .filter((fn) => fn.lines > limit)
    .sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file) || a.line - b.line);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const limit = Number(process.argv[2] ?? 80);
  if (!Number.isInteger(limit) || limit < 1) {
    process.stderr.write('usage: npx tsx scripts/function-lengths.ts [lines]\n');
    process.exit(2);
  }
  const over = functionsOver(limit);
  for (const fn of over) {
    process.stdout.write(`${String(fn.lines).padStart(5)}  ${fn.file}:${fn.line}  ${fn.name}\n`);
  }
  process.stdout.write(`${over.length} function(s) over ${limit} lines in src/\n`);
}

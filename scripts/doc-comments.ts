/**
 * Lists the exports in src/ outside src/client/ that have no doc comment: `npx tsx scripts/doc-comments.ts`.
 * An export is a function, class, interface, type alias, enum or variable statement declared with
 * `export` (`export default` included); `export { x }` and `export * from` re-export what has its
 * comment already, and the members of an exported object, class or interface are not counted. Its
 * doc comment is a `/** ... *\/` block before it with no blank line and no other declaration between
 * (a `//` line, such as an eslint directive, may stand between). Overloads of one function need one
 * comment, on the first. test/doc-comments.test.ts holds src/ to none missing.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { SOURCE_DIR, sourceFiles } from './function-lengths.js';

/** The directory whose exports are left out: the client documents its API in its own README. */
export const EXCLUDED_DIR = path.join(SOURCE_DIR, 'client');

/** One exported declaration, with whether it has a doc comment. */
export interface ExportedDeclaration {
  /** The file, relative to the repository root. */
  file: string;
  /** The line the declaration starts on (its `export` keyword, or the comment-free start), 1-based. */
  line: number;
  /** Its name; a variable statement's names joined with `, `; `default` for an anonymous default. */
  name: string;
  /** Whether a `/** ... *\/` comment stands immediately before it. */
  documented: boolean;
}

type Declaration =
  | ts.FunctionDeclaration
  | ts.ClassDeclaration
  | ts.InterfaceDeclaration
  | ts.TypeAliasDeclaration
  | ts.EnumDeclaration
  | ts.ModuleDeclaration
  | ts.VariableStatement;

function isDeclaration(node: ts.Node): node is Declaration {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isClassDeclaration(node) ||
    ts.isInterfaceDeclaration(node) ||
    ts.isTypeAliasDeclaration(node) ||
    ts.isEnumDeclaration(node) ||
    ts.isModuleDeclaration(node) ||
    ts.isVariableStatement(node)
  );
}

function isExported(node: Declaration): boolean {
  return (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
}

function nameOf(node: Declaration): string {
  if (ts.isVariableStatement(node)) {
    return node.declarationList.declarations.map((d) => d.name.getText()).join(', ');
  }
  return node.name?.getText() ?? 'default';
}

/**
 * Whether the last comment before `node` is a `/** ... *\/` block, followed by nothing but
 * `//` lines, and with no blank line between it and the declaration.
 */
function hasDocComment(node: ts.Node, text: string): boolean {
  const comments = ts.getLeadingCommentRanges(text, node.getFullStart()) ?? [];
  let after = node.getStart();
  for (const comment of [...comments].reverse()) {
    if (/\n[ \t]*\r?\n/.test(text.slice(comment.end, after))) return false;
    if (comment.kind === ts.SyntaxKind.MultiLineCommentTrivia) {
      return text.startsWith('/**', comment.pos) && !text.startsWith('/**/', comment.pos);
    }
    after = comment.pos;
  }
  return false;
}

/** Every exported declaration in one file, with whether it has a doc comment. */
export function exportsInFile(
  file: string,
  root = path.dirname(SOURCE_DIR),
): ExportedDeclaration[] {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: ExportedDeclaration[] = [];
  let previous: ts.Statement | undefined;
  for (const statement of source.statements) {
    const overload =
      previous !== undefined &&
      ts.isFunctionDeclaration(statement) &&
      ts.isFunctionDeclaration(previous) &&
      statement.name !== undefined &&
      statement.name.text === previous.name?.text;
    previous = statement;
    if (!isDeclaration(statement) || !isExported(statement) || overload) continue;
    found.push({
      file: path.relative(root, file),
      line: source.getLineAndCharacterOfPosition(statement.getStart(source)).line + 1,
      name: nameOf(statement),
      documented: hasDocComment(statement, text),
    });
  }
  return found;
}

/** Every exported declaration under `dir` outside src/client/, in file and line order. */
export function exportedDeclarations(dir = SOURCE_DIR): ExportedDeclaration[] {
  return sourceFiles(dir)
    .filter((file) => !file.startsWith(EXCLUDED_DIR + path.sep))
    .sort()
    .flatMap((file) => exportsInFile(file));
}

/** The exported declarations under `dir` (outside src/client/) without a doc comment. */
export function undocumentedExports(dir = SOURCE_DIR): ExportedDeclaration[] {
  return exportedDeclarations(dir).filter((declaration) => !declaration.documented);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const all = exportedDeclarations();
  const missing = all.filter((declaration) => !declaration.documented);
  for (const declaration of missing) {
    process.stdout.write(`${declaration.file}:${declaration.line} ${declaration.name}\n`);
  }
  process.stdout.write(
    `${missing.length} of ${all.length} export(s) in src/ (outside src/client/) without a doc comment\n`,
  );
}

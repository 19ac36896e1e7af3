import { GraphQLError, Kind, visit, type DocumentNode, type ValueNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from './context.js';

/** How deep input values (variables, JSON values inside them, literals) may nest. */
export const MAX_INPUT_DEPTH = 32;

/** NUL (Postgres text cannot hold it) and lone UTF-16 surrogates (not encodable as UTF-8). */
// eslint-disable-next-line no-control-regex -- finding NUL is the point
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

interface Refusal {
  field: string;
  message: string;
}

/** A path segment safe to echo: client-chosen JSON keys are shown as `*`. */
const segment = (name: string) => (/^[A-Za-z0-9_]{1,64}$/.test(name) ? name : '*');

/** The first problem in a raw input value (a variable, with JSON inside it), if any. */
function checkValue(value: unknown, path: string, depth: number): Refusal | undefined {
  if (typeof value === 'string') {
    return UNSTORABLE.test(value)
      ? { field: path, message: 'contains a NUL character or an unpaired surrogate' }
      : undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  if (depth >= MAX_INPUT_DEPTH) {
    return { field: path, message: `is nested more than ${MAX_INPUT_DEPTH} levels deep` };
  }
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = checkValue(item, path, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  for (const [key, item] of Object.entries(value)) {
    if (UNSTORABLE.test(key)) {
      return { field: path, message: 'has a key with a NUL character or an unpaired surrogate' };
    }
    const found = checkValue(item, `${path}.${segment(key)}`, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** The same for a literal in the document (variables inside it are checked as variables). */
function checkLiteral(node: ValueNode, path: string, depth: number): Refusal | undefined {
  switch (node.kind) {
    case Kind.STRING:
      return checkValue(node.value, path, depth);
    case Kind.LIST:
    case Kind.OBJECT: {
      if (depth >= MAX_INPUT_DEPTH) {
        return { field: path, message: `is nested more than ${MAX_INPUT_DEPTH} levels deep` };
      }
      if (node.kind === Kind.LIST) {
        for (const item of node.values) {
          const found = checkLiteral(item, path, depth + 1);
          if (found) return found;
        }
        return undefined;
      }
      for (const field of node.fields) {
        const found = checkLiteral(field.value, `${path}.${field.name.value}`, depth + 1);
        if (found) return found;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

/** The first problem in a document's literal arguments, if any: it depends on the document only. */
function findUnstorableLiteral(document: DocumentNode): Refusal | undefined {
  let found: Refusal | undefined;
  visit(document, {
    Argument(node) {
      found ??= checkLiteral(node.value, node.name.value, 0);
      return found ? false : undefined;
    },
  });
  return found;
}

/**
 * Literal refusals worked out, per parsed document (null: none). Yoga's parser cache hands out
 * the same object for the same text, and a trusted document is always the same text: its
 * literals are walked once, not once per request.
 */
const literalRefusals = new WeakMap<DocumentNode, Refusal | null>();

/** The first problem in an operation's literal arguments and its variables. */
export function findUnstorableInput(
  document: DocumentNode,
  variables: Readonly<Record<string, unknown>> | null | undefined,
): Refusal | undefined {
  let literal = literalRefusals.get(document);
  if (literal === undefined) {
    literal = findUnstorableLiteral(document) ?? null;
    literalRefusals.set(document, literal);
  }
  if (literal) return literal;
  for (const [name, value] of Object.entries(variables ?? {})) {
    const found = checkValue(value, segment(name), 0);
    if (found) return found;
  }
  return undefined;
}

function refusal(found: Refusal): { errors: GraphQLError[] } {
  return {
    errors: [
      new GraphQLError(`${found.field}: ${found.message}`, {
        extensions: { code: 'BAD_USER_INPUT', field: found.field },
      }),
    ],
  };
}

/**
 * Refuses input the database cannot store, in one place before any resolver runs (HTTP and
 * WebSocket alike): a NUL or an unpaired surrogate in any string of the variables or the
 * literal arguments (JSON keys and values included), input nested deeper than
 * {@link MAX_INPUT_DEPTH}, and the same in the User-Agent kept as device info. The answer is
 * BAD_USER_INPUT with `extensions.field`; nothing reaches Postgres.
 */
export function useInputGuard(): Plugin<Context> {
  const check = (
    document: DocumentNode,
    variables: Readonly<Record<string, unknown>> | null | undefined,
    context: Partial<Context>,
  ): Refusal | undefined => {
    const userAgent = context.requestDevice?.userAgent;
    if (typeof userAgent === 'string' && UNSTORABLE.test(userAgent)) {
      return { field: 'user-agent', message: 'the User-Agent header contains a NUL character' };
    }
    return findUnstorableInput(document, variables);
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const found = check(args.document, args.variableValues, args.contextValue);
      if (found) setResultAndStopExecution(refusal(found));
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const found = check(args.document, args.variableValues, args.contextValue);
      if (found) setResultAndStopExecution(refusal(found));
    },
  };
}

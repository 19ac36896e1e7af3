import { badInput } from './errors.js';

/** Limits on JSON the API accepts (config schemas and session data). */
export const JSON_LIMITS = {
  /** Serialized size of a config's sample schema. */
  schemaBytes: 16 * 1024,
  /** Serialized size of one session's data. */
  dataBytes: 16 * 1024,
  /** Nesting depth of objects and arrays. */
  depth: 10,
} as const;

type JsonKind = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'null';

function kindOf(value: unknown): JsonKind | 'other' {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  switch (typeof value) {
    case 'string':
      return 'string';
    case 'number':
      return Number.isFinite(value) ? 'number' : 'other';
    case 'boolean':
      return 'boolean';
    case 'object':
      return 'object';
    default:
      return 'other';
  }
}

function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  let max = 0;
  for (const child of children) max = Math.max(max, depthOf(child));
  return max + 1;
}

/**
 * Checks that a value is a JSON object within the size and depth limits; returns its
 * serialized form (whose byte length was checked).
 */
export function checkJsonObject(field: string, value: unknown, maxBytes: number): string {
  if (kindOf(value) !== 'object') throw badInput(field, 'expected a JSON object');
  const serialized = JSON.stringify(value);
  const bytes = Buffer.byteLength(serialized, 'utf8');
  if (bytes > maxBytes) {
    throw badInput(field, `is ${bytes} bytes; at most ${maxBytes} bytes are accepted`);
  }
  if (depthOf(value) > JSON_LIMITS.depth) {
    throw badInput(field, `nests deeper than ${JSON_LIMITS.depth} levels`);
  }
  return serialized;
}

/**
 * Checks session data against a config's sample schema, as Ductape's samples mean it: a key the
 * sample has must hold a value of the sample's type (objects checked recursively, arrays against
 * their first element); keys the sample does not have are allowed; a `null` in the sample
 * accepts anything. Keys of the sample may be left out (the selector's key is checked apart).
 */
export function checkDataAgainstSample(
  field: string,
  data: Record<string, unknown>,
  sample: Record<string, unknown>,
): void {
  walk(field, data, sample);
}

function walk(path: string, value: unknown, sample: unknown): void {
  const expected = kindOf(sample);
  if (expected === 'null' || expected === 'other') return;
  const actual = kindOf(value);
  if (actual !== expected) {
    throw badInput(
      path,
      `expected ${article(expected)} (as in the config's schema), got ${article(actual)}`,
    );
  }
  if (expected === 'object') {
    const s = sample as Record<string, unknown>;
    const v = value as Record<string, unknown>;
    for (const key of Object.keys(s)) {
      if (Object.hasOwn(v, key) && v[key] !== undefined) walk(`${path}.${key}`, v[key], s[key]);
    }
  } else if (expected === 'array') {
    const first = (sample as unknown[])[0];
    if (first === undefined) return;
    (value as unknown[]).forEach((item, i) => walk(`${path}[${i}]`, item, first));
  }
}

function article(kind: JsonKind | 'other'): string {
  switch (kind) {
    case 'object':
    case 'array':
      return `an ${kind}`;
    case 'null':
      return 'null';
    case 'other':
      return 'a value JSON cannot hold';
    default:
      return `a ${kind}`;
  }
}

import { badInput } from './errors.js';

/** `$Session{a}{b}...`: each segment a key of the session data. */
const SELECTOR_PATTERN = /^\$Session(\{[^{}]{1,64}\}){1,8}$/;
/**
 * The longest selector read, in characters: more than the pattern allows (8 keys of 64), checked
 * first so that a long input never reaches the pattern.
 */
export const MAX_SELECTOR_LENGTH = 600;

/** Parses a selector such as `$Session{details}{username}` into its path, or throws BAD_USER_INPUT. */
export function parseSelector(field: string, selector: string): string[] {
  if (selector.length > MAX_SELECTOR_LENGTH || !SELECTOR_PATTERN.test(selector)) {
    throw badInput(
      field,
      'expected "$Session{key}" or a nested path such as "$Session{details}{username}" (1 to 8 keys of 1 to 64 characters)',
    );
  }
  return [...selector.matchAll(/\{([^{}]+)\}/g)].map((m) => m[1]!);
}

/** Follows a path into a JSON value; undefined when any step is missing. */
export function pickPath(value: unknown, path: readonly string[]): unknown {
  let current: unknown = value;
  for (const key of path) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    if (!Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

/**
 * The identifier a selector picks out of session data: a string, or a number or boolean turned
 * into one. Anything else (missing, null, object, array, empty) is BAD_USER_INPUT.
 */
export function identifierFromData(
  selector: string,
  data: Record<string, unknown>,
  field = 'input.data',
): string {
  const path = parseSelector('selector', selector);
  const value = pickPath(data, path);
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  const where = path.map((k) => `{${k}}`).join('');
  if (value === undefined || value === null || value === '') {
    throw badInput(
      field,
      `the config's selector $Session${where} finds no value in the data; include it or pass an identifier`,
    );
  }
  throw badInput(
    field,
    `the config's selector $Session${where} must pick a string, number or boolean, not an ${Array.isArray(value) ? 'array' : 'object'}`,
  );
}

import { badInput, badSessionId } from './errors.js';

/** Session ids and other ids the database keeps as `uuid`. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** MAX_CONFIGS_PER_PRODUCT's default (the services' limit when none is configured). */
export const DEFAULT_MAX_CONFIGS_PER_PRODUCT = 100;
/** IMPERSONATION_MAX_SECONDS's default. */
export const DEFAULT_IMPERSONATION_MAX_SECONDS = 3600;
/** Longest name of a product, API key or session config, in characters. */
export const MAX_NAME_CHARS = 200;
/** Longest session config description, in characters. */
export const MAX_DESCRIPTION_CHARS = 2_000;

/** A session id argument, lower-cased: BAD_USER_INPUT on `field` unless it is a UUID. */
export function checkSessionId(value: string, field = 'sessionId'): string {
  if (!UUID_PATTERN.test(value)) throw badSessionId(field);
  return value.toLowerCase();
}

/** Tags of products and session configs: lower-case, URL- and key-safe, 1 to 64 characters. */
export const TAG_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/**
 * The longest tag, in characters, as {@link TAG_PATTERN} allows: the events filter refuses a longer
 * `tag` by it.
 */
export const MAX_TAG_LENGTH = 64;
/** Environment names appear inside keys (`sk_<env>_...`), so they have no underscore. */
export const ENV_PATTERN = /^[a-z][a-z0-9-]{0,15}$/;

/**
 * `value` when it is a tag ({@link TAG_PATTERN}); otherwise BAD_USER_INPUT on `field`, saying what
 * a tag may be.
 */
export function checkTag(field: string, value: string): string {
  if (!TAG_PATTERN.test(value)) {
    throw badInput(
      field,
      'expected 1 to 64 characters: lower-case letters, digits, "_" or "-", starting with a letter or digit',
    );
  }
  return value;
}

/** A trimmed, non-empty string of at most `max` characters. */
export function checkText(field: string, value: string, max: number, allowEmpty = false): string {
  const trimmed = value.trim();
  if (!allowEmpty && trimmed.length === 0) throw badInput(field, 'must not be empty');
  if (trimmed.length > max) throw badInput(field, `must be at most ${max} characters`);
  return trimmed;
}

/** `value` when it is a whole number from `min` to `max`; otherwise BAD_USER_INPUT saying `expected`. */
export function checkWholeNumber(
  field: string,
  value: number,
  range: { readonly min: number; readonly max: number },
  expected: string,
): number {
  if (!Number.isInteger(value) || value < range.min || value > range.max) {
    throw badInput(field, expected);
  }
  return value;
}

/**
 * `value`, untrimmed, when it has 1 to `max` characters; otherwise BAD_USER_INPUT on `field`. For
 * identifiers and other values kept as given (texts a person writes go through {@link checkText}).
 */
export function checkLength(field: string, value: string, max: number): string {
  if (value.length === 0) throw badInput(field, 'must not be empty');
  if (value.length > max) throw badInput(field, `must be at most ${max} characters`);
  return value;
}

/** Cursor instants: 4-digit years only, as the API writes them (Postgres and JS agree there). */
const CURSOR_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

/**
 * The instant a cursor carries, or undefined when it is not one this API could have written
 * (`+275760-…`, `-000001-…` and the like parse in JavaScript but not, or not alike, in Postgres).
 */
export function cursorInstant(text: string | undefined): Date | undefined {
  if (text === undefined || !CURSOR_INSTANT.test(text)) return undefined;
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

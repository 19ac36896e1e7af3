/**
 * Ductape's spellings, mapped onto this API's: `period: 'hours'` (any case, singular too),
 * `product`/`env` beside the input, instants as `Date` or ISO strings. A mistake in the input is
 * a `SessionServiceError` with code BAD_USER_INPUT and the field, raised before any request.
 */
import { SessionServiceError } from './errors.js';
import type { ExpiryPeriod } from './types.js';

/** A period as Ductape writes it (`'hours'`, `'days'`...) or as this API does (`'HOURS'`). */
export type PeriodSpelling =
  ExpiryPeriod | Lowercase<ExpiryPeriod> | 'second' | 'minute' | 'hour' | 'day' | 'week';

/** Ductape's `product` and `env` beside an input: the admin key acts there; a secret key must match. */
export interface ScopeSpelling {
  readonly product?: string;
  readonly env?: string;
}

const PERIODS: readonly ExpiryPeriod[] = ['SECONDS', 'MINUTES', 'HOURS', 'DAYS', 'WEEKS'];

/** BAD_USER_INPUT for a field, as the server words it. */
export function badUserInput(field: string, message: string): SessionServiceError {
  return new SessionServiceError('BAD_USER_INPUT', `${field}: ${message}`, { field });
}

/** `'hours'`, `'Hours'`, `'hour'` or `'HOURS'` → `'HOURS'`; anything else is BAD_USER_INPUT. */
export function periodOf(value: unknown, field: string): ExpiryPeriod {
  if (typeof value === 'string') {
    const upper = value.trim().toUpperCase();
    const found = PERIODS.find((p) => p === upper || p === `${upper}S`);
    if (found) return found;
  }
  throw badUserInput(field, `expected one of ${PERIODS.map((p) => p.toLowerCase()).join(', ')}`);
}

/** A non-empty string, or BAD_USER_INPUT (instead of the server's variable error). */
export function textOf(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw badUserInput(field, 'expected a non-empty string');
  }
  return value;
}

/** An optional whole number, or BAD_USER_INPUT. */
export function wholeNumberOf(value: unknown, field: string): number | null {
  if (value == null) return null;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw badUserInput(field, 'expected a whole number');
  }
  return value;
}

/** An optional instant (a Date or an ISO string) as an ISO string, or BAD_USER_INPUT. */
export function instantOf(value: unknown, field: string): string | null {
  if (value == null) return null;
  const date = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : null;
  if (!date || Number.isNaN(date.getTime())) {
    throw badUserInput(field, 'expected a Date or an ISO 8601 instant');
  }
  return date.toISOString();
}

/**
 * The `product` and `env` variables of a call: those beside the input, else the client's
 * defaults, else none (a secret key's own).
 */
export function scopeVariables(
  input: ScopeSpelling,
  defaults: ScopeSpelling,
): { product: string | null; env: string | null } {
  const product = input.product ?? defaults.product;
  const env = input.env ?? defaults.env;
  return {
    product: product == null ? null : textOf(product, 'product'),
    env: env == null ? null : textOf(env, 'env'),
  };
}

/** An input without Ductape's `product` and `env` (they travel as arguments of their own). */
export function withoutScope<T extends ScopeSpelling>(input: T): Omit<T, 'product' | 'env'> {
  const rest = { ...input } as unknown as Record<string, unknown>;
  delete rest.product;
  delete rest.env;
  return rest as Omit<T, 'product' | 'env'>;
}

/** Paging of a list: `first` items (20 by default) after the `endCursor` of the previous page. */
export interface PageInput {
  readonly first?: number;
  readonly after?: string;
}

/** The variables of a page of a list, `first` checked. */
export function pageVariables(input: PageInput): { first: number | null; after: string | null } {
  return { first: wholeNumberOf(input.first, 'first'), after: input.after ?? null };
}

/** What a list's connection answers besides its items. */
export interface ConnectionAnswer {
  readonly totalCount: number;
  readonly pageInfo: { readonly hasNextPage: boolean; readonly endCursor: string | null };
}

/** A page's count and position, as every list of the client returns them. */
export function pagePosition(page: ConnectionAnswer): {
  count: number;
  endCursor: string | null;
  hasNextPage: boolean;
} {
  return {
    count: page.totalCount,
    endCursor: page.pageInfo.endCursor,
    hasNextPage: page.pageInfo.hasNextPage,
  };
}

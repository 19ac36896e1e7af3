import { and, eq, type AnyColumn, type SQL } from 'drizzle-orm';

/**
 * Who is calling, as established from the `Authorization: Bearer` key. Product and env of a
 * secret or publishable key come from the key itself, never from arguments.
 */
export type Caller =
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'unknown-key' }
  | { readonly kind: 'admin' }
  | {
      readonly kind: 'secret' | 'publishable';
      readonly keyId: string;
      readonly productId: string;
      readonly productTag: string;
      readonly env: string;
    };

/** The product and environment an operation acts on. */
export interface Scope {
  readonly productId: string;
  readonly productTag: string;
  readonly env: string;
}

/** A table's columns that say which product and env a row belongs to. */
interface ScopedColumns {
  readonly productId: AnyColumn;
  readonly env: AnyColumn;
}

/** A table's columns that say whose a row is. */
interface OwnedColumns extends ScopedColumns {
  readonly tag: AnyColumn;
}

/** The rows of one product and env (a Scope, or a row that names them). */
export function inScopeOf(table: ScopedColumns, owner: Pick<Scope, 'productId' | 'env'>): SQL {
  return and(eq(table.productId, owner.productId), eq(table.env, owner.env))!;
}

/**
 * The rows of one product and env (a Scope, or a row that names them), and of `tag` when given:
 * the filter every read and write of sessions and their users starts from.
 */
export function ownedBy(
  table: OwnedColumns,
  owner: Pick<Scope, 'productId' | 'env'>,
  tag?: string,
): SQL {
  return and(inScopeOf(table, owner), tag === undefined ? undefined : eq(table.tag, tag))!;
}

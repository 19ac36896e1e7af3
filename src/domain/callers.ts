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

import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { DateTimeResolver, JSONResolver } from 'graphql-scalars';
import { ServiceError } from '../domain/errors.js';
import type { Context } from './context.js';
import { defaultFieldCost } from './cost.js';

/**
 * The Pothos builder, configured and nothing more: types and fields live in one file per domain.
 * Scope-auth runs first and decides from the caller's key what it may do; every field carries its
 * cost (the complexity plugin) for the per-request cost limit.
 */
export const builder = new SchemaBuilder<{
  Context: Context;
  AuthScopes: {
    /** The admin key. */
    admin: boolean;
    /** The session management API: a secret key, or the admin key. */
    sessions: boolean;
  };
  Scalars: {
    JSON: { Input: unknown; Output: unknown };
    DateTime: { Input: Date; Output: Date };
  };
  DefaultFieldNullability: false;
}>({
  plugins: [ScopeAuthPlugin, ComplexityPlugin],
  defaultFieldNullability: false,
  // Fields carry their cost (src/graphql/cost.ts); the limit is checked once per request before
  // it executes (useCostLimit), not in each root resolver.
  complexity: { disabled: true, fieldComplexity: defaultFieldCost },
  scopeAuth: {
    // Subscriptions are authorized when they start, not per event.
    authorizeOnSubscribe: true,
    authScopes: async (context) => {
      const caller = await context.caller();
      return {
        admin: caller.kind === 'admin',
        sessions: caller.kind === 'admin' || caller.kind === 'secret',
      };
    },
    // No key or an unknown one is UNAUTHENTICATED; a known key without the right is FORBIDDEN.
    unauthorizedError: (_parent, context) => {
      const kind = context.resolved.caller?.kind ?? 'anonymous';
      if (kind === 'anonymous') {
        return new ServiceError(
          'UNAUTHENTICATED',
          'Send your key in the Authorization header: "Bearer <key>".',
        );
      }
      if (kind === 'unknown-key') {
        return new ServiceError('UNAUTHENTICATED', 'This key is unknown or has been revoked.');
      }
      if (kind === 'publishable') {
        return new ServiceError(
          'FORBIDDEN',
          'A publishable key cannot use the session management API; use a secret key on your backend.',
        );
      }
      return new ServiceError('FORBIDDEN', 'This operation needs the admin key.');
    },
  },
});

builder.addScalarType('JSON', JSONResolver);
builder.addScalarType('DateTime', DateTimeResolver);

// Every root field is the session management API: a secret key, or the admin key. The rule is
// written here once; the few admin-only fields add `authScopes: { admin: true }` of their own.
builder.queryType({
  description: 'Read session configs and sessions, verify tokens, and (admin) list products.',
  authScopes: { sessions: true },
});
builder.mutationType({
  description: 'Manage session configs and sessions, and (admin) products and keys.',
  authScopes: { sessions: true },
});

/** The builder's type parameters, to type what is written apart from one type's declaration. */
export type BuilderTypes =
  typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;

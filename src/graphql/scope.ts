import type { Scope } from '../domain/callers.js';
import { resolveScope } from '../domain/keys.js';
import { builder } from './builder.js';
import type { Context } from './context.js';

/** The builder of one operation's arguments. */
type ArgBuilder = Parameters<Parameters<typeof builder.args>[0]>[0];

const scopeFields = (t: ArgBuilder) => ({
  product: t.string({
    description: 'Admin key only: the product’s tag. A secret key acts in its own product.',
  }),
  env: t.string({
    description: 'Admin key only: the environment. A secret key acts in its own environment.',
  }),
});

/** What a `tag` argument names, and how an unknown one is answered (see {@link scopeForTag}). */
const SESSION_TYPE =
  'The session type: a session config of the environment (a deleted config’s tag still names it, with its sessions); NOT_FOUND, with the tag in `extensions.tag`, when none has it.';

/** The two arguments every product-scoped operation takes; only the admin key uses them. */
export const scopeArgs = builder.args(scopeFields);

/** The session type an operation acts on, with the scope arguments: most session operations'. */
export const sessionTypeArgs = builder.args((t) => ({
  tag: t.string({ required: true, description: SESSION_TYPE }),
  ...scopeFields(t),
}));

/** An optional filter on one session type, for lists and subscriptions. */
export const tagFilterArgs = builder.args((t) => ({
  tag: t.string({
    description:
      'Only this session type (a deleted config’s tag included); NOT_FOUND, with the tag in `extensions.tag`, when no session config of the environment has it.',
  }),
}));

/** The two arguments that address one session (to spread beside {@link scopeArgs}). */
export const sessionAddressArgs = builder.args((t) => ({
  tag: t.string({ required: true, description: SESSION_TYPE }),
  sessionId: t.id({ required: true, description: 'The session id.' }),
}));

/** The product and env the caller acts on (from its key, or named by the admin key). */
export async function scopeOf(
  ctx: Context,
  args: { product?: string | null; env?: string | null },
): Promise<Scope> {
  return resolveScope(ctx.services.db, await ctx.caller(), args);
}

/**
 * The caller's scope for an operation on one tag (every query, mutation and subscription that
 * takes a `tag` goes through here, or through `checkConfigAccess` itself): NOT_FOUND, with the
 * tag in `extensions.tag`, when the tag names no session config of the environment, live or
 * deleted (a deleted config's sessions and events stay reachable); FORBIDDEN when it names a
 * config of another environment of the product; BAD_USER_INPUT when it is no tag at all.
 * Answered from the config cache when it holds the tag's config, so most calls cost no read.
 */
export async function scopeForTag(
  ctx: Context,
  args: { product?: string | null; env?: string | null },
  tag: string | null | undefined,
): Promise<Scope> {
  const scope = await scopeOf(ctx, args);
  if (tag != null) await ctx.services.sessionConfigs.checkAccess(ctx.services.db, scope, tag);
  return scope;
}

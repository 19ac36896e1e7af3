import { builder, type BuilderTypes } from './builder.js';

type FieldBuilder<Shape> = PothosSchemaTypes.ObjectFieldBuilder<BuilderTypes, Shape>;

/** A DateTime field that shows the parent's property of the same name. */
export const dateTimeField = <K extends string, Shape extends { readonly [k in K]: Date }>(
  t: FieldBuilder<Shape>,
  name: K,
  description: string,
) => t.field({ type: 'DateTime', description, resolve: (parent) => parent[name] });

/** A nullable DateTime field that shows the parent's property of the same name. */
export const nullableDateTimeField = <
  K extends string,
  Shape extends { readonly [k in K]: Date | null },
>(
  t: FieldBuilder<Shape>,
  name: K,
  description: string,
) => t.field({ type: 'DateTime', nullable: true, description, resolve: (parent) => parent[name] });

/**
 * An enum whose values are their own names, each with its description: `values` maps each name
 * to its description, in the schema's order.
 */
export function describedEnum<const K extends string>(
  name: string,
  description: string,
  values: Record<K, string>,
) {
  return builder.enumType(name, {
    description,
    values: Object.fromEntries(
      Object.entries<string>(values).map(([value, text]) => [value, { description: text }]),
    ) as Record<K, { description: string }>,
  });
}

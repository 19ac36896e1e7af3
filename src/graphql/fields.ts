import type { BuilderTypes } from './builder.js';

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

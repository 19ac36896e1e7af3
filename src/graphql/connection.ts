import type { ObjectRef } from '@pothos/core';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../domain/paging.js';
import { builder, type BuilderTypes } from './builder.js';
import { COUNTED_BY_PARENT } from './cost.js';

/*
 * Relay cursor connections (https://relay.dev/graphql/connections.htm), written once for every
 * list of the API: one `PageInfo`, and `connectionType` for each `<Name>Connection` with its
 * `<Name>Edge`. Every list pages forward only (`first`, `after`), by the keyset cursors the domain
 * returns, and has a `totalCount` counted only when asked for.
 *
 * Why this helper rather than @pothos/plugin-relay: the plugin's `t.connection` adds `last` and
 * `before` arguments to every connection field (backward paging we do not offer, so each field
 * would have to refuse them), adds its own `PageInfo` and, unless turned off, a Node interface
 * with global ids, and its cursor helpers page by offset or array index, where ours are keyset
 * cursors from the domain. What the spec asks of the schema fits in this file, keeps each
 * field's cost annotation (src/graphql/cost.ts) and needs no new dependency.
 * test/relay-connections.test.ts checks the spec's rules on the whole schema.
 */

/** The arguments of every connection field: `first` items `after` a cursor. */
export const pageArgs = builder.args((t) => ({
  first: t.int({ description: `Page size, 0 to ${MAX_PAGE_SIZE} (default ${DEFAULT_PAGE_SIZE}).` }),
  after: t.string({ description: 'The `endCursor` of the previous page.' }),
}));

/** Where a page stands, as `PageInfo` shows it. */
export interface PageInfoShape {
  readonly hasNextPage: boolean;
  readonly startCursor: string | null;
  readonly endCursor: string | null;
}

/**
 * The insight connections' page info before they returned `PageInfo` (it lacked
 * `hasPreviousPage` and `startCursor`, which Relay's spec requires). Kept, as an interface that
 * `PageInfo` implements, so that every query valid before stays valid: `pageInfo { ... on
 * InsightPageInfo { endCursor } }` and fragments on it still match. GraphQL cannot mark a type
 * deprecated, so its description says it; nothing returns it any more.
 */
const InsightPageInfo = builder.interfaceRef<PageInfoShape>('InsightPageInfo').implement({
  description:
    'Deprecated: name `PageInfo` instead, which implements it. The insight connections’ former page info, kept so that queries naming it stay valid.',
  resolveType: () => 'PageInfo',
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage', { description: 'More items after this page.' }),
    endCursor: t.exposeString('endCursor', {
      nullable: true,
      description: 'Pass as `after` for the next page; null on an empty page.',
    }),
  }),
});

/** Relay's `PageInfo`, the one page info of every connection. */
export const PageInfo = builder.objectRef<PageInfoShape>('PageInfo').implement({
  description: 'Where a page stands in the list (Relay). Lists page forward only.',
  interfaces: [InsightPageInfo],
  fields: (t) => ({
    hasPreviousPage: t.boolean({
      description: 'Always false: lists page forward only (`first`, `after`).',
      resolve: () => false,
    }),
    startCursor: t.exposeString('startCursor', {
      nullable: true,
      description: 'Cursor of the first item; null on an empty page.',
    }),
  }),
});

/** One item of a page with its cursor. */
export interface Edge<N> {
  readonly node: N;
  readonly cursor: string;
}

/** A page as a connection type shows it. */
export interface Connection<N, E extends Edge<N> = Edge<N>> {
  readonly edges: readonly E[];
  readonly pageInfo: PageInfoShape;
  readonly totalCount: () => Promise<number>;
}

/** What a connection needs of a domain page (any of the domain's page types fits). */
export interface PageOf<T> {
  readonly rows: readonly T[];
  readonly hasNextPage: boolean;
  /** Counts the whole list; run only when `totalCount` is asked for. */
  readonly totalCount: () => Promise<number>;
}

/** A domain page as a connection: its rows as nodes, each with its cursor. */
export function connectionOf<T, N = T>(
  page: PageOf<T>,
  cursorOf: (row: T) => string,
  toNode: (row: T) => N = (row) => row as unknown as N,
): Connection<N> {
  const edges = page.rows.map((row) => ({ node: toNode(row), cursor: cursorOf(row) }));
  return {
    edges,
    pageInfo: {
      hasNextPage: page.hasNextPage,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
    totalCount: page.totalCount,
  };
}

/** What a connection type says of itself, for the schema's documentation. */
export interface ConnectionTexts {
  /** The connection type's description. */
  readonly connection: string;
  /** One item, as "A session in a list": the edge type's and node field's description. */
  readonly node: string;
  /** What `totalCount` counts. */
  readonly total: string;
  /** Also a `nodes` field (the items without cursors), with this description. */
  readonly nodes?: string;
  /** The cost of one cursor, when it is larger than a scalar's (src/graphql/cost.ts). */
  readonly cursorCost?: number;
}

/** `<name>Connection` and `<name>Edge` (Relay) over one node type, with `totalCount`. */
export function connectionType<N>(
  name: string,
  node: ObjectRef<BuilderTypes, N>,
  texts: ConnectionTexts,
) {
  return connectionTypes<N>(name, node, texts).connection;
}

/**
 * {@link connectionType}'s two types, for a list whose edges or connection carry more (add
 * fields with `builder.objectFields`): `E` and `C` are the edge and connection values, which
 * extend {@link Edge} and {@link Connection}.
 */
export function connectionTypes<
  N,
  E extends Edge<N> = Edge<N>,
  C extends Connection<N, E> = Connection<N, E>,
>(name: string, node: ObjectRef<BuilderTypes, N>, texts: ConnectionTexts) {
  const edge = builder.objectRef<E>(`${name}Edge`).implement({
    description: `${texts.node}, with its cursor.`,
    fields: (t) => ({
      // (Pothos cannot relate a generic N to its resolver result type; the ref guarantees it.)
      node: t.field({ type: node, description: `${texts.node}.`, resolve: (e) => e.node as never }),
      cursor: t.string({
        description: 'Opaque position; pass as `after`.',
        resolve: (e) => e.cursor,
        ...(texts.cursorCost === undefined ? {} : { complexity: texts.cursorCost }),
      }),
    }),
  });
  const nodes = texts.nodes;
  const connection = builder.objectRef<C>(`${name}Connection`).implement({
    description: texts.connection,
    fields: (t) => ({
      edges: t.field({
        type: [edge],
        description: 'This page.',
        complexity: COUNTED_BY_PARENT,
        resolve: (c) => c.edges,
      }),
      ...(nodes === undefined
        ? {}
        : {
            nodes: t.field({
              type: [node],
              description: nodes,
              complexity: COUNTED_BY_PARENT,
              resolve: (c) => c.edges.map((e) => e.node) as never,
            }),
          }),
      pageInfo: t.field({ type: PageInfo, description: 'Paging.', resolve: (c) => c.pageInfo }),
      totalCount: t.int({ description: texts.total, resolve: (c) => c.totalCount() }),
    }),
  });
  return { connection, edge };
}

import {
  getNamedType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  parse,
  validate,
  type GraphQLField,
  type GraphQLObjectType,
  type GraphQLOutputType,
} from 'graphql/index.js'; // the copy Pothos uses (see scripts/print-schema.ts)
import { expect } from 'vitest';
import { schema } from '../src/graphql/index.js';
import type { TestApp } from './support/app.js';
import { newConfig, start } from './support/fixtures.js';
import { ok } from './support/graphql.js';
import { describe, it } from './support/test.js';

/*
 * Relay's cursor connections spec (https://relay.dev/graphql/connections.htm), checked on the
 * whole schema: the rules graphql-schema-linter's relay-connection-types-spec,
 * relay-connection-arguments-spec and relay-page-info-spec apply, and the spec's own on edges.
 */

const connectionTypes = (): GraphQLObjectType[] =>
  Object.values(schema.getTypeMap()).filter(
    (type): type is GraphQLObjectType =>
      isObjectType(type) && type.name.endsWith('Connection') && !type.name.startsWith('__'),
  );

/** Every field of the schema that returns a connection, as `Type.field`. */
const connectionFields = (): [string, GraphQLField<unknown, unknown>][] =>
  Object.values(schema.getTypeMap())
    .filter(isObjectType)
    .flatMap((type) =>
      Object.values(type.getFields())
        .filter((field) => getNamedType(field.type).name.endsWith('Connection'))
        .map((field) => [`${type.name}.${field.name}`, field] as [string, typeof field]),
    );

const printed = (type: GraphQLOutputType) => String(type);

describe('Relay connections', () => {
  it('the schema has connections, and fields returning them, to check', () => {
    expect(connectionTypes().map((t) => t.name)).toEqual(
      expect.arrayContaining([
        'ActivityConnection',
        'SessionConnection',
        'SessionHistoryConnection',
        'SessionUserConnection',
      ]),
    );
    expect(connectionFields().length).toBeGreaterThanOrEqual(4);
  });

  it('PageInfo has non-null hasPreviousPage and hasNextPage, and String start and end cursors', () => {
    const pageInfo = schema.getType('PageInfo');
    expect(isObjectType(pageInfo)).toBe(true);
    const fields = (pageInfo as GraphQLObjectType).getFields();
    expect(printed(fields.hasPreviousPage!.type)).toBe('Boolean!');
    expect(printed(fields.hasNextPage!.type)).toBe('Boolean!');
    expect(getNamedType(fields.startCursor!.type).name).toBe('String');
    expect(getNamedType(fields.endCursor!.type).name).toBe('String');
  });

  it.each(connectionTypes().map((t) => [t.name, t] as const))(
    '%s has edges (a list of edges) and pageInfo: PageInfo!',
    (_name, type) => {
      const fields = type.getFields();
      expect(fields.pageInfo, 'pageInfo').toBeDefined();
      expect(printed(fields.pageInfo!.type)).toBe('PageInfo!');
      expect(fields.edges, 'edges').toBeDefined();
      const edges = isNonNullType(fields.edges!.type)
        ? fields.edges!.type.ofType
        : fields.edges!.type;
      expect(isListType(edges), 'edges is a list').toBe(true);
    },
  );

  it.each(connectionTypes().map((t) => [t.name, t] as const))(
    'the edges of %s have a node that is not a list and a String cursor',
    (_name, type) => {
      const edge = getNamedType(type.getFields().edges!.type);
      expect(isObjectType(edge)).toBe(true);
      const fields = (edge as GraphQLObjectType).getFields();
      expect(fields.node, 'node').toBeDefined();
      const node = isNonNullType(fields.node!.type) ? fields.node!.type.ofType : fields.node!.type;
      expect(isListType(node), 'node is not a list').toBe(false);
      expect(fields.cursor, 'cursor').toBeDefined();
      const cursor = getNamedType(fields.cursor!.type);
      expect(isScalarType(cursor) && cursor.name).toBe('String');
    },
  );

  it.each(connectionFields())('%s takes first: Int and after: String', (_name, field) => {
    const arg = (name: string) => field.args.find((a) => a.name === name);
    expect(arg('first') && getNamedType(arg('first')!.type).name).toBe('Int');
    expect(arg('after') && getNamedType(arg('after')!.type).name).toBe('String');
  });
});

describe('InsightPageInfo, deprecated for PageInfo', () => {
  it('queries written against it stay valid: PageInfo implements it', () => {
    const queries = [
      `query { activityLog { pageInfo { hasNextPage endCursor } } }`,
      `query { activityLog { pageInfo { ... on InsightPageInfo { hasNextPage endCursor } } } }`,
      `fragment Paging on InsightPageInfo { hasNextPage endCursor }
       query($tag: String!) { sessionUsers(tag: $tag) { pageInfo { ...Paging } edges { node {
         sessions { pageInfo { ...Paging } } } } } }`,
    ];
    for (const query of queries) expect(validate(schema, parse(query)), query).toEqual([]);
  });
});

describe('paging the insight connections by PageInfo', () => {
  /** A config of the key's product with a session for each of users u1, u2 and u3. */
  async function threeUsers(t: TestApp, key: string): Promise<string> {
    const tag = await newConfig(t, key);
    for (const userId of ['u1', 'u2', 'u3']) {
      await start(t, key, tag, { userId, details: { username: userId } });
    }
    return tag;
  }

  const USERS = `query($tag: String!, $after: String) {
    sessionUsers(tag: $tag, first: 2, after: $after) {
      edges { cursor node { identifier } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }`;

  it('startCursor and endCursor are the first and last edges’ cursors, and pages go forward', async ({
    t,
    key,
  }) => {
    const tag = await threeUsers(t, key);
    type Page = {
      sessionUsers: {
        edges: { cursor: string; node: { identifier: string } }[];
        pageInfo: {
          hasNextPage: boolean;
          hasPreviousPage: boolean;
          startCursor: string | null;
          endCursor: string | null;
        };
      };
    };
    const first = (await ok<Page>(t.app, { key, query: USERS, variables: { tag } })).sessionUsers;
    expect(first.edges).toHaveLength(2);
    expect(first.pageInfo).toEqual({
      hasNextPage: true,
      hasPreviousPage: false,
      startCursor: first.edges[0]!.cursor,
      endCursor: first.edges[1]!.cursor,
    });
    const second = (
      await ok<Page>(t.app, {
        key,
        query: USERS,
        variables: { tag, after: first.pageInfo.endCursor },
      })
    ).sessionUsers;
    expect(second.edges).toHaveLength(1);
    expect(second.pageInfo).toEqual({
      hasNextPage: false,
      hasPreviousPage: false,
      startCursor: second.edges[0]!.cursor,
      endCursor: second.edges[0]!.cursor,
    });
    const seen = [...first.edges, ...second.edges].map((e) => e.node.identifier).sort();
    expect(seen).toEqual(['u1', 'u2', 'u3']);
  });

  it('a query naming InsightPageInfo still answers, through PageInfo', async ({ t, key }) => {
    await threeUsers(t, key);
    const data = await ok<{
      activityLog: { pageInfo: { __typename: string; hasNextPage: boolean; endCursor: string } };
    }>(t.app, {
      key,
      query: `query { activityLog(first: 1) { pageInfo { __typename ... on InsightPageInfo { hasNextPage endCursor } } } }`,
    });
    expect(data.activityLog.pageInfo.__typename).toBe('PageInfo');
    expect(data.activityLog.pageInfo.hasNextPage).toBe(true);
    expect(typeof data.activityLog.pageInfo.endCursor).toBe('string');
  });
});

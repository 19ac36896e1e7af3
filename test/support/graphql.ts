import { initGraphQLTada, type TadaDocumentNode } from 'gql.tada';
import { print, type DocumentNode } from 'graphql';
import type { App } from '../../src/app.js';
import type { introspection } from './graphql-env.js';

/**
 * Typed GraphQL documents for tests: `graphql(\`...\`)` parses the document against
 * schema.graphql (through test/support/graphql-env.d.ts, which `npm run schema` regenerates) and
 * infers its result and variables, so a misspelt field or a wrong variable is a type error in
 * `npm run typecheck`. Documents a test makes invalid on purpose stay plain strings.
 */
const tada = initGraphQLTada<{
  introspection: introspection;
  scalars: {
    DateTime: string;
    // Session data is whatever the test stored; tests read it as they please.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    JSON: any;
  };
}>();

/**
 * `tada`, whose documents also turn into their text wherever a test sends them raw
 * (`JSON.stringify({ query: VERIFY })` for a hand-made body, a template string): without this,
 * such a body would carry the document's syntax tree, and the server would refuse it for that
 * (BAD_REQUEST) whatever the test meant to send.
 */
export const graphql: typeof tada = Object.assign(
  ((...args: Parameters<typeof tada>) => sentAsText(tada(...args))) as typeof tada,
  tada,
);

function sentAsText<T extends object>(document: T): T {
  const text = () => documentText(document as unknown as Document);
  Object.defineProperty(document, 'toJSON', { value: text, enumerable: false });
  Object.defineProperty(document, 'toString', { value: text, enumerable: false });
  return document;
}

export type { ResultOf, VariablesOf } from 'gql.tada';

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: { message: string; path?: string[]; extensions?: Record<string, unknown> }[];
}

interface CallOptions {
  /** Which operation of the document to run. */
  operationName?: string;
  key?: string;
  headers?: Record<string, string>;
}

/** A document: typed (from `graphql`) or a plain string (for documents invalid on purpose). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any typed document
export type Document = string | TadaDocumentNode<any, any>;

/**
 * A request whose data is read untyped: a plain-string document, or a typed one sent where its
 * type is not followed (a table of calls, a helper taking any document).
 */
export interface Call extends CallOptions {
  query: Document;
  variables?: Record<string, unknown>;
}

/** A request with a typed document: its variables are checked, its data typed. */
export type TypedCall<R, V> = CallOptions & { query: TadaDocumentNode<R, V> } & (Record<
    string,
    never
  > extends V
    ? { variables?: V }
    : { variables: V });

const printed = new WeakMap<object, string>();

/** The text of a document, as sent. */
export function documentText(query: Document): string {
  if (typeof query === 'string') return query;
  let text = printed.get(query);
  if (text === undefined) {
    // gql.tada's documents are graphql-js compatible ASTs.
    text = print(query as unknown as DocumentNode);
    printed.set(query, text);
  }
  return text;
}

/** Sends one GraphQL request through the real endpoint (no port: `app.fetch`). */
export async function gql<R, V>(app: App, call: TypedCall<R, V>): Promise<GraphQLResponse<R>>;
export async function gql<T = Record<string, unknown>>(
  app: App,
  call: Call,
): Promise<GraphQLResponse<T>>;
export async function gql(app: App, call: Call): Promise<GraphQLResponse<unknown>> {
  const response = await app.fetch('http://test.local/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(call.key ? { authorization: `Bearer ${call.key}` } : {}),
      ...call.headers,
    },
    body: JSON.stringify({
      query: documentText(call.query),
      variables: call.variables,
      operationName: call.operationName,
    }),
  });
  const body = (await response.json()) as GraphQLResponse<unknown>;
  return { ...body, status: response.status };
}

function describeCall(call: Call, response: unknown): string {
  return `query:\n${documentText(call.query)}\nvariables: ${JSON.stringify(call.variables)}\nresponse: ${JSON.stringify(response, null, 2)}`;
}

/** The data of a request that must succeed; fails with the query and the response otherwise. */
export async function ok<R, V>(app: App, call: TypedCall<R, V>): Promise<R>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read untyped shapes freely
export async function ok<T = Record<string, any>>(app: App, call: Call): Promise<T>;
export async function ok(app: App, call: Call): Promise<unknown> {
  const response = await gql(app, call);
  if (response.errors?.length || !response.data) {
    throw new Error(`expected success\n${describeCall(call, response)}`);
  }
  return response.data;
}

/** The error code of a request that must fail; fails with the query and the response otherwise. */
export async function failure(
  app: App,
  call: Call,
): Promise<{ code: string; message: string; field?: string }> {
  const response = await gql(app, call);
  const error = response.errors?.[0];
  if (!error) throw new Error(`expected an error\n${describeCall(call, response)}`);
  return {
    code: String(error.extensions?.code),
    message: error.message,
    field: error.extensions?.field as string | undefined,
  };
}

import type { App } from '../../src/app.js';

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: { message: string; path?: string[]; extensions?: Record<string, unknown> }[];
}

export interface Call {
  query: string;
  variables?: Record<string, unknown>;
  /** Which operation of the document to run. */
  operationName?: string;
  key?: string;
  headers?: Record<string, string>;
}

/** Sends one GraphQL request through the real endpoint (no port: `app.fetch`). */
export async function gql<T = Record<string, unknown>>(
  app: App,
  call: Call,
): Promise<GraphQLResponse<T>> {
  const response = await app.fetch('http://test.local/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(call.key ? { authorization: `Bearer ${call.key}` } : {}),
      ...call.headers,
    },
    body: JSON.stringify({
      query: call.query,
      variables: call.variables,
      operationName: call.operationName,
    }),
  });
  const body = (await response.json()) as GraphQLResponse<T>;
  return { ...body, status: response.status };
}

function describeCall(call: Call, response: unknown): string {
  return `query:\n${call.query}\nvariables: ${JSON.stringify(call.variables)}\nresponse: ${JSON.stringify(response, null, 2)}`;
}

/** The data of a request that must succeed; fails with the query and the response otherwise. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read response shapes freely
export async function ok<T = Record<string, any>>(app: App, call: Call): Promise<T> {
  const response = await gql<T>(app, call);
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

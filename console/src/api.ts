/**
 * The console is a client of the public GraphQL API like any other: every call is a POST to
 * /graphql with the key in `Authorization`, never in a URL. The key lives in this tab's
 * sessionStorage only (gone when the tab closes) and is never logged.
 */

export interface Scope {
  readonly key: string;
  /** An admin key names the product and env on every call; a secret key implies them. */
  readonly admin: boolean;
  readonly product: string | null;
  readonly env: string | null;
}

import trusted from '../../src/graphql/trusted-documents.json';

const STORAGE_KEY = 'session-console:scope';

/** Trusted-document ids by text: the console's documents (documents.ts) are among them. */
const documentIds = new Map(Object.entries(trusted).map(([id, text]) => [text, id]));

/**
 * A document's trusted id (`documentId`), sent beside its text: a server in
 * TRUSTED_DOCUMENTS=require mode runs only documents it knows.
 */
export function documentIdOf(query: string): string | undefined {
  return documentIds.get(query);
}

export function loadScope(): Scope | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const value = JSON.parse(raw) as Scope;
    return typeof value.key === 'string' ? value : null;
  } catch {
    return null;
  }
}

export function saveScope(scope: Scope): void {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(scope));
}

export function clearScope(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

export interface GraphQLErrorBody {
  readonly message: string;
  readonly extensions?: { readonly code?: string; readonly field?: string };
}

/** What the API refused, with its messages as it sent them (codes and fields kept). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly errors: readonly GraphQLErrorBody[],
  ) {
    super(message);
    this.name = 'ApiError';
  }
  /** The message for one input field, if the API named it. */
  forField(field: string): string | undefined {
    return this.errors.find((e) => {
      const named = e.extensions?.field;
      return named === field || named?.endsWith(`.${field}`);
    })?.message;
  }
  get code(): string | undefined {
    return this.errors[0]?.extensions?.code;
  }
}

/** Largest response the console reads (the server caps responses too). */
const MAX_RESPONSE_CHARS = 8 * 1024 * 1024;

/**
 * Runs one operation. `$product` and `$env` are always sent (null for a secret key): every
 * operation of the console declares them.
 */
export async function gql<T>(
  scope: Pick<Scope, 'key' | 'product' | 'env'>,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  let response: Response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        authorization: `Bearer ${scope.key}`,
      },
      body: JSON.stringify({
        documentId: documentIdOf(query),
        query,
        variables: { ...variables, product: scope.product, env: scope.env },
      }),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError('The server did not answer; check that it is running.', []);
  }
  const text = await response.text();
  if (text.length > MAX_RESPONSE_CHARS) throw new ApiError('The answer is too large.', []);
  let body: { data?: T | null; errors?: GraphQLErrorBody[] };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new ApiError(`The server answered ${response.status} without GraphQL.`, []);
  }
  if (body.errors && body.errors.length > 0) {
    throw new ApiError(body.errors.map((e) => e.message).join(' '), body.errors);
  }
  if (!body.data) throw new ApiError(`The server answered ${response.status} with no data.`, []);
  return body.data;
}

/** The message to show for anything a call threw. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export { SCOPE_ARGS, SCOPE_VARS } from './documents';

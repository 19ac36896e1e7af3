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

const STORAGE_KEY = 'session-console:scope';

/** Trusted-document ids worked out, by text: the console's documents (documents.ts), a fixed set. */
const documentIds = new Map<string, Promise<string | undefined>>();

async function sha256Id(text: string): Promise<string | undefined> {
  // WebCrypto is there in a secure context (HTTPS, localhost); elsewhere the text goes alone,
  // which a TRUSTED_DOCUMENTS=require server still runs (it is a trusted text).
  if (!globalThis.crypto?.subtle) return undefined;
  const hash = new Uint8Array(
    await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)),
  );
  return `sha256:${Array.from(hash, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * A document's trusted id (`documentId`, the SHA-256 of its text), sent beside its text: the
 * server's manifest (src/graphql/trusted-documents.json) holds the console's documents.
 */
export function documentIdOf(query: string): Promise<string | undefined> {
  let id = documentIds.get(query);
  if (id === undefined) {
    id = sha256Id(query).catch(() => undefined);
    documentIds.set(query, id);
  }
  return id;
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
        documentId: await documentIdOf(query),
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

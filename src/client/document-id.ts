/**
 * Trusted documents (docs/guides/client.md): each operation is sent with its id,
 * `sha256:<hex of the exact text>`, beside its text. A server that knows the id runs its own copy
 * of the document (and one in TRUSTED_DOCUMENTS=require mode runs nothing else); one that does
 * not runs the text.
 */

/** Ids worked out, by text: the client's documents are a fixed set, a few dozen. */
const ids = new Map<string, Promise<string | undefined>>();
const MAX_IDS = 256;

async function digest(text: string): Promise<string | undefined> {
  // WebCrypto: Node 20+, and browsers in a secure context. Without it, the text goes alone.
  const subtle = (globalThis.crypto as Crypto | undefined)?.subtle;
  if (!subtle) return undefined;
  try {
    const hash = new Uint8Array(await subtle.digest('SHA-256', new TextEncoder().encode(text)));
    let hex = '';
    for (const byte of hash) hex += byte.toString(16).padStart(2, '0');
    return `sha256:${hex}`;
  } catch {
    return undefined;
  }
}

/** The trusted-document id of a document's text, or undefined where it cannot be worked out. */
export function documentIdOf(text: string): Promise<string | undefined> {
  let id = ids.get(text);
  if (id === undefined) {
    id = digest(text);
    if (ids.size < MAX_IDS) ids.set(text, id);
  }
  return id;
}

/**
 * Whether a server refused a request for carrying `documentId`: one from before trusted
 * documents, whose parameter check knows only query, variables, operationName and extensions.
 * Nothing ran: the request is sent again without it.
 */
export function refusedDocumentId(status: number, text: string): boolean {
  return status === 400 && text.includes('Unexpected parameter \\"documentId\\"');
}

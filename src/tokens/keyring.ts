import { hkdfSync, webcrypto } from 'node:crypto';
import { BoundedCache } from './bounded-cache.js';
import { SealedBox } from './sealed-box.js';
import { signedTokenKeys, type SignedTokenKeys } from './signed-keys.js';
import type { SessionTokenClaims } from './session-token.js';

/** The key id new session tokens are minted under unless configured otherwise. */
export const DEFAULT_TOKEN_KID = 'k1';

/** The value cached under `id`, derived and cached on its first use. */
function cached<T>(
  cache: { get(id: string): T | undefined; set(id: string, value: T): unknown },
  id: string,
  derive: () => T,
): T {
  let value = cache.get(id);
  if (value === undefined) {
    value = derive();
    cache.set(id, value);
  }
  return value;
}

/**
 * Every key the server uses, derived with HKDF-SHA256 from the one master secret, per product and
 * environment, and cached as ready-to-use keys (importing raw bytes on every call is slow).
 * Derived keys mean a token minted for one product or env cannot even be opened by another's key.
 */
export class Keyring {
  readonly #master: Buffer;
  readonly #tokenKeys = new Map<string, Promise<CryptoKey>>();
  readonly #dataBoxes = new Map<string, SealedBox>();
  /** Signed-format keys per product, env, tag and kid; bounded (tags are many across products). */
  readonly #signedKeys = new BoundedCache<Promise<SignedTokenKeys>>(10_000);
  readonly #webhookBoxes = new Map<string, SealedBox>();
  /** The key id new tokens are minted under. */
  readonly currentKid: string;
  /**
   * Tokens already opened, by scope and SHA-256 of the token: a client's token is verified on
   * every one of its requests, and opening it again (three WebCrypto jobs) would give the same
   * claims. Only successfully opened tokens enter; expiry is checked on every hit; the session
   * row is still checked by every verify. Bound to this keyring, so to the key ids in service.
   */
  readonly openedTokens = new BoundedCache<SessionTokenClaims>(20_000);
  readonly #acceptedKids: ReadonlySet<string>;

  /**
   * @param tokenKeyIds newest first: the first mints new tokens; every one of them still opens
   * tokens. Rotating is putting a new id first; retiring is removing an old one.
   */
  constructor(masterSecret: string, tokenKeyIds: readonly string[] = [DEFAULT_TOKEN_KID]) {
    if (Buffer.byteLength(masterSecret, 'utf8') < 32) {
      throw new Error('the master secret must be at least 32 bytes');
    }
    if (tokenKeyIds.length === 0) throw new Error('at least one token key id is needed');
    this.#master = Buffer.from(masterSecret, 'utf8');
    this.currentKid = tokenKeyIds[0]!;
    this.#acceptedKids = new Set(tokenKeyIds);
  }

  /** The key ids in service, newest (the one new tokens are minted under) first. */
  get keyIds(): readonly string[] {
    return [...this.#acceptedKids];
  }

  /**
   * The keys of the signed token format (src/tokens/signed-keys.ts) for one product, env, tag
   * and kid: derived under labels of their own, so they open no token of the older format, and
   * per tag, so a verifier given one tag's keys opens no other tag's tokens.
   */
  signedKeys(productId: string, env: string, tag: string, kid: string): Promise<SignedTokenKeys> {
    const id = `${productId}\u0000${env}\u0000${tag}\u0000${kid}`;
    return cached(this.#signedKeys, id, () => {
      const derive = (label: string) =>
        new Uint8Array(
          hkdfSync('sha256', this.#master, 'session-token-v2', `${label}\u0000${id}`, 32),
        );
      return signedTokenKeys(kid, derive('encryption-key'), derive('signing-seed'));
    });
  }

  /** Whether tokens minted under this key id are still accepted. */
  accepts(kid: unknown): kid is string {
    return typeof kid === 'string' && this.#acceptedKids.has(kid);
  }

  /** The AES-256 key-wrapping key for session tokens of one product, env and key id. */
  tokenKey(productId: string, env: string, kid: string): Promise<CryptoKey> {
    const id = `${productId}\u0000${env}\u0000${kid}`;
    return cached(this.#tokenKeys, id, () => {
      const bytes = new Uint8Array(
        hkdfSync('sha256', this.#master, 'session-token', `token-key\u0000${id}`, 32),
      );
      return webcrypto.subtle.importKey('raw', bytes, 'AES-KW', false, ['wrapKey', 'unwrapKey']);
    });
  }

  /** The box session data is sealed with at rest, per product and env. */
  dataBox(productId: string, env: string): SealedBox {
    const id = `${productId}\u0000${env}`;
    return cached(this.#dataBoxes, id, () =>
      SealedBox.derive(this.#master, 'session-data', `data-key\u0000${id}`),
    );
  }

  /** The box webhook signing secrets are sealed with at rest, per product and env. */
  webhookSecretBox(productId: string, env: string): SealedBox {
    const id = `${productId}\u0000${env}`;
    return cached(this.#webhookBoxes, id, () =>
      SealedBox.derive(this.#master, 'webhook-secret', `webhook-key\u0000${id}`),
    );
  }
}

import type { Caller } from './callers.js';

/** How long a known key is trusted without asking the database again. */
const KNOWN_TTL_MS = 30_000;
/** How long an unknown key is remembered as unknown (keys are never created with a known value). */
const UNKNOWN_TTL_MS = 5_000;
const MAX_ENTRIES = 10_000;

/**
 * Callers by key hash, so that a request does not cost a key lookup. Revocation reaches it at
 * once in this process (`forgetKey`, called by revokeApiKey) and on every other instance through
 * the key-revoked NOTIFY; when the listening connection was down, everything is forgotten, since
 * a revocation may have been missed. The TTL bounds what any missed message could cost.
 */
export class CallerCache {
  readonly #entries = new Map<string, { caller: Caller; until: number }>();

  get(keyHash: string): Caller | undefined {
    const entry = this.#entries.get(keyHash);
    if (!entry) return undefined;
    if (entry.until <= Date.now()) {
      this.#entries.delete(keyHash);
      return undefined;
    }
    return entry.caller;
  }

  set(keyHash: string, caller: Caller): void {
    if (caller.kind === 'anonymous') return;
    if (this.#entries.size >= MAX_ENTRIES) {
      // Oldest first: Map keeps insertion order.
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    const ttl = caller.kind === 'unknown-key' ? UNKNOWN_TTL_MS : KNOWN_TTL_MS;
    this.#entries.set(keyHash, { caller, until: Date.now() + ttl });
  }

  /** Forgets a revoked key wherever it is cached. */
  forgetKey(keyId: string): void {
    for (const [hash, entry] of this.#entries) {
      if ('keyId' in entry.caller && entry.caller.keyId === keyId) this.#entries.delete(hash);
    }
  }

  clear(): void {
    this.#entries.clear();
  }
}

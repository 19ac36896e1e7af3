import type { Database } from '../db/client.js';
import type { Scope } from './callers.js';
import {
  CONFIG_CHANGED_CHANNEL,
  checkTagConfig,
  checkUsable,
  readTagConfigs,
  readVersionedConfig,
  type VersionedConfig,
} from './configs.js';
import { configNotFound } from './errors.js';
import { checkTag } from './validation.js';

export { CONFIG_CHANGED_CHANNEL, readVersionedConfig, type VersionedConfig };

/** How long a config is used without reading it again (NOTIFY normally drops it sooner). */
const TTL_MS = 30_000;
const MAX_ENTRIES = 10_000;

/**
 * Session configs by (product, tag), so that a start does not cost a config read. Only found
 * configs are kept (a NOT_FOUND always asks the database). The cache is an optimisation, never a
 * source of truth: the start statement requires the row at the version read (see `startSession`)
 * and reads afresh when it is gone, and a FORBIDDEN is only answered from a fresh read. Changes
 * reach it at once on every instance through the config-changed NOTIFY (`forgetProduct`); when
 * the listening connection was down, everything is forgotten (`clear`). The TTL bounds the rest.
 */
export class SessionConfigCache {
  readonly #entries = new Map<string, { value: VersionedConfig; until: number }>();
  /** Bumped by every forget: a read that started before it does not fill the cache. */
  #generation = 0;

  /**
   * The config a start of the scope uses: NOT_FOUND (`extensions.tag`) without a live one,
   * FORBIDDEN for another env's. `fresh` skips the cache (and refills it).
   */
  async require(db: Database, scope: Scope, tag: string, fresh = false): Promise<VersionedConfig> {
    const key = `${scope.productId}|${tag}`;
    if (!fresh) {
      const entry = this.#entries.get(key);
      if (entry && entry.until > Date.now()) {
        // Another env's config from the cache: ask the database before saying FORBIDDEN.
        if (entry.value.config.env === null || entry.value.config.env === scope.env) {
          return entry.value;
        }
      } else if (entry) {
        this.#entries.delete(key);
      }
    }
    const generation = this.#generation;
    const found = await readVersionedConfig(db, scope, tag);
    if (!found) {
      this.#entries.delete(key);
      throw configNotFound(tag);
    }
    this.#remember(key, found, generation);
    checkUsable(found.config, scope);
    return found;
  }

  /**
   * `checkConfigAccess` (configs.ts) for an operation that names a tag: passes at once when the
   * cache holds the tag's live config for the scope's env; otherwise one read decides (and a
   * live config it finds is kept). BAD_USER_INPUT on `field` for what is not a tag, NOT_FOUND
   * for a tag that names no config of the scope (live or deleted), FORBIDDEN for another env's.
   */
  async checkAccess(db: Database, scope: Scope, tag: string, field = 'tag'): Promise<void> {
    const key = `${scope.productId}|${tag}`;
    const entry = this.#entries.get(key);
    if (entry && entry.until > Date.now()) {
      if (entry.value.config.env === null || entry.value.config.env === scope.env) return;
    } else if (entry) {
      this.#entries.delete(key);
    }
    checkTag(field, tag);
    const generation = this.#generation;
    const found = (await readTagConfigs(db, scope, [tag])).get(tag);
    if (found?.config.deletedAt === null) this.#remember(key, found, generation);
    else this.#entries.delete(key);
    checkTagConfig(found, scope, tag);
  }

  /** Keeps a live config read at `generation`, unless a forget came since. */
  #remember(key: string, found: VersionedConfig, generation: number): void {
    if (generation !== this.#generation) return;
    this.#entries.delete(key);
    if (this.#entries.size >= MAX_ENTRIES) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, { value: found, until: Date.now() + TTL_MS });
  }

  /** Forgets every config of a product (one of them changed, on some instance). */
  forgetProduct(productId: string): void {
    this.#generation++;
    const prefix = `${productId}|`;
    for (const key of this.#entries.keys()) {
      if (key.startsWith(prefix)) this.#entries.delete(key);
    }
  }

  clear(): void {
    this.#generation++;
    this.#entries.clear();
  }

  /** Whether a config of the product is held (for tests and metrics). */
  holdsProduct(productId: string): boolean {
    const prefix = `${productId}|`;
    for (const key of this.#entries.keys()) if (key.startsWith(prefix)) return true;
    return false;
  }
}

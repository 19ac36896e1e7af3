import { readVersionedConfig, type VersionedConfig } from '../config-cache.js';
import type { Scope } from '../callers.js';
import { checkUsable } from '../configs.js';
import { notFound } from '../errors.js';
import type { SessionDeps } from './types.js';

/**
 * The config a start uses, with the row version the start statement requires: from the
 * process's cache when there is one, else read. NOT_FOUND without a live config of that tag,
 * FORBIDDEN for another env's.
 */
export async function sessionConfigFor(
  deps: Pick<SessionDeps, 'db' | 'sessionConfigs'>,
  scope: Scope,
  tag: string,
  fresh: boolean,
): Promise<VersionedConfig> {
  if (deps.sessionConfigs) return deps.sessionConfigs.require(deps.db, scope, tag, fresh);
  const found = await readVersionedConfig(deps.db, scope, tag);
  if (!found) throw notFound(`No session config with tag "${tag}" in this product.`);
  checkUsable(found.config, scope);
  return found;
}

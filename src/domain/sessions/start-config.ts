import { readVersionedConfig, type VersionedConfig } from '../config-cache.js';
import type { Scope } from '../callers.js';
import { checkUsable } from '../configs.js';
import { configNotFound } from '../errors.js';
import { checkTag } from '../validation.js';
import type { SessionDeps } from './types.js';

/**
 * The config a start uses, with the row version the start statement requires: from the
 * process's cache when there is one, else read. BAD_USER_INPUT on input.tag for what is not a
 * tag, NOT_FOUND (`extensions.tag`) without a live config of that tag, FORBIDDEN for another
 * env's.
 */
export async function sessionConfigFor(
  deps: Pick<SessionDeps, 'db' | 'sessionConfigs'>,
  scope: Scope,
  tag: string,
  fresh: boolean,
): Promise<VersionedConfig> {
  checkTag('input.tag', tag);
  if (deps.sessionConfigs) return deps.sessionConfigs.require(deps.db, scope, tag, fresh);
  const found = await readVersionedConfig(deps.db, scope, tag);
  if (!found) throw configNotFound(tag);
  checkUsable(found.config, scope);
  return found;
}

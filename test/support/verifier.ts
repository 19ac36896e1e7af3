import {
  createLocalVerifier,
  type LocalVerifier,
  type LocalVerifierOptions,
} from '../../src/client/index.js';
import { test as base } from './test.js';

/** Makes a local verifier of `tags`; see {@link test}. */
export type MakeVerifier = (
  tags: string[],
  options?: Partial<LocalVerifierOptions>,
) => LocalVerifier;

/**
 * The shared fixtures, and `verifier(tags, options)`: a local verifier on the file's `server` with
 * the test's `key` (heartbeat 100 ms, stale after 1 s, unless `options` say otherwise), closed
 * after the test.
 */
export const test = base.extend(
  'verifier',
  async ({ server, key }, { onCleanup }): Promise<MakeVerifier> => {
    const verifiers: LocalVerifier[] = [];
    onCleanup(async () => {
      await Promise.all(verifiers.map((v) => v.close()));
    });
    return (tags, options = {}) => {
      const v = createLocalVerifier({
        url: server.url,
        key,
        tags,
        heartbeatMs: 1_000,
        maxStalenessMs: 5_000,
        ...options,
      });
      verifiers.push(v);
      return v;
    };
  },
);

export const it = test;
export const describe = test.describe;

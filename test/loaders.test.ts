import { expect } from 'vitest';
import { Loaders } from '../src/graphql/context.js';
import type { TestApp } from './support/app.js';
import { configIdsOf, newSharedConfig, start, type TestProduct } from './support/fixtures.js';
import { describe, it } from './support/test.js';

/*
 * The request-scoped loaders (src/graphql/context.ts) on a real database: object keys, batched
 * per group, deduplicated by value. Through the endpoint, test/insight.test.ts and
 * test/session-configs.test.ts check that a page costs as many statements for 50 rows as for 5.
 */
describe('request loaders', () => {
  /** The session counts sent since `from` (the activity recorder writes meanwhile too). */
  const countsSince = (t: TestApp, from: number) =>
    t.statements.slice(from).filter((text) => /count\(\*\) from "sessions"/.test(text)).length;

  /**
   * A shared config of the test's product, with live sessions: two of user `a|b` and one of `c`
   * in dev, one of `c` in prd.
   */
  async function seed(t: TestApp, product: TestProduct) {
    const tag = await newSharedConfig(t, product.tag);
    const ids = await configIdsOf(t, product.tag, tag);
    const as = (userId: string) => ({ userId, details: { username: userId } });
    await start(t, product.secret.dev, tag, as('a|b'));
    await start(t, product.secret.dev, tag, as('a|b'));
    await start(t, product.secret.dev, tag, as('c'));
    await start(t, product.secret.prd, tag, as('c'));
    return { tag, ...ids };
  }

  it('build nothing and query nothing until a field uses them', ({ t }) => {
    const before = t.statements.length;
    const loaders = new Loaders(t.services);
    expect(loaders.sessionRecord).toBe(t.services.sessionRecords);
    expect(t.statements.length).toBe(before);
    expect(loaders.configById).toBe(loaders.configById);
  });

  it('count live sessions per config and env, one query per env, equal keys loaded once', async ({
    t,
    product,
  }) => {
    const { configId } = await seed(t, product);
    const loaders = new Loaders(t.services);
    const before = t.statements.length;
    const counts = await Promise.all([
      loaders.activeSessionCount.load({ env: 'dev', configId }),
      loaders.activeSessionCount.load({ env: 'dev', configId }),
      loaders.activeSessionCount.load({ env: 'prd', configId }),
      loaders.activeSessionCount.load({ env: 'snd', configId }),
    ]);
    expect(counts).toEqual([3, 3, 1, 0]);
    expect(countsSince(t, before)).toBe(3);
    // Another key object with the same values is the same key: answered from the cache.
    expect(await loaders.activeSessionCount.load({ configId, env: 'prd' })).toBe(1);
    expect(countsSince(t, before)).toBe(3);
  });

  it('count live sessions per user of a tag in one query, whatever the identifier holds', async ({
    t,
    product,
  }) => {
    const { tag, productId } = await seed(t, product);
    const loaders = new Loaders(t.services);
    const scope = { productId, env: 'dev', productTag: product.tag };
    const before = t.statements.length;
    const counts = await Promise.all(
      ['a|b', 'c', 'a', 'nobody'].map((identifier) =>
        loaders.activeSessionsOfUser.load({ scope, tag, identifier }),
      ),
    );
    expect(counts).toEqual([2, 1, 0, 0]);
    expect(countsSince(t, before)).toBe(1);
    const prd = await loaders.activeSessionsOfUser.load({
      scope: { ...scope, env: 'prd' },
      tag,
      identifier: 'c',
    });
    expect(prd).toBe(1);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Loaders } from '../src/graphql/context.js';
import { createTestApp, type TestApp } from './support/app.js';
import {
  configIdsOf,
  newSharedConfig,
  newProduct,
  start,
  type TestProduct,
} from './support/fixtures.js';

/*
 * The request-scoped loaders (src/graphql/context.ts) on a real database: object keys, batched
 * per group, deduplicated by value. Through the endpoint, test/insight.test.ts and
 * test/session-configs.test.ts check that a page costs as many statements for 50 rows as for 5.
 */
describe('request loaders', () => {
  /** The session counts sent since `from` (the activity recorder writes meanwhile too). */
  const countsSince = (from: number) =>
    t.statements.slice(from).filter((text) => /count\(\*\) from "sessions"/.test(text)).length;

  let t: TestApp;
  let product: TestProduct;
  let tag: string;
  let configId: string;
  let productId: string;

  beforeAll(async () => {
    t = await createTestApp();
    product = await newProduct(t);
    tag = await newSharedConfig(t, product.tag);
    ({ configId, productId } = await configIdsOf(t, product.tag, tag));
    const as = (userId: string) => ({ userId, details: { username: userId } });
    await start(t, product.secret.dev, tag, as('a|b'));
    await start(t, product.secret.dev, tag, as('a|b'));
    await start(t, product.secret.dev, tag, as('c'));
    await start(t, product.secret.prd, tag, as('c'));
  });
  afterAll(() => t.close());

  it('build nothing and query nothing until a field uses them', () => {
    const before = t.statements.length;
    const loaders = new Loaders(t.services);
    expect(loaders.sessionRecord).toBe(t.services.sessionRecords);
    expect(t.statements.length).toBe(before);
    expect(loaders.configById).toBe(loaders.configById);
  });

  it('count live sessions per config and env, one query per env, equal keys loaded once', async () => {
    const loaders = new Loaders(t.services);
    const before = t.statements.length;
    const counts = await Promise.all([
      loaders.activeSessionCount.load({ env: 'dev', configId }),
      loaders.activeSessionCount.load({ env: 'dev', configId }),
      loaders.activeSessionCount.load({ env: 'prd', configId }),
      loaders.activeSessionCount.load({ env: 'snd', configId }),
    ]);
    expect(counts).toEqual([3, 3, 1, 0]);
    expect(countsSince(before)).toBe(3);
    // Another key object with the same values is the same key: answered from the cache.
    expect(await loaders.activeSessionCount.load({ configId, env: 'prd' })).toBe(1);
    expect(countsSince(before)).toBe(3);
  });

  it('count live sessions per user of a tag in one query, whatever the identifier holds', async () => {
    const loaders = new Loaders(t.services);
    const scope = { productId, env: 'dev', productTag: product.tag };
    const before = t.statements.length;
    const counts = await Promise.all(
      ['a|b', 'c', 'a', 'nobody'].map((identifier) =>
        loaders.activeSessionsOfUser.load({ scope, tag, identifier }),
      ),
    );
    expect(counts).toEqual([2, 1, 0, 0]);
    expect(countsSince(before)).toBe(1);
    const prd = await loaders.activeSessionsOfUser.load({
      scope: { ...scope, env: 'prd' },
      tag,
      identifier: 'c',
    });
    expect(prd).toBe(1);
  });
});

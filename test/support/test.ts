import { test as base } from 'vitest';
import { createTestApp, type TestApp, type TestAppOptions } from './app.js';
import { newConfig, newProduct, type TestProduct } from './fixtures.js';
import { listen } from './live.js';

export type TestServer = Awaited<ReturnType<typeof listen>>;

/**
 * `test` with the set-up most files share, as fixtures:
 *
 * - `t`: the file's app (one per file, closed after its last test), built with `appOptions`;
 *   override those for a whole file with `test.override('appOptions', {...})` at its top.
 * - `server`: `t` behind a real HTTP server on a free port (one per file, closed before `t`),
 *   for WebSocket and SSE clients.
 * - `instance`: makes another app on `t`'s database (another instance of the service, with its
 *   own options: `await instance({ tokenKeyIds: ['k2'] })`); each is closed after the test.
 * - `product`: a fresh product of the test's own (envs dev and prd, their keys).
 * - `key`: that product's dev secret key.
 * - `config`: the tag of a fresh session config (the Ductape one) made with `key`.
 *
 * A test gets only what it names (`async ({ t, key, config }) => ...`), and `product`, `key` and
 * `config` are made anew for every test that names them, so tests stay independent.
 */
export const test = base
  .extend('appOptions', { scope: 'file' }, {} as TestAppOptions)
  .extend('t', { scope: 'file' }, async ({ appOptions }, { onCleanup }): Promise<TestApp> => {
    const t = await createTestApp(appOptions);
    onCleanup(() => t.close());
    return t;
  })
  .extend('server', { scope: 'file' }, async ({ t }, { onCleanup }): Promise<TestServer> => {
    const server = await listen(t);
    onCleanup(() => server.close());
    return server;
  })
  .extend(
    'instance',
    async ({ t }, { onCleanup }): Promise<(options?: TestAppOptions) => Promise<TestApp>> => {
      const made: TestApp[] = [];
      onCleanup(async () => {
        for (const app of made.reverse()) await app.close();
      });
      return async (options = {}) => {
        const app = await createTestApp({ ...options, database: t.database });
        made.push(app);
        return app;
      };
    },
  )
  .extend('product', async ({ t }): Promise<TestProduct> => newProduct(t))
  .extend('key', async ({ product }): Promise<string> => product.secret.dev)
  .extend('config', async ({ t, key }): Promise<string> => newConfig(t, key));

export const it = test;
export const describe = test.describe;
// The hooks read the fixtures through `this`: bound, they can be imported on their own. Suite
// hooks (`beforeAll`, `afterAll`) see the file's fixtures (`t`, `appOptions`) only.
export const beforeAll = test.beforeAll.bind(test) as typeof test.beforeAll;
export const afterAll = test.afterAll.bind(test) as typeof test.afterAll;
export const beforeEach = test.beforeEach.bind(test) as typeof test.beforeEach;
export const afterEach = test.afterEach.bind(test) as typeof test.afterEach;

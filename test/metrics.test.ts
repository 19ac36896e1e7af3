import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { createMetricsServer } from '../src/http/metrics-endpoint.js';
import { createTestApp, type TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { newConfig, newProduct, REFRESH, REVOKE, start, VERIFY } from './support/fixtures.js';
import { gql, ok } from './support/graphql.js';

/** The file's app (the `t` fixture), for the helpers below. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
});

async function metrics(): Promise<string> {
  const response = await t.app.fetch('http://test.local/metrics');
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/text\/plain/);
  return response.text();
}

/** The value of one sample line, e.g. `sessions_started_total` or `x{code="Y"}`; 0 if absent. */
function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

describe('/metrics', () => {
  it('counts sessions started, refreshed and revoked, reuse, and verify failures by code', async () => {
    const before = await metrics();
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const a = await start(t, key, tag);
    const b = await start(t, key, tag);
    await ok(t.app, { key, query: VERIFY, variables: { tag, token: a.token } });
    await gql(t.app, { key, query: VERIFY, variables: { tag, token: 'garbage' } });
    await gql(t.app, { key, query: VERIFY, variables: { tag, token: 'garbage' } });
    await ok(t.app, { key, query: REFRESH, variables: { tag, refreshToken: b.refreshToken } });
    await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: a.sessionId } });
    await gql(t.app, { key, query: VERIFY, variables: { tag, token: a.token } });
    const after = await metrics();
    const delta = (name: string) => sample(after, name) - sample(before, name);
    expect(delta('sessions_started_total')).toBe(2);
    expect(delta('sessions_refreshed_total')).toBe(1);
    expect(delta('session_revocations_total')).toBe(1);
    expect(delta('session_verify_failures_total{code="TOKEN_INVALID"}')).toBe(2);
    expect(delta('session_verify_failures_total{code="SESSION_REVOKED"}')).toBe(1);
    expect(delta('session_operations_total{operation="verify",status="success",code=""}')).toBe(1);
    // Yoga's request metrics, per route and operation (a root field), are in the same registry.
    expect(after).toMatch(
      /graphql_yoga_http_duration_bucket\{[^}]*route="\/graphql",operation="verifySession"/,
    );
    expect(after).toMatch(/event_bus_lag_seconds_bucket/);
    expect(after).toMatch(/process_resident_memory_bytes/);
    // Nothing secret is exported.
    for (const secret of [a.token, a.refreshToken, key]) expect(after).not.toContain(secret);
  });

  it('gives every response a request id, echoing a sane one and replacing anything else', async () => {
    // (Health probes are answered before any plugin runs, and are not logged.)
    const given = await t.app.fetch('http://test.local/metrics', {
      headers: { 'x-request-id': 'abc-123' },
    });
    expect(given.headers.get('x-request-id')).toBe('abc-123');
    const odd = await t.app.fetch('http://test.local/metrics', {
      headers: { 'x-request-id': 'no spaces <allowed>' },
    });
    expect(odd.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const logged = t.logs.filter((l) => l.includes('"reqId":"abc-123"'));
    expect(logged).toHaveLength(1);
    expect(JSON.parse(logged[0]!)).toMatchObject({ method: 'GET', path: '/metrics', status: 200 });
  });
});

/** Names of the series in a Prometheus text exposition (sample lines, labels included). */
const series = (text: string) =>
  new Set(
    text
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => l.slice(0, l.lastIndexOf(' ')))
      .filter((l) => !l.startsWith('process_') && !l.startsWith('nodejs_')),
  );

describe('/metrics labels are bounded', () => {
  it('300 distinct URLs and 300 distinct operation names add no series', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const get = (i: number) =>
      t.app.fetch(
        `http://test.local/graphql?query=${encodeURIComponent('{ __typename }')}&x=${i}`,
        { headers: { 'x-graphql-yoga-csrf': '1' } },
      );
    const named = (i: number) =>
      gql(t.app, { key, query: `query Op${i < 0 ? 'Warm' : i} { sessionConfigs { tag } }` });
    const verify = (i: number) =>
      gql(t.app, { key, query: VERIFY, variables: { tag, token: `garbage-${i}` } });
    // One of each first, so every series that will ever exist for them exists.
    await get(-1);
    await named(-1);
    await verify(-1);
    const before = series(await metrics());
    for (let i = 0; i < 300; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, (_, j) =>
          Promise.all([get(i + j), named(i + j), verify(i + j)]),
        ),
      );
    }
    const after = series(await metrics());
    expect([...after].filter((s) => !before.has(s))).toEqual([]);
    expect([...after].some((s) => s.includes('Op1'))).toBe(false);
    expect([...after].some((s) => s.includes('x=1'))).toBe(false);
  });

  it('a token sent in a GET query string never appears in /metrics', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const session = await start(t, key, tag);
    const query = `query Verify($t: String!) { verifySession(tag: "${tag}", token: $t) { sessionId } }`;
    const response = await t.app.fetch(
      `http://test.local/graphql?query=${encodeURIComponent(query)}&variables=${encodeURIComponent(
        JSON.stringify({ t: session.token }),
      )}&operationName=Verify`,
      { headers: { authorization: `Bearer ${key}` } },
    );
    expect(response.status).toBe(200);
    const text = await metrics();
    expect(text).not.toContain(session.token);
    expect(text).not.toContain(session.token.slice(0, 20));
    expect(text).toMatch(/operation="verifySession"/);
  });
});

describe('/metrics exposure', () => {
  it('with a token, /metrics answers only its bearer', async () => {
    const token = 'm'.repeat(40);
    const own = await createTestApp({
      database: t.database,
      appOptions: { metrics: { onMainPort: true, token } },
    });
    try {
      const none = await own.app.fetch('http://test.local/metrics');
      expect(none.status).toBe(401);
      expect(await none.json()).toMatchObject({
        errors: [{ extensions: { code: 'UNAUTHENTICATED' } }],
      });
      const wrong = await own.app.fetch('http://test.local/metrics', {
        headers: { authorization: `Bearer ${'x'.repeat(40)}` },
      });
      expect(wrong.status).toBe(401);
      const right = await own.app.fetch('http://test.local/metrics', {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(right.status).toBe(200);
      expect(await right.text()).toMatch(/sessions_started_total/);
    } finally {
      await own.close();
    }
  });

  it('on a port of its own, the GraphQL port does not serve /metrics', async () => {
    const own = await createTestApp({
      database: t.database,
      appOptions: { metrics: { onMainPort: false } },
    });
    const server = createMetricsServer(own.services.metrics.registry, undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const onMain = await own.app.fetch('http://test.local/metrics');
      expect(onMain.status).toBe(404);
      expect(await onMain.text()).not.toMatch(/sessions_started_total/);
      const { port } = server.address() as AddressInfo;
      const scraped = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(scraped.status).toBe(200);
      expect(await scraped.text()).toMatch(/sessions_started_total/);
      expect((await fetch(`http://127.0.0.1:${port}/graphql`)).status).toBe(404);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await own.close();
    }
  });

  it('the listener of its own asks for the token too, when one is set', async () => {
    const token = 't'.repeat(40);
    const server = createMetricsServer(t.services.metrics.registry, token);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(401);
      const right = await fetch(`http://127.0.0.1:${port}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(right.status).toBe(200);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('defaults: next to GraphQL in development; on 127.0.0.1:9464 in production; never public there', () => {
    const production = { NODE_ENV: 'production', SESSION_SECRET: 's'.repeat(40) };
    expect(loadConfig({}).metrics).toEqual({ port: null, host: '127.0.0.1', token: undefined });
    expect(loadConfig(production).metrics).toEqual({
      port: 9464,
      host: '127.0.0.1',
      token: undefined,
    });
    expect(
      loadConfig({ ...production, METRICS_PORT: '9100', METRICS_HOST: '10.0.0.5' }).metrics,
    ).toEqual({ port: 9100, host: '10.0.0.5', token: undefined });
    expect(() => loadConfig({ ...production, METRICS_PORT: 'main' })).toThrow(ConfigError);
    expect(
      loadConfig({ ...production, METRICS_PORT: 'main', METRICS_TOKEN: 'k'.repeat(32) }).metrics,
    ).toEqual({ port: null, host: '127.0.0.1', token: 'k'.repeat(32) });
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN/);
    expect(() => loadConfig({ METRICS_PORT: 'x' })).toThrow(/METRICS_PORT/);
  });
});

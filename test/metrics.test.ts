import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { newConfig, newProduct, REFRESH, REVOKE, start, VERIFY } from './support/fixtures.js';
import { gql, ok } from './support/graphql.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
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

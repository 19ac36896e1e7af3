import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { newConfig, newProduct, REVOKE, start } from './support/fixtures.js';
import { ok } from './support/graphql.js';
import { listen, subscribeSse, subscribeWs, wsClient } from './support/live.js';

let t: TestApp;
let server: Awaited<ReturnType<typeof listen>>;
beforeAll(async () => {
  t = await createTestApp();
  server = await listen(t);
});
afterAll(async () => {
  await server.close();
  await t.close();
});

interface Event {
  id: string;
  type: string;
  sessionId: string;
  tag: string;
  identifier: string;
  reason: string | null;
}

const REVOKED_SUB = `subscription($tag: String, $identifier: String) {
  sessionRevoked(tag: $tag, identifier: $identifier) { id type sessionId tag identifier reason } }`;

describe('revocation events', () => {
  it('a graphql-ws subscriber hears a revocation', async () => {
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    const client = wsClient(server.wsUrl, product.secret.dev);
    const received = subscribeWs<Event>(client, REVOKED_SUB, { tag }, 'sessionRevoked');
    await new Promise((r) => setTimeout(r, 300));
    const session = await start(t, product.secret.dev, tag);
    await ok(t.app, {
      key: product.secret.dev,
      query: REVOKE,
      variables: { tag, sessionId: session.sessionId },
    });
    const [event] = await received.waitFor(1);
    expect(event).toMatchObject({
      type: 'REVOKED',
      sessionId: session.sessionId,
      tag,
      identifier: 'user-123',
      reason: 'revoked',
    });
    received.stop();
    await client.dispose();
  });

  it('an SSE subscriber hears a revocation', async () => {
    const product = await newProduct(t);
    const tag = await newConfig(t, product.secret.dev);
    const received = subscribeSse<Event>(
      server.url,
      product.secret.dev,
      REVOKED_SUB,
      { tag },
      'sessionRevoked',
    );
    expect(await received.status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    const session = await start(t, product.secret.dev, tag);
    await ok(t.app, {
      key: product.secret.dev,
      query: REVOKE,
      variables: { tag, sessionId: session.sessionId },
    });
    const [event] = await received.waitFor(1);
    expect(event).toMatchObject({ type: 'REVOKED', sessionId: session.sessionId });
    received.stop();
  });
});

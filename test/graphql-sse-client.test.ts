import { createClient, NetworkError } from 'graphql-sse';
import { expect } from 'vitest';
import { SINGLE_CONNECTION_REFUSED } from '../src/http/error-contract.js';
import { start } from './support/fixtures.js';
import { ok } from './support/graphql.js';
import { describe, it } from './support/test.js';

const REVOKE = `mutation($tag: String!, $sessionId: ID!) { revokeSession(tag: $tag, sessionId: $sessionId) { id } }`;
const REVOKED = `subscription($tag: String, $after: ID) { sessionRevoked(tag: $tag, after: $after) { type sessionId } }`;

describe('graphql-sse’s client (README, Subscriptions)', () => {
  it('in its distinct connections mode, the default, hears revocations over /graphql', async ({
    t,
    server,
    key,
    config: tag,
    onTestFinished,
  }) => {
    const before = await start(t, key, tag);
    await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: before.sessionId } });
    const client = createClient({
      url: server.url,
      headers: { authorization: `Bearer ${key}` },
      retryAttempts: 0,
    });
    onTestFinished(() => client.dispose());
    const results = client.iterate<{ sessionRevoked: { type: string; sessionId: string } }>({
      query: REVOKED,
      variables: { tag, after: '0' },
    });
    onTestFinished(async () => {
      await results.return?.(undefined);
    });
    // Replayed from `after`, then live.
    expect((await results.next()).value).toEqual({
      data: { sessionRevoked: { type: 'REVOKED', sessionId: before.sessionId } },
    });
    const live = await start(t, key, tag);
    await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: live.sessionId } });
    expect((await results.next()).value).toEqual({
      data: { sessionRevoked: { type: 'REVOKED', sessionId: live.sessionId } },
    });
  });

  it('in its single connection mode, is answered 405 with what to use instead', async ({
    server,
    key,
    onTestFinished,
  }) => {
    // The client aborts its requests once it fails: keep the body of what the server answered.
    const answers: Array<{ status: number; allow: string | null; body: unknown }> = [];
    const client = createClient({
      url: server.url,
      singleConnection: true,
      headers: { authorization: `Bearer ${key}` },
      retryAttempts: 0,
      fetchFn: async (input: RequestInfo | URL, init?: RequestInit) => {
        const response = await fetch(input, init);
        const text = await response.text();
        answers.push({
          status: response.status,
          allow: response.headers.get('allow'),
          body: JSON.parse(text) as unknown,
        });
        return new Response(text, { status: response.status, headers: response.headers });
      },
    });
    onTestFinished(() => client.dispose());
    const results = client.iterate({ query: REVOKED });
    const error = await results.next().then(
      (value) => value,
      (error: unknown) => error,
    );
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError<Response>).response?.status).toBe(405);
    expect(answers).toEqual([
      {
        status: 405,
        allow: 'GET, POST',
        body: {
          errors: [{ message: SINGLE_CONNECTION_REFUSED, extensions: { code: 'BAD_REQUEST' } }],
        },
      },
    ]);
  });
});

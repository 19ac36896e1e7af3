import { type GraphQLNamedType, isInputObjectType } from 'graphql/index.js'; // Pothos's copy
import { expect } from 'vitest';
import { schema } from '../src/graphql/index.js';
import { newProduct, start, uniqueTag } from './support/fixtures.js';
import { gql, ok, type GraphQLResponse } from './support/graphql.js';
import { errorCodeOf, subscribeSse, subscribeWs, wsClient, type Received } from './support/live.js';
import { describe, it } from './support/test.js';

/*
 * A tag that names no session config of the caller's environment is NOT_FOUND, with the tag in
 * `extensions.tag`, on every operation that takes one (queries, mutations, subscriptions; over
 * HTTP, WebSocket and SSE): never an empty answer, a count of 0 or a subscription that waits
 * forever. A deleted config's tag still names it: its sessions, history and events stay
 * reachable.
 */

const SESSION_ID = '00000000-0000-4000-8000-000000000000';
const DAY = 86_400_000;

/** One call of each operation that takes a session-config tag, naming `tag`. */
function callsFor(
  tag: string,
): Record<string, { query: string; variables: Record<string, unknown> }> {
  const onSession = (field: string, extra = '', vars: Record<string, unknown> = {}) => ({
    query: `mutation($tag: String!, $sessionId: ID!${extra ? `, ${extra.split('|')[0]}` : ''}) {
      ${field}(tag: $tag, sessionId: $sessionId${extra ? `, ${extra.split('|')[1]}` : ''}) { id }
    }`,
    variables: { tag, sessionId: SESSION_ID, ...vars },
  });
  return {
    // Queries
    sessions: {
      query: `query($tag: String!) { sessions(tag: $tag, identifier: "ada") { totalCount } }`,
      variables: { tag },
    },
    verifySession: {
      query: `query($tag: String!) { verifySession(tag: $tag, token: "not-a-token") { sessionId } }`,
      variables: { tag },
    },
    isSessionValid: {
      query: `query($tag: String!) { isSessionValid(tag: $tag, token: "not-a-token") }`,
      variables: { tag },
    },
    userSessions: {
      query: `query($tag: String) { userSessions(identifier: "ada", tag: $tag) { totalCount } }`,
      variables: { tag },
    },
    sessionUsers: {
      query: `query($tag: String!) { sessionUsers(tag: $tag) { totalCount } }`,
      variables: { tag },
    },
    sessionUser: {
      query: `query($tag: String!) { sessionUser(tag: $tag, identifier: "ada") { totalSessions } }`,
      variables: { tag },
    },
    activityLog: {
      query: `query($tag: String) { activityLog(tag: $tag) { totalCount } }`,
      variables: { tag },
    },
    sessionDashboard: {
      query: `query($tag: String!, $from: DateTime!, $to: DateTime!) {
        sessionDashboard(tag: $tag, from: $from, to: $to, groupBy: DAY) { totalSessions }
      }`,
      variables: {
        tag,
        from: new Date(Date.now() - DAY).toISOString(),
        to: new Date().toISOString(),
      },
    },
    verifierKeys: {
      query: `query($tags: [String!]!) { verifierKeys(tags: $tags) { issuer } }`,
      variables: { tags: [tag] },
    },
    verifierSnapshot: {
      query: `query($tags: [String!]!) { verifierSnapshot(tags: $tags) { endCursor } }`,
      variables: { tags: [tag] },
    },
    // Mutations
    startSession: {
      query: `mutation($tag: String!) { startSession(input: { tag: $tag, data: { userId: "ada" } }) { sessionId } }`,
      variables: { tag },
    },
    refreshSession: {
      query: `mutation($tag: String!) { refreshSession(tag: $tag, refreshToken: "rt_unknown") { sessionId } }`,
      variables: { tag },
    },
    revokeSession: onSession('revokeSession'),
    revokeAllSessions: {
      query: `mutation($tag: String!) { revokeAllSessions(tag: $tag, identifier: "ada") { count } }`,
      variables: { tag },
    },
    revokeSessionsStartedBefore: {
      query: `mutation($tag: String) { revokeSessionsStartedBefore(tag: $tag) { count } }`,
      variables: { tag },
    },
    markSessionFresh: onSession('markSessionFresh'),
    setSessionDeviceName: onSession('setSessionDeviceName', '$name: String|name: $name', {
      name: 'n',
    }),
    touchSession: onSession('touchSession'),
    extendSession: onSession('extendSession', '$seconds: Int!|seconds: $seconds', {
      seconds: 60,
    }),
    setSessionExpiration: onSession(
      'setSessionExpiration',
      '$expiresAt: DateTime!|expiresAt: $expiresAt',
      { expiresAt: new Date(Date.now() + DAY).toISOString() },
    ),
    updateSessionData: onSession('updateSessionData', '$data: JSON!|data: $data', {
      data: { userId: 'ada' },
    }),
    mergeSessionData: onSession('mergeSessionData', '$data: JSON!|data: $data', {
      data: { role: 'x' },
    }),
    setSessionValue: onSession(
      'setSessionValue',
      '$key: String!, $value: JSON!|key: $key, value: $value',
      {
        key: 'role',
        value: 'x',
      },
    ),
    removeSessionValue: onSession('removeSessionValue', '$key: String!|key: $key', {
      key: 'role',
    }),
    clearSessionData: onSession('clearSessionData'),
    updateSessionConfig: {
      query: `mutation($tag: String!) { updateSessionConfig(tag: $tag, input: { description: "d" }) { tag } }`,
      variables: { tag },
    },
    deleteSessionConfig: {
      query: `mutation($tag: String!) { deleteSessionConfig(tag: $tag) }`,
      variables: { tag },
    },
  };
}

/** The subscriptions that filter by tags, naming `tag`. */
function subscriptionsFor(tag: string) {
  return {
    sessionEvents: {
      query: `subscription($tag: String) { sessionEvents(tag: $tag, after: "0") { id } }`,
      variables: { tag },
    },
    sessionRevoked: {
      query: `subscription($tag: String) { sessionRevoked(tag: $tag, after: "0") { id } }`,
      variables: { tag },
    },
    verifierFeed: {
      query: `subscription($tags: [String!]!) { verifierFeed(tags: $tags, after: "0") { position } }`,
      variables: { tags: [tag] },
    },
  };
}

/**
 * Root fields that take a session-config tag but answer otherwise, on purpose: `sessionConfig`
 * is a lookup that answers null for a tag with no config (Ductape's fetch); `createSessionConfig`
 * names a new tag; `createProduct` a product's.
 */
const NOT_A_LOOKUP = new Set(['sessionConfig', 'createSessionConfig', 'createProduct']);

/** Every root field with a `tag` or `tags` argument, or an input object argument with `tag`. */
function fieldsTakingTags(): string[] {
  const names: string[] = [];
  for (const root of [
    schema.getQueryType(),
    schema.getMutationType(),
    schema.getSubscriptionType(),
  ]) {
    for (const field of Object.values(root!.getFields())) {
      const takesTag = field.args.some((arg) => {
        if (arg.name === 'tag' || arg.name === 'tags') return true;
        let type = arg.type as { ofType?: unknown };
        while (type.ofType) type = type.ofType as { ofType?: unknown };
        const named = type as GraphQLNamedType;
        return isInputObjectType(named) && 'tag' in named.getFields();
      });
      if (takesTag) names.push(field.name);
    }
  }
  return names.sort();
}

function expectUnknownTag(response: GraphQLResponse, tag: string, what: string) {
  expect(response.errors?.[0]?.extensions, `${what}: ${JSON.stringify(response)}`).toEqual({
    code: 'NOT_FOUND',
    tag,
  });
  expect(response.errors?.[0]?.message, what).toContain(tag);
}

/** Resolves when the subscription ended; fails (rather than waiting forever) after `ms`. */
async function ended(received: Received<unknown>, what: string, ms = 15_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const open = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still open after ${ms} ms`)), ms);
  });
  try {
    await Promise.race([received.ended, open]);
  } finally {
    clearTimeout(timer);
  }
}

/** The first GraphQL error a subscription ended with (graphql-ws hands over an array). */
function firstError(received: Received<unknown>): { extensions?: Record<string, unknown> } {
  const first = received.errors[0];
  return (Array.isArray(first) ? first[0] : first) as { extensions?: Record<string, unknown> };
}

describe('a tag that names no session config', () => {
  it('the tests below cover every operation that takes a session-config tag', () => {
    const covered = [
      ...Object.keys(callsFor('x')),
      ...Object.keys(subscriptionsFor('x')),
      ...NOT_A_LOOKUP,
    ].sort();
    expect(covered).toEqual(fieldsTakingTags());
  });

  it('is NOT_FOUND with the tag in extensions on every query and mutation, over HTTP', async ({
    t,
    key,
  }) => {
    const tag = uniqueTag('nope');
    for (const [name, call] of Object.entries(callsFor(tag))) {
      expectUnknownTag(await gql(t.app, { key, ...call }), tag, name);
    }
  });

  it('is NOT_FOUND on the admin key’s calls too, for a product and env it names', async ({
    t,
    product,
  }) => {
    const tag = uniqueTag('nope');
    // Across every env of the product (userSessions with a product and no env) as in one.
    for (const env of [null, 'prd']) {
      const response = await gql(t.app, {
        key: t.adminKey,
        query: `query($tag: String, $product: String, $env: String) {
          userSessions(identifier: "ada", tag: $tag, product: $product, env: $env) { totalCount }
        }`,
        variables: { tag, product: product.tag, env },
      });
      expectUnknownTag(response, tag, `userSessions env ${env}`);
    }
  });

  it('ends every subscription at once with NOT_FOUND, over WebSocket and SSE', async ({
    server,
    key,
  }) => {
    const tag = uniqueTag('nope');
    for (const [name, { query, variables }] of Object.entries(subscriptionsFor(tag))) {
      const client = wsClient(server.wsUrl, key);
      try {
        const overWs = subscribeWs<unknown>(client, query, variables, name);
        await ended(overWs, `${name} over WebSocket`);
        expect(overWs.items, name).toEqual([]);
        expect(firstError(overWs).extensions, `${name} over WebSocket`).toMatchObject({
          code: 'NOT_FOUND',
          tag,
        });
      } finally {
        await client.dispose();
      }
      const overSse = subscribeSse<unknown>(server.url, key, query, variables, name);
      await ended(overSse, `${name} over SSE`).finally(() => overSse.stop());
      expect(overSse.items, name).toEqual([]);
      expect(firstError(overSse).extensions, `${name} over SSE`).toMatchObject({
        code: 'NOT_FOUND',
        tag,
      });
    }
  });

  it('is NOT_FOUND for a query or mutation over WebSocket too', async ({ server, key }) => {
    const tag = uniqueTag('nope');
    const client = wsClient(server.wsUrl, key);
    try {
      for (const name of ['sessions', 'revokeAllSessions'] as const) {
        const call = callsFor(tag)[name]!;
        const received = subscribeWs<unknown>(client, call.query, call.variables, name);
        await ended(received, name);
        expect(errorCodeOf(received), name).toBe('NOT_FOUND');
        expect(firstError(received).extensions, name).toMatchObject({ tag });
      }
    } finally {
      await client.dispose();
    }
  });

  it('another product’s tag names no config here: NOT_FOUND, and nothing is touched', async ({
    t,
    product,
    key,
    config,
  }) => {
    const session = await start(t, key, config);
    // Another product: its key knows nothing of this product's tags.
    const other = await newProduct(t);
    const revoke = await gql(t.app, {
      key: other.secret.dev,
      ...callsFor(config).revokeAllSessions!,
    });
    expectUnknownTag(revoke, config, 'revokeAllSessions from another product');
    // The session is untouched.
    const verified = await ok(t.app, {
      key,
      query: `query($tag: String!, $token: String!) { verifySession(tag: $tag, token: $token) { sessionId } }`,
      variables: { tag: config, token: session.token },
    });
    expect(verified.verifySession.sessionId).toBe(session.sessionId);
    // Another env of this product: its live config stays FORBIDDEN there, as before.
    const fromPrd = await gql(t.app, { key: product.secret.prd, ...callsFor(config).sessions! });
    expect(fromPrd.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('what is not a tag at all is BAD_USER_INPUT on the argument, and never echoed', async ({
    t,
    key,
  }) => {
    const notATag = 'sk_dev_NotATag.With.Dots';
    for (const [name, call] of Object.entries(callsFor(notATag))) {
      const response = await gql(t.app, { key, ...call });
      const error = response.errors?.[0];
      expect(error?.extensions?.code, name).toBe('BAD_USER_INPUT');
      expect(JSON.stringify(response), name).not.toContain(notATag);
    }
  });
});

describe('a deleted config’s tag', () => {
  it('still names it: its sessions, history and events stay reachable', async ({
    t,
    server,
    key,
    config,
  }) => {
    const session = await start(t, key, config);
    await ok(t.app, {
      key,
      query: `mutation($tag: String!) { deleteSessionConfig(tag: $tag) }`,
      variables: { tag: config },
    });
    const calls = callsFor(config);
    // Reads answer as they did: no live session, the user's history, the verifier's snapshot.
    expect((await ok(t.app, { key, ...calls.sessions! })).sessions.totalCount).toBe(0);
    expect((await ok(t.app, { key, ...calls.sessionUser! })).sessionUser).toBeNull();
    const history = await ok(t.app, {
      key,
      query: `query($tag: String!) { sessionUser(tag: $tag, identifier: "user-123") { sessions { edges { node { id status revokeReason } } } } }`,
      variables: { tag: config },
    });
    expect(history.sessionUser.sessions.edges.map((e: { node: unknown }) => e.node)).toEqual([
      { id: session.sessionId, status: 'REVOKED', revokeReason: 'config_deleted' },
    ]);
    expect((await ok(t.app, { key, ...calls.verifierSnapshot! })).verifierSnapshot).toBeTruthy();
    // Revoking again is what it was: idempotent, nothing more to revoke.
    expect((await ok(t.app, { key, ...calls.revokeAllSessions! })).revokeAllSessions.count).toBe(0);
    // A token of it is refused for what it is, not for an unknown tag.
    const verify = await gql(t.app, {
      key,
      query: `query($tag: String!, $token: String!) { verifySession(tag: $tag, token: $token) { sessionId } }`,
      variables: { tag: config, token: session.token },
    });
    expect(verify.errors?.[0]?.extensions?.code).toBe('SESSION_REVOKED');
    // A subscriber that reconnects after the deletion still gets its revocations.
    const received = subscribeSse<{ sessionId: string; reason: string }>(
      server.url,
      key,
      `subscription($tag: String) { sessionRevoked(tag: $tag, after: "0") { sessionId reason } }`,
      { tag: config },
      'sessionRevoked',
    );
    try {
      expect(await received.waitFor(1)).toEqual([
        { sessionId: session.sessionId, reason: 'config_deleted' },
      ]);
    } finally {
      received.stop();
    }
    // But the config itself is gone: changing it again is NOT_FOUND.
    expectUnknownTag(await gql(t.app, { key, ...calls.updateSessionConfig! }), config, 'update');
    expectUnknownTag(await gql(t.app, { key, ...calls.deleteSessionConfig! }), config, 'delete');
    expectUnknownTag(await gql(t.app, { key, ...calls.startSession! }), config, 'start');
  });

  it('of another env names nothing in this one', async ({ t, product, config }) => {
    // `config` is the dev env's; the prd env never had it, before or after its deletion.
    await ok(t.app, {
      key: product.secret.dev,
      query: `mutation($tag: String!) { deleteSessionConfig(tag: $tag) }`,
      variables: { tag: config },
    });
    expectUnknownTag(
      await gql(t.app, { key: product.secret.prd, ...callsFor(config).sessions! }),
      config,
      'sessions from prd',
    );
  });
});

describe('the cost of the check', () => {
  it('an operation on a known tag reads no config once the cache holds it', async ({
    t,
    key,
    config,
  }) => {
    const call = { key, ...callsFor(config).sessions! };
    await ok(t.app, call);
    t.statements.length = 0;
    await ok(t.app, call);
    expect(t.statements.filter((s) => /session_configs/.test(s))).toEqual([]);
  });

  it('a verify that succeeds asks nothing of the configs beyond its one query', async ({
    t,
    key,
    config,
  }) => {
    const session = await start(t, key, config);
    const verify = {
      key,
      query: `query($tag: String!, $token: String!) { verifySession(tag: $tag, token: $token) { sessionId } }`,
      variables: { tag: config, token: session.token },
    };
    await ok(t.app, verify);
    t.statements.length = 0;
    await ok(t.app, verify);
    expect(t.statements, t.statements.join('\n')).toHaveLength(1);
  });
});

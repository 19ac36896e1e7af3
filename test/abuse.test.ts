import { request as httpRequest } from 'node:http';
import { sql } from 'drizzle-orm';
import type { Client } from 'graphql-ws';
import { expect } from 'vitest';
import { QUERY_LIMITS } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { COST } from '../src/graphql/cost.js';
import { createTestApp, type TestApp } from './support/app.js';
import { afterAll, beforeAll, describe, it } from './support/test.js';
import { gql, ok, type GraphQLResponse } from './support/graphql.js';
import {
  REFRESH,
  VERIFY,
  eventTypesOf,
  newConfig,
  newProduct,
  rowsOf,
  start,
} from './support/fixtures.js';
import { listen, subscribeWs, waitUntil, wsClient } from './support/live.js';

let key: string;
let tag: string;
beforeAll(async ({ t }) => {
  const product = await newProduct(t);
  key = product.secret.dev;
  tag = await newConfig(t, key);
});

/** A request refused before anything ran: errors, no data at all. */
function expectRefused(response: GraphQLResponse, pattern: RegExp): void {
  expect(response.data ?? null).toBeNull();
  expect(response.errors?.length, JSON.stringify(response).slice(0, 300)).toBeGreaterThan(0);
  expect(response.errors![0]!.message).toMatch(pattern);
}

/** An introspection query `levels` `ofType`s deep: the schema's own cycle makes it legal. */
const ofTypeChain = (levels: number) =>
  `{ __type(name: "Query") { fields { type { ${'ofType { '.repeat(levels)}name${' }'.repeat(levels)} } } } }`;

/** Refresh-token rows and events of a session: what a rotation would change. */
async function rotationState(t: TestApp, sessionId: string) {
  const rows = rowsOf<{ spent: number; total: number }>(
    await t.database.db.execute(
      sql`select count(*)::int as total, count(spent_at)::int as spent from refresh_tokens where session_id = ${sessionId}`,
    ),
  )[0]!;
  return { total: rows.total, spent: rows.spent, events: await eventTypesOf(t, sessionId) };
}

describe('query limits (graphql-armor), checked before anything runs', () => {
  it(`depth: ${QUERY_LIMITS.depth} levels pass, one more is refused`, async ({ t }) => {
    // __type(1) fields(2) type(3) ofType×n name(n+4)
    const atLimit = await gql(t.app, { query: ofTypeChain(QUERY_LIMITS.depth - 4) });
    expect(atLimit.errors).toBeUndefined();
    const over = await gql(t.app, { query: ofTypeChain(QUERY_LIMITS.depth - 3) });
    expectRefused(over, new RegExp(`depth limit of ${QUERY_LIMITS.depth} exceeded`));
  });

  it(`aliases: ${QUERY_LIMITS.aliases} pass, one more is refused`, async ({ t }) => {
    // (graphql-armor does not count aliases of __typename.)
    const aliases = (n: number) =>
      `{ ${Array.from({ length: n }, (_, i) => `a${i}: sessionConfigs { tag }`).join(' ')} }`;
    const atLimit = await gql(t.app, { key, query: aliases(QUERY_LIMITS.aliases) });
    expect(atLimit.errors).toBeUndefined();
    expect(Object.keys(atLimit.data!)).toHaveLength(QUERY_LIMITS.aliases);
    expectRefused(
      await gql(t.app, { key, query: aliases(QUERY_LIMITS.aliases + 1) }),
      new RegExp(`Aliases limit of ${QUERY_LIMITS.aliases} exceeded`),
    );
  });

  it('1,000 aliases of verifySession or refreshSession are refused, and nothing is verified or rotated', async ({
    t,
  }) => {
    const session = await start(t, key, tag);
    const before = await rotationState(t, session.sessionId);
    expect(before).toEqual({ total: 1, spent: 0, events: ['STARTED'] });
    const verifies = Array.from(
      { length: 1000 },
      (_, i) => `v${i}: verifySession(tag: $tag, token: $token) { sessionId }`,
    ).join('\n');
    const refreshes = (n: number) =>
      Array.from(
        { length: n },
        (_, i) => `r${i}: refreshSession(tag: $tag, refreshToken: $refreshToken) { refreshToken }`,
      ).join('\n');
    const responses = [
      await gql(t.app, {
        key,
        query: `query($tag: String!, $token: String!) { ${verifies} }`,
        variables: { tag, token: session.token },
      }),
      await gql(t.app, {
        key,
        query: `mutation($tag: String!, $refreshToken: String!) { ${refreshes(1000)} }`,
        variables: { tag, refreshToken: session.refreshToken },
      }),
      // Few enough tokens for the token limit: the alias limit refuses it.
      await gql(t.app, {
        key,
        query: `mutation($tag: String!, $refreshToken: String!) { ${refreshes(QUERY_LIMITS.aliases + 1)} }`,
        variables: { tag, refreshToken: session.refreshToken },
      }),
    ];
    for (const response of responses) {
      expectRefused(response, /limit of \d+ exceeded/);
      expect(JSON.stringify(response)).not.toContain(session.refreshToken);
    }
    expect(responses[2]!.errors![0]!.message).toMatch(/Aliases limit/);
    // No resolver ran: nothing rotated, no event.
    expect(await rotationState(t, session.sessionId)).toEqual(before);
    // The refresh token still works, once: one rotation, one event.
    const refreshed = await ok(t.app, {
      key,
      query: REFRESH,
      variables: { tag, refreshToken: session.refreshToken },
    });
    expect(refreshed.refreshSession.refreshToken).not.toBe(session.refreshToken);
    expect(await rotationState(t, session.sessionId)).toEqual({
      total: 2,
      spent: 1,
      events: ['STARTED', 'REFRESHED'],
    });
  });

  it(`tokens: more than ${QUERY_LIMITS.tokens} lexical tokens are refused`, async ({ t }) => {
    const fields = (n: number) => `{ ${'__typename '.repeat(n)}}`;
    expect((await gql(t.app, { query: fields(500) })).data).toEqual({ __typename: 'Query' });
    expectRefused(
      await gql(t.app, { query: fields(QUERY_LIMITS.tokens + 1) }),
      new RegExp(`Token limit of ${QUERY_LIMITS.tokens} exceeded`),
    );
  });

  it(`directives: ${QUERY_LIMITS.directives} pass, one more is refused`, async ({ t }) => {
    const directives = (n: number) =>
      `{ ${Array.from({ length: n }, (_, i) => `f${i}: __typename @include(if: true)`).join(' ')} }`;
    expect(
      (await gql(t.app, { query: directives(QUERY_LIMITS.directives) })).errors,
    ).toBeUndefined();
    expectRefused(
      await gql(t.app, { query: directives(QUERY_LIMITS.directives + 1) }),
      new RegExp(`Directives limit of ${QUERY_LIMITS.directives} exceeded`),
    );
  });

  it(`cost: pages of 100 sessions with their configs, a few times over, exceed ${COST.maxCost}`, async ({
    t,
  }) => {
    const page = (alias: string) =>
      `${alias}: sessions(tag: $tag, identifier: "user-123", first: 100) { edges { cursor node { id tag identifier data status createdAt expiresAt config { name tag description schema selector expiry period activeSessionCount } } } }`;
    const query = (n: number) =>
      `query($tag: String!) { ${Array.from({ length: n }, (_, i) => page(`p${i}`)).join(' ')} }`;
    const one = await gql(t.app, { key, query: query(1), variables: { tag } });
    expect(one.errors).toBeUndefined();
    const many = await gql(t.app, { key, query: query(4), variables: { tag } });
    expectRefused(many, new RegExp(`more than the ${COST.maxCost} a request may`));
    expect(many.errors![0]!.extensions?.code).toBe('LIMIT_EXCEEDED');
  });
});

/** Sends a raw HTTP/1.1 request to the real server; resolves with the status and body. */
function rawRequest(
  url: string,
  options: { method: string; headers: Record<string, string>; chunks: string[] },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method, headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    // The server may answer (413) and close before the whole body is written.
    req.on('error', reject);
    for (const chunk of options.chunks) req.write(chunk);
    req.end();
  });
}

describe('request body limit', () => {
  const LIMIT = 131_072;
  const body = (padding: number) =>
    JSON.stringify({ query: '{ __typename }', variables: { pad: 'a'.repeat(padding) } });

  it('a body over the limit is refused with 413 from its Content-Length, over real HTTP and app.fetch', async ({
    t,
    server,
  }) => {
    const over = body(LIMIT);
    expect(Buffer.byteLength(over)).toBeGreaterThan(LIMIT);
    const viaHttp = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: over,
    });
    expect(viaHttp.status).toBe(413);
    expect(await viaHttp.text()).not.toContain('aaaa');
    const viaFetch = await t.app.fetch('http://test.local/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(over.length) },
      body: over,
    });
    expect(viaFetch.status).toBe(413);
    // Just under the limit is served.
    const under = body(LIMIT - 200);
    expect(Buffer.byteLength(under)).toBeLessThanOrEqual(LIMIT);
    const served = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: under,
    });
    expect(served.status).toBe(200);
    expect(await served.json()).toEqual({ data: { __typename: 'Query' } });
  });

  it('a chunked body (no Content-Length) is refused with 411, whatever its size', async ({
    server,
  }) => {
    const small = await rawRequest(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      chunks: ['{"query":', '"{ __typename }"}'],
    });
    expect(small.status).toBe(411);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 4; i++) controller.enqueue(new Uint8Array(64 * 1024).fill(32));
        controller.enqueue(new TextEncoder().encode('{"query":"{ __typename }"}'));
        controller.close();
      },
    });
    const large = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit & { duplex: 'half' });
    expect(large.status).toBe(411);
  });

  it('the limit is configurable: BODY_LIMIT_BYTES, and createApp’s bodyLimitBytes', async ({
    t,
  }) => {
    expect(loadConfig({}).bodyLimitBytes).toBe(LIMIT);
    expect(loadConfig({ BODY_LIMIT_BYTES: '4096' }).bodyLimitBytes).toBe(4096);
    const small = await createTestApp({
      database: t.database,
      appOptions: { bodyLimitBytes: 4096 },
    });
    try {
      const response = await small.app.fetch('http://test.local/graphql', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': String(body(5000).length),
        },
        body: body(5000),
      });
      expect(response.status).toBe(413);
    } finally {
      await small.close();
    }
  });
});

describe('transport rules', () => {
  it('batching is off: a JSON array of operations is refused and none of them runs', async ({
    t,
  }) => {
    const session = await start(t, key, tag);
    const response = await t.app.fetch('http://test.local/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify([
        { query: REFRESH, variables: { tag, refreshToken: session.refreshToken } },
        { query: REFRESH, variables: { tag, refreshToken: session.refreshToken } },
      ]),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as GraphQLResponse;
    expect(body.errors?.[0]?.message).toMatch(/Batching is not supported/);
    expect(body.data ?? null).toBeNull();
    expect(await rotationState(t, session.sessionId)).toEqual({
      total: 1,
      spent: 0,
      events: ['STARTED'],
    });
  });

  it('CSRF prevention: a request a browser sends without preflight needs a custom header', async ({
    t,
  }) => {
    const url = `http://test.local/graphql?query=${encodeURIComponent('{ sessionConfigs { tag } }')}`;
    const bare = await t.app.fetch(url);
    expect(bare.status).toBe(403);
    expect(await bare.json()).toEqual({
      errors: [
        {
          message: 'Required CSRF header(s) not present',
          extensions: { code: 'BAD_REQUEST' },
        },
      ],
    });
    // The same for POSTs of the "simple" content types.
    for (const [contentType, payload] of [
      ['text/plain', JSON.stringify({ query: '{ __typename }' })],
      ['application/x-www-form-urlencoded', 'query=%7B__typename%7D'],
      ['multipart/form-data; boundary=x', '--x--'],
    ] as const) {
      const response = await t.app.fetch('http://test.local/graphql', {
        method: 'POST',
        headers: { 'content-type': contentType },
        body: payload,
      });
      expect(response.status, contentType).toBe(403);
    }
    // With the CSRF header, or with an Authorization header (which no simple request carries).
    const withHeader = await t.app.fetch(`http://test.local/graphql?query=%7B__typename%7D`, {
      headers: { 'x-graphql-yoga-csrf': '1' },
    });
    expect(withHeader.status).toBe(200);
    expect(await withHeader.json()).toEqual({ data: { __typename: 'Query' } });
    const withKey = await t.app.fetch(url, { headers: { authorization: `Bearer ${key}` } });
    expect(withKey.status).toBe(200);
    expect(((await withKey.json()) as GraphQLResponse).data).toEqual({
      sessionConfigs: [{ tag }],
    });
  });

  it('a mutation over GET is refused with 405, and nothing changes', async ({ t }) => {
    const session = await start(t, key, tag);
    const query = `mutation { revokeSession(tag: "${tag}", sessionId: "${session.sessionId}") { id } }`;
    const response = await t.app.fetch(
      `http://test.local/graphql?query=${encodeURIComponent(query)}`,
      { headers: { authorization: `Bearer ${key}` } },
    );
    expect(response.status).toBe(405);
    const body = (await response.json()) as GraphQLResponse;
    expect(body.errors?.[0]?.message).toMatch(/mutation operation from a POST request/);
    expect(await eventTypesOf(t, session.sessionId)).toEqual(['STARTED']);
    const verified = await ok(t.app, {
      key,
      query: VERIFY,
      variables: { tag, token: session.token },
    });
    expect(verified.verifySession.session.status).toBe('ACTIVE');
  });
});

/** Runs one operation over graphql-ws and collects what came back (or how the socket closed). */
function overWs(
  client: Client,
  query: string,
): Promise<{
  results: GraphQLResponse[];
  errors?: readonly { message: string }[];
  closed?: number;
}> {
  return new Promise((resolve) => {
    const results: GraphQLResponse[] = [];
    client.subscribe(
      { query },
      {
        next: (value) => results.push(value as GraphQLResponse),
        error: (error) => {
          if (Array.isArray(error)) resolve({ results, errors: error as { message: string }[] });
          else resolve({ results, closed: (error as { code?: number }).code ?? -1 });
        },
        complete: () => resolve({ results }),
      },
    );
  });
}

describe('production defaults: introspection, field suggestions and GraphiQL are off', () => {
  let prod: TestApp;
  let prodServer: Awaited<ReturnType<typeof listen>>;
  beforeAll(async ({ t }) => {
    const config = loadConfig({ NODE_ENV: 'production', SESSION_SECRET: 's'.repeat(32) });
    // As src/main.ts builds the app from the configuration.
    prod = await createTestApp({
      database: t.database,
      graphiql: config.graphiql,
      appOptions: {
        introspection: config.introspection,
        fieldSuggestions: config.fieldSuggestions,
      },
    });
    prodServer = await listen(prod);
  });
  afterAll(async () => {
    await prodServer?.close();
    await prod?.close();
  });

  it('the configuration turns them off under NODE_ENV=production, and each back on by its variable', () => {
    const production = { NODE_ENV: 'production', SESSION_SECRET: 's'.repeat(32) };
    expect(loadConfig(production)).toMatchObject({
      graphiql: false,
      introspection: false,
      fieldSuggestions: false,
    });
    expect(
      loadConfig({
        ...production,
        GRAPHIQL: 'true',
        GRAPHQL_INTROSPECTION: 'true',
        GRAPHQL_FIELD_SUGGESTIONS: 'true',
      }),
    ).toMatchObject({ graphiql: true, introspection: true, fieldSuggestions: true });
    expect(loadConfig({ ...production, GRAPHIQL: 'true' })).toMatchObject({
      graphiql: true,
      introspection: false,
      fieldSuggestions: false,
    });
    // Outside production they are on unless turned off.
    expect(loadConfig({})).toMatchObject({
      graphiql: true,
      introspection: true,
      fieldSuggestions: true,
    });
    expect(
      loadConfig({
        GRAPHIQL: 'false',
        GRAPHQL_INTROSPECTION: 'false',
        GRAPHQL_FIELD_SUGGESTIONS: 'false',
      }),
    ).toMatchObject({ graphiql: false, introspection: false, fieldSuggestions: false });
  });

  it('introspection is refused (however it is spelled), __typename still answers', async ({
    t,
  }) => {
    const attempts = [
      '{ __schema { types { name } } }',
      '{ __type(name: "Query") { name fields { name } } }',
      '{ s: __schema { queryType { name } } }',
      'query { ...F } fragment F on Query { __schema { types { name } } }',
      '{ ... on Query { __type(name: "Session") { name } } }',
    ];
    for (const query of attempts) {
      const response = await gql(prod.app, { query });
      expectRefused(response, /introspection has been disabled/);
      expect(JSON.stringify(response)).not.toMatch(/SessionConfig|verifySession/);
    }
    expect((await gql(prod.app, { query: '{ __typename }' })).data).toEqual({
      __typename: 'Query',
    });
    // The development default answers it.
    expect((await gql(t.app, { query: attempts[0]! })).data).toBeTruthy();
  });

  it('validation errors suggest no names', async ({ t }) => {
    const mistakes = [
      '{ sesionConfigs { tag } }',
      '{ sessionConfig(tga: "x") { tag } }',
      '{ sessionConfigs { tga } }',
      'query($t: Strin!) { sessionConfig(tag: $t) { tag } }',
      'mutation { createSessionConfig(input: { name: "n", tagg: "t", description: "d", schema: {}, selector: "$Session{a}", expiry: 1, period: HOURS }) { tag } }',
    ];
    for (const query of mistakes) {
      const response = await gql(prod.app, { query, key });
      expect(response.errors?.length, query).toBeGreaterThan(0);
      expect(JSON.stringify(response), query).not.toMatch(/Did you mean/);
    }
    // The development default does suggest: the check above is not vacuous.
    const dev = await gql(t.app, { query: mistakes[0]!, key });
    expect(dev.errors?.[0]?.message).toMatch(/Did you mean "sessionConfigs"/);
  });

  it('nor do enum values, or input fields and enum values given in variables', async () => {
    const literal =
      'mutation { createSessionConfig(input: { name: "n", tag: "t", description: "d", schema: {}, selector: "$Session{a}", expiry: 1, period: HOUR }) { tag } }';
    const viaVariables =
      'mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input) { tag } }';
    const input = {
      name: 'n',
      tag: 't',
      description: 'd',
      schema: {},
      selector: '$Session{a}',
      expiry: 1,
      period: 'HOURS',
    };
    const responses = {
      'enum literal': await gql(prod.app, { key, query: literal }),
      'enum in variables': await gql(prod.app, {
        key,
        query: viaVariables,
        variables: { input: { ...input, period: 'HOUR' } },
      }),
      'input field in variables': await gql(prod.app, {
        key,
        query: viaVariables,
        variables: { input: { ...input, tagg: 't' } },
      }),
    };
    for (const [label, response] of Object.entries(responses)) {
      expect(response.errors?.length, label).toBeGreaterThan(0);
      expect(response.data ?? null, label).toBeNull();
      expect(response.errors![0]!.message, label).not.toMatch(/Did you mean/);
      if (label.startsWith('enum'))
        expect(response.errors![0]!.message, label).not.toMatch(/HOURS/);
    }
  });

  it('GraphiQL is not served', async ({ t }) => {
    const response = await prod.app.fetch('http://test.local/graphql', {
      headers: { accept: 'text/html' },
    });
    expect(response.status).not.toBe(200);
    expect(await response.text()).not.toMatch(/<html|graphiql/i);
    const dev = await t.app.fetch('http://test.local/graphql', {
      headers: { accept: 'text/html' },
    });
    expect(dev.status).toBe(200);
    expect(await dev.text()).toMatch(/<html/i);
  });

  it('over graphql-ws too: introspection is refused and names are not suggested', async () => {
    const client = wsClient(prodServer.wsUrl, key);
    try {
      const introspection = await overWs(client, '{ __schema { types { name } } }');
      expect(introspection.results.length, 'the schema was sent').toBe(0);
      expect(introspection.errors?.[0]?.message).toMatch(/introspection has been disabled/);
      const typo = await overWs(client, '{ sesionConfigs { tag } }');
      expect(typo.errors?.length).toBeGreaterThan(0);
      expect(JSON.stringify(typo)).not.toMatch(/Did you mean/);
    } finally {
      await client.dispose();
    }
  });
});

describe('query limits over graphql-ws', () => {
  it('an operation over a limit is refused with an error for that operation; the connection and its other subscriptions live on', async ({
    t,
    server,
  }) => {
    const client = wsClient(server.wsUrl, key);
    const closes: number[] = [];
    client.on('closed', (event) => closes.push((event as { code: number }).code));
    const before = t.services.events.subscriberCount;
    // A subscription on the same connection (it also keeps the lazy client's socket open).
    const events = subscribeWs<{ type: string; sessionId: string }>(
      client,
      'subscription($tag: String) { sessionEvents(tag: $tag) { type sessionId } }',
      { tag },
      'sessionEvents',
    );
    try {
      expect((await overWs(client, '{ __typename }')).results).toEqual([
        { data: { __typename: 'Query' } },
      ]);
      const deep = await overWs(client, ofTypeChain(QUERY_LIMITS.depth));
      expect(deep).toEqual({
        results: [],
        errors: [expect.objectContaining({ message: expect.stringMatching(/depth limit/) })],
      });
      const long = await overWs(client, `{ ${'__typename '.repeat(QUERY_LIMITS.tokens + 1)}}`);
      expect(long).toEqual({
        results: [],
        errors: [expect.objectContaining({ message: expect.stringMatching(/Token limit/) })],
      });
      expect(closes).toEqual([]);
      // The subscription still delivers (once it holds its position in the stream).
      await waitUntil(() => t.services.events.subscriberCount > before, 'the subscription to open');
      const session = await start(t, key, tag);
      const [event] = await events.waitFor(1, 5_000);
      expect(event).toEqual({ type: 'STARTED', sessionId: session.sessionId });
    } finally {
      events.stop();
      // Let the server finish the subscription before the socket goes.
      await waitUntil(() => t.services.events.subscriberCount === 0, 'the subscription to end');
      await client.dispose();
    }
  });
});

describe('unstorable input over graphql-ws', () => {
  it('a NUL in a subscription or an operation over WebSocket is BAD_USER_INPUT, and the connection lives on', async ({
    server,
  }) => {
    const client = wsClient(server.wsUrl, key);
    try {
      const answers: GraphQLResponse[] = [];
      for (const query of [
        `subscription { sessionRevoked(tag: "a\\u0000b") { sessionId } }`,
        `subscription { sessionEvents(tag: "${tag}", identifier: "id\\u0000") { type } }`,
        `{ verifySession(tag: "${tag}", token: "x\\u0000") { sessionId } }`,
      ]) {
        const { results } = await overWs(client, query);
        answers.push(...results);
      }
      expect(answers).toHaveLength(3);
      for (const answer of answers) {
        expect(answer.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
      }
      // The same socket still serves.
      const fine = await overWs(client, '{ __typename }');
      expect(fine.results[0]?.data).toEqual({ __typename: 'Query' });
    } finally {
      await client.dispose();
    }
  });
});

describe('refusals over graphql-ws keep the error contract', () => {
  const SECRET = 'sk_dev_ThisLooksLikeAKeyAndMustNotEcho0123456789';
  /** Every error message of one operation, as the socket delivered it. */
  const refusal = (client: Client, query: string, variables?: Record<string, unknown>) =>
    new Promise<{ message: string; extensions?: Record<string, unknown> }[]>((resolve) => {
      const seen: { message: string; extensions?: Record<string, unknown> }[] = [];
      client.subscribe(
        { query, variables },
        {
          next: (value) => seen.push(...((value as GraphQLResponse).errors ?? [])),
          error: (error) => resolve(Array.isArray(error) ? [...seen, ...error] : seen),
          complete: () => resolve(seen),
        },
      );
    });

  it('syntax, validation and variable errors carry a contract code and never quote the request', async ({
    server,
  }) => {
    const client = wsClient(server.wsUrl, key);
    try {
      // A variable that does not fit its type: BAD_REQUEST over HTTP, BAD_USER_INPUT here.
      const badVariable = /^(BAD_REQUEST|BAD_USER_INPUT)$/;
      const cases: [string, Record<string, unknown> | undefined, RegExp][] = [
        [`{ __typename @include(if: "${SECRET}"`, undefined, /^GRAPHQL_PARSE_FAILED$/],
        [`{ __typename @include(if: "${SECRET}") }`, undefined, /^GRAPHQL_VALIDATION_FAILED$/],
        ['query($a: Boolean!) { __typename @include(if: $a) }', { a: SECRET }, badVariable],
        [
          'subscription($t: String!) { sessionRevoked(tag: $t) { sessionId } }',
          { t: { nested: SECRET } },
          badVariable,
        ],
      ];
      for (const [query, variables, code] of cases) {
        const errors = await refusal(client, query, variables);
        expect(errors.length).toBeGreaterThan(0);
        expect(String(errors[0]?.extensions?.code)).toMatch(code);
        expect(JSON.stringify(errors)).not.toContain('ThisLooksLikeAKey');
      }
    } finally {
      await client.dispose();
    }
  });
});

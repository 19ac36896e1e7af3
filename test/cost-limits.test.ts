import {
  getNamedType,
  parse,
  isListType,
  isNonNullType,
  isObjectType,
  type GraphQLOutputType,
} from 'graphql';
import { expect } from 'vitest';
import { COST, JSON_DATA_COST, costVariables, defaultFieldCost } from '../src/graphql/cost.js';
import { schema } from '../src/graphql/index.js';
import { createTestApp, type TestApp } from './support/app.js';
import { afterAll, beforeAll, describe, it } from './support/test.js';
import { gql, ok, type GraphQLResponse, documentText } from './support/graphql.js';
import { ductapeConfig, newProduct, uniqueTag, VERIFY } from './support/fixtures.js';
import { errorCodeOf, listen, subscribeSse, subscribeWs, wsClient } from './support/live.js';

/**
 * What one request may cost (issue 12): list fields weigh their page size, JSON and long text
 * their stored bound, and a request over the budget is refused before anything runs. The
 * response ceiling is the backstop behind it.
 */

/** The most a request the cost model allows can answer (README: 40,960 units × 128 bytes). */
const RESPONSE_BOUND = 5 * 1024 * 1024;

it('the stated bound is the budget times the unit', () => {
  expect(COST.maxCost * COST.unitBytes).toBe(RESPONSE_BOUND);
});
/** A config's sample schema and a session's data are at most 16 KiB serialized. */
const JSON_BYTES = 16 * 1024;
const CONFIGS = 100;
const SESSIONS = 100;

let key: string;
let tag: string;

/** A JSON object of exactly `bytes` bytes serialized, with a string `userId`. */
function jsonOf(bytes: number, userId: string): Record<string, unknown> {
  const base = JSON.stringify({ userId, pad: '' }).length;
  return { userId, pad: 'x'.repeat(bytes - base) };
}

const aliases = (n: number, field: (alias: string) => string) =>
  Array.from({ length: n }, (_, i) => field(`a${i}`)).join(' ');

const CONFIG_FIELDS =
  'name tag description schema selector expiry period refreshExpiresIn idleTimeout maxSessionsPerIdentifier activeSessionCount createdAt updatedAt';
const SESSION_FIELDS =
  'id tag identifier data status device { userAgent ip } createdAt expiresAt refreshExpiresAt lastActiveAt idleExpiresAt timeRemaining version revokedAt revokeReason';

const configsQuery = (n: number, fields = 'schema description') =>
  `{ ${aliases(n, (a) => `${a}: sessionConfigs { ${fields} }`)} }`;
const sessionsQuery = (n: number, first: number, fields = 'id data') =>
  `query($tag: String!) { ${aliases(
    n,
    (a) =>
      `${a}: sessions(tag: $tag, identifier: "heavy", first: ${first}) { totalCount edges { cursor node { ${fields} } } }`,
  )} }`;

function expectLimitExceeded(response: GraphQLResponse): void {
  expect(response.data ?? null, JSON.stringify(response).slice(0, 300)).toBeNull();
  expect(response.errors?.length).toBeGreaterThan(0);
  for (const error of response.errors!) expect(error.extensions?.code).toBe('LIMIT_EXCEEDED');
}

/** The request's answer and its size in bytes, as the server sent it. */
async function sized(
  t: TestApp,
  call: { query: string; variables?: Record<string, unknown>; key?: string },
) {
  const response = await t.app.fetch('http://test.local/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(call.key ? { authorization: `Bearer ${call.key}` } : {}),
    },
    body: JSON.stringify({ query: call.query, variables: call.variables }),
  });
  const text = await response.text();
  return { bytes: Buffer.byteLength(text), body: JSON.parse(text) as GraphQLResponse };
}

beforeAll(async ({ t }) => {
  key = (await newProduct(t)).secret.dev;
  // The issue's reproduction at its full size: as many configs as a product may have, each
  // with a 16 KiB schema and a 2,000-character description...
  const create = `mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input) { tag } }`;
  const tags = Array.from({ length: CONFIGS }, () => uniqueTag('s'));
  for (let i = 0; i < CONFIGS; i += 10) {
    await Promise.all(
      tags.slice(i, i + 10).map((configTag) =>
        ok(t.app, {
          key,
          query: create,
          variables: {
            input: ductapeConfig(configTag, {
              description: 'd'.repeat(2_000),
              schema: jsonOf(JSON_BYTES, 'u'),
            }),
          },
        }),
      ),
    );
  }
  tag = tags[0]!;
  // ...and a user with a full page of sessions, each carrying 16 KiB of data.
  const startMany = (n: number) =>
    `mutation($input: StartSessionInput!) { ${aliases(n, (a) => `${a}: startSession(input: $input) { sessionId }`)} }`;
  for (let i = 0; i < SESSIONS; i += 5) {
    await ok(t.app, {
      key,
      query: startMany(5),
      variables: { input: { tag, identifier: 'heavy', data: jsonOf(JSON_BYTES, 'heavy') } },
    });
  }
}, 120_000);

describe('the cost model refuses what would build a huge response, before anything runs', () => {
  it('20 aliases of sessionConfigs { schema description } over 100 large configs: LIMIT_EXCEEDED', async ({
    t,
  }) => {
    expectLimitExceeded(await gql(t.app, { key, query: configsQuery(20) }));
    // Far fewer are refused too: two full lists already pass the budget with every field.
    expectLimitExceeded(await gql(t.app, { key, query: configsQuery(3, CONFIG_FIELDS) }));
  });

  it('20 aliases of sessions(first: 100) with data: LIMIT_EXCEEDED; the same with first: 5 answers', async ({
    t,
  }) => {
    expectLimitExceeded(
      await gql(t.app, { key, query: sessionsQuery(20, 100), variables: { tag } }),
    );
    // The page size is what weighs: the same document with small pages is fine.
    const small = await ok(t.app, { key, query: sessionsQuery(20, 5), variables: { tag } });
    expect((small.a19 as { edges: unknown[] }).edges).toHaveLength(5);
  });

  it('the default page size (20) is what an omitted `first` weighs, and `first` as a variable counts', async ({
    t,
  }) => {
    const query = (n: number) =>
      `query($tag: String!, $first: Int) { ${aliases(n, (a) => `${a}: sessions(tag: $tag, identifier: "heavy", first: $first) { nodes { data } }`)} }`;
    expectLimitExceeded(
      await gql(t.app, { key, query: query(20), variables: { tag, first: 100 } }),
    );
    const byDefault = await ok(t.app, { key, query: query(10), variables: { tag } });
    expect((byDefault.a9 as { nodes: unknown[] }).nodes).toHaveLength(20);
  });

  it('one document weighs what each request’s variables say: costs worked out once are never another request’s', async ({
    t,
  }) => {
    // One query text (one parsed document), asked with a small, a large and again a small page.
    const query = `query($tag: String!, $first: Int) { ${aliases(20, (a) => `${a}: sessions(tag: $tag, identifier: "heavy", first: $first) { nodes { data } }`)} }`;
    await ok(t.app, { key, query, variables: { tag, first: 1 } });
    expectLimitExceeded(await gql(t.app, { key, query, variables: { tag, first: 100 } }));
    await ok(t.app, { key, query, variables: { tag, first: 1 } });
    expectLimitExceeded(await gql(t.app, { key, query, variables: { tag, first: 100 } }));
    // A variable left out takes its default; one sent as null is null (the default page, 20).
    const withDefault = `query($tag: String!, $first: Int = 100) { ${aliases(10, (a) => `${a}: sessions(tag: $tag, identifier: "heavy", first: $first) { nodes { data } }`)} }`;
    expectLimitExceeded(await gql(t.app, { key, query: withDefault, variables: { tag } }));
    const asNull = await ok(t.app, { key, query: withDefault, variables: { tag, first: null } });
    expect((asNull.a9 as { nodes: unknown[] }).nodes).toHaveLength(20);
    expectLimitExceeded(await gql(t.app, { key, query: withDefault, variables: { tag } }));
    // Each operation of a document is weighed as itself.
    const two = `query Small($tag: String!) { sessions(tag: $tag, identifier: "heavy", first: 1) { nodes { id } } } query Large($tag: String!) { ${aliases(20, (a) => `${a}: sessions(tag: $tag, identifier: "heavy", first: 100) { nodes { data } }`)} }`;
    await ok(t.app, { key, query: two, operationName: 'Small', variables: { tag } });
    expectLimitExceeded(
      await gql(t.app, { key, query: two, operationName: 'Large', variables: { tag } }),
    );
  });

  it('the variables a cost reads are those of arguments whose weight depends on them', () => {
    const names = (query: string) => costVariables(schema, parse(query));
    expect(names(documentText(VERIFY))).toEqual([]);
    expect(
      names(
        'query($tag: String!, $first: Int, $after: String) { sessions(tag: $tag, identifier: "u", first: $first, after: $after) { nodes { id } } }',
      ),
    ).toEqual(['after', 'first', 'tag']);
    expect(
      names(
        'query($from: DateTime!, $to: DateTime!, $g: DashboardGrouping!) { sessionDashboard(from: $from, to: $to, groupBy: $g) { activeSessions } }',
      ),
    ).toEqual(expect.arrayContaining(['from', 'to', 'g']));
  });

  it('a refused request runs nothing: no resolver, no SQL', async ({ t }) => {
    t.statements.length = 0;
    expectLimitExceeded(await gql(t.app, { key, query: configsQuery(20) }));
    expect(t.statements.filter((s) => /session_configs|api_keys/.test(s))).toEqual([]);
  });

  it('the worst requests still allowed answer, and within the bound', async ({ t }) => {
    // The most aliases of each heavy list the budget lets through: n passes, n + 1 is refused.
    for (const [name, build] of [
      ['sessionConfigs', (n: number) => ({ query: configsQuery(n, CONFIG_FIELDS) })],
      [
        'sessions',
        (n: number) => ({
          query: sessionsQuery(n, 100, SESSION_FIELDS),
          variables: { tag },
        }),
      ],
    ] as const) {
      let allowed = 0;
      for (let n = 1; n <= 20; n++) {
        const { bytes, body } = await sized(t, { key, ...build(n) });
        if (body.errors) {
          expectLimitExceeded(body);
          break;
        }
        allowed = n;
        expect(bytes, `${name} ×${n}`).toBeLessThan(RESPONSE_BOUND);
        // It is a real, full answer: every item of every alias is there.
        const first = Object.values(body.data!)[0] as unknown[] | { edges: unknown[] };
        expect(Array.isArray(first) ? first.length : first.edges.length).toBe(100);
      }
      expect(allowed, name).toBeGreaterThanOrEqual(1);
      expect(allowed, name).toBeLessThan(20);
    }
  });

  it('over WebSocket too: the same request is refused with LIMIT_EXCEEDED', async ({ t }) => {
    const server = await listen(t);
    const client = wsClient(server.wsUrl, key);
    try {
      const received = subscribeWs<unknown>(client, configsQuery(20), {}, 'a0');
      await received.ended;
      expect(received.items).toEqual([]);
      expect(errorCodeOf(received)).toBe('LIMIT_EXCEEDED');
    } finally {
      await client.dispose();
      await server.close();
    }
  });

  it('ordinary requests are unaffected: verify, a page of 20 sessions, the config list', async ({
    t,
  }) => {
    const started = await ok(t.app, {
      key,
      query: `mutation($input: StartSessionInput!) { startSession(input: $input) { token } }`,
      variables: { input: { tag, identifier: 'light', data: { userId: 'light' } } },
    });
    const token = (started.startSession as { token: string }).token;
    const verified = await ok(t.app, { key, query: VERIFY, variables: { tag, token } });
    expect(verified.verifySession).toMatchObject({ identifier: 'light' });
    const list = await ok(t.app, {
      key,
      query: `query($tag: String!) { sessions(tag: $tag, identifier: "heavy") { totalCount edges { cursor node { ${SESSION_FIELDS} config { tag } } } pageInfo { hasNextPage endCursor } } }`,
      variables: { tag },
    });
    expect((list.sessions as { totalCount: number }).totalCount).toBe(SESSIONS);
    const configs = await ok(t.app, { key, query: `{ sessionConfigs { ${CONFIG_FIELDS} } }` });
    expect(configs.sessionConfigs).toHaveLength(CONFIGS);
  });
});

describe('the configs list weighs the server’s MAX_CONFIGS_PER_PRODUCT, not a number of its own', () => {
  // Instances on the same database, each with another cap; the default's (100) is `t.app`.
  let few: TestApp;
  let many: TestApp;
  let fewKey: string;
  let manyKey: string;
  beforeAll(async ({ t }) => {
    few = await createTestApp({ database: t.database, maxConfigsPerProduct: 5 });
    many = await createTestApp({ database: t.database, maxConfigsPerProduct: 1_000 });
    fewKey = (await newProduct(few)).secret.dev;
    manyKey = (await newProduct(many)).secret.dev;
    await ok(few.app, {
      key: fewKey,
      query: `mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input) { tag } }`,
      variables: { input: ductapeConfig(uniqueTag('s')) },
    });
  });
  afterAll(async () => {
    await few?.close();
    await many?.close();
  });

  it('a lower cap lets through what the default refuses', async ({ t }) => {
    // 20 lists of at most 5 configs fit the budget; of at most 100 they do not.
    const answered = await ok(few.app, { key: fewKey, query: configsQuery(20) });
    expect(answered.a19).toHaveLength(1);
    expectLimitExceeded(await gql(t.app, { key, query: configsQuery(20) }));
  });

  it('a higher cap refuses what the default lets through', async ({ t }) => {
    // Two lists of at most 100 configs fit the budget; of at most 1,000 they do not.
    const answered = await ok(t.app, { key, query: configsQuery(2) });
    expect(answered.a1).toHaveLength(CONFIGS);
    expectLimitExceeded(await gql(many.app, { key: manyKey, query: configsQuery(2) }));
  });
});

describe('the response ceiling (MAX_RESPONSE_BYTES): a larger result is replaced by LIMIT_EXCEEDED', () => {
  const LIMIT = 150_000;
  let small: TestApp;
  let smallKey: string;
  beforeAll(async ({ t }) => {
    // A second instance on the same database, with a low ceiling.
    small = await createTestApp({ database: t.database, appOptions: { maxResponseBytes: LIMIT } });
    smallKey = (await newProduct(small)).secret.dev;
    // 12 configs of 16 KiB schemas in two-byte characters: about 100,000 characters of JSON,
    // about 200,000 bytes. Within the cost budget; over the ceiling only counted in bytes.
    for (let i = 0; i < 12; i++) {
      await ok(small.app, {
        key: smallKey,
        query: `mutation($input: CreateSessionConfigInput!) { createSessionConfig(input: $input) { tag } }`,
        variables: {
          input: ductapeConfig(uniqueTag('s'), {
            schema: { userId: 'u', pad: 'é'.repeat(8_000) },
          }),
        },
      });
    }
  }, 60_000);
  afterAll(async () => {
    await small?.close();
  });

  it('over HTTP: one LIMIT_EXCEEDED error and no data; a smaller answer is sent whole', async () => {
    const response = await small.app.fetch('http://test.local/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${smallKey}` },
      body: JSON.stringify({ query: '{ sessionConfigs { tag schema } }' }),
    });
    const text = await response.text();
    expect(Buffer.byteLength(text)).toBeLessThan(LIMIT);
    const body = JSON.parse(text) as GraphQLResponse;
    expect(body.data ?? null).toBeNull();
    expect(body.errors).toHaveLength(1);
    expect(body.errors![0]!.extensions).toMatchObject({ code: 'LIMIT_EXCEEDED', maxBytes: LIMIT });
    // The same list without the schemas fits, and answers in full.
    const tags = await ok(small.app, { key: smallKey, query: '{ sessionConfigs { tag } }' });
    expect(tags.sessionConfigs).toHaveLength(12);
    // And the log says it happened, without the content.
    expect(small.logs.join('')).toMatch(/response over MAX_RESPONSE_BYTES/);
    expect(small.logs.join('')).not.toMatch(/éééé/);
  });

  it('over SSE: the event is replaced by LIMIT_EXCEEDED', async () => {
    const server = await listen(small);
    try {
      const received = subscribeSse<unknown>(
        server.url,
        smallKey,
        '{ sessionConfigs { tag schema } }',
        {},
        'sessionConfigs',
      );
      await received.ended;
      expect(received.items).toEqual([]);
      expect(errorCodeOf(received)).toBe('LIMIT_EXCEEDED');
    } finally {
      await server.close();
    }
  });
});

describe('every field that can be large carries its own bound', () => {
  const isList = (type: GraphQLOutputType): boolean =>
    isNonNullType(type) ? isListType(type.ofType) : isListType(type);
  const fields = Object.values(schema.getTypeMap())
    .filter(isObjectType)
    .filter((type) => !type.name.startsWith('__'))
    .flatMap((type) =>
      Object.values(type.getFields()).map((field) => ({
        coordinate: `${type.name}.${field.name}`,
        field,
      })),
    );

  it('every list field declares how long it can be (none falls back to the default)', () => {
    const lists = fields.filter(({ field }) => isList(field.type));
    expect(lists.length).toBeGreaterThan(5);
    for (const { coordinate, field } of lists) {
      expect(field.extensions.complexity, coordinate).not.toBe(defaultFieldCost);
      expect(field.extensions.complexity, coordinate).toBeDefined();
    }
  });

  it('every JSON field weighs the largest JSON the API stores', () => {
    const json = fields.filter(({ field }) => getNamedType(field.type).name === 'JSON');
    expect(json.map((j) => j.coordinate)).toEqual(
      expect.arrayContaining(['SessionConfig.schema', 'Session.data', 'VerifiedSession.data']),
    );
    for (const { coordinate, field } of json) {
      const cost = field.extensions.complexity;
      const weight = typeof cost === 'number' ? cost : (cost as { field?: number }).field;
      expect(weight, coordinate).toBeGreaterThanOrEqual(JSON_DATA_COST);
      expect(JSON_DATA_COST * COST.unitBytes).toBeGreaterThan(16 * 1024);
    }
  });

  it('connections weigh their page: fields with a `first` argument multiply by it', () => {
    const paged = fields.filter(({ field }) => field.args.some((a) => a.name === 'first'));
    expect(paged.length).toBeGreaterThanOrEqual(4);
    for (const { coordinate, field } of paged) {
      const cost = field.extensions.complexity as (args: { first?: number }) => {
        multiplier: number;
      };
      expect(typeof cost, coordinate).toBe('function');
      expect(cost({ first: 100 }).multiplier, coordinate).toBe(100);
      expect(cost({}).multiplier, coordinate).toBe(20);
    }
  });
});

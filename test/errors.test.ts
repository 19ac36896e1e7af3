import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import fc from 'fast-check';
import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isScalarType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
} from 'graphql';
import { expect } from 'vitest';
import { schema } from '../src/graphql/index.js';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it, test } from './support/test.js';
import { newConfig, newProduct, start, type TestProduct, VERIFY } from './support/fixtures.js';
import {
  failure,
  gql,
  type GraphQLResponse,
  documentText,
  type Document,
} from './support/graphql.js';
import { listen } from './support/live.js';
import { START } from './support/documents.js';

test.override('appOptions', { appOptions: { trustProxyHops: 1 } });

let product: TestProduct;
let key: string;
let tag: string;
beforeAll(async ({ t }) => {
  product = await newProduct(t);
  key = product.secret.dev;
  tag = await newConfig(t, key);
});

/** The codes of the API's errors table (docs/reference/errors.md): the contract every failure must keep to. */
const CONTRACT_CODES: ReadonlySet<string> = (() => {
  const errors = readFileSync(new URL('../docs/reference/errors.md', import.meta.url), 'utf8');
  const section = errors.slice(0, errors.indexOf('\n## Codes the client reports\n'));
  return new Set([...section.matchAll(/^\| `([A-Z_]+)`/gm)].map((m) => m[1]!));
})();

describe('unstorable input is BAD_USER_INPUT, refused in one place before anything runs', () => {
  type Call = (t: TestApp) => Parameters<typeof gql>[1];
  const cases: { name: string; call: Call; field: RegExp }[] = [
    {
      name: 'a NUL in a variable (the identifier inside session data)',
      call: () => ({
        key,
        query: START,
        variables: { input: { tag, data: { userId: 'a\u0000b', details: {} } } },
      }),
      field: /^input\.data\.userId$/,
    },
    {
      name: 'a NUL in a JSON key',
      call: () => ({
        key,
        query: START,
        variables: { input: { tag, data: { userId: 'u', ['k\u0000']: 1 } } },
      }),
      field: /^input\.data/,
    },
    {
      name: 'a lone surrogate in a variable',
      call: () => ({ key, query: VERIFY, variables: { tag, token: 'x\ud800y' } }),
      field: /^token$/,
    },
    {
      name: 'a NUL in a literal argument',
      call: () => ({
        key,
        query: `{ verifySession(tag: "a\\u0000b", token: "t") { sessionId } }`,
      }),
      field: /^tag$/,
    },
    {
      name: 'a NUL in a literal input object field',
      call: (t) => ({
        key: t.adminKey,
        query: `mutation { createApiKey(input: { product: "${product.tag}", env: "dev", kind: SECRET, name: "k\\u0000" }) { key } }`,
      }),
      field: /^input\.name$/,
    },
    {
      name: 'a NUL in a key name (variables)',
      call: (t) => ({
        key: t.adminKey,
        query: `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { key } }`,
        variables: {
          input: { product: product.tag, env: 'dev', kind: 'SECRET', name: 'a\u0000' },
        },
      }),
      field: /^input\.name$/,
    },
  ];
  for (const c of cases) {
    it(c.name, async ({ t }) => {
      const before = t.statements.length;
      const error = await failure(t.app, c.call(t));
      expect(error.code).toBe('BAD_USER_INPUT');
      expect(error.field).toMatch(c.field);
      expect(error.message).not.toContain('\u0000');
      // Refused before any resolver ran: not a statement reached the database.
      expect(t.statements.slice(before).filter((s) => !/^\s*select 1/i.test(s))).toEqual([]);
    });
  }

  it('JSON nested deeper than the limit is BAD_USER_INPUT (5,000 levels inside the body limit)', async ({
    t,
  }) => {
    for (const deep of [deepObject(5_000), deepArray(5_000), deepObject(33)]) {
      const response = await post(t, {
        key,
        query: START,
        variables: { input: { tag, data: { userId: 'u', deep } } },
      });
      expect(response.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
      expect(response.errors?.[0]?.extensions?.field).toMatch(/^input\.data/);
    }
    // Within the limit is fine.
    const fine = await post(t, {
      key,
      query: START,
      variables: { input: { tag, data: { userId: 'u', details: { a: { b: { c: 1 } } } } } },
    });
    expect(fine.errors).toBeUndefined();
  });

  it('a NUL in the User-Agent header (stored as device info) never reaches the database', async ({
    t,
  }) => {
    const server = await listen(t);
    try {
      const url = new URL(server.url);
      const body = JSON.stringify({
        query: START,
        variables: { input: { tag, data: { userId: 'u' } } },
      });
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(url.port), url.hostname);
        let text = '';
        socket.on('data', (chunk) => (text += chunk.toString('latin1')));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
        socket.write(
          `POST /graphql HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n` +
            `Authorization: Bearer ${key}\r\nUser-Agent: evil\u0000agent\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
          'latin1',
        );
      });
      // Node's parser may refuse the header outright (400); if the request gets through, the
      // service answers BAD_USER_INPUT. Never an unexpected error.
      expect(raw).not.toMatch(/INTERNAL_SERVER_ERROR|HTTP\/1\.1 5\d\d/);
      if (/^HTTP\/1\.1 200/.test(raw)) expect(raw).toContain('BAD_USER_INPUT');
    } finally {
      await server.close();
    }
  });
});

describe('logs', () => {
  it('hostile requests leave no query parameter, hash, ciphertext, user agent or IP in the logs', async ({
    t,
  }) => {
    const ua = `HostileAgent/${Math.random().toString(36).slice(2)}`;
    const ip = '203.0.113.77';
    const headers = { 'user-agent': ua, 'x-forwarded-for': ip };
    t.logs.length = 0;
    const session = await start(t, key, tag);
    await gql(t.app, {
      key,
      headers,
      query: START,
      variables: { input: { tag, data: { userId: 'a\u0000b' } } },
    });
    await gql(t.app, {
      key: t.adminKey,
      headers,
      query: `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { key } }`,
      variables: { input: { product: product.tag, env: 'dev', kind: 'SECRET', name: 'k\u0000' } },
    });
    await gql(t.app, { key, headers, query: VERIFY, variables: { tag, token: session.token } });
    // A fault the way the database reports one: drizzle's message carries the parameters.
    const fault = new Error(
      `Failed query: insert into api_keys values ($1, $2)\nparams: sk_dev_abc,${'ab'.repeat(32)}`,
      { cause: Object.assign(new Error('boom'), { code: '22021', parameters: [ua, ip] }) },
    );
    t.app.logger.error(fault);
    const logs = t.logs.join('');
    expect(logs).toContain('"level":50'); // the fault is logged, at error level
    for (const secret of [ua, ip, session.token, session.refreshToken, key, 'sk_dev_abc']) {
      expect(logs).not.toContain(secret);
    }
    expect(logs).not.toMatch(/params: (?!\[redacted\])/);
    expect(logs).not.toMatch(/[0-9a-f]{64}/); // no SHA-256 hash of a refresh token or key
    expect(logs).not.toMatch(/[A-Za-z0-9_-]{43,}/); // no ciphertext, token or key material
  });

  it('expected client errors are logged below error level; faults at error level', async ({
    t,
  }) => {
    t.logs.length = 0;
    const calls = [
      { key, query: VERIFY, variables: { tag, token: 'garbage' } },
      { query: VERIFY, variables: { tag, token: 'garbage' } },
      { key: 'sk_dev_unknown', query: VERIFY, variables: { tag, token: 'garbage' } },
      { key, query: VERIFY, variables: { tag: 'no-such-tag', token: 'garbage' } },
      { key, query: START, variables: { input: { tag, data: { userId: 5 } } } },
      { key: product.publishable, query: VERIFY, variables: { tag, token: 'x' } },
      { key, query: '{ nope }' },
    ];
    for (const call of calls) {
      const response = await gql(t.app, call);
      expect(response.errors?.length).toBeGreaterThan(0);
    }
    const levels = t.logs.map((line) => (JSON.parse(line) as { level: number }).level);
    expect(levels.filter((level) => level >= 40)).toEqual([]);
    // Still visible when debugging: each client error is one debug line with its code.
    expect(t.logs.filter((l) => l.includes('"code":"TOKEN_INVALID"'))).toHaveLength(1);
    expect(t.logs.filter((l) => l.includes('"code":"NOT_FOUND"'))).toHaveLength(1);
  });
});

describe('every failure the server sends carries a code from the contract', () => {
  const post = async (t: TestApp, body: string, headers: Record<string, string> = {}) =>
    t.app.fetch('http://test.local/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
  const transport: { name: string; send: (t: TestApp) => Promise<Response> | Response }[] = [
    { name: 'syntax error', send: (t) => post(t, JSON.stringify({ query: '{' })) },
    { name: 'validation error', send: (t) => post(t, JSON.stringify({ query: '{ nope }' })) },
    {
      name: 'bad variables (400)',
      send: (t) => post(t, JSON.stringify({ query: VERIFY, variables: { tag: 1 } })),
    },
    { name: 'missing query', send: (t) => post(t, JSON.stringify({})) },
    { name: 'invalid JSON body', send: (t) => post(t, '{"query":') },
    {
      name: 'batching refused',
      send: (t) => post(t, JSON.stringify([{ query: '{ __typename }' }])),
    },
    {
      name: 'CSRF (403)',
      send: (t) => t.app.fetch('http://test.local/graphql?query=%7B__typename%7D'),
    },
    {
      name: 'mutation over GET (405)',
      send: (t) =>
        t.app.fetch(
          `http://test.local/graphql?query=${encodeURIComponent('mutation { revokeApiKey(id: "x") { id } }')}`,
          { headers: { 'x-graphql-yoga-csrf': '1' } },
        ),
    },
    {
      name: 'body over the limit (413)',
      send: (t) => post(t, '{}', { 'content-length': String(10_000_000) }),
    },
    { name: 'invalid Content-Length', send: (t) => post(t, '{}', { 'content-length': 'x' }) },
    {
      name: 'unsupported method',
      send: (t) => t.app.fetch('http://test.local/graphql', { method: 'PUT', body: '{}' }),
    },
    {
      name: 'unknown route',
      send: (t) =>
        t.app.fetch('http://test.local/nope', { headers: { accept: 'application/json' } }),
    },
  ];
  for (const c of transport) {
    it(c.name, async ({ t }) => {
      const response = await c.send(t);
      const body = (await response.json()) as GraphQLResponse;
      expect(body.errors?.length).toBeGreaterThan(0);
      for (const error of body.errors!) {
        expect(CONTRACT_CODES, JSON.stringify(error)).toContain(String(error.extensions?.code));
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Fuzz: every argument of every operation, with hostile values of its type.

type Value = unknown;
/** JSON text sent as it is: values nested too deep for JSON.stringify in the test process. */
class RawJson {
  constructor(readonly text: string) {}
}
const deepObject = (levels: number) =>
  new RawJson(`${'{"a":'.repeat(levels)}"x"${'}'.repeat(levels)}`);
const deepArray = (levels: number) => new RawJson(`${'['.repeat(levels)}1${']'.repeat(levels)}`);

/** A GraphQL POST whose variables may hold {@link RawJson} values. */
async function post(
  t: TestApp,
  call: {
    key?: string;
    query: Document;
    variables?: Record<string, Value>;
  },
): Promise<GraphQLResponse> {
  const raws: string[] = [];
  const body = JSON.stringify(
    { query: documentText(call.query), variables: call.variables },
    (_k, v: Value) => {
      if (!(v instanceof RawJson)) return v;
      raws.push(v.text);
      return `__raw_${raws.length - 1}__`;
    },
  ).replace(/"__raw_(\d+)__"/g, (_m, i: string) => raws[Number(i)]!);
  const response = await t.app.fetch('http://test.local/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(call.key ? { authorization: `Bearer ${call.key}` } : {}),
    },
    body,
  });
  return { ...((await response.json()) as GraphQLResponse), status: response.status };
}
const cursor = (parts: unknown) => Buffer.from(JSON.stringify(parts)).toString('base64url');
const HOSTILE_STRINGS = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '',
  'a'.repeat(60_000),
  '+275760-09-13T00:00:00.000Z',
  cursor(['+275760-09-13T00:00:00.000000Z', '00000000-0000-0000-0000-000000000000']),
  cursor(['-271821-04-20T00:00:00.000Z', 'x']),
  cursor(['2024-01-01T00:00:00Z', 'a\u0000']),
  cursor([1e308, {}]),
  ...[
    '+275760-09-13T00:00:00.000Z',
    '-271821-04-20T00:00:00.000Z',
    '-000001-01-01T00:00:00Z',
  ].flatMap((at) => [
    Buffer.from(`${at}|00000000-0000-4000-8000-000000000000`).toString('base64url'),
    cursor([at, '00000000-0000-4000-8000-000000000000']),
    cursor([at, '1']),
    cursor([at, 'a', '00000000-0000-4000-8000-000000000000']),
    cursor([at, '99999999999999999999999']),
  ]),
  cursor('x'.repeat(10)),
  '99999999999999999999999999',
  '-1',
];
const HOSTILE: Record<string, readonly Value[]> = {
  String: HOSTILE_STRINGS,
  ID: HOSTILE_STRINGS,
  Int: [2147483647, -2147483648, 0, -1],
  Float: [1e308, -1e308, 0],
  DateTime: [
    '+275760-09-13T00:00:00.000Z',
    '-271821-04-20T00:00:00.000Z',
    '9999-12-31T23:59:59.999Z',
    '0001-01-01T00:00:00Z',
    '2024-02-30T00:00:00Z',
    '\u0000',
  ],
  JSON: [
    deepObject(5_000),
    deepArray(5_000),
    { ['a\u0000']: 1 },
    { k: 'v\u0000' },
    { ['\ud800']: 'x' },
    { k: '\udc00' },
    1e308,
    Array.from({ length: 5_000 }, (_, i) => i),
    'a'.repeat(60_000),
  ],
};
const ADMIN_FIELDS = new Set(['products', 'createProduct', 'createApiKey', 'revokeApiKey']);

interface Baseline {
  tag: string;
  sessionId: string;
  token: string;
  refreshToken: string;
}

/** A plausible value for an input of this type and name (required inputs only). */
function plausible(name: string, type: GraphQLInputType, base: Baseline): Value {
  const inner = isNonNullType(type) ? type.ofType : type;
  if (isListType(inner)) return [plausible(name, inner.ofType as GraphQLInputType, base)];
  if (isEnumType(inner)) return inner.getValues()[0]!.value as Value;
  if (isInputObjectType(inner)) {
    const out: Record<string, Value> = {};
    for (const field of Object.values(inner.getFields())) {
      if (isNonNullType(field.type) || ['tag', 'data', 'schema'].includes(field.name)) {
        out[field.name] = plausible(field.name, field.type, base);
      }
    }
    return out;
  }
  const byName: Record<string, Value> = {
    tag: base.tag,
    sessionId: base.sessionId,
    token: base.token,
    refreshToken: base.refreshToken,
    identifier: 'user-123',
    selector: '$Session{userId}',
    product: product.tag,
    env: 'dev',
    data: { userId: 'user-123', details: { username: 'u', email: 'e' } },
    schema: { userId: 'u', details: { username: 'u', email: 'e' } },
    expiry: 1,
  };
  if (name in byName) return byName[name];
  switch (getNamedType(inner).name) {
    case 'Int':
    case 'Float':
      return 1;
    case 'Boolean':
      return true;
    case 'DateTime':
      return new Date().toISOString();
    case 'JSON':
      return {};
    case 'ID':
      return base.sessionId;
    default:
      return `v-${name}`;
  }
}

/** Every scalar leaf under an argument: its path and scalar name (lists as one element). */
function leaves(
  type: GraphQLInputType,
  path: (string | number)[],
  out: { path: (string | number)[]; scalar: string }[],
  depth = 0,
): void {
  const inner = isNonNullType(type) ? type.ofType : type;
  if (isListType(inner)) return leaves(inner.ofType as GraphQLInputType, [...path, 0], out, depth);
  if (isScalarType(inner) && inner.name in HOSTILE) out.push({ path, scalar: inner.name });
  if (isInputObjectType(inner) && depth < 3) {
    for (const field of Object.values(inner.getFields())) {
      leaves(field.type, [...path, field.name], out, depth + 1);
    }
  }
}

function setAt(root: Record<string, Value>, path: (string | number)[], value: Value): void {
  let node = root as Record<string | number, Value>;
  for (let i = 0; i < path.length - 1; i++) {
    const keyAt = path[i]!;
    const next = path[i + 1]!;
    if (node[keyAt] === undefined || node[keyAt] === null || typeof node[keyAt] !== 'object') {
      node[keyAt] = typeof next === 'number' ? [] : {};
    }
    node = node[keyAt] as Record<string | number, Value>;
  }
  node[path[path.length - 1]!] = value;
}

interface Operation {
  kind: 'query' | 'mutation';
  field: GraphQLField<unknown, unknown>;
}
const operations: Operation[] = [
  ...Object.values(schema.getQueryType()!.getFields()).map((field) => ({
    kind: 'query' as const,
    field,
  })),
  ...Object.values(schema.getMutationType()!.getFields()).map((field) => ({
    kind: 'mutation' as const,
    field,
  })),
];

function documentOf(op: Operation): string {
  const args = op.field.args as readonly GraphQLArgument[];
  const defs = args.map((a) => `$${a.name}: ${a.type.toString()}`).join(', ');
  const uses = args.map((a) => `${a.name}: $${a.name}`).join(', ');
  const named = getNamedType(op.field.type);
  const selection = isScalarType(named) || isEnumType(named) ? '' : ' { __typename }';
  return `${op.kind}${defs ? `(${defs})` : ''} { ${op.field.name}${uses ? `(${uses})` : ''}${selection} }`;
}

async function baseline(t: TestApp): Promise<Baseline> {
  const configTag = await newConfig(t, key);
  const session = await start(t, key, configTag);
  return { tag: configTag, ...session };
}

/** Sends one fuzzed call; returns a description when the answer is an unexpected error. */
async function probe(
  t: TestApp,
  op: Operation,
  base: Baseline,
  hostile: { path: (string | number)[]; value: Value }[],
): Promise<string | undefined> {
  const variables: Record<string, Value> = {};
  for (const arg of op.field.args) {
    if (isNonNullType(arg.type)) variables[arg.name] = plausible(arg.name, arg.type, base);
  }
  for (const h of hostile) setAt(variables, h.path, h.value);
  const response = await post(t, {
    key: ADMIN_FIELDS.has(op.field.name) ? t.adminKey : key,
    query: documentOf(op),
    variables,
  });
  const bad = (response.errors ?? []).filter(
    (e) =>
      e.extensions?.code === 'INTERNAL_SERVER_ERROR' ||
      !CONTRACT_CODES.has(String(e.extensions?.code)),
  );
  if (response.status >= 500 || bad.length > 0) {
    const shown = hostile.map((h) => `${h.path.join('.')}=${JSON.stringify(h.value).slice(0, 60)}`);
    return `${op.field.name} ${shown.join(' ')} -> ${response.status} ${JSON.stringify(bad).slice(0, 200)}`;
  }
  return undefined;
}

describe('error answers never quote what the request carried', () => {
  // A token or key sent in the wrong place must not come back in the answer (nor, through it,
  // in a proxy's or client's log): graphql-js and Yoga quote values in their messages.
  const SECRET = 'sk_dev_ThisLooksLikeAKeyAndMustNotEcho0123456789';
  const post = async (t: TestApp, body: string) =>
    t.app.fetch('http://test.local/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body,
    });
  const cases: { name: string; body: string }[] = [
    { name: 'invalid JSON around a key', body: `{"query": "{ __typename }", ${SECRET}` },
    {
      name: 'a key in a variable of the wrong type',
      body: JSON.stringify({
        query: 'query($a: Boolean!) { __typename @include(if: $a) }',
        variables: { a: SECRET },
      }),
    },
    {
      name: 'a key as a literal of the wrong type',
      body: JSON.stringify({ query: `{ __typename @include(if: "${SECRET}") }` }),
    },
    {
      name: 'a key in a nested input of the wrong type',
      body: JSON.stringify({
        query: START,
        variables: { input: { tag: 7, data: { userId: SECRET }, expiresIn: SECRET } },
      }),
    },
    {
      name: 'a token where an enum goes',
      body: JSON.stringify({
        query: `mutation { createSessionConfig(input: { tag: "x", name: "x", description: "x", schema: {}, selector: "$Session{a}", expiry: 1, period: ${SECRET} }) { tag } }`,
      }),
    },
  ];
  for (const c of cases) {
    it(c.name, async ({ t }) => {
      const response = await post(t, c.body);
      const text = await response.text();
      expect(response.status).toBeGreaterThanOrEqual(200);
      const body = JSON.parse(text) as GraphQLResponse;
      expect(body.errors?.length).toBeGreaterThan(0);
      for (const error of body.errors ?? []) {
        expect(CONTRACT_CODES.has(String(error.extensions?.code))).toBe(true);
      }
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain('ThisLooksLikeAKey');
    });
  }
});

describe('fuzz: every argument of every operation, with hostile values', () => {
  it('never answers INTERNAL_SERVER_ERROR or an error without a contract code', async ({ t }) => {
    const problems: string[] = [];
    for (const op of operations) {
      const base = await baseline(t);
      const all: { path: (string | number)[]; scalar: string }[] = [];
      for (const arg of op.field.args) leaves(arg.type, [arg.name], all);
      const probes = all.flatMap((leaf) =>
        HOSTILE[leaf.scalar]!.map((value) => [{ path: leaf.path, value }]),
      );
      // A few at a time: real concurrency, bounded.
      for (let i = 0; i < probes.length; i += 8) {
        const found = await Promise.all(probes.slice(i, i + 8).map((p) => probe(t, op, base, p)));
        problems.push(...found.filter((f): f is string => f !== undefined));
      }
    }
    expect(problems).toEqual([]);
  }, 240_000);

  it('nor with hostile values in several arguments at once (fast-check)', async ({ t }) => {
    const base = await baseline(t);
    const withLeaves = operations
      .map((op) => {
        const all: { path: (string | number)[]; scalar: string }[] = [];
        for (const arg of op.field.args) leaves(arg.type, [arg.name], all);
        return { op, all };
      })
      .filter((x) => x.all.length > 0);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...withLeaves).chain(({ op, all }) =>
          fc.tuple(
            fc.constant(op),
            fc.uniqueArray(
              fc.constantFrom(...all).chain((leaf) =>
                fc.record({
                  path: fc.constant(leaf.path),
                  value: fc.constantFrom(...HOSTILE[leaf.scalar]!),
                }),
              ),
              { minLength: 1, maxLength: 4, selector: (h) => h.path.join('.') },
            ),
          ),
        ),
        async ([op, hostile]) => {
          expect(await probe(t, op, base, hostile)).toBeUndefined();
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);
});

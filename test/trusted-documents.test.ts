import { readFileSync } from 'node:fs';
import { parse, validate } from 'graphql/index.js'; // the copy Pothos uses (see scripts/print-schema.ts)
import { createSchema, createYoga } from 'graphql-yoga';
import { expect } from 'vitest';
import { documentId, MANIFEST_FILE, printedManifest } from '../scripts/trusted-documents.js';
import { createSessionClient } from '../src/client/index.js';
import * as clientDocuments from '../src/client/documents.js';
import * as consoleDocuments from '../console/src/documents.js';
import { schema } from '../src/graphql/index.js';
import { TrustedDocuments, type TrustedDocumentsMode } from '../src/graphql/trusted-documents.js';
import type { TestApp } from './support/app.js';
import { ductapeConfig, newConfig, start, uniqueTag } from './support/fixtures.js';
import { listen, subscribeWs, waitUntil, wsClient, type Received } from './support/live.js';
import { describe, it } from './support/test.js';

const TRUSTED = clientDocuments.LATEST_EVENT_ID;
const TRUSTED_ID = documentId(TRUSTED);
/** A document the server does not know: the same field, another text. */
const UNTRUSTED = 'query Latest { latestSessionEventId }';
/** The id of a text no manifest holds. */
const UNKNOWN_ID = documentId('query Unknown { latestSessionEventId }');

interface Answer {
  status: number;
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

/** A POST to the real endpoint with whatever parameters a client chose to send. */
async function post(app: TestApp, key: string, body: Record<string, unknown>): Promise<Answer> {
  const response = await app.app.fetch('http://test.local/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json',
      authorization: `Bearer ${key}`,
    },
    body: JSON.stringify(body),
  });
  return { ...((await response.json()) as Omit<Answer, 'status'>), status: response.status };
}

/** An app of the given mode on the file's database (products and keys made by `t`). */
async function appIn(
  instance: (options: {
    appOptions: { trustedDocuments: TrustedDocumentsMode };
  }) => Promise<TestApp>,
  mode: TrustedDocumentsMode,
): Promise<TestApp> {
  return instance({ appOptions: { trustedDocuments: mode } });
}

type Expected = 'runs' | `refused:${string}` | 'no-query';

/** Each case: the parameters sent, and what each mode answers. */
const CASES: {
  name: string;
  body: Record<string, unknown>;
  off: Expected;
  allow: Expected;
  require: Expected;
}[] = [
  {
    name: 'a known id alone',
    body: { documentId: TRUSTED_ID },
    off: 'no-query',
    allow: 'runs',
    require: 'runs',
  },
  {
    name: 'a known id with its text',
    body: { documentId: TRUSTED_ID, query: TRUSTED },
    off: 'runs',
    allow: 'runs',
    require: 'runs',
  },
  {
    name: 'an unknown id alone',
    body: { documentId: UNKNOWN_ID },
    off: 'no-query',
    allow: 'refused:unknown_document_id',
    require: 'refused:unknown_document_id',
  },
  {
    name: 'an unknown id with a text',
    body: { documentId: UNKNOWN_ID, query: UNTRUSTED },
    off: 'runs',
    allow: 'runs',
    require: 'refused:unknown_document_id',
  },
  {
    name: 'an untrusted text alone',
    body: { query: UNTRUSTED },
    off: 'runs',
    allow: 'runs',
    require: 'refused:untrusted_document',
  },
  {
    name: 'a trusted text alone',
    body: { query: TRUSTED },
    off: 'runs',
    allow: 'runs',
    require: 'runs',
  },
  {
    name: 'a known id with another text',
    body: { documentId: TRUSTED_ID, query: UNTRUSTED },
    off: 'runs',
    allow: 'refused:document_id_mismatch',
    require: 'refused:document_id_mismatch',
  },
  {
    name: 'an id that is not sha256:<hex>',
    body: { documentId: 'md5:abc', query: TRUSTED },
    off: 'runs',
    allow: 'refused:invalid_document_id',
    require: 'refused:invalid_document_id',
  },
];

function expectAnswer(answer: Answer, expected: Expected, mode: TrustedDocumentsMode) {
  const context = JSON.stringify(answer);
  if (expected === 'runs') {
    expect(answer.errors, context).toBeUndefined();
    expect(answer.status, context).toBe(200);
    expect(answer.data, context).toHaveProperty('latestSessionEventId');
    return;
  }
  expect(answer.status, context).toBe(400);
  expect(answer.data ?? undefined, context).toBeUndefined();
  const error = answer.errors?.[0];
  expect(error?.extensions?.code, context).toBe('BAD_REQUEST');
  if (expected === 'no-query') {
    expect(error?.message, context).toBe('Must provide query string.');
    return;
  }
  expect(error?.extensions?.reason, context).toBe(expected.slice('refused:'.length));
  if (mode === 'require' && expected !== 'refused:document_id_mismatch') {
    if (expected !== 'refused:invalid_document_id') {
      expect(error?.message, context).toContain('TRUSTED_DOCUMENTS=');
    }
  }
}

describe('the manifest (src/graphql/trusted-documents.json)', () => {
  it('is what `npm run documents` writes from the client’s and the console’s documents', async () => {
    expect(
      readFileSync(MANIFEST_FILE, 'utf8'),
      'stale: run `npm run documents` and commit the result',
    ).toBe(await printedManifest());
  });

  it('holds every operation the client and the console export, by the SHA-256 of its text', () => {
    const manifest = JSON.parse(readFileSync(MANIFEST_FILE, 'utf8')) as Record<string, string>;
    for (const [id, text] of Object.entries(manifest)) expect(documentId(text)).toBe(id);
    const texts = new Set(Object.values(manifest));
    for (const module of [clientDocuments, consoleDocuments]) {
      for (const [name, value] of Object.entries(module)) {
        if (typeof value === 'string' && /^\s*(query|mutation|subscription)\b/.test(value)) {
          expect(texts.has(value), name).toBe(true);
        }
      }
    }
    expect(new TrustedDocuments().size).toBe(texts.size);
  });

  it('holds only documents that are valid against the schema', () => {
    const manifest = JSON.parse(readFileSync(MANIFEST_FILE, 'utf8')) as Record<string, string>;
    for (const text of Object.values(manifest)) {
      expect(
        validate(schema, parse(text)).map((e) => e.message),
        text,
      ).toEqual([]);
    }
  });
});

describe('TRUSTED_DOCUMENTS over HTTP', () => {
  for (const mode of ['off', 'allow', 'require'] as const) {
    for (const c of CASES) {
      it(`${mode}: ${c.name} → ${c[mode]}`, async ({ instance, key }) => {
        const app = await appIn(instance, mode);
        expectAnswer(await post(app, key, c.body), c[mode], mode);
      });
    }
  }

  it('allow is the default', async ({ t, key }) => {
    expectAnswer(await post(t, key, { documentId: TRUSTED_ID }), 'runs', 'allow');
    expectAnswer(
      await post(t, key, { documentId: UNKNOWN_ID }),
      'refused:unknown_document_id',
      'allow',
    );
  });

  it('require: a mutation runs by its id alone, with its variables', async ({
    t,
    instance,
    key,
    config,
  }) => {
    const app = await appIn(instance, 'require');
    const answer = await post(app, key, {
      documentId: documentId(clientDocuments.START),
      variables: { input: { tag: config, data: ductapeConfig().schema } },
    });
    expect(answer.errors, JSON.stringify(answer)).toBeUndefined();
    const started = (answer.data as { startSession: { token: string; sessionId: string } })
      .startSession;
    // …and the session it made verifies, by id too.
    const verified = await post(app, key, {
      documentId: documentId(clientDocuments.VERIFY),
      variables: { tag: config, token: started.token },
    });
    expect(verified.data, JSON.stringify(verified)).toMatchObject({
      verifySession: { sessionId: started.sessionId },
    });
    // The same mutation as a text of the test's own is refused, before anything runs.
    const before = await post(t, key, {
      query: `query { sessions(tag: "${config}", identifier: "191010192-19198829819") { totalCount } }`,
    });
    const refused = await post(app, key, {
      query: 'mutation Start($input: StartSessionInput!) { startSession(input: $input) { token } }',
      variables: { input: { tag: config, data: ductapeConfig().schema } },
    });
    expectAnswer(refused, 'refused:untrusted_document', 'require');
    const after = await post(t, key, {
      query: `query { sessions(tag: "${config}", identifier: "191010192-19198829819") { totalCount } }`,
    });
    expect(after.data).toEqual(before.data);
  });
});

describe('TRUSTED_DOCUMENTS over WebSocket and SSE', () => {
  it('require: a subscription runs by id (query empty); an untrusted one is refused', async ({
    instance,
    t,
    key,
    config,
  }) => {
    const app = await appIn(instance, 'require');
    const server = await listen(app);
    const client = wsClient(server.wsUrl, key);
    try {
      const identifier = '191010192-19198829819';
      const events: Received<{ sessionId: string; type: string }> = subscribeById(
        client,
        documentId(clientDocuments.ON_REVOKED),
        { tag: config, identifier },
      );
      const session = await start(t, key, config, ductapeConfig().schema);
      await waitUntil(() => {
        if (events.errors.length > 0) throw new Error(JSON.stringify(events.errors));
        return app.services.events.subscriberCount > 0;
      }, 'the subscription by id');
      await post(t, key, {
        query: clientDocuments.REVOKE,
        variables: { tag: config, sessionId: session.sessionId },
      });
      const revoked = [session.sessionId];
      await waitUntil(() => events.items.length > 0 || events.errors.length > 0, 'the revocation');
      expect(revoked).toContain(events.items[0]!.sessionId);
      expect(events.items[0]!.type).toBe('REVOKED');
      events.stop();

      const refused = subscribeWs(
        client,
        'subscription { sessionRevoked { id } }',
        {},
        'sessionRevoked',
      );
      await refused.ended;
      expect(JSON.stringify(refused.errors)).toContain('untrusted_document');
      expect(JSON.stringify(refused.errors)).toContain('BAD_REQUEST');

      const unknown = subscribeById(client, UNKNOWN_ID, {});
      await unknown.ended;
      expect(JSON.stringify(unknown.errors)).toContain('unknown_document_id');
    } finally {
      await client.dispose();
      await server.close();
    }
  });

  it('require: SSE follows the same rule', async ({ instance, key }) => {
    const app = await appIn(instance, 'require');
    const sse = (body: Record<string, unknown>) =>
      app.app.fetch('http://test.local/graphql', {
        method: 'POST',
        headers: {
          accept: 'text/event-stream',
          'content-type': 'application/json',
          authorization: `Bearer ${key}`,
        },
        body: JSON.stringify(body),
      });
    const refused = await sse({ query: 'subscription { sessionRevoked { id } }' });
    const text = await refused.text();
    expect(text).toContain('untrusted_document');
    const accepted = await sse({ documentId: documentId(clientDocuments.ON_REVOKED) });
    expect(accepted.status).toBe(200);
    expect(accepted.headers.get('content-type')).toContain('text/event-stream');
    // The stream is open: the subscription was accepted. Read its first bytes, then stop.
    const reader = accepted.body!.getReader();
    await reader.read();
    await reader.cancel().catch(() => {});
  });
});

/** A graphql-ws subscription sent by its id, with an empty `query` (graphql-ws requires one). */
function subscribeById<T>(
  client: ReturnType<typeof wsClient>,
  id: string,
  variables: Record<string, unknown>,
): Received<T> {
  const items: T[] = [];
  const errors: unknown[] = [];
  let end!: () => void;
  const ended = new Promise<void>((resolve) => (end = resolve));
  const stop = client.subscribe<Record<string, T>>(
    { query: '', documentId: id, variables } as { query: string },
    {
      next: (value) => {
        if (value.errors) {
          errors.push(value.errors);
          end();
        } else if (value.data) items.push(Object.values(value.data)[0] as T);
      },
      error: (error) => {
        errors.push(error);
        end();
      },
      complete: () => end(),
    },
  );
  return {
    items,
    times: [],
    errors,
    ended,
    stop,
    waitFor: () => Promise.reject(new Error('not used')),
  };
}

describe('the client package', () => {
  it('works against a server in require mode: calls and subscriptions by id', async ({
    instance,
    key,
  }) => {
    const app = await appIn(instance, 'require');
    const server = await listen(app);
    const client = createSessionClient({ url: server.url, key });
    try {
      const tag = uniqueTag('td');
      await client.configs.create({ ...ductapeConfig(tag), period: 'hours' } as never);
      const revoked: string[] = [];
      const subscription = client.sessions.onRevoked({ tag }, (event) =>
        revoked.push(event.sessionId),
      );
      const tokens = await client.sessions.start({ tag, data: ductapeConfig().schema });
      const verified = await client.sessions.verify({ tag, token: tokens.token });
      expect(verified.sessionId).toBe(tokens.sessionId);
      await waitUntil(() => app.services.events.subscriberCount > 0, 'the subscription');
      const ending = await client.sessions.start({ tag, data: ductapeConfig().schema });
      await client.sessions.revoke({ tag, sessionId: ending.sessionId });
      const ended = [ending.sessionId];
      await waitUntil(() => revoked.length > 0, 'the revocation');
      expect(ended).toContain(revoked[0]);
      subscription.unsubscribe();
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('sends documentId with the text, and the text alone to a server that refuses the parameter', async () => {
    // A server from before trusted documents: Yoga's parameter check knows no `documentId`.
    const older = createYoga({
      schema: createSchema({
        typeDefs: 'type Query { latestSessionEventId: ID }',
        resolvers: { Query: { latestSessionEventId: () => '42' } },
      }),
    });
    const bodies: Record<string, unknown>[] = [];
    const client = createSessionClient({
      url: 'http://older.test/graphql',
      key: 'sk_dev_anything',
      fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
        bodies.push(JSON.parse(String(init?.body)) as Record<string, unknown>);
        return older.fetch(input as URL, init ?? {});
      }) as typeof fetch,
    });
    expect(await client.sessions.latestEventId()).toBe('42');
    expect(await client.sessions.latestEventId()).toBe('42');
    expect(bodies.map((b) => b.documentId)).toEqual([TRUSTED_ID, undefined, undefined]);
    expect(bodies.every((b) => b.query === TRUSTED)).toBe(true);
  });

  it('works against a server in off mode (the id is ignored)', async ({ instance, key }) => {
    const app = await appIn(instance, 'off');
    const tag = await newConfig(app, key);
    const client = createSessionClient({
      url: 'http://test.local/graphql',
      key,
      fetch: ((input: RequestInfo | URL, init?: RequestInit) =>
        app.app.fetch(input as URL, init ?? {})) as typeof fetch,
    });
    const tokens = await client.sessions.start({ tag, data: ductapeConfig().schema });
    expect((await client.sessions.verify({ tag, token: tokens.token })).sessionId).toBe(
      tokens.sessionId,
    );
  });
});

import { parse, validate } from 'graphql/index.js'; // the copy Pothos uses (see scripts/print-schema.ts)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphiqlOptions, KEY_PLACEHOLDER } from '../src/graphiql.js';
import { schema } from '../src/graphql/index.js';
import { createTestApp, type TestApp } from './support/app.js';

const operationName = (query: string | null) =>
  /^(?:query|mutation|subscription)\s+(\w+)/m.exec(query ?? '')?.[1];

describe('GraphiQL’s example operations', () => {
  it('walk through a session’s life, one tab each: start, verify, refresh, list, revoke, a subscription', () => {
    const tabs = graphiqlOptions().defaultTabs ?? [];
    expect(tabs.map((tab) => operationName(tab.query))).toEqual([
      'StartSession',
      'VerifySession',
      'RefreshSession',
      'ListSessions',
      'RevokeSession',
      'SessionRevoked',
      'CreateSessionConfig',
    ]);
  });

  it('are valid against the schema, with variables that are valid JSON', () => {
    const options = graphiqlOptions();
    for (const tab of [...(options.defaultTabs ?? []), { query: options.defaultQuery ?? null }]) {
      const errors = validate(schema, parse(tab.query ?? ''));
      expect(
        errors.map((e) => e.message),
        operationName(tab.query),
      ).toEqual([]);
      if ('variables' in tab && tab.variables)
        expect(() => JSON.parse(tab.variables!)).not.toThrow();
    }
  });

  it('explain themselves in comments that fit the editor without scrolling sideways', () => {
    const options = graphiqlOptions();
    for (const query of [
      ...(options.defaultTabs ?? []).map((tab) => tab.query),
      options.defaultQuery,
    ]) {
      const comments = (query ?? '').split('\n').filter((line) => line.startsWith('#'));
      expect(comments.length, operationName(query ?? null)).toBeGreaterThan(0);
      expect(comments.filter((line) => line.length > 56)).toEqual([]);
    }
  });

  it('send the demo key when it is known, outside production; a placeholder otherwise', () => {
    const headersOf = (options: ReturnType<typeof graphiqlOptions>) => [
      options.headers,
      ...(options.defaultTabs ?? []).map((tab) => tab.headers),
    ];
    const withKey = graphiqlOptions({ demoKey: 'sk_dev_demo' });
    for (const headers of headersOf(withKey)) {
      expect(JSON.parse(headers!)).toEqual({ Authorization: 'Bearer sk_dev_demo' });
    }
    for (const options of [
      graphiqlOptions(),
      graphiqlOptions({ demoKey: 'sk_dev_demo', production: true }),
    ]) {
      for (const headers of headersOf(options)) {
        expect(JSON.parse(headers!)).toEqual({ Authorization: KEY_PLACEHOLDER });
      }
    }
  });
});

describe('the GraphiQL page', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('carries the example tabs and, with no demo key known, the key placeholder', async () => {
    const response = await t.app.fetch('http://test.local/graphql', {
      headers: { accept: 'text/html' },
    });
    const html = await response.text();
    expect(html).toContain('mutation StartSession');
    expect(html).toContain('subscription SessionRevoked');
    expect(html).toContain(KEY_PLACEHOLDER);
    expect(html).not.toMatch(/sk_dev_\w/);
  });
});

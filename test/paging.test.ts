import { expect } from 'vitest';
import { ServiceError } from '../src/domain/errors.js';
import {
  DEFAULT_PAGE_SIZE,
  MAX_CURSOR_LENGTH,
  MAX_PAGE_SIZE,
  cursorInstantPart,
  decodeCursor,
  encodeCursor,
  pageOf,
  pageSize,
} from '../src/domain/paging.js';
import { failure, ok } from './support/graphql.js';
import { newConfig, start } from './support/fixtures.js';
import { describe, it } from './support/test.js';

/** The error a call throws (a ServiceError), for matching its code, field and message. */
function thrown(call: () => unknown): ServiceError {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(ServiceError);
    return error as ServiceError;
  }
  throw new Error('expected a throw');
}

const BAD_CURSOR = {
  code: 'BAD_USER_INPUT',
  field: 'after',
  message: 'after: is not a cursor this API returned',
};

describe('paging (unit)', () => {
  it('pageSize: 20 by default, 0 to 100 accepted, anything else BAD_USER_INPUT on first', () => {
    expect(pageSize(undefined)).toBe(DEFAULT_PAGE_SIZE);
    expect(pageSize(null)).toBe(20);
    expect(pageSize(0)).toBe(0);
    expect(pageSize(MAX_PAGE_SIZE)).toBe(100);
    for (const first of [-1, 101, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(thrown(() => pageSize(first))).toMatchObject({
        code: 'BAD_USER_INPUT',
        field: 'first',
        message: 'first: expected a whole number from 0 to 100',
      });
    }
  });

  it('pageOf keeps `first` rows, says whether more follow, and gives the last cursor', async () => {
    const cursorOf = (n: number) => `c${n}`;
    const total = async () => 42;
    const more = pageOf([1, 2, 3], 2, cursorOf, total);
    expect(more).toMatchObject({ rows: [1, 2], hasNextPage: true, endCursor: 'c2' });
    expect(await more.totalCount()).toBe(42);
    expect(pageOf([1, 2], 2, cursorOf, total)).toMatchObject({
      rows: [1, 2],
      hasNextPage: false,
      endCursor: 'c2',
    });
    expect(pageOf([], 2, cursorOf, total)).toMatchObject({
      rows: [],
      hasNextPage: false,
      endCursor: null,
    });
    expect(pageOf([1], 0, cursorOf, total)).toMatchObject({
      rows: [],
      hasNextPage: true,
      endCursor: null,
    });
  });

  it('a cursor decodes to the parts it was encoded from, whatever they hold', () => {
    const cases = [
      ['2024-01-01T00:00:00.000Z', '00000000-0000-4000-8000-000000000000'],
      ['2024-01-01T00:00:00.123456Z', 'ada|lovelace'],
      ['2024-01-01T00:00:00.123456Z', '\u0000'.repeat(256)],
      ['2024-01-01T00:00:00.123456Z', '€'.repeat(256)],
      ['2024-01-01T00:00:00.123456Z', '😀'.repeat(128)],
    ];
    for (const parts of cases) {
      const cursor = encodeCursor(parts);
      expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(cursor.length).toBeLessThanOrEqual(MAX_CURSOR_LENGTH);
      expect(decodeCursor(cursor, 2)).toEqual(parts);
    }
  });

  it('anything else is BAD_USER_INPUT on after, with one message', () => {
    const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
    const json = (value: unknown) => b64(JSON.stringify(value));
    const refused = [
      '',
      'garbage',
      json(['a']),
      json(['a', 'b', 'c']),
      json([1, 2]),
      json(['a', null]),
      json({ 0: 'a', 1: 'b' }),
      json('a|b'),
      b64('["a",'),
      b64('2024-01-01T00:00:00.000Z|00000000-0000-4000-8000-000000000000'),
      encodeCursor(['a', 'b']) + 'A'.repeat(MAX_CURSOR_LENGTH),
    ];
    for (const cursor of refused) {
      expect(thrown(() => decodeCursor(cursor, 2))).toMatchObject(BAD_CURSOR);
    }
  });

  it('the session list’s former cursors (`<instant>|<uuid>`) are read where asked for', () => {
    const id = '00000000-0000-4000-8000-000000000000';
    const legacy = Buffer.from(`2024-01-01T00:00:00.000Z|${id}`).toString('base64url');
    expect(decodeCursor(legacy, 2, { pipeSeparated: true })).toEqual([
      '2024-01-01T00:00:00.000Z',
      id,
    ]);
    // The new form as well, and the same refusals otherwise.
    expect(decodeCursor(encodeCursor(['x', id]), 2, { pipeSeparated: true })).toEqual(['x', id]);
    for (const text of ['a|b|c', 'a', '']) {
      const cursor = Buffer.from(text).toString('base64url');
      expect(thrown(() => decodeCursor(cursor, 2, { pipeSeparated: true }))).toMatchObject(
        BAD_CURSOR,
      );
    }
  });

  it('cursorInstantPart reads the instants the API writes, and no other', () => {
    expect(cursorInstantPart('2024-01-01T00:00:00Z').toISOString()).toBe(
      '2024-01-01T00:00:00.000Z',
    );
    expect(cursorInstantPart('2024-01-01T00:00:00.123456Z').toISOString()).toBe(
      '2024-01-01T00:00:00.123Z',
    );
    for (const text of [
      'not-a-date',
      '+275760-09-13T00:00:00.000Z',
      '-000001-01-01T00:00:00Z',
      '2024-01-01T00:00:00.1234567Z',
      '2024-01-01 00:00:00Z',
    ]) {
      expect(thrown(() => cursorInstantPart(text))).toMatchObject(BAD_CURSOR);
    }
  });
});

describe('paging through the API', () => {
  const LIST = `query($tag: String!, $identifier: String!, $first: Int, $after: String) {
    sessions(tag: $tag, identifier: $identifier, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id createdAt } }
    }
  }`;
  const HISTORY = `query($tag: String!, $identifier: String!, $first: Int, $after: String) {
    sessionUser(tag: $tag, identifier: $identifier) {
      sessions(first: $first, after: $after) {
        pageInfo { hasNextPage endCursor }
        edges { cursor node { id } }
      }
    }
  }`;
  const USERS = `query($tag: String!, $first: Int, $after: String) {
    sessionUsers(tag: $tag, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { cursor node { identifier } }
    }
  }`;
  type Edge = { cursor: string; node: { id: string; createdAt: string } };

  it('a session-list cursor issued before the upgrade (`<instant>|<uuid>`) still pages, in the list and the history', async ({
    t,
    key,
  }) => {
    const tag = await newConfig(t, key);
    const data = { userId: 'ada', details: { username: 'ada', email: 'ada@example.com' } };
    for (let i = 0; i < 3; i++) await start(t, key, tag, data);
    const all = (await ok(t.app, { key, query: LIST, variables: { tag, identifier: 'ada' } }))
      .sessions.edges as Edge[];
    expect(all).toHaveLength(3);
    const first = all[0]!.node;
    const legacy = Buffer.from(
      `${new Date(first.createdAt).toISOString()}|${first.id}`,
      'utf8',
    ).toString('base64url');
    const next = await ok(t.app, {
      key,
      query: LIST,
      variables: { tag, identifier: 'ada', after: legacy },
    });
    expect((next.sessions.edges as Edge[]).map((e) => e.node.id)).toEqual(
      all.slice(1).map((e) => e.node.id),
    );
    // The cursor issued now pages the same way.
    const now = await ok(t.app, {
      key,
      query: LIST,
      variables: { tag, identifier: 'ada', after: all[0]!.cursor },
    });
    expect(now.sessions.edges).toEqual(next.sessions.edges);
    const history = await ok(t.app, {
      key,
      query: HISTORY,
      variables: { tag, identifier: 'ada', after: legacy },
    });
    expect((history.sessionUser.sessions.edges as Edge[]).map((e) => e.node.id)).toEqual(
      all.slice(1).map((e) => e.node.id),
    );
    // A session-list cursor is refused by a list with other keys.
    expect(
      await failure(t.app, { key, query: USERS, variables: { tag, after: legacy } }),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  it('users with the longest identifiers page on (their cursors are read back whole)', async ({
    t,
    key,
  }) => {
    const tag = await newConfig(t, key);
    const identifiers = ['€'.repeat(256), '\u0001'.repeat(256), 'ada'];
    for (const identifier of identifiers) {
      await start(
        t,
        key,
        tag,
        { userId: 'x', details: { username: 'ada', email: 'ada@example.com' } },
        { identifier },
      );
    }
    const seen: string[] = [];
    let after: string | null = null;
    for (let guard = 0; guard < 5; guard++) {
      const page: {
        pageInfo: { hasNextPage: boolean; endCursor: string | null };
        edges: { node: { identifier: string } }[];
      } = (await ok(t.app, { key, query: USERS, variables: { tag, first: 1, after } }))
        .sessionUsers;
      seen.push(...page.edges.map((e) => e.node.identifier));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(seen.sort()).toEqual([...identifiers].sort());
  });
});

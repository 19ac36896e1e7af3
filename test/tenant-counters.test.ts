import { expect } from 'vitest';
import { describe, it, type TestServer } from './support/test.js';
import type { TestApp } from './support/app.js';
import { gql, ok } from './support/graphql.js';
import { REVOKE, newConfig, newProduct, start } from './support/fixtures.js';
import { subscribeSse } from './support/live.js';

/**
 * Ids and cursors a product sees count its own traffic only: another product's sessions,
 * events and log rows never move them.
 */
const LATEST = `{ latestSessionEventId }`;
const EVENTS = `subscription($after: ID) { sessionEvents(after: $after) { id type sessionId } }`;
const LOG = `query($first: Int, $after: String) { activityLog(first: $first, after: $after) { edges { cursor node { id operation } } pageInfo { endCursor hasNextPage } } }`;

interface EventNode {
  id: string;
  type: string;
  sessionId: string;
}
interface LogPage {
  edges: { cursor: string; node: { id: string; operation: string } }[];
  pageInfo: { endCursor: string | null; hasNextPage: boolean };
}

const latest = async (t: TestApp, key: string) =>
  (await ok<{ latestSessionEventId: string | null }>(t.app, { key, query: LATEST }))
    .latestSessionEventId;

/** Every event of the key's product and env after `after`, replayed over SSE. */
async function eventsAfter(
  server: TestServer,
  key: string,
  after: string,
  count: number,
): Promise<EventNode[]> {
  const received = subscribeSse<EventNode>(server.url, key, EVENTS, { after }, 'sessionEvents');
  try {
    return await received.waitFor(count, 20_000);
  } finally {
    received.stop();
  }
}

const logPage = async (t: TestApp, key: string, first: number, after?: string) =>
  (await ok<{ activityLog: LogPage }>(t.app, { key, query: LOG, variables: { first, after } }))
    .activityLog;

/** Another product's traffic: starts, revokes (events and log rows), in parallel. */
async function trafficOf(t: TestApp, key: string, tag: string, n: number): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, async () => {
      const s = await start(t, key, tag);
      await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: s.sessionId } });
    }),
  );
}

describe('ids and cursors per product', () => {
  it('event ids and latestSessionEventId count the product’s own events: another product’s traffic, even concurrent, never moves them', async ({
    t,
    server,
  }) => {
    const mine = await newProduct(t);
    const theirs = await newProduct(t);
    const key = mine.secret.dev;
    const tag = await newConfig(t, key);
    const theirTag = await newConfig(t, theirs.secret.dev);

    // Their traffic first: my first event is still number 1.
    await trafficOf(t, theirs.secret.dev, theirTag, 10);
    expect(await latest(t, key)).toBeNull();
    const first = await start(t, key, tag);
    expect(await latest(t, key)).toBe('1');

    // Their traffic, concurrent with mine: my ids go on 2, 3, ... without a gap.
    const mineDuring = Promise.all(Array.from({ length: 5 }, () => start(t, key, tag)));
    await Promise.all([trafficOf(t, theirs.secret.dev, theirTag, 20), mineDuring]);
    expect(await latest(t, key)).toBe('6');
    const events = await eventsAfter(server, key, '0', 6);
    expect(events.map((e) => e.id)).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(events[0]).toMatchObject({ type: 'STARTED', sessionId: first.sessionId });

    // Theirs are numbered in their own product too (each start and revoke is one event).
    expect(await latest(t, theirs.secret.dev)).toBe('60');
    // Another env of my product has its own numbering.
    expect(await latest(t, mine.secret.prd)).toBeNull();

    // Resuming after my last id gives exactly what came next, whatever happened elsewhere.
    await trafficOf(t, theirs.secret.dev, theirTag, 5);
    const next = await start(t, key, tag);
    const resumed = await eventsAfter(server, key, '6', 1);
    expect(resumed.map((e) => [e.id, e.sessionId])).toEqual([['7', next.sessionId]]);
  });

  it('activity entry ids and log cursors count the product’s own entries; paging is unchanged by another product’s writes', async ({
    t,
  }) => {
    const mine = await newProduct(t);
    const theirs = await newProduct(t);
    const key = mine.secret.dev;
    const tag = await newConfig(t, key);
    const theirTag = await newConfig(t, theirs.secret.dev);

    await trafficOf(t, theirs.secret.dev, theirTag, 10);
    await Promise.all([
      trafficOf(t, theirs.secret.dev, theirTag, 10),
      // My 4 starts one after another (their operation times, and so the log's order, are then
      // those of their ids), while the other product writes.
      (async () => {
        for (let i = 0; i < 4; i++) await start(t, key, tag);
      })(),
    ]);
    const page = await logPage(t, key, 2);
    // Newest first: 4 starts are entries 4..1.
    expect(page.edges.map((e) => e.node.id)).toEqual(['4', '3']);
    const cursor = page.pageInfo.endCursor!;

    // Their writes in between do not change my ids, my cursors, or the next page.
    await trafficOf(t, theirs.secret.dev, theirTag, 10);
    const again = await logPage(t, key, 2);
    expect(again.edges.map((e) => [e.node.id, e.cursor])).toEqual(
      page.edges.map((e) => [e.node.id, e.cursor]),
    );
    const rest = await logPage(t, key, 10, cursor);
    expect(rest.edges.map((e) => e.node.id)).toEqual(['2', '1']);
    expect(rest.pageInfo.hasNextPage).toBe(false);
    // A cursor says nothing beyond the entry's own time and number.
    const decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as string[];
    expect(decoded[1]).toBe('3');

    // Their own entries are numbered 1..60 in their product (60 operations). The log is in
    // operation-time order and numbers are drawn when a batch is written, so compare as a set.
    const theirAll = await logPage(t, theirs.secret.dev, 100);
    expect(theirAll.edges.map((e) => Number(e.node.id)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 60 }, (_, i) => i + 1),
    );
    // And a failed call shows nothing of anyone else either.
    const bad = await gql(t.app, { key, query: LOG, variables: { after: 'garbage' } });
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

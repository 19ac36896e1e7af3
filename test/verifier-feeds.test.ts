import postgres from 'postgres';
import { createLocalVerifier } from '../src/client/index.js';
import { SEQUENCER_LOCK } from '../src/domain/events.js';
import { TEST_DATABASE_URL } from './support/app.js';
import { start } from './support/fixtures.js';
import {
  listen,
  subscribeWs,
  waitUntil,
  wsClient,
  wsUrlOf,
  type Received,
} from './support/live.js';
import { expect } from 'vitest';
import { describe, it } from './support/test.js';

/**
 * verifierFeed heartbeats cost the same whatever the number of feeds: at most one a second per
 * feed, one read shared by every feed of the same scope and tags, and a cap on the feeds one key
 * may hold open (Hardening III). A local verifier refuses a heartbeat the server would refuse.
 */

const FEED = `subscription($tags: [String!]!, $after: ID!, $heartbeatMs: Int) {
  verifierFeed(tags: $tags, after: $after, heartbeatMs: $heartbeatMs) {
    position at entry { sessionId } notBefore { notBefore } } }`;

interface FeedMessage {
  position: string;
  at: string;
  entry: { sessionId: string } | null;
  notBefore: unknown[] | null;
}

const HEARTBEAT_READ = /select max\(id\) from session_events/;

describe('verifierFeed heartbeats', () => {
  it('a heartbeat more often than once a second is refused', async ({ t, key, config }) => {
    // Over SSE, a subscription's validation error is its one event.
    const response = await t.app.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        authorization: `Bearer ${key}`,
      },
      body: JSON.stringify({
        query: FEED,
        variables: { tags: [config], after: '0', heartbeatMs: 100 },
      }),
    });
    const text = await response.text();
    expect(text).toContain('BAD_USER_INPUT');
    expect(text).toContain('heartbeatMs');
  });

  it('a local verifier asks for no heartbeat the server would refuse', () => {
    expect(() =>
      createLocalVerifier({
        url: 'http://127.0.0.1:9/graphql',
        key: 'sk',
        tags: ['t'],
        heartbeatMs: 100,
      }),
    ).toThrow(/heartbeatMs/);
  });

  it('20 feeds of one key and tags share their heartbeat reads', async ({
    t,
    server,
    key,
    config,
  }) => {
    const client = wsClient(wsUrlOf(server.url), key);
    const feeds: Received<FeedMessage>[] = [];
    try {
      const before = t.statements.length;
      for (let i = 0; i < 20; i++)
        feeds.push(
          subscribeWs<FeedMessage>(client, FEED, { tags: [config], after: '0' }, 'verifierFeed'),
        );
      // Three heartbeats each at least: 60 heartbeats or more in all.
      await Promise.all(feeds.map((f) => f.waitFor(3, 30_000)));
      const reads = t.statements.slice(before).filter((s) => HEARTBEAT_READ.test(s)).length;
      const heartbeats = feeds.reduce((n, f) => n + f.items.filter((m) => !m.entry).length, 0);
      // Unshared, every heartbeat would be a read of its own; shared, one read serves the 20
      // feeds that ask together (whatever the machine's speed, they ask in step).
      expect(reads).toBeGreaterThan(0);
      expect(reads * 4).toBeLessThanOrEqual(heartbeats);
    } finally {
      for (const f of feeds) f.stop();
      await client.dispose();
    }
  });

  it('a key holds at most MAX_VERIFIER_FEEDS_PER_KEY feeds on an instance; ending one frees its place', async ({
    key,
    config,
    instance,
  }) => {
    const limited = await instance({ maxVerifierFeedsPerKey: 3 });
    const server = await listen(limited);
    const client = wsClient(wsUrlOf(server.url), key);
    const feeds: Received<FeedMessage>[] = [];
    try {
      for (let i = 0; i < 3; i++)
        feeds.push(
          subscribeWs<FeedMessage>(client, FEED, { tags: [config], after: '0' }, 'verifierFeed'),
        );
      await Promise.all(feeds.map((f) => f.waitFor(1, 30_000)));
      const fourth = subscribeWs<FeedMessage>(
        client,
        FEED,
        { tags: [config], after: '0' },
        'verifierFeed',
      );
      await fourth.ended;
      expect(JSON.stringify(fourth.errors)).toContain('LIMIT_EXCEEDED');
      expect(JSON.stringify(fourth.errors)).toContain('MAX_VERIFIER_FEEDS_PER_KEY');
      feeds[0]!.stop();
      // The place is freed when the server has ended the feed: a new one then opens.
      let again: Received<FeedMessage> | undefined;
      await waitUntil(async () => {
        again?.stop();
        again = subscribeWs<FeedMessage>(
          client,
          FEED,
          { tags: [config], after: '0' },
          'verifierFeed',
        );
        const first = await Promise.race([
          again.waitFor(1, 30_000).then(() => 'beat' as const),
          again.ended.then(() => 'ended' as const),
        ]);
        return first === 'beat';
      }, 'a freed place');
      again!.stop();
    } finally {
      for (const f of feeds) f.stop();
      await client.dispose();
      await server.close();
    }
  });

  it.runIf(TEST_DATABASE_URL)(
    'no heartbeat while a committed event of the scope waits for its id; the event comes first once numbered',
    async ({ t, server, key, config }) => {
      const client = wsClient(wsUrlOf(server.url), key);
      const feed = subscribeWs<FeedMessage>(
        client,
        FEED,
        { tags: [config], after: '0' },
        'verifierFeed',
      );
      const holder = postgres(TEST_DATABASE_URL!, { max: 1, onnotice: () => {} });
      try {
        await feed.waitFor(1, 30_000);
        // Hold the sequencer's lock: committed events stay unnumbered.
        await holder`select pg_advisory_lock(${SEQUENCER_LOCK}::bigint)`;
        const session = await start(t, key, config);
        await t.app.fetch('http://localhost/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify({
            query: `mutation($tag: String!, $sessionId: ID!) { revokeSession(tag: $tag, sessionId: $sessionId) { id } }`,
            variables: { tag: config, sessionId: session.sessionId },
          }),
        });
        const heard = feed.items.length;
        // Three heartbeat intervals with the revocation committed and unnumbered: a heartbeat
        // now would tell the verifier it is current while it has not heard the revocation.
        await new Promise((resolve) => setTimeout(resolve, 3_000));
        expect(feed.items.length).toBe(heard);
        await holder`select pg_advisory_unlock(${SEQUENCER_LOCK}::bigint)`;
        const got = await feed.waitFor(heard + 2, 30_000);
        expect(got[heard]!.entry?.sessionId).toBe(session.sessionId);
      } finally {
        feed.stop();
        await client.dispose();
        await holder.end();
      }
    },
  );
});

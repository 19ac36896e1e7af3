import { expect } from 'vitest';
import { gql } from './support/graphql.js';
import { start } from './support/fixtures.js';

const IS_VALID = `query($tag: String!, $token: String!) { isSessionValid(tag: $tag, token: $token) }`;
import { describe, it } from './support/test.js';

/**
 * Dashboards cannot take the pool from everyone else (Hardening III): each weighs a fifth of
 * the cost limit for its scan of the tag's sessions, and only INSIGHT_CONCURRENCY of them run at
 * once on an instance; the rest wait their turn, and verify, start, refresh and revoke keep
 * their connections.
 */
const aliases = (n: number) =>
  `query($tag: String!) { ${Array.from(
    { length: n },
    (_, i) =>
      `d${i}: sessionDashboard(tag: $tag, from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z", groupBy: DAY) { totalSessions }`,
  ).join(' ')} }`;

describe('dashboards under load', () => {
  it('one request holds at most four dashboards: 20 aliases are LIMIT_EXCEEDED, 4 answer', async ({
    t,
    key,
    config,
  }) => {
    const refused = await gql(t.app, { key, query: aliases(20), variables: { tag: config } });
    expect(refused.errors?.[0]?.extensions?.code).toBe('LIMIT_EXCEEDED');
    expect(refused.data ?? null).toBeNull();
    const five = await gql(t.app, { key, query: aliases(5), variables: { tag: config } });
    expect(five.errors?.[0]?.extensions?.code).toBe('LIMIT_EXCEEDED');
    const four = await gql(t.app, { key, query: aliases(4), variables: { tag: config } });
    expect(four.errors).toBeUndefined();
    expect(Object.keys(four.data!)).toHaveLength(4);
  });

  it('6 requests of 4 dashboards at once run 1 at a time (INSIGHT_CONCURRENCY’s default), all answer, and starts and verifies go on meanwhile', async ({
    t,
    key,
    config,
  }) => {
    const gate = t.services.insightGate;
    expect(gate.running).toBe(0);
    gate.highWater = 0;
    const dashboards = Array.from({ length: 6 }, () =>
      gql(t.app, { key, query: aliases(4), variables: { tag: config } }),
    );
    // While they run (or wait), the hot path answers.
    const session = await start(t, key, config);
    const valid = await gql(t.app, {
      key,
      query: IS_VALID,
      variables: { tag: config, token: session.token },
    });
    expect(valid.data?.isSessionValid).toBe(true);
    const answers = await Promise.all(dashboards);
    for (const answer of answers) {
      expect(answer.errors).toBeUndefined();
      expect(Object.keys(answer.data!)).toHaveLength(4);
    }
    expect(gate.highWater).toBe(1);
    expect(gate.running).toBe(0);
  });
});

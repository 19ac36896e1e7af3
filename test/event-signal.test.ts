import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import { recordEvents } from '../src/domain/events.js';
import type { TestApp } from './support/app.js';
import { configIdsOf, REFRESH, REVOKE, rowsOf, start } from './support/fixtures.js';
import { ok } from './support/graphql.js';
import { describe, it } from './support/test.js';

/**
 * Listens to the database's "events written" signal (the sequencer's cue); each signal reads,
 * at once, which events of `sessionId` are visible to another connection: a signal given
 * before its events committed would find them missing.
 */
function watchSignals(t: TestApp, sessionId: () => string | undefined) {
  const seen: Promise<string[]>[] = [];
  const stop = t.database.onEventsWritten(() => {
    const id = sessionId();
    if (!id) return;
    seen.push(
      t.database.db
        .execute(sql`select type from session_events where session_id = ${id} order by id`)
        .then((result) => rowsOf<{ type: string }>(result).map((r) => r.type)),
    );
  });
  return { seen, stop };
}

describe('the "events written" signal: given by the code that writes events, after they commit', () => {
  it('a refresh and a revocation each signal once their event is visible; a rolled-back write signals nothing', async ({
    t,
    product,
    key,
    config,
  }) => {
    let sessionId: string | undefined;
    const signals = watchSignals(t, () => sessionId);
    try {
      // (The start is checked on its own below: its id is known only once it answers.)
      const started = await start(t, key, config);
      sessionId = started.sessionId;
      await ok(t.app, {
        key,
        query: REFRESH,
        variables: { tag: config, refreshToken: started.refreshToken },
      });
      expect(signals.seen.length).toBeGreaterThanOrEqual(1);
      expect(await signals.seen.at(-1)).toEqual(['STARTED', 'REFRESHED']);

      const afterRefresh = signals.seen.length;
      await ok(t.app, { key, query: REVOKE, variables: { tag: config, sessionId } });
      expect(signals.seen.length).toBe(afterRefresh + 1);
      expect(await signals.seen.at(-1)).toEqual(['STARTED', 'REFRESHED', 'REVOKED']);

      // A transaction that writes an event and then fails: rolled back, so no signal.
      const { productId } = await configIdsOf(t, product.tag, config);
      const afterRevoke = signals.seen.length;
      await expect(
        t.database.db.transaction(async (tx) => {
          await recordEvents(tx, [
            {
              productId,
              env: 'dev',
              sessionId: sessionId!,
              tag: config,
              identifier: 'user-123',
              type: 'EXPIRED',
            },
          ]);
          throw new Error('rolled back on purpose');
        }),
      ).rejects.toThrow('rolled back on purpose');
      expect(signals.seen.length).toBe(afterRevoke);
      expect(await Promise.all(signals.seen)).not.toContainEqual(
        expect.arrayContaining(['EXPIRED']),
      );
    } finally {
      signals.stop();
    }
  });

  it('a start signals after its event committed', async ({ t, key, config }) => {
    // Every signal during the start reads the newest STARTED event of this config's sessions.
    const seen: Promise<number>[] = [];
    const stop = t.database.onEventsWritten(() => {
      seen.push(
        t.database.db
          .execute(sql`select count(*)::int as n from session_events where tag = ${config}`)
          .then((result) => rowsOf<{ n: number }>(result)[0]?.n ?? 0),
      );
    });
    try {
      await start(t, key, config);
      expect(seen).toHaveLength(1);
      expect(await seen[0]).toBe(1);
      await Promise.all([start(t, key, config), start(t, key, config)]);
      expect(seen).toHaveLength(3);
      // Each signal came after its own start committed: at least 2 of 3 visible at the first.
      const counts = await Promise.all(seen.slice(1));
      expect(Math.min(...counts)).toBeGreaterThanOrEqual(2);
      expect(Math.max(...counts)).toBe(3);
    } finally {
      stop();
    }
  });
});

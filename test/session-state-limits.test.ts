import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { failure, ok } from './support/graphql.js';
import {
  REVOKE,
  eventTypesOf,
  newConfig,
  newProduct,
  rowsOf,
  start,
  type Started,
} from './support/fixtures.js';
import {
  bindSessionStateApp,
  VERIFY_STATE,
  LIST,
  adaData,
  sessionById,
  execute,
} from './support/session-state.js';

/** The file's app (the `t` fixture), for the tests and the shared helpers. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
  bindSessionStateApp(app);
});

describe('sessions per identifier', () => {
  const sessionEventReasons = async (sessionId: string) =>
    rowsOf<{ type: string; reason: string | null }>(
      await execute(
        sql`select type, reason from session_events where session_id = ${sessionId} order by id`,
      ),
    );

  it('with maxSessionsPerIdentifier 2, a third session revokes the oldest with reason session_limit', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key, { maxSessionsPerIdentifier: 2 });
    const s = { product, key, tag };
    const bob = await start(t, key, tag, { userId: 'user-bob' });
    const ada: Started[] = [];
    for (let i = 0; i < 3; i++) ada.push(await start(t, key, tag, adaData()));

    const oldest = await sessionById(s, ada[0]!.sessionId);
    expect(oldest).toMatchObject({ status: 'REVOKED', revokeReason: 'session_limit' });
    expect(await sessionEventReasons(ada[0]!.sessionId)).toEqual([
      { type: 'STARTED', reason: null },
      { type: 'REVOKED', reason: 'session_limit' },
    ]);
    expect(
      await failure(t.app, { key, query: VERIFY_STATE, variables: { tag, token: ada[0]!.token } }),
    ).toMatchObject({ code: 'SESSION_REVOKED' });
    for (const live of ada.slice(1)) {
      expect((await sessionById(s, live.sessionId)).status).toBe('ACTIVE');
      expect(await eventTypesOf(t, live.sessionId)).toEqual(['STARTED']);
    }
    const listed = await ok(t.app, {
      key,
      query: LIST,
      variables: { tag, identifier: 'user-ada' },
    });
    expect(listed.sessions.totalCount).toBe(2);

    // Other identifiers keep theirs.
    expect((await sessionById(s, bob.sessionId)).status).toBe('ACTIVE');
    expect(await eventTypesOf(t, bob.sessionId)).toEqual(['STARTED']);

    // A fourth revokes the next oldest.
    await start(t, key, tag, adaData());
    expect((await sessionById(s, ada[1]!.sessionId)).revokeReason).toBe('session_limit');
    expect((await sessionById(s, ada[2]!.sessionId)).status).toBe('ACTIVE');
  });

  it('sessions already ended do not count toward the cap', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key, { maxSessionsPerIdentifier: 2 });
    const s = { product, key, tag };
    const first = await start(t, key, tag, adaData());
    const second = await start(t, key, tag, adaData());
    await ok(t.app, { key, query: REVOKE, variables: { tag, sessionId: first.sessionId } });
    const third = await start(t, key, tag, adaData());
    expect((await sessionById(s, second.sessionId)).status).toBe('ACTIVE');
    expect((await sessionById(s, third.sessionId)).status).toBe('ACTIVE');
    expect((await sessionById(s, first.sessionId)).revokeReason).toBe('revoked');

    await execute(
      sql`update sessions set expires_at = now() - interval '2 minutes', refresh_expires_at = now() - interval '1 minute' where id = ${second.sessionId}`,
    );
    const fourth = await start(t, key, tag, adaData());
    expect((await sessionById(s, third.sessionId)).status).toBe('ACTIVE');
    expect((await sessionById(s, fourth.sessionId)).status).toBe('ACTIVE');
    expect((await sessionById(s, second.sessionId)).revokedAt).toBeNull();
  });

  it('10 concurrent starts for one identifier under a cap of 3 leave exactly 3 live', async () => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key, { maxSessionsPerIdentifier: 3 });
    const s = { product, key, tag };
    const bob = await start(t, key, tag, { userId: 'user-bob' });

    const started = await Promise.all(
      Array.from({ length: 10 }, () => start(t, key, tag, adaData())),
    );
    const listed = await ok(t.app, {
      key,
      query: LIST,
      variables: { tag, identifier: 'user-ada' },
    });
    expect(listed.sessions.totalCount).toBe(3);
    expect(listed.sessions.edges).toHaveLength(3);

    const sessions = await Promise.all(started.map((x) => sessionById(s, x.sessionId)));
    const live = sessions.filter((x) => x.status === 'ACTIVE');
    const revoked = sessions.filter((x) => x.status === 'REVOKED');
    expect(live).toHaveLength(3);
    expect(revoked).toHaveLength(7);
    for (const r of revoked) expect(r.revokeReason).toBe('session_limit');
    expect(new Set(live.map((x) => x.id))).toEqual(
      new Set(listed.sessions.edges.map((e: { node: { id: string } }) => e.node.id)),
    );
    const revokedEvents = rowsOf<{ n: number | string }>(
      await execute(
        sql`select count(*) as n from session_events where type = 'REVOKED' and reason = 'session_limit' and session_id in (${sql.join(
          started.map((x) => sql`${x.sessionId}::uuid`),
          sql`, `,
        )})`,
      ),
    );
    expect(Number(revokedEvents[0]!.n)).toBe(7);
    expect((await sessionById(s, bob.sessionId)).status).toBe('ACTIVE');
  });
});

import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { beforeAll, describe, it } from './support/test.js';
import { failure, ok } from './support/graphql.js';
import { REFRESH, REVOKE, eventTypesOf, sessionRowOf, start } from './support/fixtures.js';
import {
  bindSessionStateApp,
  LIST,
  adaData,
  setup,
  change,
  changeFails,
  verify,
  verifyFails,
  sessionById,
  isValid,
  refresh,
  execute,
  expectNear,
} from './support/session-state.js';

/** The file's app (the `t` fixture), for the tests and the shared helpers. */
let t: TestApp;
beforeAll(({ t: app }) => {
  t = app;
  bindSessionStateApp(app);
});

describe('session time', () => {
  it('extendSession moves expiresAt later by the seconds and records an EXTENDED event', async () => {
    const s = await setup({}, adaData(), { expiresIn: 600 });
    const before = await sessionById(s, s.started.sessionId);
    const extended = await change(s, 'extendSession', { seconds: 120 });
    expect(Date.parse(extended.expiresAt) - Date.parse(before.expiresAt)).toBe(120_000);
    // Time does not touch the data's version.
    expect(extended.version).toBe(before.version);
    expect(extended.data).toEqual(before.data);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED', 'EXTENDED']);
    expect((await verify(s)).expiresAt).toBe(extended.expiresAt);
    expect(extended.timeRemaining).toBeGreaterThan(700);
    expect(extended.timeRemaining).toBeLessThanOrEqual(720);

    const twice = await change(s, 'extendSession', { seconds: 30 });
    expect(Date.parse(twice.expiresAt) - Date.parse(extended.expiresAt)).toBe(30_000);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED', 'EXTENDED', 'EXTENDED']);
  });

  it('extendSession on a session whose token expiry has passed extends from now and revives its token', async () => {
    const s = await setup({}, adaData(), { expiresIn: 600 });
    await execute(
      sql`update sessions set expires_at = now() - interval '1 hour' where id = ${s.started.sessionId}`,
    );
    expect(await verifyFails(s)).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect((await sessionById(s, s.started.sessionId)).timeRemaining).toBe(0);

    const extended = await change(s, 'extendSession', { seconds: 300 });
    expectNear(extended.expiresAt, Date.now() + 300_000);
    expect(extended.status).toBe('ACTIVE');
    expect((await verify(s)).expiresAt).toBe(extended.expiresAt);
  });

  it('a session started with expiresIn 10 and extended by 60 right away still verifies after 11 seconds', async () => {
    const s = await setup({}, adaData(), { expiresIn: 10 });
    const control = await start(t, s.key, s.tag, adaData(), { expiresIn: 10 });
    const extended = await change(s, 'extendSession', { seconds: 60 });
    expect(Date.parse(extended.expiresAt) - Date.parse(s.started.expiresAt)).toBe(60_000);

    await sleep(11_000);
    const verified = await verify(s);
    expect(verified).toMatchObject({
      sessionId: s.started.sessionId,
      expiresAt: extended.expiresAt,
    });
    expect(await isValid(s, s.started.token)).toBe(true);
    // The one not extended has run out.
    expect(await verifyFails(s, control.token)).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect(await isValid(s, control.token)).toBe(false);
  }, 30_000);

  it('extendSession past the refresh token’s expiry, or by less than a second, is BAD_USER_INPUT on seconds', async () => {
    // Tokens live 7 hours, refresh tokens 8: one more hour fits, two do not.
    const s = await setup({ refreshExpiresIn: 8 * 3_600 });
    const before = await sessionById(s, s.started.sessionId);
    const beforeRow = await sessionRowOf(t, s.started.sessionId);
    for (const seconds of [7_200, 3_601, 0, -60]) {
      expect(
        await changeFails(s, 'extendSession', s.started.sessionId, { seconds }),
        String(seconds),
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'seconds' });
    }
    expect(await sessionRowOf(t, s.started.sessionId)).toEqual(beforeRow);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED']);

    const extended = await change(s, 'extendSession', { seconds: 3_600 });
    expect(extended.expiresAt).toBe(before.refreshExpiresAt);
    expect(
      await changeFails(s, 'extendSession', s.started.sessionId, { seconds: 1 }),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'seconds' });
  });

  it('setSessionExpiration sets expiresAt to the instant given and records an EXTENDED event', async () => {
    const s = await setup();
    const later = new Date(Math.ceil(Date.now() / 1000) * 1000 + 2 * 86_400_000).toISOString();
    const set = await change(s, 'setSessionExpiration', { expiresAt: later });
    expect(set.expiresAt).toBe(later);
    expect(set.version).toBe(1);
    expect((await verify(s)).expiresAt).toBe(later);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED', 'EXTENDED']);

    // It may also bring the expiry closer.
    const sooner = new Date(Math.ceil(Date.now() / 1000) * 1000 + 120_000).toISOString();
    const shortened = await change(s, 'setSessionExpiration', { expiresAt: sooner });
    expect(shortened.expiresAt).toBe(sooner);
    expect(shortened.timeRemaining).toBeGreaterThan(110);
    expect(shortened.timeRemaining).toBeLessThanOrEqual(120);
    expect((await verify(s)).expiresAt).toBe(sooner);
  });

  it('setSessionExpiration in the past or after the refresh token’s expiry is BAD_USER_INPUT on expiresAt', async () => {
    const s = await setup();
    const before = await sessionById(s, s.started.sessionId);
    const beforeRow = await sessionRowOf(t, s.started.sessionId);
    const refreshEnd = Date.parse(before.refreshExpiresAt);
    for (const instant of [Date.now() - 60_000, Date.now() - 86_400_000, refreshEnd + 1_000]) {
      expect(
        await changeFails(s, 'setSessionExpiration', s.started.sessionId, {
          expiresAt: new Date(instant).toISOString(),
        }),
        new Date(instant).toISOString(),
      ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'expiresAt' });
    }
    expect(await sessionRowOf(t, s.started.sessionId)).toEqual(beforeRow);
    expect(await eventTypesOf(t, s.started.sessionId)).toEqual(['STARTED']);

    // The refresh token's expiry itself is the latest allowed.
    const set = await change(s, 'setSessionExpiration', { expiresAt: before.refreshExpiresAt });
    expect(set.expiresAt).toBe(before.refreshExpiresAt);
  });

  it('timeRemaining is the seconds until expiresAt, and 0 once it has passed', async () => {
    const s = await setup({}, adaData(), { expiresIn: 600 });
    const session = await sessionById(s, s.started.sessionId);
    const expected = (Date.parse(session.expiresAt) - Date.now()) / 1000;
    expect(Math.abs(session.timeRemaining - expected)).toBeLessThanOrEqual(2);
    expect(session.timeRemaining).toBeGreaterThan(590);
    expect(session.timeRemaining).toBeLessThanOrEqual(600);

    await execute(
      sql`update sessions set expires_at = now() - interval '5 seconds' where id = ${s.started.sessionId}`,
    );
    expect((await sessionById(s, s.started.sessionId)).timeRemaining).toBe(0);
  });

  it('touchSession records activity now, moving lastActiveAt and idleExpiresAt', async () => {
    const s = await setup({ idleTimeout: 600 });
    await execute(
      sql`update sessions set last_active_at = now() - interval '5 minutes' where id = ${s.started.sessionId}`,
    );
    const before = await sessionById(s, s.started.sessionId);
    expectNear(before.lastActiveAt, Date.now() - 300_000);
    expect(Date.parse(before.idleExpiresAt) - Date.parse(before.lastActiveAt)).toBe(600_000);

    const touched = await change(s, 'touchSession');
    expectNear(touched.lastActiveAt, Date.now());
    expect(Date.parse(touched.idleExpiresAt) - Date.parse(touched.lastActiveAt)).toBe(600_000);
    expectNear(touched.idleExpiresAt, Date.now() + 600_000);
    // Activity is not a change of the data, nor of the expiry.
    expect(touched.version).toBe(before.version);
    expect(touched.data).toEqual(before.data);
    expect(touched.expiresAt).toBe(before.expiresAt);
    expect(await sessionById(s, s.started.sessionId)).toMatchObject({
      lastActiveAt: touched.lastActiveAt,
      idleExpiresAt: touched.idleExpiresAt,
    });
  });

  it('a session without an idle timeout has no idleExpiresAt, and touch still moves lastActiveAt', async () => {
    const s = await setup();
    await execute(
      sql`update sessions set last_active_at = now() - interval '1 day' where id = ${s.started.sessionId}`,
    );
    expect((await sessionById(s, s.started.sessionId)).idleExpiresAt).toBeNull();
    const touched = await change(s, 'touchSession');
    expect(touched.idleExpiresAt).toBeNull();
    expectNear(touched.lastActiveAt, Date.now());
    expect(touched.status).toBe('ACTIVE');
  });
});

describe('idle timeout', () => {
  it('a session unused for longer than idleTimeout is over: verify, refresh and touch are TOKEN_EXPIRED, isSessionValid false, status EXPIRED', async () => {
    const s = await setup({ idleTimeout: 10 });
    const verified = await verify(s);
    expect(verified.session.status).toBe('ACTIVE');
    expect(
      Date.parse(verified.session.idleExpiresAt) - Date.parse(verified.session.lastActiveAt),
    ).toBe(10_000);
    expect(await isValid(s, s.started.token)).toBe(true);

    await execute(
      sql`update sessions set last_active_at = now() - interval '1 hour' where id = ${s.started.sessionId}`,
    );
    expect(await verifyFails(s)).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect(
      await failure(t.app, {
        key: s.key,
        query: REFRESH,
        variables: { tag: s.tag, refreshToken: s.started.refreshToken },
      }),
    ).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect(await isValid(s, s.started.token)).toBe(false);
    const session = await sessionById(s, s.started.sessionId);
    expect(session.status).toBe('EXPIRED');
    expect(session.revokedAt).toBeNull();
    expect(await changeFails(s, 'touchSession', s.started.sessionId)).toMatchObject({
      code: 'TOKEN_EXPIRED',
    });
    expect(
      await changeFails(s, 'setSessionValue', s.started.sessionId, { key: 'k', value: 1 }),
    ).toMatchObject({ code: 'TOKEN_EXPIRED' });
    expect(
      await changeFails(s, 'extendSession', s.started.sessionId, { seconds: 60 }),
    ).toMatchObject({ code: 'TOKEN_EXPIRED' });
    // Not among the identifier's active sessions, and still over after all those attempts.
    const listed = await ok(t.app, {
      key: s.key,
      query: LIST,
      variables: { tag: s.tag, identifier: 'user-ada' },
    });
    expect(listed.sessions.totalCount).toBe(0);
    expect(await verifyFails(s)).toMatchObject({ code: 'TOKEN_EXPIRED' });
  });

  it('an idle-expired session no longer counts in its config’s activeSessionCount', async () => {
    const s = await setup({ idleTimeout: 10 });
    await start(t, s.key, s.tag);
    const count = async () =>
      (
        await ok(t.app, {
          key: s.key,
          query: `query($tag: String!) { sessionConfig(tag: $tag) { activeSessionCount } }`,
          variables: { tag: s.tag },
        })
      ).sessionConfig.activeSessionCount;
    expect(await count()).toBe(2);
    await execute(
      sql`update sessions set last_active_at = now() - interval '1 hour' where id = ${s.started.sessionId}`,
    );
    expect((await sessionById(s, s.started.sessionId)).status).toBe('EXPIRED');
    expect(await count()).toBe(1);
  });

  it('verify and refresh count as activity and push the idle expiry back', async () => {
    const s = await setup({ idleTimeout: 120 });
    await execute(
      sql`update sessions set last_active_at = now() - interval '100 seconds' where id = ${s.started.sessionId}`,
    );
    const verified = await verify(s);
    expectNear(verified.session.lastActiveAt, Date.now());
    expectNear(verified.session.idleExpiresAt, Date.now() + 120_000);

    await execute(
      sql`update sessions set last_active_at = now() - interval '100 seconds' where id = ${s.started.sessionId}`,
    );
    const refreshed = await refresh(s);
    const session = await sessionById(s, s.started.sessionId);
    expectNear(session.lastActiveAt, Date.now());
    expect(session.status).toBe('ACTIVE');
    expect(await isValid(s, refreshed.token)).toBe(true);
  });

  it('verify records activity at most once a minute', async () => {
    const s = await setup();
    await execute(
      sql`update sessions set last_active_at = now() - interval '2 minutes' where id = ${s.started.sessionId}`,
    );
    const stale = await sessionRowOf(t, s.started.sessionId);

    t.statements.length = 0;
    const first = await verify(s);
    expect(t.statements.filter((q) => /^\s*update "sessions"/i.test(q))).toHaveLength(1);
    expectNear(first.session.lastActiveAt, Date.now());
    const touched = await sessionRowOf(t, s.started.sessionId);
    expect(touched!.last_active_at).not.toBe(stale!.last_active_at);
    expect((await sessionById(s, s.started.sessionId)).lastActiveAt).toBe(
      first.session.lastActiveAt,
    );

    // Within the minute: no write at all, and lastActiveAt stays where it was.
    t.statements.length = 0;
    const second = await verify(s);
    const third = await verify(s);
    expect(t.statements.filter((q) => /^\s*update\b/i.test(q))).toEqual([]);
    expect(second.session.lastActiveAt).toBe(first.session.lastActiveAt);
    expect(third.session.lastActiveAt).toBe(first.session.lastActiveAt);
    expect(await sessionRowOf(t, s.started.sessionId)).toEqual(touched);
  });
});

describe('isSessionValid', () => {
  it('is true for a live session and false, with no error, for a revoked, expired or garbage token', async () => {
    const s = await setup();
    const revoked = await start(t, s.key, s.tag);
    const tokenExpired = await start(t, s.key, s.tag);
    const refreshExpired = await start(t, s.key, s.tag);
    await ok(t.app, {
      key: s.key,
      query: REVOKE,
      variables: { tag: s.tag, sessionId: revoked.sessionId },
    });
    await execute(
      sql`update sessions set expires_at = now() - interval '1 minute' where id = ${tokenExpired.sessionId}`,
    );
    await execute(
      sql`update sessions set expires_at = now() - interval '2 minutes', refresh_expires_at = now() - interval '1 minute' where id = ${refreshExpired.sessionId}`,
    );

    expect(await isValid(s, s.started.token)).toBe(true);
    expect(await isValid(s, revoked.token)).toBe(false);
    expect(await isValid(s, tokenExpired.token)).toBe(false);
    expect(await isValid(s, refreshExpired.token)).toBe(false);
    for (const garbage of ['garbage', '', 'a.b.c.d.e', s.started.token.slice(0, -4) + 'AAAA']) {
      expect(await isValid(s, garbage), garbage).toBe(false);
    }
    // Asking does not change anything.
    expect(await isValid(s, s.started.token)).toBe(true);
  });
});

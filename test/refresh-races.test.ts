import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { describe, it } from './support/test.js';
import { createTestApp, type TestApp } from './support/app.js';
import { failure, gql, ok } from './support/graphql.js';
import {
  REFRESH,
  REVOKE,
  VERIFY,
  eventTypesOf,
  newConfig,
  newProduct,
  start,
  type Started,
} from './support/fixtures.js';

const SESSION = `query($id: ID!) { session(id: $id) { id status revokedAt revokeReason } }`;

const refreshCall = (key: string, tag: string, refreshToken: string) => ({
  key,
  query: REFRESH,
  variables: { tag, refreshToken },
});

async function refresh(app: TestApp, key: string, tag: string, refreshToken: string) {
  return (await ok<{ refreshSession: Started }>(app.app, refreshCall(key, tag, refreshToken)))
    .refreshSession;
}

async function sessionStatus(app: TestApp, key: string, id: string) {
  return (await ok(app.app, { key, query: SESSION, variables: { id } })).session;
}

describe('racing refreshes', () => {
  it('20 concurrent refreshes with one refresh token all succeed with the identical new pair', async ({
    t,
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const started = await start(t, key, tag);

    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        gql<{ refreshSession: Started }>(t.app, refreshCall(key, tag, started.refreshToken)),
      ),
    );
    for (const response of responses) expect(response.errors).toBeUndefined();
    const pairs = responses.map((r) => r.data!.refreshSession);
    const first = pairs[0]!;
    expect(first.refreshToken).not.toBe(started.refreshToken);
    expect(first.token).not.toBe(started.token);
    for (const pair of pairs) {
      expect(pair).toEqual(first);
    }
    expect(first.sessionId).toBe(started.sessionId);

    // One rotation: exactly one REFRESHED event.
    expect(await eventTypesOf(t, started.sessionId)).toEqual(['STARTED', 'REFRESHED']);
    expect((await sessionStatus(t, key, started.sessionId)).status).toBe('ACTIVE');

    // The new pair works, and its refresh token rotates once more.
    await ok(t.app, { key, query: VERIFY, variables: { tag, token: first.token } });
    const next = await refresh(t, key, tag, first.refreshToken);
    expect(next.refreshToken).not.toBe(first.refreshToken);
    expect(next.token).not.toBe(first.token);
    const verified = await ok(t.app, { key, query: VERIFY, variables: { tag, token: next.token } });
    expect(verified.verifySession.sessionId).toBe(started.sessionId);
    expect(await eventTypesOf(t, started.sessionId)).toEqual(['STARTED', 'REFRESHED', 'REFRESHED']);
  });

  it('within the grace window the old refresh token returns the same pair and revokes nothing', async ({
    t,
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const started = await start(t, key, tag);
    const first = await refresh(t, key, tag, started.refreshToken);
    const again = await refresh(t, key, tag, started.refreshToken);
    expect(again).toEqual(first);

    expect((await sessionStatus(t, key, started.sessionId)).status).toBe('ACTIVE');
    await ok(t.app, { key, query: VERIFY, variables: { tag, token: first.token } });
    const next = await refresh(t, key, tag, first.refreshToken);
    await ok(t.app, { key, query: VERIFY, variables: { tag, token: next.token } });
    expect(await eventTypesOf(t, started.sessionId)).toEqual(['STARTED', 'REFRESHED', 'REFRESHED']);
  });
});

describe('replay after the grace window', () => {
  it('a rotated refresh token presented after the window is REFRESH_TOKEN_REUSED and revokes the session', async () => {
    const short = await createTestApp({ refreshGraceSeconds: 1 });
    try {
      const product = await newProduct(short);
      const key = product.secret.dev;
      const tag = await newConfig(short, key);
      const started = await start(short, key, tag);
      const rotated = await refresh(short, key, tag, started.refreshToken);
      await sleep(2_500);

      const replay = await failure(short.app, refreshCall(key, tag, started.refreshToken));
      expect(replay.code).toBe('REFRESH_TOKEN_REUSED');

      // The whole session is revoked: the newest token and refresh token fail too.
      const verify = await failure(short.app, {
        key,
        query: VERIFY,
        variables: { tag, token: rotated.token },
      });
      expect(verify.code).toBe('SESSION_REVOKED');
      expect(await failure(short.app, refreshCall(key, tag, rotated.refreshToken))).toMatchObject({
        code: 'SESSION_REVOKED',
      });
      expect(await sessionStatus(short, key, started.sessionId)).toMatchObject({
        status: 'REVOKED',
        revokeReason: 'refresh_token_reused',
      });
      const events = await eventTypesOf(short, started.sessionId);
      expect(events.filter((e) => e === 'REUSE_DETECTED')).toHaveLength(1);
      expect(events).toContain('REVOKED');

      // Presenting it yet again does not record a second detection.
      expect(await failure(short.app, refreshCall(key, tag, started.refreshToken))).toMatchObject({
        code: 'SESSION_REVOKED',
      });
      expect(
        (await eventTypesOf(short, started.sessionId)).filter((e) => e === 'REUSE_DETECTED'),
      ).toHaveLength(1);
    } finally {
      await short.close();
    }
  });

  it('a session other than the replayed one is untouched by the detection', async () => {
    const short = await createTestApp({ refreshGraceSeconds: 1 });
    try {
      const product = await newProduct(short);
      const key = product.secret.dev;
      const tag = await newConfig(short, key);
      const victim = await start(short, key, tag);
      const bystander = await start(short, key, tag);
      await refresh(short, key, tag, victim.refreshToken);
      await sleep(2_500);
      expect(await failure(short.app, refreshCall(key, tag, victim.refreshToken))).toMatchObject({
        code: 'REFRESH_TOKEN_REUSED',
      });
      await ok(short.app, { key, query: VERIFY, variables: { tag, token: bystander.token } });
      expect((await sessionStatus(short, key, bystander.sessionId)).status).toBe('ACTIVE');
    } finally {
      await short.close();
    }
  });
});

describe('revoke racing refresh', () => {
  it('whatever the order, a session revoked while it refreshes ends revoked, with every token dead', async ({
    t,
  }) => {
    const product = await newProduct(t);
    const key = product.secret.dev;
    const tag = await newConfig(t, key);
    const outcomes = { refreshedFirst: 0, revokedFirst: 0 };

    for (let round = 0; round < 10; round++) {
      const started = await start(t, key, tag);
      const [revoked, refreshed] = await Promise.all([
        gql(t.app, { key, query: REVOKE, variables: { tag, sessionId: started.sessionId } }),
        gql<{ refreshSession: Started }>(t.app, refreshCall(key, tag, started.refreshToken)),
      ]);
      expect(revoked.errors, `round ${round}`).toBeUndefined();
      expect(revoked.data).toMatchObject({ revokeSession: { status: 'REVOKED' } });

      expect(await sessionStatus(t, key, started.sessionId), `round ${round}`).toMatchObject({
        status: 'REVOKED',
        revokeReason: 'revoked',
      });
      expect(
        await failure(t.app, { key, query: VERIFY, variables: { tag, token: started.token } }),
      ).toMatchObject({ code: 'SESSION_REVOKED' });
      expect(await failure(t.app, refreshCall(key, tag, started.refreshToken))).toMatchObject({
        code: 'SESSION_REVOKED',
      });

      if (refreshed.errors) {
        outcomes.revokedFirst++;
        expect(refreshed.errors[0]!.extensions?.code, `round ${round}`).toBe('SESSION_REVOKED');
      } else {
        outcomes.refreshedFirst++;
        const pair = refreshed.data!.refreshSession;
        expect(
          await failure(t.app, { key, query: VERIFY, variables: { tag, token: pair.token } }),
          `round ${round}`,
        ).toMatchObject({ code: 'SESSION_REVOKED' });
        expect(
          await failure(t.app, refreshCall(key, tag, pair.refreshToken)),
          `round ${round}`,
        ).toMatchObject({ code: 'SESSION_REVOKED' });
      }
    }
    expect(outcomes.refreshedFirst + outcomes.revokedFirst).toBe(10);
  });
});

import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { TestApp } from './support/app.js';
import { VERIFY, start } from './support/fixtures.js';
import { describe, it } from './support/test.js';
import { documentText, type Document } from './support/graphql.js';

/** The JSON log lines written since `from`, parsed. */
function linesSince(t: TestApp, from: number): Record<string, unknown>[] {
  return t.logs
    .slice(from)
    .join('')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function post(
  t: TestApp,
  key: string,
  query: Document,
  variables: Record<string, unknown>,
  requestId?: string,
): Promise<{ requestId: string; body: { errors?: { extensions?: { code?: string } }[] } }> {
  const response = await t.app.fetch('http://test.local/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${key}`,
      ...(requestId ? { 'x-request-id': requestId } : {}),
    },
    body: JSON.stringify({ query: documentText(query), variables }),
  });
  return {
    requestId: response.headers.get('x-request-id') ?? '',
    body: (await response.json()) as { errors?: { extensions?: { code?: string } }[] },
  };
}

const SESSION_DATA = 'query($id: ID!) { session(id: $id) { data } }';

describe('the per-request logger', () => {
  /** A session whose stored data no longer opens: reading it is a fault no input could cause. */
  async function brokenSession(t: TestApp, key: string, tag: string) {
    const session = await start(t, key, tag, {
      userId: `user-${randomBytes(4).toString('hex')}`,
      details: { username: 'ada', email: 'ada@example.com' },
    });
    await t.database.db.execute(
      sql`update sessions set data_enc = 'AQ' || repeat('A', 60) where id = ${session.sessionId}`,
    );
    return session;
  }

  it('an unexpected error’s log line carries the id of its request line, and no token, key or data', async ({
    t,
    key,
    config,
  }) => {
    const session = await brokenSession(t, key, config);
    const before = t.logs.length;
    const { requestId, body } = await post(t, key, SESSION_DATA, {
      id: session.sessionId,
    });
    expect(body.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);

    const lines = linesSince(t, before);
    const fault = lines.filter((l) => l.msg === 'unexpected error');
    const request = lines.filter((l) => l.msg === 'request');
    expect(fault).toHaveLength(1);
    expect(request).toHaveLength(1);
    expect(fault[0]!.reqId).toBe(requestId);
    expect(request[0]!.reqId).toBe(requestId);
    expect(fault[0]!.level).toBe(50);

    const text = t.logs.slice(before).join('');
    for (const secret of [
      key,
      session.token,
      session.refreshToken,
      'ada@example.com',
      'A'.repeat(60),
    ]) {
      expect(text).not.toContain(secret);
    }
  });

  it('keeps the id the caller sent in x-request-id on both lines', async ({ t, key, config }) => {
    const session = await brokenSession(t, key, config);
    const given = `h2-${randomBytes(6).toString('hex')}`;
    const before = t.logs.length;
    const { requestId } = await post(t, key, SESSION_DATA, { id: session.sessionId }, given);
    expect(requestId).toBe(given);
    const lines = linesSince(t, before).filter((l) => l.reqId === given);
    expect(lines.map((l) => l.msg).sort()).toEqual(['request', 'unexpected error']);
  });

  it('a client error’s debug line carries its request’s id too', async ({ t, key, config }) => {
    const before = t.logs.length;
    const { requestId, body } = await post(t, key, VERIFY, {
      tag: config,
      token: 'not-a-token',
    });
    expect(body.errors?.[0]?.extensions?.code).toBe('TOKEN_INVALID');
    const clientError = linesSince(t, before).filter((l) => l.msg === 'client error');
    expect(clientError).toEqual([expect.objectContaining({ reqId: requestId, level: 20 })]);
  });

  it('many requests at once: each fault is logged with its own request’s id, never another’s', async ({
    t,
    key,
    config,
  }) => {
    const sessions = await Promise.all(
      Array.from({ length: 6 }, () => brokenSession(t, key, config)),
    );
    const healthy = await start(t, key, config);
    const before = t.logs.length;
    const faulty = sessions.map((s, i) => ({
      id: `fault-${i}-${randomBytes(4).toString('hex')}`,
      s,
    }));
    const fine = Array.from({ length: 6 }, (_, i) => `fine-${i}-${randomBytes(4).toString('hex')}`);
    await Promise.all([
      ...faulty.map(({ id, s }) => post(t, key, SESSION_DATA, { id: s.sessionId }, id)),
      ...fine.map((id) => post(t, key, SESSION_DATA, { id: healthy.sessionId }, id)),
    ]);
    const lines = linesSince(t, before);
    const faultIds = lines.filter((l) => l.msg === 'unexpected error').map((l) => l.reqId);
    expect([...faultIds].sort()).toEqual(faulty.map((f) => f.id).sort());
    const requestIds = lines.filter((l) => l.msg === 'request').map((l) => l.reqId);
    expect([...requestIds].sort()).toEqual([...faulty.map((f) => f.id), ...fine].sort());
  });
});

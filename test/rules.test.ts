import { describe, expect, it } from 'vitest';
import {
  errorChain,
  hasErrorCode,
  isDatabaseUnavailable,
  isTransactionConflict,
  UNIQUE_VIOLATION,
} from '../src/db/errors.js';
import {
  checkConfig,
  refreshLifetimeSeconds,
  tokenLifetimeSeconds,
  type CheckedConfig,
} from '../src/domain/configs.js';
import * as errors from '../src/domain/errors.js';
import { ServiceError } from '../src/domain/errors.js';
import {
  deadReason,
  idleExpiresAt,
  isLiveAt,
  isOverAt,
  type LivenessRow,
} from '../src/domain/liveness.js';
import { deepMerge } from '../src/domain/session-state.js';
import { sessionStatus } from '../src/domain/sessions/index.js';
import { errorForLog, redactedMessage } from '../src/observability/errors.js';

/*
 * Unit tests of the pure rules: no server, no database.
 */

function thrown(call: () => unknown): ServiceError {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(ServiceError);
    return error as ServiceError;
  }
  throw new Error('expected a throw');
}

describe('deepMerge', () => {
  it('merges objects key by key, recursively', () => {
    expect(
      deepMerge(
        { a: 1, nested: { x: 1, deep: { keep: true, change: 1 } } },
        { b: 2, nested: { y: 2, deep: { change: 2 } } },
      ),
    ).toEqual({ a: 1, b: 2, nested: { x: 1, y: 2, deep: { keep: true, change: 2 } } });
  });

  it('replaces arrays, scalars and null, and an object by a scalar or the reverse', () => {
    expect(
      deepMerge(
        { list: [1, 2, 3], n: 1, gone: { x: 1 }, was: 'text', nil: { x: 1 } },
        { list: [4], n: 'one', gone: 0, was: { now: 'object' }, nil: null },
      ),
    ).toEqual({ list: [4], n: 'one', gone: 0, was: { now: 'object' }, nil: null });
  });

  it('leaves both arguments untouched', () => {
    const base = { nested: { x: 1 } };
    const patch = { nested: { y: 2 } };
    const merged = deepMerge(base, patch);
    expect(base).toEqual({ nested: { x: 1 } });
    expect(patch).toEqual({ nested: { y: 2 } });
    expect(merged.nested).not.toBe(base.nested);
  });

  it('an empty patch gives a copy of the base', () => {
    const base = { a: { b: 1 } };
    expect(deepMerge(base, {})).toEqual(base);
    expect(deepMerge({}, base)).toEqual(base);
  });
});

describe('session config checks', () => {
  const valid: CheckedConfig = {
    name: '  User session  ',
    tag: 'user-session',
    description: '',
    schema: { userId: 'u1', details: { email: 'a@example.com' } },
    selector: '$Session{userId}',
    expiry: 7,
    period: 'HOURS',
    refreshExpirySeconds: null,
    idleTimeoutSeconds: null,
    maxSessionsPerIdentifier: null,
  };
  const refusal = (patch: Partial<CheckedConfig>) =>
    thrown(() => checkConfig({ ...valid, ...patch }));

  it('a valid config comes back checked: name trimmed, the rest as given', () => {
    expect(checkConfig(valid)).toEqual({ ...valid, name: 'User session' });
    expect(
      checkConfig({
        ...valid,
        selector: '$Session{details}{email}',
        refreshExpirySeconds: 7 * 3_600,
        idleTimeoutSeconds: 10,
        maxSessionsPerIdentifier: 1_000,
      }),
    ).toMatchObject({ refreshExpirySeconds: 25_200, idleTimeoutSeconds: 10 });
  });

  it('each rule refuses with BAD_USER_INPUT on its own field', () => {
    const cases: [Partial<CheckedConfig>, string, RegExp][] = [
      [{ tag: 'Not A Tag' }, 'input.tag', /lower-case/],
      [{ name: '   ' }, 'input.name', /must not be empty/],
      [{ name: 'x'.repeat(201) }, 'input.name', /at most 200/],
      [{ selector: '$Session{details}' }, 'input.selector', /string, number or boolean/],
      [{ selector: '$Session{missing}' }, 'input.selector', /string, number or boolean/],
      [{ selector: 'userId' }, 'input.selector', /nested path/],
      [{ expiry: 0 }, 'input.expiry', /positive whole number/],
      [{ expiry: 1.5 }, 'input.expiry', /positive whole number/],
      [{ expiry: 9, period: 'SECONDS' }, 'input.expiry', /9 seconds/],
      [{ expiry: 366, period: 'DAYS' }, 'input.expiry', /365 days/],
      [{ period: 'YEARS' as CheckedConfig['period'] }, 'input.period', /SECONDS, MINUTES/],
      [{ refreshExpirySeconds: 60 }, 'input.refreshExpiresIn', /at least as long/],
      [{ refreshExpirySeconds: 401 * 86_400 }, 'input.refreshExpiresIn', /400 days/],
      [{ idleTimeoutSeconds: 9 }, 'input.idleTimeout', /from 10/],
      [{ idleTimeoutSeconds: 401 * 86_400 }, 'input.idleTimeout', /400 days/],
      [{ maxSessionsPerIdentifier: 0 }, 'input.maxSessionsPerIdentifier', /from 1 to 1000/],
      [{ maxSessionsPerIdentifier: 1_001 }, 'input.maxSessionsPerIdentifier', /from 1 to 1000/],
    ];
    for (const [patch, field, message] of cases) {
      const error = refusal(patch);
      expect({ patch, code: error.code, field: error.field }).toEqual({
        patch,
        code: 'BAD_USER_INPUT',
        field,
      });
      expect(error.message).toMatch(message);
    }
  });

  it('lifetimes: expiry × period; the refresh token 30 days, or the token lifetime if longer, unless set', () => {
    expect(tokenLifetimeSeconds({ expiry: 7, period: 'HOURS' })).toBe(25_200);
    expect(tokenLifetimeSeconds({ expiry: 2, period: 'WEEKS' })).toBe(1_209_600);
    expect(refreshLifetimeSeconds({ expiry: 7, period: 'HOURS', refreshExpirySeconds: null })).toBe(
      30 * 86_400,
    );
    expect(refreshLifetimeSeconds({ expiry: 40, period: 'DAYS', refreshExpirySeconds: null })).toBe(
      40 * 86_400,
    );
    expect(
      refreshLifetimeSeconds({ expiry: 7, period: 'HOURS', refreshExpirySeconds: 86_400 }),
    ).toBe(86_400);
  });
});

describe('liveness twin and sessionStatus', () => {
  const now = new Date('2026-06-01T12:00:00.000Z');
  const at = (offsetMs: number) => new Date(now.getTime() + offsetMs);
  const live: LivenessRow = {
    revokedAt: null,
    expiredAt: null,
    refreshExpiresAt: at(3_600_000),
    lastActiveAt: at(-60_000),
    idleTimeoutSeconds: null,
  };
  const cases: [string, Partial<LivenessRow>, 'ACTIVE' | 'EXPIRED' | 'REVOKED'][] = [
    ['live', {}, 'ACTIVE'],
    ['revoked', { revokedAt: at(-1) }, 'REVOKED'],
    ['revoked and swept', { revokedAt: at(-2), expiredAt: at(-1) }, 'REVOKED'],
    ['swept', { expiredAt: at(-1) }, 'EXPIRED'],
    ['refresh token ran out', { refreshExpiresAt: at(-1) }, 'EXPIRED'],
    ['refresh token runs out now', { refreshExpiresAt: now }, 'EXPIRED'],
    ['refresh token runs out in 1 ms', { refreshExpiresAt: at(1) }, 'ACTIVE'],
    [
      'idle timeout, active 599.999 s ago',
      { idleTimeoutSeconds: 600, lastActiveAt: at(-599_999) },
      'ACTIVE',
    ],
    [
      'idle timeout, active 600 s ago',
      { idleTimeoutSeconds: 600, lastActiveAt: at(-600_000) },
      'EXPIRED',
    ],
    ['no idle timeout, active a year ago', { lastActiveAt: at(-365 * 86_400_000) }, 'ACTIVE'],
  ];

  it('each state, by sessionStatus, deadReason, isLiveAt and isOverAt alike', () => {
    for (const [name, patch, status] of cases) {
      const row = { ...live, ...patch };
      expect({ name, status: sessionStatus(row, now) }).toEqual({ name, status });
      const reason = deadReason(row, now);
      expect({ name, reason }).toEqual({
        name,
        reason: status === 'REVOKED' ? 'revoked' : status === 'EXPIRED' ? 'expired' : null,
      });
      expect({ name, live: isLiveAt(row, now) }).toEqual({ name, live: status === 'ACTIVE' });
      // Over is independent of revocation: a revoked row is over only if it also ran out.
      const over = row.expiredAt !== null || status === 'EXPIRED';
      expect({ name, over: isOverAt(row, now) }).toEqual({ name, over });
    }
  });

  it('idleExpiresAt: last activity plus the idle timeout, null without one', () => {
    expect(idleExpiresAt(live)).toBeNull();
    expect(idleExpiresAt({ ...live, idleTimeoutSeconds: 600 })).toEqual(at(-60_000 + 600_000));
  });
});

describe('named errors', () => {
  it('keep the codes and messages of the API contract', () => {
    const table: [ServiceError, string, string, string?][] = [
      [
        errors.tokenInvalid(),
        'TOKEN_INVALID',
        'The session token is malformed, altered, or not for this tag.',
      ],
      [
        errors.tokenExpired(),
        'TOKEN_EXPIRED',
        'The session token has expired; refresh the session.',
      ],
      [
        errors.refreshTokenInvalid(),
        'TOKEN_INVALID',
        'The refresh token is malformed, unknown, or not for this tag.',
      ],
      [
        errors.refreshTokenExpired(),
        'TOKEN_EXPIRED',
        'The refresh token has expired; sign in again.',
      ],
      [
        errors.refreshTokenReused(),
        'REFRESH_TOKEN_REUSED',
        'This refresh token was already used; the session has been revoked as a precaution.',
      ],
      [errors.sessionRevoked(), 'SESSION_REVOKED', 'This session was revoked; sign in again.'],
      [
        errors.revokedSessionUnchangeable(),
        'SESSION_REVOKED',
        'This session was revoked; it cannot change.',
      ],
      [
        errors.expiredSessionUnchangeable(),
        'TOKEN_EXPIRED',
        'This session has expired; it cannot change.',
      ],
      [errors.sessionNotFound('web'), 'NOT_FOUND', 'No session with that id for tag "web".'],
      [
        errors.badSessionId('excludeSessionId'),
        'BAD_USER_INPUT',
        'excludeSessionId: expected a session id (a UUID)',
        'excludeSessionId',
      ],
      [errors.badCursor(), 'BAD_USER_INPUT', 'after: is not a cursor this API returned', 'after'],
      [
        errors.badPageSize(100),
        'BAD_USER_INPUT',
        'first: expected a whole number from 0 to 100',
        'first',
      ],
    ];
    for (const [error, code, message, field] of table) {
      expect(error).toBeInstanceOf(ServiceError);
      expect({ code: error.code, message: error.message, field: error.field }).toEqual({
        code,
        message,
        field,
      });
    }
  });
});

describe('error chains and redaction', () => {
  const coded = (message: string, code: string, cause?: unknown) =>
    Object.assign(new Error(message, cause === undefined ? {} : { cause }), { code });

  it('hasErrorCode finds a SQLSTATE down the causes and through a GraphQL originalError', () => {
    const pg = coded('duplicate key value violates unique constraint', UNIQUE_VIOLATION);
    const drizzle = new Error('Failed query: insert …', { cause: pg });
    const graphql = Object.assign(new Error('wrapped'), { originalError: drizzle });
    expect(hasErrorCode(pg, UNIQUE_VIOLATION)).toBe(true);
    expect(hasErrorCode(drizzle, UNIQUE_VIOLATION)).toBe(true);
    expect(hasErrorCode(graphql, UNIQUE_VIOLATION)).toBe(true);
    expect(hasErrorCode(drizzle, (code) => code.startsWith('23'))).toBe(true);
    expect(hasErrorCode(drizzle, '40001')).toBe(false);
    expect(hasErrorCode('not an error', UNIQUE_VIOLATION)).toBe(false);
    expect(hasErrorCode(undefined, UNIQUE_VIOLATION)).toBe(false);
  });

  it('the walk ends on a cycle and after six errors', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect([...errorChain(b)].map((e) => e.message)).toEqual(['b', 'a']);
    let deep: Error = coded('deepest', '23505');
    for (let i = 0; i < 10; i++) deep = new Error(`level ${i}`, { cause: deep });
    expect([...errorChain(deep)]).toHaveLength(6);
    expect(hasErrorCode(deep, UNIQUE_VIOLATION)).toBe(false);
  });

  it('isDatabaseUnavailable: connection codes anywhere in the chain or an AggregateError', () => {
    expect(isDatabaseUnavailable(new Error('x', { cause: coded('refused', 'ECONNREFUSED') }))).toBe(
      true,
    );
    expect(isDatabaseUnavailable(new AggregateError([coded('down', '57P01')], 'all failed'))).toBe(
      true,
    );
    expect(isDatabaseUnavailable(new Error('PGlite is closed'))).toBe(true);
    expect(isDatabaseUnavailable(coded('duplicate', UNIQUE_VIOLATION))).toBe(false);
  });

  it('isDatabaseUnavailable: a busy database (no connection slot, a lock or statement timeout, a conflict that outlived its retries) too', () => {
    for (const code of ['53300', '55P03', '57014', '40P01', '40001']) {
      expect(isDatabaseUnavailable(new Error('x', { cause: coded(code, code) }))).toBe(true);
    }
    expect(isTransactionConflict(coded('deadlock', '40P01'))).toBe(true);
    expect(isTransactionConflict(coded('serialization', '40001'))).toBe(true);
    expect(isTransactionConflict(coded('timeout', '55P03'))).toBe(false);
    // A query that is wrong stays a fault.
    for (const code of ['22012', '42P01', '23503'])
      expect(isDatabaseUnavailable(coded(code, code))).toBe(false);
  });

  it('redactedMessage drops query parameters and secret-shaped values from any thrown value', () => {
    const message = redactedMessage(
      new Error(
        'Failed query: update refresh_tokens set spent_at = now() where token_hash = $1\nparams: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
      ),
    );
    expect(message).toContain('Failed query: update refresh_tokens');
    expect(message).toContain('params: [redacted]');
    expect(message).not.toMatch(/9f86d081/);
    expect(redactedMessage('rt_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG from 10.1.2.3')).toBe(
      '[redacted] from [ip]',
    );
  });

  it('errorForLog logs a thrown non-Error, and one at the end of a chain', () => {
    expect(errorForLog('plain text')).toEqual([{ name: 'string', message: 'plain text' }]);
    const chain = errorForLog(new Error('outer', { cause: 'inner text' }));
    expect(chain.map((e) => [e.name, e.message])).toEqual([
      ['Error', 'outer'],
      ['string', 'inner text'],
    ]);
    expect(errorForLog(undefined)).toEqual([]);
  });
});

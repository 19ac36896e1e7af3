import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('an empty environment gives the embedded defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      nodeEnv: 'development',
      databaseUrl: undefined,
      dataDir: '.data',
      port: 4000,
      adminKey: undefined,
      sessionSecret: undefined,
      refreshGraceSeconds: 10,
      logLevel: 'info',
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('HOST: loopback only outside production (the first start prints a demo key), every interface in production; an explicit HOST wins', () => {
    expect(loadConfig({}).host).toBe('127.0.0.1');
    expect(loadConfig({ NODE_ENV: 'development' }).host).toBe('127.0.0.1');
    expect(loadConfig({ NODE_ENV: 'test' }).host).toBe('127.0.0.1');
    expect(loadConfig({ NODE_ENV: 'production', SESSION_SECRET: 's'.repeat(32) }).host).toBe(
      '0.0.0.0',
    );
    expect(loadConfig({ HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    expect(
      loadConfig({ NODE_ENV: 'production', SESSION_SECRET: 's'.repeat(32), HOST: '::1' }).host,
    ).toBe('::1');
  });

  it('LOG_BUFFER_BYTES and SHUTDOWN_GRACE_SECONDS: bounded, with defaults', () => {
    expect(loadConfig({})).toMatchObject({ logBufferBytes: 1_048_576, shutdownGraceSeconds: 10 });
    expect(loadConfig({ LOG_BUFFER_BYTES: '16384', SHUTDOWN_GRACE_SECONDS: '1' })).toMatchObject({
      logBufferBytes: 16_384,
      shutdownGraceSeconds: 1,
    });
    expect(problemsOf({ LOG_BUFFER_BYTES: '100', SHUTDOWN_GRACE_SECONDS: '0' })).toEqual([
      expect.stringMatching(/^LOG_BUFFER_BYTES:/),
      expect.stringMatching(/^SHUTDOWN_GRACE_SECONDS:/),
    ]);
    expect(
      problemsOf({ LOG_BUFFER_BYTES: '99999999999', SHUTDOWN_GRACE_SECONDS: '301' }),
    ).toHaveLength(2);
  });

  it('reads every variable it documents', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
      DATA_DIR: '/tmp/x',
      PORT: '5000',
      ADMIN_KEY: `ak_${'a'.repeat(40)}`,
      SESSION_SECRET: 's'.repeat(32),
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      REFRESH_GRACE_SECONDS: '5',
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/test',
      dataDir: '/tmp/x',
      port: 5000,
      nodeEnv: 'production',
      logLevel: 'warn',
      refreshGraceSeconds: 5,
    });
  });

  it('reports every bad variable at once, by name, without echoing secrets', () => {
    const secretish = 'ak_short';
    const problems = problemsOf({
      DATABASE_URL: 'mysql://nope',
      PORT: 'eighty',
      ADMIN_KEY: secretish,
      SESSION_SECRET: 'too-short-secret',
      LOG_LEVEL: 'loud',
      REFRESH_GRACE_SECONDS: '-1',
      NODE_ENV: 'staging',
    });
    const names = problems.map((p) => p.split(':')[0]);
    expect(names).toEqual(
      expect.arrayContaining([
        'DATABASE_URL',
        'PORT',
        'ADMIN_KEY',
        'SESSION_SECRET',
        'LOG_LEVEL',
        'REFRESH_GRACE_SECONDS',
        'NODE_ENV',
      ]),
    );
    expect(problems.join('\n')).not.toContain('too-short-secret');
    expect(problems.join('\n')).not.toContain(secretish);
  });

  it('production requires SESSION_SECRET, and says so beside any other problem', () => {
    const problems = problemsOf({ NODE_ENV: 'production', PORT: '99999' });
    expect(problems.some((p) => p.startsWith('SESSION_SECRET:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('PORT:'))).toBe(true);
  });

  it('an admin key shorter than 32 characters is refused', () => {
    expect(problemsOf({ ADMIN_KEY: `ak_${'a'.repeat(28)}` })[0]).toMatch(/^ADMIN_KEY:/);
    expect(loadConfig({ ADMIN_KEY: `ak_${'a'.repeat(29)}` }).adminKey).toHaveLength(32);
  });
});

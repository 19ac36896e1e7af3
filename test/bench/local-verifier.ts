/* eslint-disable @typescript-eslint/no-explicit-any -- GraphQL answers are read freely here */
/**
 * The local verifier's figures (issue #15), in the same run as the server's `verifySession`:
 *
 * - repeat verify: a token this verifier opened before, per second in one process, as a ratio to
 *   the server's verifySession req/s measured in the run;
 * - first-sight verify: tokens never seen (cache of 1), per second, as a ratio to opening the same
 *   tokens with jose alone (decrypt, then check the signature) in this process;
 * - minting: CPU µs per token, signed format against the first (encrypted only) one;
 * - revocation-to-refusal: a session revoked through a second server instance, refused by a
 *   verifier in this process (which follows the first instance), p50 and p99.
 */
import { performance } from 'node:perf_hooks';
import { compactDecrypt, importJWK, jwtVerify, type JWK } from 'jose';
import { createLocalVerifier, type LocalVerifier } from '../../src/client/index.js';
import { Keyring } from '../../src/tokens/keyring.js';
import { mintLegacySessionToken, mintSessionToken } from '../../src/tokens/session-token.js';

export interface LocalFigures {
  repeatVerifyPerSec: number;
  repeatVerifyCpuUs: number;
  repeatRatioToServerVerify: number;
  firstSightPerSec: number;
  rawJoseOpenPerSec: number;
  firstSightRatioToJose: number;
  /** The same ratio from CPU µs per op (less sensitive to a busy machine). */
  firstSightCpuRatioToJose: number;
  legacyJoseOpenPerSec: number;
  mintCpuUs: { signed: number; legacy: number; added: number };
  revocationToRefusalMs: { p50: number; p99: number; n: number };
}

/** Runs `op` sequentially for about `ms`; ops per second and CPU µs per op. */
async function rate(op: (i: number) => Promise<unknown>, ms: number) {
  // Warm-up, so the JIT and caches are as in a long-running process.
  for (let i = 0; i < 200; i++) await op(i);
  const cpu = process.cpuUsage();
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) {
    for (let k = 0; k < 100; k++) await op(n++);
  }
  const elapsed = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { perSec: Math.round((n / elapsed) * 1000), cpuUs: (used.user + used.system) / n };
}

/**
 * Two operations measured in alternating slices (6 × `ms / 6` each), so that a busy machine's
 * swings fall on both alike; the median slice of each.
 */
async function interleaved(
  a: (i: number) => Promise<unknown>,
  b: (i: number) => Promise<unknown>,
  ms: number,
) {
  const as: Array<{ perSec: number; cpuUs: number }> = [];
  const bs: Array<{ perSec: number; cpuUs: number }> = [];
  for (let round = 0; round < 6; round++) {
    as.push(await rate(a, ms / 6));
    bs.push(await rate(b, ms / 6));
  }
  const median = (xs: Array<{ perSec: number; cpuUs: number }>) => {
    const perSec = xs.map((x) => x.perSec).sort((x, y) => x - y);
    const cpuUs = xs.map((x) => x.cpuUs).sort((x, y) => x - y);
    return { perSec: perSec[3]!, cpuUs: cpuUs[3]! };
  };
  return [median(as), median(bs)] as const;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function gql(url: string, key: string, query: string, variables?: unknown) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: any; errors?: unknown[] };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

export async function localVerifierBench(options: {
  url: string;
  /** A second instance on the same database: revocations go through it. */
  secondUrl: string;
  key: string;
  tag: string;
  tokens: readonly string[];
  serverVerifyPerSec: number;
  seconds: number;
}): Promise<LocalFigures> {
  const { url, key, tag, tokens } = options;
  const ms = options.seconds * 1000;
  const verifiers: LocalVerifier[] = [];
  try {
    const repeat = createLocalVerifier({ url, key, tags: [tag] });
    const first = createLocalVerifier({ url, key, tags: [tag], cacheSize: 1 });
    verifiers.push(repeat, first);
    await Promise.all([repeat.ready, first.ready]);
    for (const token of tokens) {
      const result = await repeat.verify({ tag, token });
      if (result.verifiedBy !== 'local') throw new Error(`not local: ${result.fallback}`);
    }
    const repeated = await rate(
      (i) => repeat.verify({ tag, token: tokens[i % tokens.length]! }),
      ms,
    );
    // Raw jose on the same tokens with the same keys: the floor of a first-sight verify.
    const { verifierKeys } = await gql(
      url,
      key,
      `query($t: [String!]!) { verifierKeys(tags: $t) { issuer audience keys { current encryptionKey { kty k alg kid } verificationKey { kty crv x alg use kid } } } }`,
      { t: [tag] },
    );
    const current = verifierKeys.keys.find((k: { current: boolean }) => k.current);
    const sig = await importJWK(current.verificationKey as JWK, 'EdDSA');
    // The same key objects the verifier uses (a CryptoKey for AES-KW, as jose recommends).
    const encKey = await globalThis.crypto.subtle.importKey(
      'jwk',
      current.encryptionKey as JsonWebKey,
      'AES-KW',
      false,
      ['unwrapKey'],
    );
    const [firstSight, raw] = await interleaved(
      (i) => first.verify({ tag, token: tokens[i % tokens.length]! }),
      async (i) => {
        const { plaintext } = await compactDecrypt(tokens[i % tokens.length]!, encKey);
        return jwtVerify(new TextDecoder().decode(plaintext), sig, {
          issuer: verifierKeys.issuer,
          audience: verifierKeys.audience,
        });
      },
      ms * 2,
    );

    // Minting, signed against the first format, with the server's own code, in this process.
    const keyring = new Keyring('bench-secret-bench-secret-bench-secret-0123');
    const scope = { productId: '3f1e0f5e-8d7c-4b6a-9e2f-0a1b2c3d4e5f', env: 'prd' };
    const claims = {
      sessionId: '9b2c4f7e-1a3d-4e5f-8a9b-0c1d2e3f4a5b',
      tag,
      identifier: 'user-1',
      data: { userId: 'user-1', role: 'user' },
      expiresAt: new Date(Date.now() + 3_600_000),
      version: 1,
      sessionExpiresAt: new Date(Date.now() + 3_600_000),
      idleTimeout: false,
    };
    const signedMint = await rate(() => mintSessionToken(keyring, scope, claims), ms / 2);
    const legacyMint = await rate(() => mintLegacySessionToken(keyring, scope, claims), ms / 2);
    const legacyTokens = await Promise.all(
      Array.from({ length: 100 }, () => mintLegacySessionToken(keyring, scope, claims)),
    );
    const legacyKey = await keyring.tokenKey(scope.productId, scope.env, keyring.currentKid);
    const legacyOpen = await rate(
      (i) => compactDecrypt(legacyTokens[i % legacyTokens.length]!, legacyKey),
      ms / 2,
    );

    // Revocation to refusal, through a second instance, at a verifier following the first.
    const delays: number[] = [];
    const START = `mutation($i: StartSessionInput!) { startSession(input: $i) { token sessionId } }`;
    const REVOKE = `mutation($s: ID!) { revokeSession(tag: "${tag}", sessionId: $s) { id } }`;
    for (let i = 0; i < 100; i++) {
      const { startSession } = await gql(url, key, START, {
        i: { tag, data: { userId: `revoke-${i}`, role: 'user' } },
      });
      await repeat.verify({ tag, token: startSession.token });
      await gql(options.secondUrl, key, REVOKE, { s: startSession.sessionId });
      const committed = performance.now();
      for (;;) {
        try {
          await repeat.verify({ tag, token: startSession.token });
        } catch (error) {
          if ((error as { code?: string }).code === 'SESSION_REVOKED') break;
          throw error;
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      delays.push(performance.now() - committed);
    }
    delays.sort((a, b) => a - b);
    const round1 = (x: number) => Math.round(x * 10) / 10;
    return {
      repeatVerifyPerSec: repeated.perSec,
      repeatVerifyCpuUs: round1(repeated.cpuUs),
      repeatRatioToServerVerify: Math.round(repeated.perSec / options.serverVerifyPerSec),
      firstSightPerSec: firstSight.perSec,
      rawJoseOpenPerSec: raw.perSec,
      firstSightRatioToJose: Math.round((firstSight.perSec / raw.perSec) * 100) / 100,
      firstSightCpuRatioToJose: Math.round((raw.cpuUs / firstSight.cpuUs) * 100) / 100,
      legacyJoseOpenPerSec: legacyOpen.perSec,
      mintCpuUs: {
        signed: round1(signedMint.cpuUs),
        legacy: round1(legacyMint.cpuUs),
        added: round1(signedMint.cpuUs - legacyMint.cpuUs),
      },
      revocationToRefusalMs: {
        p50: round1(percentile(delays, 50)),
        p99: round1(percentile(delays, 99)),
        n: delays.length,
      },
    };
  } finally {
    await Promise.all(verifiers.map((v) => v.close()));
  }
}

/** The figures as the README's table. */
export function localTable(f: LocalFigures, serverVerifyPerSec: number): string {
  return [
    `| local verifier | figure | against |`,
    `| --- | ---: | --- |`,
    `| repeat verify | ${f.repeatVerifyPerSec}/s (${f.repeatVerifyCpuUs} CPU µs) | ${f.repeatRatioToServerVerify}× server verifySession (${serverVerifyPerSec}/s) |`,
    `| first-sight verify | ${f.firstSightPerSec}/s | ${f.firstSightRatioToJose}× raw jose open of the same tokens (${f.rawJoseOpenPerSec}/s), ${f.firstSightCpuRatioToJose}× by CPU µs; first-format JWE alone: ${f.legacyJoseOpenPerSec}/s |`,
    `| minting (start, refresh) | ${f.mintCpuUs.signed} CPU µs/token | first format ${f.mintCpuUs.legacy} µs: +${f.mintCpuUs.added} µs |`,
    `| revocation to refusal (another instance) | p50 ${f.revocationToRefusalMs.p50} ms, p99 ${f.revocationToRefusalMs.p99} ms | over ${f.revocationToRefusalMs.n} revocations |`,
  ].join('\n');
}

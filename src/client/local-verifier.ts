import type { JWK } from 'jose';
import { badUserInput } from './ductape.js';
import { SessionServiceError } from './errors.js';
import { VERIFY } from './documents.js';
import {
  NotLocal,
  importVerifierKey,
  openLocally,
  tokenExpired,
  tokenInvalid,
  type LoadedKeys,
  type OpenedToken,
} from './local-token.js';
import { subscriptionTransport, type SubscriptionTransportOptions } from './subscriptions.js';
import { httpTransport, webSocketUrlsOf, type CallOptions } from './transport.js';
import type { SessionData, TokenInput, VerifiedSession } from './types.js';

/** Why a verify was left to the server. */
export type FallbackReason =
  /** The verifier has not finished its first sync. */
  | 'NOT_READY'
  /** No heartbeat for longer than `maxStalenessMs`: the local view may miss a revocation. */
  | 'STALE'
  /**
   * A token of the first format (minted before signed tokens), which only the server opens, or
   * a signed one minted before tokens carried their session's start and `auth_time`.
   */
  | 'LEGACY_TOKEN'
  /** Its key id is not (yet) among the verifier's keys; they are reloaded. */
  | 'UNKNOWN_KEY'
  /** A tag this verifier does not follow. */
  | 'TAG_NOT_FOLLOWED'
  /** The session has an idle timeout: only the server knows its last activity. */
  | 'IDLE_TIMEOUT'
  /** The session's data or expiry changed after the token was minted. */
  | 'CHANGED'
  /** Past the session's expiry the token carries: a refresh or extend may have moved it. */
  | 'PAST_SESSION_EXPIRY'
  /** Issued before the sweep's horizon: what would refuse it may be gone. */
  | 'TOKEN_TOO_OLD'
  /** The verifier dropped entries to stay within `maxEntries`; this token may be one of them. */
  | 'MEMORY_BOUND'
  /** An impersonation session (an operator acting as the user): the server decides and logs it. */
  | 'IMPERSONATION'
  /**
   * `maxAge` asked, and the token's `auth_time` is older (or `maxAge` is not one the server
   * takes): the session may have been marked fresh since, which only the server knows.
   */
  | 'MAX_AGE';

/** `verifySession`'s answer, and who gave it. */
export type LocalVerifyResult<TData = SessionData> = VerifiedSession<TData> & {
  /** `local`: decided in this process; `server`: by a `verifySession` call. */
  readonly verifiedBy: 'local' | 'server';
  /** Set when the server decided: why the verifier could not. */
  readonly fallback?: FallbackReason;
};

export interface LocalVerifierOptions {
  /**
   * The GraphQL endpoint, e.g. `http://localhost:4000/graphql`, or several (1 to 10) of one
   * fleet: the verifier's requests and its fallback go to the next on a connection failure or
   * a timeout, and its feed reconnects to the next when its connection fails or drops.
   */
  readonly url: string | readonly string[];
  /** A secret key (`sk_<env>_...`). */
  readonly key: string;
  /** The session types to verify (1 to 20). */
  readonly tags: readonly string[];
  /** Longest silence of the feed (no heartbeat) before the view is stale (default 3000). */
  readonly maxStalenessMs?: number;
  /** What a stale (or not yet synced) verifier does: ask the server (default), or refuse. */
  readonly onStale?: 'fallback' | 'refuse';
  /** Heartbeat interval asked of the server, 1000 to 30000 ms (default 1000; keep a few in `maxStalenessMs`). */
  readonly heartbeatMs?: number;
  /** Opened tokens kept (default 10,000): repeat verifies of these cost a map lookup. */
  readonly cacheSize?: number;
  /** Characters of opened tokens kept, all together (default 16 Mi): large tokens count more. */
  readonly cacheChars?: number;
  /** Revoked, ended or changed sessions kept (default 1,000,000); see `MEMORY_BOUND`. */
  readonly maxEntries?: number;
  /** How often keys are reloaded, for rotations (default 60 s). */
  readonly keysRefreshMs?: number;
  /**
   * How long one request to the server may take (a fallback verify, keys, a snapshot page), in
   * ms (default 5000, at most 120,000): past it a fallback verify is SERVICE_UNAVAILABLE, never
   * a hang. Also bounds opening the feed's WebSocket.
   */
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
  /** The WebSocket URL(s) (default: each `url` with `ws:` or `wss:`). */
  readonly wsUrl?: string | readonly string[];
  readonly webSocketImpl?: unknown;
  /** More graphql-ws options. */
  readonly ws?: SubscriptionTransportOptions['options'];
}

export interface LocalVerifierStats {
  /** Sessions held (revoked, ended, changed) whose tokens may still be unexpired. */
  readonly entries: number;
  /** Opened tokens held. */
  readonly cachedTokens: number;
  /** The feed position: the last event id accounted for. */
  readonly position: string | undefined;
  /** Milliseconds since the last heartbeat (Infinity before the first). */
  readonly stalenessMs: number;
  readonly localVerifies: number;
  readonly serverVerifies: number;
}

/** A token to check, and optionally how recent its user's login must be (seconds). */
export type VerifyInput = TokenInput & { readonly maxAge?: number };

export interface LocalVerifier {
  /** Resolves when keys are loaded, the snapshot synced and the feed has caught up. */
  readonly ready: Promise<void>;
  /**
   * Verifies a token like `verifySession` (same answer, same error codes), in this process when
   * it can; otherwise (see {@link FallbackReason}) it asks the server, or refuses when stale and
   * `onStale: 'refuse'` (SERVICE_UNAVAILABLE). Never "valid" from a stale view. A server that
   * does not answer within `timeoutMs` is SERVICE_UNAVAILABLE; `callOptions.signal` abandons the
   * call (it then rejects with the signal's reason).
   */
  verify<TData = SessionData>(
    input: VerifyInput,
    callOptions?: CallOptions,
  ): Promise<LocalVerifyResult<TData>>;
  stats(): LocalVerifierStats;
  /** Stops the feed and timers. */
  close(): Promise<void>;
}

const KEYS = `query VerifierKeys($tags: [String!]!) {
  verifierKeys(tags: $tags) {
    issuer audience clockToleranceSeconds maxTokenAgeSeconds
    keys { tag kid current encryptionKey { kty k alg kid } verificationKey { kty crv x alg use kid } }
  }
}`;

const SNAPSHOT = `query VerifierSnapshot($tags: [String!]!, $after: String) {
  verifierSnapshot(tags: $tags, first: 1000, after: $after) {
    position endCursor hasNextPage
    entries { sessionId tag state tokensValidUntil changedAt }
  }
}`;

// `id: position`: the shared subscription transport resumes after the last `id` it received.
const FEED = `subscription VerifierFeed($tags: [String!]!, $after: ID!, $heartbeatMs: Int) {
  verifierFeed(tags: $tags, after: $after, heartbeatMs: $heartbeatMs) {
    id: position at
    entry { sessionId tag state tokensValidUntil changedAt }
    notBefore { tag notBefore }
  }
}`;

interface WireEntry {
  sessionId: string;
  tag: string;
  state: 'REVOKED' | 'EXPIRED' | 'CHANGED';
  tokensValidUntil: string;
  changedAt: string | null;
}

interface Entry {
  revoked: boolean;
  ended: boolean;
  /** Epoch ms of the latest change of data or expiry (0: none). */
  changedAt: number;
  /** Epoch ms after which no token of the session is valid. */
  until: number;
}

/** The key of the env's not-before mark in the verifier's map (tags never contain it). */
const WHOLE_ENV = '*';
/** The largest `maxAge` the server takes (400 days), in seconds. */
const MAX_AGE_LIMIT_SECONDS = 400 * 24 * 3600;

/** Tokens minted this soon after a change may carry the old data (server clocks differ). */
const CHANGE_MARGIN_MS = 2_000;
/** A token's session expiry is not trusted this close to it (clocks differ). */
const EXPIRY_MARGIN_MS = 1_000;

/** A binary min-heap of entries by `until`, to forget them when their tokens have expired. */
class ExpiryHeap {
  readonly items: Array<{ until: number; id: string; entry: Entry }> = [];
  push(item: { until: number; id: string; entry: Entry }): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.until <= a[i]!.until) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  peek() {
    return this.items[0];
  }
  pop() {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.until < a[m]!.until) m = l;
        if (r < a.length && a[r]!.until < a[m]!.until) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * A verifier of session tokens in your backend's own process. It loads the tags' keys, syncs the
 * sessions it must refuse or leave to the server, then follows `verifierFeed` from that point
 * (reconnecting and resuming without gap); `verify` needs no network call unless it cannot
 * decide, and says so. Memory: at most `cacheSize` opened tokens and `maxEntries` sessions; an
 * entry leaves once no token of its session can be valid.
 */
/** Feed errors that no retry can mend. */
const FINAL_FEED_ERRORS = new Set(['UNAUTHENTICATED', 'FORBIDDEN', 'BAD_USER_INPUT', 'NOT_FOUND']);

export function createLocalVerifier(options: LocalVerifierOptions): LocalVerifier {
  const tags = [...new Set(options.tags)];
  const followed = new Set(tags);
  const maxStalenessMs = options.maxStalenessMs ?? 3_000;
  const onStale = options.onStale ?? 'fallback';
  const heartbeatMs = options.heartbeatMs ?? 1_000;
  // The server's own bounds: anything else would be refused on every try, and `ready` never come.
  if (!Number.isInteger(heartbeatMs) || heartbeatMs < 1_000 || heartbeatMs > 30_000)
    throw badUserInput('heartbeatMs', 'expected whole milliseconds from 1000 to 30000');
  const cacheSize = options.cacheSize ?? 10_000;
  const cacheChars = options.cacheChars ?? 16 * 1024 * 1024;
  /** Characters of the tokens in `cache`. */
  let cachedChars = 0;
  const maxEntries = options.maxEntries ?? 1_000_000;
  const keysRefreshMs = options.keysRefreshMs ?? 60_000;
  const request = httpTransport(options);
  const live = subscriptionTransport({
    url: options.wsUrl ?? webSocketUrlsOf(options.url),
    key: options.key,
    timeoutMs: options.timeoutMs,
    webSocketImpl: options.webSocketImpl,
    options: {
      // A verifier reconnects fast: its answers fall back to the server until it has.
      retryWait: (retries) =>
        new Promise((resolve) =>
          setTimeout(resolve, Math.min(100 * 2 ** retries, 2_000) + Math.random() * 100),
        ),
      ...options.ws,
    },
  });

  let keys: LoadedKeys | undefined;
  const cache = new Map<string, OpenedToken>();
  const entries = new Map<string, Entry>();
  const heap = new ExpiryHeap();
  /** Tokens expiring at or before this (epoch ms) may belong to an entry dropped for memory. */
  let droppedUntil = 0;
  /** Not-before marks (epoch ms) by tag, and the env's under `*`: from the heartbeats. */
  const notBefore = new Map<string, number>();
  let lastHeartbeat = -Infinity;
  let position: string | undefined;
  let synced = false;
  let closed = false;
  let localVerifies = 0;
  let serverVerifies = 0;
  let keysLoading: Promise<void> | undefined;
  let lastKeysLoad = 0;
  let subscription: { unsubscribe(): void } | undefined;
  let readyResolve!: () => void;
  let readyReject!: (error: unknown) => void;
  const ready = new Promise<void>((resolve, reject) => {
    readyResolve = resolve;
    readyReject = reject;
  });
  ready.catch(() => undefined);

  /**
   * A request of the verifier's own (keys, snapshot pages), tried again with backoff while the
   * server is unreachable or busy (a reset keep-alive socket, a restart, RATE_LIMITED); a
   * refused key or a bad argument is final.
   */
  const retrying = async <T>(query: string, variables: Record<string, unknown>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await request<T>(query, variables);
      } catch (error) {
        const code = (error as SessionServiceError).code;
        const transient =
          code === 'NETWORK_ERROR' ||
          code === 'SERVICE_UNAVAILABLE' ||
          code === 'RATE_LIMITED' ||
          code === 'INTERNAL_SERVER_ERROR' ||
          code === 'BAD_RESPONSE';
        if (!transient || closed) throw error;
        const retryAfter = (error as SessionServiceError).retryAfterSeconds;
        const wait =
          retryAfter !== undefined ? retryAfter * 1000 : Math.min(100 * 2 ** attempt, 5_000);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  };

  const loadKeys = (): Promise<void> => {
    keysLoading ??= (async () => {
      lastKeysLoad = Date.now();
      const data = await retrying<{
        verifierKeys: Omit<LoadedKeys, 'keys'> & {
          keys: Array<{ tag: string; kid: string; encryptionKey: JWK; verificationKey: JWK }>;
        };
      }>(KEYS, { tags });
      const set = data.verifierKeys;
      const map = new Map<string, { encryption: CryptoKey | Uint8Array; verification: unknown }>();
      for (const k of set.keys) {
        map.set(
          `${k.tag}\u0000${k.kid}`,
          await importVerifierKey(k.encryptionKey, k.verificationKey),
        );
      }
      // A retired kid's tokens no longer open: forget what they opened to.
      if (keys) {
        cache.clear();
        cachedChars = 0;
      }
      keys = { ...set, keys: map };
    })().finally(() => {
      keysLoading = undefined;
    });
    return keysLoading;
  };

  const addEntry = (wire: WireEntry): void => {
    if (!followed.has(wire.tag)) return;
    const until = Date.parse(wire.tokensValidUntil) + (keys?.clockToleranceSeconds ?? 30) * 1000;
    if (until <= Date.now()) return;
    let entry = entries.get(wire.sessionId);
    if (!entry) {
      if (entries.size >= maxEntries) dropSoonest();
      entry = { revoked: false, ended: false, changedAt: 0, until };
      entries.set(wire.sessionId, entry);
      heap.push({ until, id: wire.sessionId, entry });
    } else if (until > entry.until) {
      entry.until = until;
      heap.push({ until, id: wire.sessionId, entry });
    }
    if (wire.state === 'REVOKED') entry.revoked = true;
    else if (wire.state === 'EXPIRED') entry.ended = true;
    else if (wire.changedAt !== null) {
      entry.changedAt = Math.max(entry.changedAt, Date.parse(wire.changedAt));
    }
  };

  /** Drops the entry whose tokens expire soonest; tokens expiring by then go to the server. */
  const dropSoonest = (): void => {
    for (;;) {
      const top = heap.pop();
      if (!top) return;
      if (entries.get(top.id) !== top.entry || top.entry.until !== top.until) continue;
      entries.delete(top.id);
      droppedUntil = Math.max(droppedUntil, top.until);
      return;
    }
  };

  /** Forgets entries no token of which can still be valid. */
  const prune = (): void => {
    const now = Date.now();
    for (;;) {
      const top = heap.peek();
      if (!top || top.until > now) return;
      heap.pop();
      if (entries.get(top.id) === top.entry && top.entry.until === top.until) {
        entries.delete(top.id);
      }
    }
  };
  const pruneTimer = setInterval(prune, 1_000);
  pruneTimer.unref?.();
  const keysTimer = setInterval(() => {
    loadKeys().catch(() => undefined);
  }, keysRefreshMs);
  keysTimer.unref?.();

  const start = async (): Promise<void> => {
    await loadKeys();
    let after: string | undefined;
    let first: string | null | undefined;
    for (;;) {
      const page = (
        await retrying<{
          verifierSnapshot: {
            position: string | null;
            endCursor: string | null;
            hasNextPage: boolean;
            entries: WireEntry[];
          };
        }>(SNAPSHOT, { tags, after: after ?? null })
      ).verifierSnapshot;
      if (first === undefined) first = page.position;
      for (const e of page.entries) addEntry(e);
      if (!page.hasNextPage || page.endCursor === null) break;
      after = page.endCursor;
    }
    if (closed) return;
    position = first ?? '0';
    follow();
  };

  /** Follows the feed from `position`; after an error it cannot recover from, starts again. */
  const follow = (): void => {
    if (closed) return;
    subscription = live.subscribe(
      FEED,
      'verifierFeed',
      { tags, after: position, heartbeatMs },
      (message) => {
        const m = message as unknown as {
          id: string;
          at: string;
          entry: WireEntry | null;
          notBefore: { tag: string | null; notBefore: string }[] | null;
        };
        position = m.id;
        if (m.entry) {
          addEntry(m.entry);
          return;
        }
        // Marks only move later: keep the later of what is known and what the heartbeat says.
        for (const mark of m.notBefore ?? []) {
          const key = mark.tag ?? WHOLE_ENV;
          const at = Date.parse(mark.notBefore);
          notBefore.set(key, Math.max(notBefore.get(key) ?? -Infinity, at));
        }
        lastHeartbeat = Date.now();
        if (!synced) {
          synced = true;
          readyResolve();
        }
      },
      {
        onError: (error) => {
          lastHeartbeat = -Infinity;
          // A refused key, a refused argument or an unknown tag ends the verifier's feed for
          // good (trying again would be refused the same way); anything else is tried again.
          if (FINAL_FEED_ERRORS.has(error.code)) {
            if (!synced) readyReject(error);
            return;
          }
          const again = setTimeout(follow, 1_000);
          again.unref?.();
        },
      },
    );
  };
  start().catch((error: unknown) => readyReject(error));

  const fallback = async <TData>(
    input: VerifyInput,
    callOptions: CallOptions | undefined,
    reason: FallbackReason,
  ): Promise<LocalVerifyResult<TData>> => {
    if ((reason === 'STALE' || reason === 'NOT_READY') && onStale === 'refuse') {
      throw new SessionServiceError(
        'SERVICE_UNAVAILABLE',
        reason === 'STALE'
          ? `The local verifier has heard nothing from the server for over ${maxStalenessMs} ms; it refuses rather than answer from a stale view.`
          : 'The local verifier has not finished its first sync.',
      );
    }
    serverVerifies += 1;
    const data = await request<{ verifySession: VerifiedSession<TData> }>(
      VERIFY,
      { tag: input.tag, token: input.token, maxAge: input.maxAge },
      callOptions,
    );
    return { ...data.verifySession, verifiedBy: 'server', fallback: reason };
  };

  const verify = async <TData = SessionData>(
    input: VerifyInput,
    callOptions?: CallOptions,
  ): Promise<LocalVerifyResult<TData>> => {
    const { tag, token } = input;
    if (!followed.has(tag)) return fallback(input, callOptions, 'TAG_NOT_FOLLOWED');
    if (!keys) return fallback(input, callOptions, 'NOT_READY');
    let opened = cache.get(token);
    if (opened === undefined) {
      const result = await openLocally(keys, tag, token);
      if (result instanceof NotLocal) {
        if (result.reason === 'UNKNOWN_KEY' && Date.now() - lastKeysLoad > 5_000) {
          loadKeys().catch(() => undefined);
        }
        return fallback(input, callOptions, result.reason);
      }
      opened = result;
      // Two verifies of one new token may both have opened it: count it once.
      if (!cache.has(token)) {
        while (
          cache.size > 0 &&
          (cache.size >= cacheSize || cachedChars + token.length > cacheChars)
        ) {
          const oldest = cache.keys().next().value!;
          cache.delete(oldest);
          cachedChars -= oldest.length;
        }
        cache.set(token, opened);
        cachedChars += token.length;
      }
    } else if (opened.tag !== tag) {
      throw tokenInvalid();
    }
    const now = Date.now();
    const tolerance = keys.clockToleranceSeconds * 1000;
    // Refusals first: they hold whatever the feed's state (revocations are forever).
    if (opened.expiresAt * 1000 + tolerance <= now) throw tokenExpired();
    const entry = entries.get(opened.sessionId);
    if (entry?.revoked) {
      throw new SessionServiceError('SESSION_REVOKED', 'This session was revoked; sign in again.');
    }
    if (entry?.ended) throw tokenExpired();
    // A not-before revocation refuses at once, before its batches write the REVOKED events.
    const mark = Math.max(notBefore.get(tag) ?? -Infinity, notBefore.get(WHOLE_ENV) ?? -Infinity);
    if (opened.startedAt !== undefined && opened.startedAt < mark) {
      throw new SessionServiceError('SESSION_REVOKED', 'This session was revoked; sign in again.');
    }
    if (!synced) return fallback(input, callOptions, 'NOT_READY');
    if (now - lastHeartbeat > maxStalenessMs) return fallback(input, callOptions, 'STALE');
    if (opened.expiresAt * 1000 <= droppedUntil)
      return fallback(input, callOptions, 'MEMORY_BOUND');
    if (
      entry &&
      entry.changedAt > 0 &&
      opened.issuedAt * 1000 <= entry.changedAt + CHANGE_MARGIN_MS
    ) {
      return fallback(input, callOptions, 'CHANGED');
    }
    if (opened.idleTimeout !== false) return fallback(input, callOptions, 'IDLE_TIMEOUT');
    if (
      opened.version === undefined ||
      opened.sessionExpiresAt === undefined ||
      opened.sessionExpiresAt * 1000 - EXPIRY_MARGIN_MS <= now
    ) {
      return fallback(input, callOptions, 'PAST_SESSION_EXPIRY');
    }
    if (opened.issuedAt * 1000 < now - keys.maxTokenAgeSeconds * 1000) {
      return fallback(input, callOptions, 'TOKEN_TOO_OLD');
    }
    // Without its session's start, a not-before mark cannot be checked.
    if (opened.startedAt === undefined || opened.authenticatedAt === undefined) {
      return fallback(input, callOptions, 'LEGACY_TOKEN');
    }
    if (opened.actor !== undefined) return fallback(input, callOptions, 'IMPERSONATION');
    const { maxAge } = input;
    if (
      maxAge !== undefined &&
      maxAge !== null &&
      (!Number.isInteger(maxAge) ||
        maxAge < 0 ||
        maxAge > MAX_AGE_LIMIT_SECONDS ||
        // The token's `auth_time` is at or before the session's (which only moves later); the
        // clock tolerance covers this process's clock being behind the database's.
        now + tolerance - opened.authenticatedAt * 1000 > maxAge * 1000)
    ) {
      return fallback(input, callOptions, 'MAX_AGE');
    }
    localVerifies += 1;
    return {
      sessionId: opened.sessionId,
      tag: opened.tag,
      identifier: opened.identifier,
      data: opened.data as TData,
      version: opened.version,
      expiresAt: new Date(opened.sessionExpiresAt * 1000).toISOString(),
      // As of the token's minting: a later markSessionFresh shows in the next refreshed token.
      authenticatedAt: new Date(Math.round(opened.authenticatedAt * 1000)).toISOString(),
      actor: null,
      verifiedBy: 'local',
    };
  };

  return {
    ready,
    verify,
    stats: () => ({
      entries: entries.size,
      cachedTokens: cache.size,
      position,
      stalenessMs: Date.now() - lastHeartbeat,
      localVerifies,
      serverVerifies,
    }),
    async close() {
      closed = true;
      clearInterval(pruneTimer);
      clearInterval(keysTimer);
      subscription?.unsubscribe();
      // Closing during an outage: graphql-ws rejects its pending reconnect; nothing is lost.
      await live.close().catch(() => undefined);
    },
  };
}

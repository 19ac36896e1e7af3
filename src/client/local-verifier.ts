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
import {
  liveTransportOf,
  type SubscriptionTransport,
  type SubscriptionTransportOptions,
} from './subscriptions.js';
import { httpTransport, type CallOptions, type Request } from './transport.js';
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

export const KEYS = `query VerifierKeys($tags: [String!]!) {
  verifierKeys(tags: $tags) {
    issuer audience clockToleranceSeconds maxTokenAgeSeconds
    keys { tag kid current encryptionKey { kty k alg kid } verificationKey { kty crv x alg use kid } }
  }
}`;

export const SNAPSHOT = `query VerifierSnapshot($tags: [String!]!, $after: String) {
  verifierSnapshot(tags: $tags, first: 1000, after: $after) {
    position endCursor hasNextPage
    entries { sessionId tag state tokensValidUntil changedAt }
  }
}`;

// `id: position`: the shared subscription transport resumes after the last `id` it received.
export const FEED = `subscription VerifierFeed($tags: [String!]!, $after: ID!, $heartbeatMs: Int) {
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

/** Opened tokens by token, oldest first, within a count and a total of characters. */
class TokenCache {
  private readonly tokens = new Map<string, OpenedToken>();
  /** Characters of the tokens held. */
  private chars = 0;
  constructor(
    private readonly maxTokens: number,
    private readonly maxChars: number,
  ) {}
  get size(): number {
    return this.tokens.size;
  }
  get(token: string): OpenedToken | undefined {
    return this.tokens.get(token);
  }
  /** Keeps an opened token, dropping the oldest to make room. */
  add(token: string, opened: OpenedToken): void {
    // Two verifies of one new token may both have opened it: count it once.
    if (this.tokens.has(token)) return;
    while (
      this.tokens.size > 0 &&
      (this.tokens.size >= this.maxTokens || this.chars + token.length > this.maxChars)
    ) {
      const oldest = this.tokens.keys().next().value!;
      this.tokens.delete(oldest);
      this.chars -= oldest.length;
    }
    this.tokens.set(token, opened);
    this.chars += token.length;
  }
  clear(): void {
    this.tokens.clear();
    this.chars = 0;
  }
}

/**
 * What the snapshot and the feed say of the followed sessions: the revoked, ended or changed
 * ones whose tokens may still be unexpired (at most `maxEntries`), and the not-before marks.
 */
class SessionView {
  readonly entries = new Map<string, Entry>();
  private readonly heap = new ExpiryHeap();
  /** Tokens expiring at or before this (epoch ms) may belong to an entry dropped for memory. */
  droppedUntil = 0;
  /** Not-before marks (epoch ms) by tag, and the env's under `*`: from the heartbeats. */
  private readonly notBefore = new Map<string, number>();

  constructor(
    private readonly followed: ReadonlySet<string>,
    private readonly maxEntries: number,
  ) {}

  /** Takes in one entry of the snapshot or the feed. */
  add(wire: WireEntry, clockToleranceSeconds: number): void {
    if (!this.followed.has(wire.tag)) return;
    const until = Date.parse(wire.tokensValidUntil) + clockToleranceSeconds * 1000;
    if (until <= Date.now()) return;
    let entry = this.entries.get(wire.sessionId);
    if (!entry) {
      if (this.entries.size >= this.maxEntries) this.dropSoonest();
      entry = { revoked: false, ended: false, changedAt: 0, until };
      this.entries.set(wire.sessionId, entry);
      this.heap.push({ until, id: wire.sessionId, entry });
    } else if (until > entry.until) {
      entry.until = until;
      this.heap.push({ until, id: wire.sessionId, entry });
    }
    if (wire.state === 'REVOKED') entry.revoked = true;
    else if (wire.state === 'EXPIRED') entry.ended = true;
    else if (wire.changedAt !== null) {
      entry.changedAt = Math.max(entry.changedAt, Date.parse(wire.changedAt));
    }
  }

  /** Drops the entry whose tokens expire soonest; tokens expiring by then go to the server. */
  private dropSoonest(): void {
    for (;;) {
      const top = this.heap.pop();
      if (!top) return;
      if (this.entries.get(top.id) !== top.entry || top.entry.until !== top.until) continue;
      this.entries.delete(top.id);
      this.droppedUntil = Math.max(this.droppedUntil, top.until);
      return;
    }
  }

  /** Forgets entries no token of which can still be valid. */
  prune(): void {
    const now = Date.now();
    for (;;) {
      const top = this.heap.peek();
      if (!top || top.until > now) return;
      this.heap.pop();
      if (this.entries.get(top.id) === top.entry && top.entry.until === top.until) {
        this.entries.delete(top.id);
      }
    }
  }

  /** Takes in a heartbeat's not-before marks. */
  markNotBefore(marks: readonly { tag: string | null; notBefore: string }[]): void {
    // Marks only move later: keep the later of what is known and what the heartbeat says.
    for (const mark of marks) {
      const key = mark.tag ?? WHOLE_ENV;
      const at = Date.parse(mark.notBefore);
      this.notBefore.set(key, Math.max(this.notBefore.get(key) ?? -Infinity, at));
    }
  }

  /** The latest not-before mark (epoch ms) that covers a tag: its own or the env's. */
  notBeforeOf(tag: string): number {
    return Math.max(
      this.notBefore.get(tag) ?? -Infinity,
      this.notBefore.get(WHOLE_ENV) ?? -Infinity,
    );
  }
}

/** The verifier's options with their defaults, checked. */
function settingsOf(options: LocalVerifierOptions) {
  const tags = [...new Set(options.tags)];
  const heartbeatMs = options.heartbeatMs ?? 1_000;
  // The server's own bounds: anything else would be refused on every try, and `ready` never come.
  if (!Number.isInteger(heartbeatMs) || heartbeatMs < 1_000 || heartbeatMs > 30_000)
    throw badUserInput('heartbeatMs', 'expected whole milliseconds from 1000 to 30000');
  return {
    tags,
    followed: new Set(tags),
    maxStalenessMs: options.maxStalenessMs ?? 3_000,
    onStale: options.onStale ?? 'fallback',
    heartbeatMs,
    cacheSize: options.cacheSize ?? 10_000,
    cacheChars: options.cacheChars ?? 16 * 1024 * 1024,
    maxEntries: options.maxEntries ?? 1_000_000,
    keysRefreshMs: options.keysRefreshMs ?? 60_000,
  };
}

/** Codes of a verifier's own request that a later try may not meet. */
const TRANSIENT_CODES = new Set([
  'NETWORK_ERROR',
  'SERVICE_UNAVAILABLE',
  'RATE_LIMITED',
  'INTERNAL_SERVER_ERROR',
  'BAD_RESPONSE',
]);

/**
 * The verifier's own requests (keys, snapshot pages), tried again with backoff while the server
 * is unreachable or busy (a reset keep-alive socket, a restart, RATE_LIMITED); a refused key or
 * a bad argument is final, and so is every failure once the verifier is closed.
 */
function retryingRequest(request: Request, isClosed: () => boolean) {
  return async <T>(query: string, variables: Record<string, unknown>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await request<T>(query, variables);
      } catch (error) {
        const code = (error as SessionServiceError).code;
        if (!TRANSIENT_CODES.has(code) || isClosed()) throw error;
        const retryAfter = (error as SessionServiceError).retryAfterSeconds;
        const wait =
          retryAfter !== undefined ? retryAfter * 1000 : Math.min(100 * 2 ** attempt, 5_000);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  };
}

type RetryingRequest = ReturnType<typeof retryingRequest>;

/** The tags' keys from `verifierKeys`, imported. */
async function fetchKeys(retrying: RetryingRequest, tags: readonly string[]): Promise<LoadedKeys> {
  const data = await retrying<{
    verifierKeys: Omit<LoadedKeys, 'keys'> & {
      keys: Array<{ tag: string; kid: string; encryptionKey: JWK; verificationKey: JWK }>;
    };
  }>(KEYS, { tags });
  const set = data.verifierKeys;
  const map = new Map<string, { encryption: CryptoKey | Uint8Array; verification: unknown }>();
  for (const k of set.keys) {
    map.set(`${k.tag}\u0000${k.kid}`, await importVerifierKey(k.encryptionKey, k.verificationKey));
  }
  return { ...set, keys: map };
}

/** Reads the whole snapshot into `add`; returns the feed position it was taken at. */
async function readSnapshot(
  retrying: RetryingRequest,
  tags: readonly string[],
  add: (entry: WireEntry) => void,
): Promise<string> {
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
    for (const e of page.entries) add(e);
    if (!page.hasNextPage || page.endCursor === null) break;
    after = page.endCursor;
  }
  return first ?? '0';
}

/** One message of `verifierFeed`: an entry, or a heartbeat with the not-before marks. */
interface FeedMessage {
  id: string;
  at: string;
  entry: WireEntry | null;
  notBefore: { tag: string | null; notBefore: string }[] | null;
}

const revoked = () =>
  new SessionServiceError('SESSION_REVOKED', 'This session was revoked; sign in again.');

/** Throws the refusals that hold whatever the feed's state (revocations are forever). */
function refuseEnded(
  opened: OpenedToken,
  entry: Entry | undefined,
  notBeforeMark: number,
  now: number,
  tolerance: number,
): void {
  if (opened.expiresAt * 1000 + tolerance <= now) throw tokenExpired();
  if (entry?.revoked) throw revoked();
  if (entry?.ended) throw tokenExpired();
  // A not-before revocation refuses at once, before its batches write the REVOKED events.
  if (opened.startedAt !== undefined && opened.startedAt < notBeforeMark) throw revoked();
}

/** What {@link fallbackReasonOf} weighs beside the token. */
interface LocalState {
  readonly synced: boolean;
  readonly stale: boolean;
  readonly droppedUntil: number;
  readonly maxTokenAgeSeconds: number;
  readonly now: number;
  readonly tolerance: number;
}

/** Why the server must decide on a token no refusal applies to; undefined when this process can. */
function fallbackReasonOf(
  opened: OpenedToken,
  maxAge: number | undefined,
  entry: Entry | undefined,
  state: LocalState,
): FallbackReason | undefined {
  const { now } = state;
  if (!state.synced) return 'NOT_READY';
  if (state.stale) return 'STALE';
  if (opened.expiresAt * 1000 <= state.droppedUntil) return 'MEMORY_BOUND';
  if (entry && entry.changedAt > 0 && opened.issuedAt * 1000 <= entry.changedAt + CHANGE_MARGIN_MS)
    return 'CHANGED';
  if (opened.idleTimeout !== false) return 'IDLE_TIMEOUT';
  if (
    opened.version === undefined ||
    opened.sessionExpiresAt === undefined ||
    opened.sessionExpiresAt * 1000 - EXPIRY_MARGIN_MS <= now
  ) {
    return 'PAST_SESSION_EXPIRY';
  }
  if (opened.issuedAt * 1000 < now - state.maxTokenAgeSeconds * 1000) return 'TOKEN_TOO_OLD';
  // Without its session's start, a not-before mark cannot be checked.
  if (opened.startedAt === undefined || opened.authenticatedAt === undefined) return 'LEGACY_TOKEN';
  if (opened.actor !== undefined) return 'IMPERSONATION';
  if (
    maxAge !== undefined &&
    maxAge !== null &&
    (!Number.isInteger(maxAge) ||
      maxAge < 0 ||
      maxAge > MAX_AGE_LIMIT_SECONDS ||
      // The token's `auth_time` is at or before the session's (which only moves later); the
      // clock tolerance covers this process's clock being behind the database's.
      now + state.tolerance - opened.authenticatedAt * 1000 > maxAge * 1000)
  ) {
    return 'MAX_AGE';
  }
  return undefined;
}

/** The answer from the token itself, once {@link fallbackReasonOf} found nothing to ask. */
function localAnswer<TData>(opened: OpenedToken): LocalVerifyResult<TData> {
  return {
    sessionId: opened.sessionId,
    tag: opened.tag,
    identifier: opened.identifier,
    data: opened.data as TData,
    // Both checked by fallbackReasonOf (PAST_SESSION_EXPIRY, LEGACY_TOKEN).
    version: opened.version!,
    expiresAt: new Date(opened.sessionExpiresAt! * 1000).toISOString(),
    // As of the token's minting: a later markSessionFresh shows in the next refreshed token.
    authenticatedAt: new Date(Math.round(opened.authenticatedAt! * 1000)).toISOString(),
    actor: null,
    verifiedBy: 'local',
  };
}

/** Feed errors that no retry can mend. */
const FINAL_FEED_ERRORS = new Set(['UNAUTHENTICATED', 'FORBIDDEN', 'BAD_USER_INPUT', 'NOT_FOUND']);

/** A promise with its resolve and reject at hand (`Promise.withResolvers`, Node 22+). */
function deferred(): {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
} {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * The tags' keys: loaded at start, every `refreshMs` and (at most every 5 s) on a token of an
 * unknown kid. A reload empties `cache`: a retired kid's tokens no longer open.
 */
function keyStore(
  retrying: RetryingRequest,
  tags: readonly string[],
  cache: TokenCache,
  refreshMs: number,
) {
  let current: LoadedKeys | undefined;
  let loading: Promise<void> | undefined;
  let lastLoad = 0;
  const load = (): Promise<void> => {
    loading ??= (async () => {
      lastLoad = Date.now();
      const loaded = await fetchKeys(retrying, tags);
      if (current) cache.clear();
      current = loaded;
    })().finally(() => {
      loading = undefined;
    });
    return loading;
  };
  const timer = setInterval(() => {
    load().catch(() => undefined);
  }, refreshMs);
  timer.unref?.();
  return {
    get current(): LoadedKeys | undefined {
      return current;
    },
    load,
    /** A token named a kid the keys lack: reload, unless they were loaded in the last 5 s. */
    unknownKey(): void {
      if (Date.now() - lastLoad > 5_000) load().catch(() => undefined);
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * Follows `verifierFeed` into `view` from a position: entries, and heartbeats with their
 * not-before marks. The first heartbeat resolves `ready`; an error no retry can mend rejects
 * it (before then) and ends the feed; any other error starts it again a second later.
 */
function feedFollower(
  live: SubscriptionTransport,
  settings: { readonly tags: readonly string[]; readonly heartbeatMs: number },
  view: { add(entry: WireEntry): void; markNotBefore: SessionView['markNotBefore'] },
  ready: ReturnType<typeof deferred>,
  isClosed: () => boolean,
) {
  let lastHeartbeat = -Infinity;
  let position: string | undefined;
  let synced = false;
  let subscription: { unsubscribe(): void } | undefined;

  const onMessage = (m: FeedMessage): void => {
    position = m.id;
    if (m.entry) {
      view.add(m.entry);
      return;
    }
    view.markNotBefore(m.notBefore ?? []);
    lastHeartbeat = Date.now();
    if (!synced) {
      synced = true;
      ready.resolve();
    }
  };
  const onError = (error: SessionServiceError): void => {
    lastHeartbeat = -Infinity;
    // A refused key, a refused argument or an unknown tag ends the verifier's feed for
    // good (trying again would be refused the same way); anything else is tried again.
    if (FINAL_FEED_ERRORS.has(error.code)) {
      if (!synced) ready.reject(error);
      return;
    }
    const again = setTimeout(follow, 1_000);
    again.unref?.();
  };
  const follow = (): void => {
    if (isClosed()) return;
    const variables = { tags: settings.tags, after: position, heartbeatMs: settings.heartbeatMs };
    subscription = live.subscribe(
      FEED,
      'verifierFeed',
      variables,
      (message) => onMessage(message as unknown as FeedMessage),
      { onError },
    );
  };
  return {
    get lastHeartbeat() {
      return lastHeartbeat;
    },
    get position() {
      return position;
    },
    get synced() {
      return synced;
    },
    /** Starts following after `from`, the snapshot's position. */
    start(from: string): void {
      position = from;
      follow();
    },
    stop: () => subscription?.unsubscribe(),
  };
}

/** The token opened, from the cache or with the keys; NotLocal when only the server can. */
async function openToken(
  cache: TokenCache,
  keys: ReturnType<typeof keyStore>,
  loaded: LoadedKeys,
  tag: string,
  token: string,
): Promise<OpenedToken | NotLocal> {
  const cached = cache.get(token);
  if (cached !== undefined) {
    if (cached.tag !== tag) throw tokenInvalid();
    return cached;
  }
  const result = await openLocally(loaded, tag, token);
  if (result instanceof NotLocal) {
    if (result.reason === 'UNKNOWN_KEY') keys.unknownKey();
    return result;
  }
  cache.add(token, result);
  return result;
}

/**
 * A verifier of session tokens in your backend's own process. It loads the tags' keys, syncs the
 * sessions it must refuse or leave to the server, then follows `verifierFeed` from that point
 * (reconnecting and resuming without gap); `verify` needs no network call unless it cannot
 * decide, and says so. Memory: at most `cacheSize` opened tokens and `maxEntries` sessions; an
 * entry leaves once no token of its session can be valid.
 */
export function createLocalVerifier(options: LocalVerifierOptions): LocalVerifier {
  const settings = settingsOf(options);
  const { tags, followed, maxStalenessMs } = settings;
  const request = httpTransport(options);
  const live = liveTransportOf(options, {
    // A verifier reconnects fast: its answers fall back to the server until it has.
    retryWait: (retries) =>
      new Promise((resolve) =>
        setTimeout(resolve, Math.min(100 * 2 ** retries, 2_000) + Math.random() * 100),
      ),
    ...options.ws,
  });
  let closed = false;
  let localVerifies = 0;
  let serverVerifies = 0;
  const ready = deferred();
  ready.promise.catch(() => undefined);
  const retrying = retryingRequest(request, () => closed);
  const cache = new TokenCache(settings.cacheSize, settings.cacheChars);
  const view = new SessionView(followed, settings.maxEntries);
  const pruneTimer = setInterval(() => view.prune(), 1_000);
  pruneTimer.unref?.();
  const keys = keyStore(retrying, tags, cache, settings.keysRefreshMs);
  const addEntry = (wire: WireEntry) => view.add(wire, keys.current?.clockToleranceSeconds ?? 30);
  const feed = feedFollower(
    live,
    settings,
    { add: addEntry, markNotBefore: (marks) => view.markNotBefore(marks) },
    ready,
    () => closed,
  );
  const start = async (): Promise<void> => {
    await keys.load();
    const from = await readSnapshot(retrying, tags, addEntry);
    if (!closed) feed.start(from);
  };
  start().catch((error: unknown) => ready.reject(error));

  const fallback = async <TData>(
    input: VerifyInput,
    callOptions: CallOptions | undefined,
    reason: FallbackReason,
  ): Promise<LocalVerifyResult<TData>> => {
    if ((reason === 'STALE' || reason === 'NOT_READY') && settings.onStale === 'refuse') {
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
    if (!keys.current) return fallback(input, callOptions, 'NOT_READY');
    const opened = await openToken(cache, keys, keys.current, tag, token);
    if (opened instanceof NotLocal) return fallback(input, callOptions, opened.reason);
    const now = Date.now();
    // The keys as of now: a reload while the token was opened applies to the checks.
    const { clockToleranceSeconds, maxTokenAgeSeconds } = keys.current!;
    const tolerance = clockToleranceSeconds * 1000;
    const entry = view.entries.get(opened.sessionId);
    refuseEnded(opened, entry, view.notBeforeOf(tag), now, tolerance);
    const reason = fallbackReasonOf(opened, input.maxAge, entry, {
      synced: feed.synced,
      stale: now - feed.lastHeartbeat > maxStalenessMs,
      droppedUntil: view.droppedUntil,
      maxTokenAgeSeconds,
      now,
      tolerance,
    });
    if (reason !== undefined) return fallback(input, callOptions, reason);
    localVerifies += 1;
    return localAnswer<TData>(opened);
  };

  return {
    ready: ready.promise,
    verify,
    stats: () => ({
      entries: view.entries.size,
      cachedTokens: cache.size,
      position: feed.position,
      stalenessMs: Date.now() - feed.lastHeartbeat,
      localVerifies,
      serverVerifies,
    }),
    async close() {
      closed = true;
      clearInterval(pruneTimer);
      keys.stop();
      feed.stop();
      // Closing during an outage: graphql-ws rejects its pending reconnect; nothing is lost.
      await live.close().catch(() => undefined);
    },
  };
}

import { startAutoRefresh, type AutoRefresh, type AutoRefreshOptions } from './auto-refresh.js';
import * as ops from './documents.js';
import {
  liveTransportOf,
  type EventSubscription,
  type SubscribeOptions,
  type SubscriptionTransport,
  type SubscriptionTransportOptions,
} from './subscriptions.js';
import { httpTransport, type CallOptions, type Request } from './transport.js';
import { sessionControls } from './controls.js';
import {
  instantOf,
  pagePosition,
  pageVariables,
  periodOf,
  scopeVariables,
  textOf,
  wholeNumberOf,
  withoutScope,
  type ConnectionAnswer,
  type PageInput,
  type ScopeSpelling,
} from './ductape.js';
import type {
  CreateSessionConfigInput,
  ListedSession,
  Session,
  SessionAddress,
  SessionConfig,
  SessionData,
  SessionEvent,
  SessionEventType,
  SessionList,
  SessionTokens,
  SessionWrite,
  StartSessionInput,
  TokenInput,
  UpdateSessionConfigInput,
  VerifiedSession,
} from './types.js';

export interface SessionClientOptions {
  /**
   * The GraphQL endpoint, e.g. `http://localhost:4000/graphql`, or several (1 to 10) of one
   * fleet: a query goes to the next on a connection failure or a timeout; a mutation only when
   * its connection was never made.
   */
  readonly url: string | readonly string[];
  /** A secret key (`sk_<env>_...`): product and env come from it. Keep it on your backend. */
  readonly key: string;
  /** A fetch implementation (default: the global one). */
  readonly fetch?: typeof fetch;
  /** More headers for every HTTP request. */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * How long one HTTP attempt may take, the whole answer read, in ms (default 5000, at most
   * 120,000); past it the call is SERVICE_UNAVAILABLE. Also bounds opening a WebSocket.
   */
  readonly timeoutMs?: number;
  /** The WebSocket URL(s) for subscriptions (default: each `url` with `ws:` or `wss:`). */
  readonly wsUrl?: string | readonly string[];
  /** A WebSocket constructor (default: the global one, else the `ws` package). */
  readonly webSocketImpl?: unknown;
  /** More graphql-ws options (retryAttempts, retryWait, keepAlive...). */
  readonly ws?: SubscriptionTransportOptions['options'];
  /** Ductape's constructor option: the product every call names (the admin key acts there). */
  readonly product?: string;
  /** Ductape's constructor option: the environment every call names. */
  readonly env?: string;
}

/** Which events to hear; `after` resumes after an event id you already have. */
export interface EventFilter {
  readonly tag?: string;
  readonly identifier?: string;
  readonly after?: string;
}

/** The session client: Ductape's `sessions` calls, plus configs and live events. */
export type SessionClient = ReturnType<typeof createSessionClient>;

/**
 * Each client's options, for the server helpers (`@session-service/client/server`) to open a
 * local verifier on the same servers with the same key. Kept apart from the client object so
 * that logging a client never prints its key.
 */
const optionsOfClient = new WeakMap<object, SessionClientOptions>();

/** The options a client was made with (internal: not exported from the package's entry). */
export function clientOptionsOf(client: object): SessionClientOptions | undefined {
  return optionsOfClient.get(client);
}

/**
 * A typed client for the session service that mirrors the Ductape SDK: `configs` is Ductape's
 * `products.sessions` (create, update, fetch, fetchAll), `sessions` its `sessions` (start,
 * verify, refresh, revoke, revokeAll, list) with session.do's data and time operations, and
 * `onRevoked` / `onEvent` for live events. Every failure is a `SessionServiceError` carrying
 * the API's code.
 */
export function createSessionClient(options: SessionClientOptions) {
  const request = httpTransport(options);
  const live = liveTransportOf(options, options.ws);
  const defaults: ScopeSpelling = { product: options.product, env: options.env };
  const sessions = {
    ...sessionControls(request, defaults),
    ...sessionCalls(request, defaults),
    ...sessionEndCalls(request, defaults),
    ...sessionDataCalls(request),
    /**
     * Keeps `tokens` fresh: refreshes `refreshBeforeSeconds` before each expiry and hands each
     * new pair to `onRefresh`; stops on the first failure, reported to `onError`. What the
     * Ductape docs' `SessionManager` does by hand.
     */
    autoRefresh(tokens: SessionTokens, autoOptions: AutoRefreshOptions): AutoRefresh {
      return startAutoRefresh((input) => sessions.refresh(input), tokens, autoOptions);
    },
    ...eventCalls(live),
  };
  const client = {
    configs: configCalls(request, defaults),
    sessions,
    /** Closes the subscriptions' WebSocket (HTTP calls need no closing). */
    close: () => live.close(),
  };
  optionsOfClient.set(client, options);
  return client;
}

/** A config input in this API's spelling: `period: 'hours'` mapped, product and env apart. */
function configInput(input: UpdateSessionConfigInput & ScopeSpelling) {
  const rest = withoutScope(input);
  return rest.period === undefined
    ? rest
    : { ...rest, period: periodOf(rest.period, 'input.period') };
}

/** The session-type calls (Ductape's `products.sessions`), the client's `configs`. */
function configCalls(request: Request, defaults: ScopeSpelling) {
  const scoped = (input: ScopeSpelling) => scopeVariables(input, defaults);
  return {
    /**
     * Creates a session type (Ductape `products.sessions.create`). CONFLICT if the tag is
     * taken. Ductape's `period: 'hours'` and `product`/`env` beside the input are accepted.
     */
    async create(input: CreateSessionConfigInput & ScopeSpelling): Promise<SessionConfig> {
      const data = await request<{ createSessionConfig: SessionConfig }>(ops.CREATE_CONFIG, {
        input: configInput(input),
        ...scoped(input),
      });
      return data.createSessionConfig;
    },
    /**
     * Changes the given fields only (Ductape `products.sessions.update`): either
     * `update({ tag, ...changes })` as in Ductape, or `update(tag, changes)`, where
     * `changes.tag` renames it.
     */
    async update(
      ...args:
        | [patch: UpdateSessionConfigInput & ScopeSpelling & { readonly tag: string }]
        | [tag: string, changes: UpdateSessionConfigInput & ScopeSpelling]
    ): Promise<SessionConfig> {
      const [tag, input] =
        typeof args[0] === 'string'
          ? [args[0], args[1] ?? {}]
          : [args[0].tag, { ...args[0], tag: undefined }];
      const data = await request<{ updateSessionConfig: SessionConfig }>(ops.UPDATE_CONFIG, {
        tag: textOf(tag, 'tag'),
        input: configInput(input),
        ...scoped(input),
      });
      return data.updateSessionConfig;
    },
    /** One session type by tag, or null (Ductape `products.sessions.fetch`). */
    async fetch(tag: string): Promise<SessionConfig | null> {
      const data = await request<{ sessionConfig: SessionConfig | null }>(ops.FETCH_CONFIG, {
        tag,
      });
      return data.sessionConfig;
    },
    /** Every session type of the product (Ductape `products.sessions.fetchAll`). */
    async fetchAll(): Promise<SessionConfig[]> {
      const data = await request<{ sessionConfigs: SessionConfig[] }>(ops.FETCH_CONFIGS);
      return data.sessionConfigs;
    },
    /** Deletes a session type and revokes all its sessions, in every environment. */
    async delete(tag: string): Promise<boolean> {
      const data = await request<{ deleteSessionConfig: boolean }>(ops.DELETE_CONFIG, { tag });
      return data.deleteSessionConfig;
    },
  };
}

/** The token calls of `sessions`: start, verify, isValid and refresh (Ductape's `sessions`). */
function sessionCalls(request: Request, defaults: ScopeSpelling) {
  const scoped = (input: ScopeSpelling) => scopeVariables(input, defaults);
  return {
    /** Starts a session: its token and refresh token (Ductape `sessions.start`). */
    async start<TData = SessionData>(input: StartSessionInput<TData>): Promise<SessionTokens> {
      const rest = withoutScope(input);
      const data = await request<{ startSession: SessionTokens }>(ops.START, {
        input: {
          ...rest,
          tag: textOf(rest.tag, 'input.tag'),
          expiresIn: wholeNumberOf(rest.expiresIn, 'input.expiresIn') ?? undefined,
          expiresAt: instantOf(rest.expiresAt, 'input.expiresAt') ?? undefined,
        },
        ...scoped(input),
      });
      return data.startSession;
    },
    /**
     * Checks a token and returns its data (Ductape `sessions.verify`). Throws TOKEN_INVALID,
     * TOKEN_EXPIRED or SESSION_REVOKED when it does not verify. `callOptions.signal` abandons
     * it (it then rejects with the signal's reason).
     */
    async verify<TData = SessionData>(
      input: TokenInput & { maxAge?: number },
      callOptions?: CallOptions,
    ): Promise<VerifiedSession<TData>> {
      const data = await request<{ verifySession: VerifiedSession<TData> }>(
        ops.VERIFY,
        {
          tag: textOf(input.tag, 'tag'),
          token: textOf(input.token, 'token'),
          maxAge: wholeNumberOf(input.maxAge, 'maxAge'),
          ...scoped(input),
        },
        callOptions,
      );
      return data.verifySession;
    },
    /**
     * The id of the newest event so far (undefined when there is none): pass it as `after` to
     * `onRevoked`/`onEvent` so that nothing committed from now on is missed, not even before
     * the first event arrives.
     */
    async latestEventId(): Promise<string | undefined> {
      const data = await request<{ latestSessionEventId: string | null }>(ops.LATEST_EVENT_ID);
      return data.latestSessionEventId ?? undefined;
    },
    /** True when the token verifies, false (no error) when it is invalid, expired or revoked. */
    async isValid(input: TokenInput, callOptions?: CallOptions): Promise<boolean> {
      const data = await request<{ isSessionValid: boolean }>(
        ops.IS_VALID,
        {
          tag: textOf(input.tag, 'tag'),
          token: textOf(input.token, 'token'),
          ...scoped(input),
        },
        callOptions,
      );
      return data.isSessionValid;
    },
    /** Exchanges a refresh token for a new pair (Ductape `sessions.refresh`). */
    async refresh(
      input: {
        tag: string;
        refreshToken: string;
        /**
         * The end user's client now (a change goes into the session's device history); left
         * out, the session keeps its device. `fromRequest: true` takes the parts left out from
         * this client's own request (its User-Agent and IP), which is rarely the end user's.
         */
        device?: { userAgent?: string; ip?: string; fromRequest?: boolean };
      } & ScopeSpelling,
    ): Promise<SessionTokens> {
      const data = await request<{ refreshSession: SessionTokens }>(ops.REFRESH, {
        tag: textOf(input.tag, 'tag'),
        refreshToken: textOf(input.refreshToken, 'refreshToken'),
        device: input.device ?? null,
        ...scoped(input),
      });
      return data.refreshSession;
    },
  };
}

/** The calls of `sessions` that end or list a user's sessions (Ductape's revoke, revokeAll, list). */
function sessionEndCalls(request: Request, defaults: ScopeSpelling) {
  const scoped = (input: ScopeSpelling) => scopeVariables(input, defaults);
  return {
    /** Ends one session, everywhere, from the next verify (Ductape `sessions.revoke`). */
    async revoke<TData = SessionData>(
      input: SessionAddress & ScopeSpelling,
    ): Promise<Session<TData>> {
      const data = await request<{ revokeSession: Session<TData> }>(ops.REVOKE, {
        tag: textOf(input.tag, 'tag'),
        sessionId: textOf(input.sessionId, 'sessionId'),
        ...scoped(input),
      });
      return data.revokeSession;
    },
    /**
     * Ends every session of a user under a tag (Ductape `sessions.revokeAll`), but the one
     * named by `excludeCurrentSession` (Ductape's name) or `excludeSessionId`.
     */
    async revokeAll(
      input: {
        tag: string;
        identifier: string;
        excludeCurrentSession?: string;
        excludeSessionId?: string;
      } & ScopeSpelling,
    ): Promise<{ count: number }> {
      const data = await request<{ revokeAllSessions: { count: number } }>(ops.REVOKE_ALL, {
        tag: textOf(input.tag, 'tag'),
        identifier: textOf(input.identifier, 'identifier'),
        excludeSessionId: input.excludeSessionId ?? input.excludeCurrentSession ?? null,
        ...scoped(input),
      });
      return data.revokeAllSessions;
    },
    /**
     * A user's active sessions, newest first (Ductape `sessions.list`): `count` and `sessions`,
     * 20 a page by default; pass `endCursor` as `after` for the next page.
     */
    async list<TData = SessionData>(
      input: { tag: string; identifier: string } & PageInput & ScopeSpelling,
    ): Promise<SessionList<TData>> {
      const data = await request<{
        sessions: ConnectionAnswer & { nodes: Session<TData>[] };
      }>(ops.LIST, {
        tag: textOf(input.tag, 'tag'),
        identifier: textOf(input.identifier, 'identifier'),
        ...pageVariables(input),
        ...scoped(input),
      });
      const page = data.sessions;
      return {
        ...pagePosition(page),
        sessions: page.nodes.map((s): ListedSession<TData> => ({ ...s, sessionId: s.id })),
      };
    },
  };
}

/** The calls of `sessions` on one session's data and time (session.do's). */
function sessionDataCalls(request: Request) {
  const onSession = async <TData>(
    document: string,
    field: string,
    variables: SessionWrite & object,
  ): Promise<Session<TData>> => {
    const data = await request<Record<string, Session<TData>>>(document, {
      ...variables,
      expectedVersion: variables.expectedVersion ?? null,
    });
    return data[field]!;
  };

  return {
    /** One session by id, whatever its status, or null (session.do `get`). */
    async get<TData = SessionData>(input: { sessionId: string }): Promise<Session<TData> | null> {
      const data = await request<{ session: Session<TData> | null }>(ops.GET, {
        id: input.sessionId,
      });
      return data.session;
    },
    /** One top-level key of a session's data, or null (session.do `get(id, key)`). */
    async getValue<T = unknown>(input: { sessionId: string; key: string }): Promise<T | null> {
      const data = await request<{ session: { value: T | null } | null }>(ops.GET_VALUE, {
        id: input.sessionId,
        key: input.key,
      });
      return data.session?.value ?? null;
    },
    /** Replaces a session's data (session.do `update`). */
    updateData<TData = SessionData>(input: SessionWrite & { data: TData }) {
      return onSession<TData>(ops.UPDATE_DATA, 'updateSessionData', input);
    },
    /** Deep-merges into a session's data (session.do `merge`). */
    mergeData<TData = SessionData>(input: SessionWrite & { data: Partial<TData> | SessionData }) {
      return onSession<TData>(ops.MERGE_DATA, 'mergeSessionData', input);
    },
    /** Sets one top-level key of a session's data (session.do `set`). */
    set<TData = SessionData>(input: SessionWrite & { key: string; value: unknown }) {
      return onSession<TData>(ops.SET_VALUE, 'setSessionValue', input);
    },
    /** Removes one top-level key of a session's data (session.do `remove`). */
    remove<TData = SessionData>(input: SessionWrite & { key: string }) {
      return onSession<TData>(ops.REMOVE_VALUE, 'removeSessionValue', input);
    },
    /** Empties a session's data (session.do `clear`). */
    clear<TData = SessionData>(input: SessionWrite) {
      return onSession<TData>(ops.CLEAR_DATA, 'clearSessionData', input);
    },
    /** Records activity now, pushing back the idle timeout (session.do `touch`). */
    touch<TData = SessionData>(input: SessionAddress) {
      return onSession<TData>(ops.TOUCH, 'touchSession', input);
    },
    /** Moves the session's expiry later by `seconds` (session.do `extend`). */
    extend<TData = SessionData>(input: SessionAddress & { seconds: number }) {
      return onSession<TData>(ops.EXTEND, 'extendSession', input);
    },
    /** Sets the session's expiry to a future instant (session.do `setExpiration`). */
    setExpiration<TData = SessionData>(input: SessionAddress & { expiresAt: Date | string }) {
      const expiresAt =
        input.expiresAt instanceof Date ? input.expiresAt.toISOString() : input.expiresAt;
      const variables = { ...input, expiresAt };
      return onSession<TData>(ops.SET_EXPIRATION, 'setSessionExpiration', variables);
    },
  };
}

/** An event filter as the subscriptions' variables (null: any tag or user). */
function filterVariables(filter: EventFilter) {
  return { tag: filter.tag ?? null, identifier: filter.identifier ?? null, after: filter.after };
}

/** The live-event calls of `sessions`, over the subscriptions' WebSocket. */
function eventCalls(live: SubscriptionTransport) {
  return {
    /**
     * Calls `listener` with each revocation (logout, revoke all, reuse detected, config
     * deleted) in the key's product and env, optionally for one tag and user. Over WebSocket;
     * after a reconnect it resumes after the last event delivered, missing none. Before the
     * first event there is nothing to resume from: pass `after: await sessions.latestEventId()`
     * to cover that window too.
     */
    onRevoked(
      filter: EventFilter,
      listener: (event: SessionEvent) => void,
      subscribeOptions?: SubscribeOptions,
    ): EventSubscription {
      const variables = filterVariables(filter);
      return live.subscribe(
        ops.ON_REVOKED,
        'sessionRevoked',
        variables,
        listener,
        subscribeOptions,
      );
    },
    /** Like `onRevoked`, for every kind of event or the given `types`. */
    onEvent(
      filter: EventFilter & { types?: readonly SessionEventType[] },
      listener: (event: SessionEvent) => void,
      subscribeOptions?: SubscribeOptions,
    ): EventSubscription {
      const variables = { ...filterVariables(filter), types: filter.types ?? null };
      return live.subscribe(ops.ON_EVENT, 'sessionEvents', variables, listener, subscribeOptions);
    },
  };
}

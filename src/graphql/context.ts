import DataLoader from 'dataloader';
import type { Logger } from 'pino';
import type { SessionConfigRow, ApiKeyRow } from '../db/schema.js';
import { activeSessionsByIdentifier } from '../domain/activity/index.js';
import type { Caller, Scope } from '../domain/callers.js';
import { activeSessionCounts, sessionConfigsByIds } from '../domain/configs.js';
import { listApiKeysOfProducts } from '../domain/keys.js';
import type { Device, SessionRecord } from '../domain/sessions/index.js';
import type { SubscriptionTransport } from '../workers/event-bus.js';
import type { Services } from '../services.js';

/** A session config's live sessions in one env: the key of `activeSessionCount`. */
export interface ConfigInEnv {
  readonly env: string;
  readonly configId: string;
}

/** One user of a tag in a product and env: the key of `activeSessionsOfUser`. */
export interface UserOfTag {
  readonly scope: Scope;
  readonly tag: string;
  readonly identifier: string;
}

/**
 * Request-scoped batching: a page of 50 sessions, configs or users costs one query per field
 * instead of 50. A new set per request, so nothing cached outlives a request; each loader is
 * built when a request first uses it (most requests use none). Keys are objects, with a
 * `cacheKeyFn` that only dedupes them: nothing is ever parsed back out of a string key.
 */
export class Loaders {
  readonly #services: Services;
  #configById?: DataLoader<string, SessionConfigRow | undefined>;
  #activeSessionCount?: DataLoader<ConfigInEnv, number, string>;
  #apiKeysByProduct?: DataLoader<string, ApiKeyRow[]>;
  #activeSessionsOfUser?: DataLoader<UserOfTag, number, string>;

  constructor(services: Services) {
    this.#services = services;
  }

  /** Session rows by id, for verify's row check: the process-wide batcher of `Services`. */
  get sessionRecord(): DataLoader<string, SessionRecord | undefined> {
    return this.#services.sessionRecords;
  }

  /** Configs by id (deleted ones too), for `Session.config` over a page of sessions. */
  get configById(): DataLoader<string, SessionConfigRow | undefined> {
    return (this.#configById ??= new DataLoader(async (ids) => {
      const rows = await sessionConfigsByIds(this.#services.db, ids);
      const byId = new Map(rows.map((r) => [r.id, r]));
      return ids.map((id) => byId.get(id));
    }));
  }

  /** Live sessions per config and env: `sessionConfigs` counts 50 configs in one query per env. */
  get activeSessionCount(): DataLoader<ConfigInEnv, number, string> {
    return (this.#activeSessionCount ??= new DataLoader(
      async (keys) => {
        const counts = await batchedByGroup(
          keys,
          (key) => key.env,
          (key) => key.configId,
          (group) =>
            activeSessionCounts(
              this.#services.db,
              group[0]!.env,
              group.map((key) => key.configId),
            ),
        );
        return keys.map((key, i) => counts[i] ?? 0);
      },
      { cacheKeyFn: (key) => JSON.stringify([key.env, key.configId]) },
    ));
  }

  /** API keys per product id, for `products { apiKeys }`. */
  get apiKeysByProduct(): DataLoader<string, ApiKeyRow[]> {
    return (this.#apiKeysByProduct ??= new DataLoader(async (productIds) => {
      const rows = await listApiKeysOfProducts(this.#services.db, productIds);
      return productIds.map((id) => rows.filter((r) => r.productId === id));
    }));
  }

  /** Live sessions per user of a tag: a page of `sessionUsers` costs one grouped count. */
  get activeSessionsOfUser(): DataLoader<UserOfTag, number, string> {
    return (this.#activeSessionsOfUser ??= new DataLoader(
      async (keys) => {
        const counts = await batchedByGroup(
          keys,
          (key) => JSON.stringify([key.scope.productId, key.scope.env, key.tag]),
          (key) => key.identifier,
          (group) =>
            activeSessionsByIdentifier(
              this.#services.db,
              group[0]!.scope,
              group[0]!.tag,
              group.map((key) => key.identifier),
            ),
        );
        return keys.map((key, i) => counts[i] ?? 0);
      },
      {
        cacheKeyFn: (key) =>
          JSON.stringify([key.scope.productId, key.scope.env, key.tag, key.identifier]),
      },
    ));
  }
}

/**
 * Answers a batch of keys with one query per group of keys (per env, per tag...): `query`
 * answers a group as a map by `itemOf(key)`. Returns the answer of each key, in order.
 */
async function batchedByGroup<K, V>(
  keys: readonly K[],
  groupOf: (key: K) => string,
  itemOf: (key: K) => string,
  query: (group: readonly K[]) => Promise<ReadonlyMap<string, V>>,
): Promise<(V | undefined)[]> {
  const groups = new Map<string, K[]>();
  for (const key of keys) {
    const group = groupOf(key);
    const members = groups.get(group);
    if (members) members.push(key);
    else groups.set(group, [key]);
  }
  const answers = new Map<string, ReadonlyMap<string, V>>();
  for (const [group, members] of groups) answers.set(group, await query(members));
  return keys.map((key) => answers.get(groupOf(key))?.get(itemOf(key)));
}

/**
 * What every resolver gets, one per HTTP request or per WebSocket operation
 * ({@link createContext}): the process's services, the caller, and what belongs to this request
 * alone (its loaders, device and logger).
 */
export interface Context {
  readonly services: Services;
  /** Who is calling; authenticated on first use, once per request. */
  readonly caller: () => Promise<Caller>;
  /**
   * The caller once `caller()` has resolved (scope-auth's error messages read it). A holder
   * object, because Yoga copies the context's properties into its own object.
   */
  readonly resolved: { caller?: Caller };
  readonly loaders: Loaders;
  /** The calling client as the request shows it; a backend may pass its end user's instead. */
  readonly requestDevice: Device;
  /**
   * The request's logger: its lines carry the request's id (`reqId`), as its request line does.
   * Made on first use (a pino child costs more than a trivial request needs).
   */
  readonly log: () => Logger;
  /** Over WebSocket: the socket's backpressure, for subscriptions (none over HTTP). */
  readonly subscriptionTransport?: SubscriptionTransport;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** Reads the key out of an `Authorization: Bearer <key>` value. */
export function bearerKey(authorization: string | null | undefined): string | undefined {
  if (!authorization) return undefined;
  const match = BEARER.exec(authorization);
  return match ? match[1] : authorization.trim() === '' ? undefined : '\u0000invalid';
}

/**
 * The `authorization` entry of graphql-ws `connectionParams`, its name in any case (as HTTP
 * header names are): `Authorization`, as GraphiQL's Headers pane writes it, works too. An exact
 * `authorization` wins over other spellings.
 */
export function authorizationParam(
  params: Readonly<Record<string, unknown>> | null | undefined,
): string | undefined {
  if (!params) return undefined;
  const exact = params.authorization;
  if (typeof exact === 'string') return exact;
  for (const [name, value] of Object.entries(params)) {
    if (name.toLowerCase() === 'authorization' && typeof value === 'string') return value;
  }
  return undefined;
}

/**
 * The context of one request, made by app.ts for Yoga. `authorization` is the `Authorization`
 * header, or over WebSocket the connection parameter of that name; the key in it is authenticated
 * on first use, once per request.
 */
export function createContext(
  services: Services,
  authorization: string | null | undefined,
  requestDevice: Device,
  makeLog: () => Logger,
  subscriptionTransport?: SubscriptionTransport,
): Context {
  let callerPromise: Promise<Caller> | undefined;
  let log: Logger | undefined;
  const resolved: { caller?: Caller } = {};
  const context: Context = {
    services,
    resolved,
    requestDevice,
    log: () => (log ??= makeLog()),
    subscriptionTransport,
    caller: () => {
      callerPromise ??= services.authenticate(bearerKey(authorization)).then((caller) => {
        resolved.caller = caller;
        return caller;
      });
      return callerPromise;
    },
    loaders: new Loaders(services),
  };
  return context;
}

import DataLoader from 'dataloader';
import type { SessionConfigRow, ApiKeyRow } from '../db/schema.js';
import { activeSessionsByIdentifier } from '../domain/activity/index.js';
import type { Caller } from '../domain/callers.js';
import { activeSessionCounts, sessionConfigsByIds } from '../domain/configs.js';
import { listApiKeysOfProducts } from '../domain/keys.js';
import type { Device, SessionRecord } from '../domain/sessions/index.js';
import type { SubscriptionTransport } from '../events/bus.js';
import type { Services } from '../services.js';

/** Request-scoped batching. A new set per request, so nothing cached outlives a request. */
export interface Loaders {
  /** Session rows by id, for verify's row check: the process-wide batcher of `Services`. */
  readonly sessionRecord: DataLoader<string, SessionRecord | undefined>;
  /** Configs by id (deleted ones too), for `Session.config` over a page of sessions. */
  readonly configById: DataLoader<string, SessionConfigRow | undefined>;
  /** Active sessions per config, keyed `env|configId`: `sessionConfigs` lists 50 configs in one count. */
  readonly activeSessionCount: DataLoader<string, number>;
  /** API keys per product id, for `products { apiKeys }`. */
  readonly apiKeysByProduct: DataLoader<string, ApiKeyRow[]>;
  /**
   * Live sessions per user, keyed `productId|env|tag|identifier`: a page of `sessionUsers`
   * costs one grouped count, not one per user.
   */
  readonly activeSessionsOfUser: DataLoader<string, number>;
}

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

export function createContext(
  services: Services,
  authorization: string | null | undefined,
  requestDevice: Device,
  subscriptionTransport?: SubscriptionTransport,
): Context {
  const { db } = services;
  let callerPromise: Promise<Caller> | undefined;
  const resolved: { caller?: Caller } = {};
  const context: Context = {
    services,
    resolved,
    requestDevice,
    subscriptionTransport,
    caller: () => {
      callerPromise ??= services.authenticate(bearerKey(authorization)).then((caller) => {
        resolved.caller = caller;
        return caller;
      });
      return callerPromise;
    },
    loaders: {
      sessionRecord: services.sessionRecords,
      configById: new DataLoader(async (ids) => {
        const rows = await sessionConfigsByIds(db, ids);
        const byId = new Map(rows.map((r) => [r.id, r]));
        return ids.map((id) => byId.get(id));
      }),
      activeSessionCount: new DataLoader(async (keys) => {
        const byEnv = new Map<string, string[]>();
        for (const key of keys) {
          const [env, configId] = key.split('|') as [string, string];
          byEnv.set(env, [...(byEnv.get(env) ?? []), configId]);
        }
        const counts = new Map<string, number>();
        for (const [env, ids] of byEnv) {
          const found = await activeSessionCounts(db, env, ids);
          for (const id of ids) counts.set(`${env}|${id}`, found.get(id) ?? 0);
        }
        return keys.map((key) => counts.get(key) ?? 0);
      }),
      activeSessionsOfUser: new DataLoader(async (keys) => {
        const groups = new Map<string, string[]>();
        for (const key of keys) {
          const [productId, env, tag, ...rest] = key.split('|') as [string, string, string];
          const group = `${productId}|${env}|${tag}`;
          groups.set(group, [...(groups.get(group) ?? []), rest.join('|')]);
        }
        const counts = new Map<string, number>();
        for (const [group, identifiers] of groups) {
          const [productId, env, tag] = group.split('|') as [string, string, string];
          const found = await activeSessionsByIdentifier(
            db,
            { productId, env, productTag: '' },
            tag,
            identifiers,
          );
          for (const id of identifiers) counts.set(`${group}|${id}`, found.get(id) ?? 0);
        }
        return keys.map((key) => counts.get(key) ?? 0);
      }),
      apiKeysByProduct: new DataLoader(async (productIds) => {
        const rows = await listApiKeysOfProducts(db, productIds);
        return productIds.map((id) => rows.filter((r) => r.productId === id));
      }),
    },
  };
  return context;
}

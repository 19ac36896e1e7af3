/**
 * The session service's TypeScript client: `import { createSessionClient } from
 * 'session-service/client'`. It mirrors the Ductape SDK's session calls; see the README's
 * "TypeScript client" section.
 */
export {
  createSessionClient,
  type EventFilter,
  type SessionClient,
  type SessionClientOptions,
} from './client.js';
export type { AutoRefresh, AutoRefreshOptions } from './auto-refresh.js';
export {
  isSessionServiceError,
  SessionServiceError,
  type ApiErrorCode,
  type ClientErrorCode,
  type GraphQLErrorPayload,
  type SessionErrorCode,
} from './errors.js';
export type { EventSubscription, SubscribeOptions } from './subscriptions.js';
export type * from './types.js';
export type { NotBeforeRevocation, UserSession, UserSessionList } from './controls.js';
export type { PeriodSpelling, ScopeSpelling } from './ductape.js';

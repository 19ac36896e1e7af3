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
export type { CallOptions } from './transport.js';
export { API_ERROR_CODES, SESSION_EVENT_TYPES } from '../contract/enums.js';
export type * from './types.js';
export {
  createLocalVerifier,
  type FallbackReason,
  type LocalVerifier,
  type LocalVerifierOptions,
  type LocalVerifierStats,
  type LocalVerifyResult,
  type VerifyInput,
} from './local-verifier.js';
export type { NotBeforeRevocation, UserSession, UserSessionList } from './controls.js';
export type { PeriodSpelling, ScopeSpelling } from './ductape.js';

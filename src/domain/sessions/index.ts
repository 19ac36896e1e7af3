/**
 * The session rules, one file per operation: start, verify, refresh (a folder: its paths are
 * told apart in refresh/index.ts), revoke, list; the types they share in types.ts.
 */
export type {
  Device,
  DeviceInput,
  SessionDeps,
  SessionLoader,
  SessionRecord,
  SessionStatus,
  SessionTokens,
  StartSessionInput,
  VerifiedSession,
} from './types.js';
export { normalizeDevice, startSession } from './start.js';
export { loadSessionRecords, TOUCH_INTERVAL_SECONDS, verifySession } from './verify.js';
export { refreshSession } from './refresh/index.js';
export { revokeAllSessions, revokeSession } from './revoke.js';
export {
  afterSessionCursor,
  findSession,
  listSessions,
  sessionCursor,
  /** @deprecated The page's `cursorOf` (or `sessionCursor`). */
  sessionCursor as encodeCursor,
  type SessionPage,
} from './list.js';
export { MAX_PAGE_SIZE } from '../paging.js';
export { sessionData } from './shared.js';
export { sessionStatus } from './status.js';
export { idleExpiresAt } from '../liveness.js';

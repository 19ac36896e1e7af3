/**
 * The session API: the shared `Session` type (session.ts) and its operations, one file per
 * group: listing, verifying, issuing tokens, revoking. (State changes are in session-state.ts.)
 */
export { Session } from './session.js';
import './list.js';
import './revoke.js';
import './start.js';
import './verify.js';

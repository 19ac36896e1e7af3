/**
 * The session API: the shared `Session` type (session.ts), the queries that read sessions and
 * verify tokens, and the mutations that issue tokens and end sessions. (The data and time
 * operations are in ../session-state.ts.)
 */
export { deviceFields, Session } from './session.js';
export { VerifiedSession } from './queries.js';
import './mutations.js';
import './queries.js';

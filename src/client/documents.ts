/**
 * The GraphQL operations the client sends, one per call. Each selects every field of the shape
 * it returns (see types.ts), so the answers are complete objects.
 */

const CONFIG = `fragment ClientConfig on SessionConfig {
  name tag env description schema selector expiry period refreshExpiresIn idleTimeout
  maxSessionsPerIdentifier activeSessionCount createdAt updatedAt
}`;

export const SESSION = `fragment ClientSession on Session {
  id tag identifier data status device { userAgent ip } createdAt expiresAt refreshExpiresAt
  lastActiveAt idleExpiresAt timeRemaining version revokedAt revokeReason
  env authenticatedAt actor deviceName deviceHistory { userAgent ip until }
}`;

const TOKENS = 'token refreshToken sessionId expiresAt';
const EVENT = 'id type sessionId tag identifier at reason actor';

export const CREATE_CONFIG = `mutation CreateSessionConfig($input: CreateSessionConfigInput!, $product: String, $env: String) {
  createSessionConfig(input: $input, product: $product, env: $env) { ...ClientConfig }
}
${CONFIG}`;

export const UPDATE_CONFIG = `mutation UpdateSessionConfig($tag: String!, $input: UpdateSessionConfigInput!, $product: String, $env: String) {
  updateSessionConfig(tag: $tag, input: $input, product: $product, env: $env) { ...ClientConfig }
}
${CONFIG}`;

export const FETCH_CONFIG = `query SessionConfig($tag: String!) {
  sessionConfig(tag: $tag) { ...ClientConfig }
}
${CONFIG}`;

export const FETCH_CONFIGS = `query SessionConfigs {
  sessionConfigs { ...ClientConfig }
}
${CONFIG}`;

export const DELETE_CONFIG = `mutation DeleteSessionConfig($tag: String!) {
  deleteSessionConfig(tag: $tag)
}`;

export const START = `mutation StartSession($input: StartSessionInput!, $product: String, $env: String) {
  startSession(input: $input, product: $product, env: $env) { ${TOKENS} }
}`;

export const VERIFY = `query VerifySession($tag: String!, $token: String!, $maxAge: Int, $product: String, $env: String) {
  verifySession(tag: $tag, token: $token, maxAge: $maxAge, product: $product, env: $env) {
    sessionId tag identifier data version expiresAt authenticatedAt actor
  }
}`;

export const IS_VALID = `query IsSessionValid($tag: String!, $token: String!, $product: String, $env: String) {
  isSessionValid(tag: $tag, token: $token, product: $product, env: $env)
}`;

export const REFRESH = `mutation RefreshSession($tag: String!, $refreshToken: String!, $device: DeviceInput, $product: String, $env: String) {
  refreshSession(tag: $tag, refreshToken: $refreshToken, device: $device, product: $product, env: $env) { ${TOKENS} }
}`;

export const REVOKE = `mutation RevokeSession($tag: String!, $sessionId: ID!, $product: String, $env: String) {
  revokeSession(tag: $tag, sessionId: $sessionId, product: $product, env: $env) { ...ClientSession }
}
${SESSION}`;

export const REVOKE_ALL = `mutation RevokeAllSessions($tag: String!, $identifier: String!, $excludeSessionId: ID, $product: String, $env: String) {
  revokeAllSessions(tag: $tag, identifier: $identifier, excludeSessionId: $excludeSessionId, product: $product, env: $env) { count }
}`;

export const LIST = `query ListSessions($tag: String!, $identifier: String!, $first: Int, $after: String, $product: String, $env: String) {
  sessions(tag: $tag, identifier: $identifier, first: $first, after: $after, product: $product, env: $env) {
    totalCount
    nodes { ...ClientSession }
    pageInfo { hasNextPage endCursor }
  }
}
${SESSION}`;

export const GET = `query Session($id: ID!) {
  session(id: $id) { ...ClientSession }
}
${SESSION}`;

export const GET_VALUE = `query SessionValue($id: ID!, $key: String!) {
  session(id: $id) { value(key: $key) }
}`;

/**
 * The session.do operations on a live session: each takes the address, and the variables named
 * in `extra` with their GraphQL types, and returns the Session.
 */
function onSession(name: string, extra: Readonly<Record<string, string>> = {}): string {
  const names = Object.keys(extra);
  const variables = names.map((v) => `, $${v}: ${extra[v]}`).join('');
  const args = names.map((v) => `, ${v}: $${v}`).join('');
  return `mutation ${name[0]!.toUpperCase()}${name.slice(1)}($tag: String!, $sessionId: ID!, $expectedVersion: Int${variables}) {
  ${name}(tag: $tag, sessionId: $sessionId, expectedVersion: $expectedVersion${args}) { ...ClientSession }
}
${SESSION}`;
}

export const UPDATE_DATA = onSession('updateSessionData', { data: 'JSON!' });
export const MERGE_DATA = onSession('mergeSessionData', { data: 'JSON!' });
export const SET_VALUE = onSession('setSessionValue', { key: 'String!', value: 'JSON!' });
export const REMOVE_VALUE = onSession('removeSessionValue', { key: 'String!' });
export const CLEAR_DATA = onSession('clearSessionData');
export const TOUCH = onSession('touchSession');
export const EXTEND = onSession('extendSession', { seconds: 'Int!' });
export const SET_EXPIRATION = onSession('setSessionExpiration', { expiresAt: 'DateTime!' });

export const ON_REVOKED = `subscription SessionRevoked($tag: String, $identifier: String, $after: ID) {
  sessionRevoked(tag: $tag, identifier: $identifier, after: $after) { ${EVENT} }
}`;

export const ON_EVENT = `subscription SessionEvents($tag: String, $identifier: String, $types: [SessionEventType!], $after: ID) {
  sessionEvents(tag: $tag, identifier: $identifier, types: $types, after: $after) { ${EVENT} }
}`;

export const LATEST_EVENT_ID = `query LatestSessionEventId {
  latestSessionEventId
}`;

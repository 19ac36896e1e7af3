/**
 * The GraphQL operations the client sends, one per call. Each selects every field of the shape
 * it returns (see types.ts), so the answers are complete objects.
 */

const CONFIG = `fragment ClientConfig on SessionConfig {
  name tag env description schema selector expiry period refreshExpiresIn idleTimeout
  maxSessionsPerIdentifier activeSessionCount createdAt updatedAt
}`;

const SESSION = `fragment ClientSession on Session {
  id tag identifier data status device { userAgent ip } createdAt expiresAt refreshExpiresAt
  lastActiveAt idleExpiresAt timeRemaining version revokedAt revokeReason
}`;

const TOKENS = 'token refreshToken sessionId expiresAt';
const EVENT = 'id type sessionId tag identifier at reason';

export const CREATE_CONFIG = `mutation CreateSessionConfig($input: CreateSessionConfigInput!) {
  createSessionConfig(input: $input) { ...ClientConfig }
}
${CONFIG}`;

export const UPDATE_CONFIG = `mutation UpdateSessionConfig($tag: String!, $input: UpdateSessionConfigInput!) {
  updateSessionConfig(tag: $tag, input: $input) { ...ClientConfig }
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

export const START = `mutation StartSession($input: StartSessionInput!) {
  startSession(input: $input) { ${TOKENS} }
}`;

export const VERIFY = `query VerifySession($tag: String!, $token: String!) {
  verifySession(tag: $tag, token: $token) { sessionId tag identifier data version expiresAt }
}`;

export const IS_VALID = `query IsSessionValid($tag: String!, $token: String!) {
  isSessionValid(tag: $tag, token: $token)
}`;

export const REFRESH = `mutation RefreshSession($tag: String!, $refreshToken: String!) {
  refreshSession(tag: $tag, refreshToken: $refreshToken) { ${TOKENS} }
}`;

export const REVOKE = `mutation RevokeSession($tag: String!, $sessionId: ID!) {
  revokeSession(tag: $tag, sessionId: $sessionId) { ...ClientSession }
}
${SESSION}`;

export const REVOKE_ALL = `mutation RevokeAllSessions($tag: String!, $identifier: String!, $excludeSessionId: ID) {
  revokeAllSessions(tag: $tag, identifier: $identifier, excludeSessionId: $excludeSessionId) { count }
}`;

export const LIST = `query ListSessions($tag: String!, $identifier: String!, $first: Int, $after: String) {
  sessions(tag: $tag, identifier: $identifier, first: $first, after: $after) {
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

/** The session.do operations on a live session: each takes the address and returns the Session. */
function onSession(name: string, extraVariables: string, extraArgs: string): string {
  return `mutation ${name[0]!.toUpperCase()}${name.slice(1)}($tag: String!, $sessionId: ID!, $expectedVersion: Int${extraVariables}) {
  ${name}(tag: $tag, sessionId: $sessionId, expectedVersion: $expectedVersion${extraArgs}) { ...ClientSession }
}
${SESSION}`;
}

export const UPDATE_DATA = onSession('updateSessionData', ', $data: JSON!', ', data: $data');
export const MERGE_DATA = onSession('mergeSessionData', ', $data: JSON!', ', data: $data');
export const SET_VALUE = onSession(
  'setSessionValue',
  ', $key: String!, $value: JSON!',
  ', key: $key, value: $value',
);
export const REMOVE_VALUE = onSession('removeSessionValue', ', $key: String!', ', key: $key');
export const CLEAR_DATA = onSession('clearSessionData', '', '');
export const TOUCH = onSession('touchSession', '', '');
export const EXTEND = onSession('extendSession', ', $seconds: Int!', ', seconds: $seconds');
export const SET_EXPIRATION = onSession(
  'setSessionExpiration',
  ', $expiresAt: DateTime!',
  ', expiresAt: $expiresAt',
);

export const ON_REVOKED = `subscription SessionRevoked($tag: String, $identifier: String, $after: ID) {
  sessionRevoked(tag: $tag, identifier: $identifier, after: $after) { ${EVENT} }
}`;

export const ON_EVENT = `subscription SessionEvents($tag: String, $identifier: String, $types: [SessionEventType!], $after: ID) {
  sessionEvents(tag: $tag, identifier: $identifier, types: $types, after: $after) { ${EVENT} }
}`;

export const LATEST_EVENT_ID = `query LatestSessionEventId {
  latestSessionEventId
}`;

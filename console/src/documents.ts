/**
 * The GraphQL documents the console sends, each exactly as sent: the server's trusted documents
 * (src/graphql/trusted-documents.json, `npm run documents`) include them, and the console sends
 * each by its id (api.ts). Keep every document the console sends here.
 */

export const SCOPE_VARS = '$product: String, $env: String';
export const SCOPE_ARGS = 'product: $product, env: $env';

export const CONFIG_FIELDS =
  'tag name description selector expiry period refreshExpiresIn idleTimeout maxSessionsPerIdentifier schema env activeSessionCount updatedAt';

export const USER_FIELDS = 'identifier firstSeenAt lastSeenAt totalSessions activeSessions';

/** Rows per page of the users and activity pages. */
export const PAGE = 50;

export const SESSION_FIELDS = `id status createdAt lastActiveAt expiresAt revokedAt revokeReason actor
  deviceName device { userAgent ip } deviceHistory { userAgent ip until }`;

export const ENDPOINT_FIELDS =
  'id url description eventTypes enabled disabledAt disabledReason failureRun previousSecretExpiresAt createdAt updatedAt';

export const DELIVERY_FIELDS = `id messageId eventId eventType status attempts createdAt deliveredAt nextAttemptAt
  lastResponseCode lastError attemptLog { at succeeded responseCode latencyMs error nextAttemptAt }`;

/** dashboard.tsx */
export const DASHBOARD_QUERY = `query Dashboard($tag: String!, $from: DateTime!, $to: DateTime!, $groupBy: DashboardGrouping!, ${SCOPE_VARS}) {
  sessionDashboard(tag: $tag, from: $from, to: $to, groupBy: $groupBy, ${SCOPE_ARGS}) {
    totalUsers activeUsers totalSessions activeSessions revokedSessions expiredSessions
    errorRate averageDurationMs
    periods { start sessionsCreated sessionsExpired activeSessions sessionsRevoked starts verifies refreshes revokes successes failures }
  }
}`;

/** feed.ts */
export const FEED_SUBSCRIPTION = `subscription Feed($after: ID, ${SCOPE_VARS}) {
  sessionEvents(after: $after, ${SCOPE_ARGS}) { id type sessionId tag identifier reason actor at }
}`;

/** feed.ts */
export const LATEST_QUERY = `query Latest(${SCOPE_VARS}) { latestSessionEventId(${SCOPE_ARGS}) }`;

/** keys.tsx */
export const KEYS_QUERY = `query Keys { products { tag envs apiKeys { id name kind env prefix createdAt revokedAt } } }`;

/** keys.tsx */
export const CREATE_KEY_MUTATION = `mutation CreateKey($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { key apiKey { id name kind env prefix createdAt revokedAt } }
}`;

/** keys.tsx */
export const REVOKE_KEY_MUTATION = `mutation RevokeKey($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }`;

/** main.tsx */
export const PRODUCTS_QUERY = 'query Products { products { tag envs } }';

/** main.tsx */
export const CHECK_QUERY =
  'query Check($product: String, $env: String) { sessionConfigs(product: $product, env: $env) { tag } }';

/** notbefore.tsx */
export const NOT_BEFORE_QUERY = `query NotBefore(${SCOPE_VARS}) { notBeforeRevocations(${SCOPE_ARGS}) { tag notBefore count } }`;

/** notbefore.tsx */
export const SET_NOT_BEFORE_MUTATION = `mutation SetNotBefore($tag: String, $before: DateTime, ${SCOPE_VARS}) {
  revokeSessionsStartedBefore(tag: $tag, before: $before, ${SCOPE_ARGS}) { tag notBefore count }
}`;

/** pages.tsx */
export const CONFIGS_QUERY = `query Configs(${SCOPE_VARS}) { sessionConfigs(${SCOPE_ARGS}) { ${CONFIG_FIELDS} } }`;

/** pages.tsx */
export const UPDATE_CONFIG_MUTATION = `mutation UpdateConfig($tag: String!, $input: UpdateSessionConfigInput!, ${SCOPE_VARS}) {
  updateSessionConfig(tag: $tag, input: $input, ${SCOPE_ARGS}) { tag }
}`;

/** pages.tsx */
export const CREATE_CONFIG_MUTATION = `mutation CreateConfig($input: CreateSessionConfigInput!, ${SCOPE_VARS}) {
  createSessionConfig(input: $input, ${SCOPE_ARGS}) { tag }
}`;

/** pages.tsx */
export const USERS_QUERY = `query Users($tag: String!, $first: Int, $after: String, ${SCOPE_VARS}) {
  sessionUsers(tag: $tag, first: $first, after: $after, orderBy: LAST_SEEN_DESC, ${SCOPE_ARGS}) {
    totalCount edges { node { ${USER_FIELDS} } } pageInfo { hasNextPage endCursor }
  }
}`;

/** pages.tsx */
export const FIND_USER_QUERY = `query FindUser($tag: String!, $identifier: String!, ${SCOPE_VARS}) {
  sessionUser(tag: $tag, identifier: $identifier, ${SCOPE_ARGS}) { ${USER_FIELDS} }
}`;

/** pages.tsx */
export const ACTIVITY_QUERY = `query Activity($tag: String, $operation: SessionOperation, $status: OperationStatus,
    $since: DateTime, $until: DateTime, $after: String, ${SCOPE_VARS}) {
  activityLog(tag: $tag, operation: $operation, status: $status, since: $since,
      until: $until, first: ${PAGE}, after: $after, ${SCOPE_ARGS}) {
    totalCount
    edges { node { id at operation status errorCode tag sessionId identifier durationMs actor } }
    pageInfo { hasNextPage endCursor }
  }
}`;

/** user.tsx */
export const USER_SESSIONS_QUERY = `query UserSessions($tag: String!, $identifier: String!, ${SCOPE_VARS}) {
  sessionUser(tag: $tag, identifier: $identifier, ${SCOPE_ARGS}) {
    ${USER_FIELDS}
    sessions(first: 100) { edges { node { ${SESSION_FIELDS} } } }
  }
}`;

/** user.tsx */
export const REVOKE_ONE_MUTATION = `mutation RevokeOne($tag: String!, $sessionId: ID!, ${SCOPE_VARS}) {
  revokeSession(tag: $tag, sessionId: $sessionId, ${SCOPE_ARGS}) { id status }
}`;

/** user.tsx */
export const REVOKE_ALL_MUTATION = `mutation RevokeAll($tag: String!, $identifier: String!, $excludeSessionId: ID, ${SCOPE_VARS}) {
  revokeAllSessions(tag: $tag, identifier: $identifier, excludeSessionId: $excludeSessionId, ${SCOPE_ARGS}) { count }
}`;

/** user.tsx */
export const SIGN_OUT_EVERYWHERE_MUTATION = `mutation SignOutEverywhere($identifier: String!, ${SCOPE_VARS}) {
  revokeUserSessions(identifier: $identifier, ${SCOPE_ARGS}) { count }
}`;

/** user.tsx */
export const NAME_DEVICE_MUTATION = `mutation NameDevice($tag: String!, $sessionId: ID!, $name: String, ${SCOPE_VARS}) {
  setSessionDeviceName(tag: $tag, sessionId: $sessionId, name: $name, ${SCOPE_ARGS}) { id deviceName }
}`;

/** webhooks.tsx */
export const CREATE_ENDPOINT_MUTATION = `mutation CreateEndpoint($input: CreateWebhookEndpointInput!, ${SCOPE_VARS}) {
  createWebhookEndpoint(input: $input, ${SCOPE_ARGS}) { secret endpoint { ${ENDPOINT_FIELDS} } }
}`;

/** webhooks.tsx */
export const ENDPOINTS_QUERY = `query Endpoints(${SCOPE_VARS}) { webhookEndpoints(${SCOPE_ARGS}) { ${ENDPOINT_FIELDS} } }`;

/** webhooks.tsx */
export const ENDPOINT_QUERY = `query Endpoint($id: ID!, $first: Int, $status: WebhookDeliveryStatus, ${SCOPE_VARS}) {
  webhookEndpoint(id: $id, ${SCOPE_ARGS}) {
    ${ENDPOINT_FIELDS}
    deliveries(first: $first, status: $status) { ${DELIVERY_FIELDS} }
  }
}`;

/** webhooks.tsx */
export const ENABLE_ENDPOINT_MUTATION = `mutation EnableEndpoint($id: ID!, ${SCOPE_VARS}) {
  updateWebhookEndpoint(id: $id, input: { enabled: true }, ${SCOPE_ARGS}) { id enabled }
}`;

/** webhooks.tsx */
export const DISABLE_ENDPOINT_MUTATION = `mutation DisableEndpoint($id: ID!, ${SCOPE_VARS}) {
  disableWebhookEndpoint(id: $id, ${SCOPE_ARGS}) { id enabled }
}`;

/** webhooks.tsx */
export const ROTATE_SECRET_MUTATION = `mutation RotateSecret($id: ID!, $overlapSeconds: Int, ${SCOPE_VARS}) {
  rotateWebhookSecret(id: $id, overlapSeconds: $overlapSeconds, ${SCOPE_ARGS}) { secret endpoint { id } }
}`;

/** webhooks.tsx */
export const REDELIVER_MUTATION = `mutation Redeliver($deliveryId: ID!, ${SCOPE_VARS}) {
  redeliverWebhook(deliveryId: $deliveryId, ${SCOPE_ARGS}) { id status }
}`;

/** webhooks.tsx */
export const DELETE_ENDPOINT_MUTATION = `mutation DeleteEndpoint($id: ID!, ${SCOPE_VARS}) { deleteWebhookEndpoint(id: $id, ${SCOPE_ARGS}) }`;

import { graphql } from './graphql.js';

/**
 * The session documents most tests send, typed against schema.graphql (see ./graphql.ts). A test
 * that needs more of a session (its `session { ... }`, a device) declares its own with `graphql`;
 * a test that sends a document invalid on purpose keeps it a string.
 */

export const START = graphql(`
  mutation StartSession($input: StartSessionInput!) {
    startSession(input: $input) {
      token
      refreshToken
      sessionId
      expiresAt
    }
  }
`);

export const VERIFY = graphql(`
  query VerifySession($tag: String!, $token: String!) {
    verifySession(tag: $tag, token: $token) {
      sessionId
      tag
      identifier
      data
      expiresAt
      session {
        id
        status
      }
    }
  }
`);

export const IS_VALID = graphql(`
  query IsSessionValid($tag: String!, $token: String!) {
    isSessionValid(tag: $tag, token: $token)
  }
`);

export const REFRESH = graphql(`
  mutation RefreshSession($tag: String!, $refreshToken: String!) {
    refreshSession(tag: $tag, refreshToken: $refreshToken) {
      token
      refreshToken
      sessionId
      expiresAt
    }
  }
`);

export const REVOKE = graphql(`
  mutation RevokeSession($tag: String!, $sessionId: ID!) {
    revokeSession(tag: $tag, sessionId: $sessionId) {
      id
      status
      revokedAt
      revokeReason
    }
  }
`);

export const REVOKE_ALL = graphql(`
  mutation RevokeAllSessions($tag: String!, $identifier: String!, $excludeSessionId: ID) {
    revokeAllSessions(tag: $tag, identifier: $identifier, excludeSessionId: $excludeSessionId) {
      count
    }
  }
`);

export const CREATE_PRODUCT = graphql(`
  mutation CreateProduct($input: CreateProductInput!) {
    createProduct(input: $input) {
      tag
    }
  }
`);

export const CREATE_API_KEY = graphql(`
  mutation CreateApiKey($input: CreateApiKeyInput!) {
    createApiKey(input: $input) {
      key
    }
  }
`);

export const CREATE_CONFIG = graphql(`
  mutation CreateSessionConfig($input: CreateSessionConfigInput!) {
    createSessionConfig(input: $input) {
      tag
    }
  }
`);

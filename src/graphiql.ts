import { BlockList, isIPv4 } from 'node:net';
import type { GraphiQLOptions } from 'graphql-yoga';
import { DEMO_SESSION_TAG } from './bootstrap.js';

/** What GraphiQL should know when it opens. */
export interface GraphiQLSetup {
  /**
   * The demo product's secret key, known in plaintext only on the first start (it is stored as a
   * hash). When given, and not in production, every example tab sends it.
   */
  readonly demoKey?: string;
  /** In production no key is ever written into the page. */
  readonly production?: boolean;
}

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/**
 * Whether a request comes from this machine itself: its TCP peer is a loopback address and no
 * proxy says it forwards it for someone else. Deliberately independent of `TRUST_PROXY_HOPS`:
 * a reverse proxy on the same host makes every client's peer loopback, so any forwarding header
 * (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`) counts as "not local".
 */
export function isLocalRequest(peer: string | null | undefined, headers: Headers): boolean {
  if (!peer) return false;
  if (headers.has('x-forwarded-for') || headers.has('forwarded') || headers.has('x-real-ip')) {
    return false;
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(peer)?.[1];
  const address = mapped ?? peer;
  return isIPv4(address) ? loopback.check(address, 'ipv4') : loopback.check(address, 'ipv6');
}

/** What the Headers tab holds when the key is not known: a reminder of the expected shape. */
export const KEY_PLACEHOLDER = 'Bearer <your secret key>';

/** The user of the examples: what the demo config's selector picks from the data. */
const DEMO_USER = 'user-123';

const json = (value: unknown) => JSON.stringify(value, null, 2);

/**
 * The example operations, one tab each, in the order of a session's life: start, verify,
 * refresh, list, revoke, hear the revocation; then how to define a session type of your own.
 * Tab titles come from the operation names.
 */
export const EXAMPLE_OPERATIONS: readonly { query: string; variables?: unknown }[] = [
  {
    query: `# Welcome! These tabs follow a session's life on the
# demo product's "${DEMO_SESSION_TAG}" config: start, verify,
# refresh, list, revoke, and a subscription that hears
# revocations. Run a tab with ▶ (or Ctrl-Enter).
# Your key goes in Headers below:
#   {"Authorization": "Bearer sk_dev_..."}
#
# 1. Start a session (Ductape's sessions.start); keep
# its token, refreshToken and sessionId for the next
# tabs.
mutation StartSession {
  startSession(
    input: {
      tag: "${DEMO_SESSION_TAG}"
      data: {
        userId: "${DEMO_USER}"
        details: {
          username: "ada"
          email: "ada@example.com"
        }
        role: "user"
      }
      expiresIn: 3600
    }
  ) {
    token
    refreshToken
    sessionId
    expiresAt
    session {
      identifier
      data
    }
  }
}
`,
  },
  {
    query: `# 2. Verify a session token (Ductape's sessions.verify):
# paste the token StartSession returned into Variables.
query VerifySession($tag: String!, $token: String!) {
  verifySession(tag: $tag, token: $token) {
    sessionId
    identifier
    data
    expiresAt
  }
}
`,
    variables: { tag: DEMO_SESSION_TAG, token: 'paste the token from StartSession' },
  },
  {
    query: `# 3. Refresh (Ductape's sessions.refresh): a refresh
# token works once; the answer carries a new pair.
mutation RefreshSession($tag: String!, $refreshToken: String!) {
  refreshSession(tag: $tag, refreshToken: $refreshToken) {
    token
    refreshToken
    expiresAt
  }
}
`,
    variables: { tag: DEMO_SESSION_TAG, refreshToken: 'paste the refreshToken (rt_...)' },
  },
  {
    query: `# 4. A user's active sessions, newest first
# (Ductape's sessions.list).
query ListSessions($tag: String!, $identifier: String!) {
  sessions(tag: $tag, identifier: $identifier, first: 20) {
    totalCount
    edges {
      node {
        id
        createdAt
        expiresAt
        lastActiveAt
        device {
          userAgent
        }
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
  }
}
`,
    variables: { tag: DEMO_SESSION_TAG, identifier: DEMO_USER },
  },
  {
    query: `# 5. Log out (Ductape's sessions.revoke): the session's
# tokens fail on the very next verify. revokeAllSessions
# (tag, identifier) logs out every device at once.
mutation RevokeSession($tag: String!, $sessionId: ID!) {
  revokeSession(tag: $tag, sessionId: $sessionId) {
    id
    status
    revokedAt
    revokeReason
  }
}
`,
    variables: { tag: DEMO_SESSION_TAG, sessionId: 'paste the sessionId from StartSession' },
  },
  {
    query: `# 6. Hear revocations. With after: "0" those so far are
# replayed first, then new ones arrive as they happen
# (revoke one from another browser window or with curl:
# switching tabs here stops the subscription). Keep the
# last id you receive and pass it as after when you
# reconnect: nothing is missed.
subscription SessionRevoked($tag: String, $after: ID) {
  sessionRevoked(tag: $tag, after: $after) {
    id
    type
    sessionId
    identifier
    reason
    at
  }
}
`,
    variables: { tag: DEMO_SESSION_TAG, after: '0' },
  },
  {
    query: `# 7. Define a session type of your own (Ductape's
# sessions.create): a sample of the data, a selector
# naming the user, and the token's lifetime.
mutation CreateSessionConfig($input: CreateSessionConfigInput!) {
  createSessionConfig(input: $input) {
    tag
    selector
    expiry
    period
    activeSessionCount
  }
}
`,
    variables: {
      input: {
        name: 'Checkout session',
        tag: 'checkout-session',
        description: 'A shopper between cart and payment',
        schema: { userId: 'user-123', cartId: 'cart-789' },
        selector: '$Session{userId}',
        expiry: 30,
        period: 'MINUTES',
      },
    },
  },
];

/** What a tab opened with "+" shows. */
const NEW_TAB_QUERY = `# The session configs of your product and env
# (Ductape's fetchAll).
query SessionConfigs {
  sessionConfigs {
    tag
    name
    selector
    expiry
    period
    activeSessionCount
  }
}
`;

/**
 * GraphiQL's options: the example tabs and, outside production, the demo key in their headers
 * when it is known (first start). Otherwise the headers hold a placeholder to replace; GraphiQL
 * keeps what you type in the browser's storage, so it survives restarts.
 */
export function graphiqlOptions(setup: GraphiQLSetup = {}): GraphiQLOptions {
  const key = setup.demoKey && !setup.production ? `Bearer ${setup.demoKey}` : KEY_PLACEHOLDER;
  const headers = json({ Authorization: key });
  return {
    title: 'Session service',
    headers,
    defaultQuery: NEW_TAB_QUERY,
    defaultTabs: EXAMPLE_OPERATIONS.map((operation) => ({
      query: operation.query,
      // GraphiQL opens the first tab with empty variables whatever its tab says: that one has none.
      variables: operation.variables === undefined ? null : json(operation.variables),
      headers,
    })),
  };
}

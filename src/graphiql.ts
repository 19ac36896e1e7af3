import { isIP, isIPv4 } from 'node:net';
import ipaddr from 'ipaddr.js';
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

/** `localhost`, an address of 127.0.0.0/8 or `[::1]`, with or without a port. */
const LOOPBACK_HOST = /^(?:localhost|\[::1\]|(127\.\d{1,3}\.\d{1,3}\.\d{1,3}))(?::(\d{1,5}))?$/i;

/**
 * Whether a `Host` (host and optional port, as in the header) names this machine itself:
 * `localhost`, 127.0.0.0/8 or `[::1]`. A name that merely resolves to a loopback address (DNS
 * rebinding: an attacker's name pointed at 127.0.0.1) is not one, nor is a subdomain of
 * `localhost` or anything with a path or credentials.
 */
export function isLoopbackHost(host: string): boolean {
  const match = LOOPBACK_HOST.exec(host);
  if (!match) return false;
  const [, v4, port] = match;
  if (v4 !== undefined && !isIPv4(v4)) return false;
  return port === undefined || Number(port) <= 65_535;
}

/** Whether an `Origin` header is a page served from this machine: http(s) on a loopback host. */
export function isLoopbackOrigin(origin: string): boolean {
  const host = /^https?:\/\/([^/]*)$/i.exec(origin)?.[1];
  return host !== undefined && isLoopbackHost(host);
}

/**
 * Whether a request comes from this machine itself and is for this machine by name:
 *
 * - its TCP peer is a loopback address, and no proxy says it forwards it for someone else.
 *   Deliberately independent of `TRUST_PROXY_HOPS`: a reverse proxy on the same host makes every
 *   client's peer loopback, so any forwarding header (`X-Forwarded-For`, `Forwarded`,
 *   `X-Real-IP`) counts as "not local";
 * - the host it asked for (its `Host` header and so its URL) is a loopback one, so a page whose
 *   name an attacker pointed at 127.0.0.1 (DNS rebinding) is not;
 * - it carries no `Origin`, or a loopback one: no other site's script asked for it.
 */
export function isLocalRequest(
  peer: string | null | undefined,
  request: Pick<Request, 'headers' | 'url'>,
): boolean {
  if (!peer || isIP(peer) === 0) return false;
  const { headers } = request;
  if (headers.has('x-forwarded-for') || headers.has('forwarded') || headers.has('x-real-ip')) {
    return false;
  }
  const host = headers.get('host');
  if (host !== null && !isLoopbackHost(host)) return false;
  if (!isLoopbackHost(new URL(request.url).host)) return false;
  const origin = headers.get('origin');
  if (origin !== null && !isLoopbackOrigin(origin)) return false;
  // IPv4-mapped peers (::ffff:127.0.0.1, a dual-stack socket) count as their IPv4 address.
  return ipaddr.process(peer).range() === 'loopback';
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

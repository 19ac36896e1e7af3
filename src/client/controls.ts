/**
 * The client's session controls: a user's sessions across tags (list, sign out everywhere),
 * not-before revocation, step-up and device names. Spread into `client.sessions`.
 */
import { SESSION } from './documents.js';
import {
  instantOf,
  pagePosition,
  pageVariables,
  scopeVariables,
  textOf,
  type ConnectionAnswer,
  type PageInput,
  type ScopeSpelling,
} from './ductape.js';
import type { Request } from './transport.js';
import type { ListedSession, Session, SessionAddress, SessionData } from './types.js';

const SCOPE_VARIABLES = '$product: String, $env: String';
const SCOPE_ARGS = 'product: $product, env: $env';

export const USER_SESSIONS = `query UserSessions($identifier: String!, $tag: String, $first: Int, $after: String, $currentToken: String, ${SCOPE_VARIABLES}) {
  userSessions(identifier: $identifier, tag: $tag, first: $first, after: $after, currentToken: $currentToken, ${SCOPE_ARGS}) {
    totalCount currentSessionId
    edges { current node { ...ClientSession } }
    pageInfo { hasNextPage endCursor }
  }
}
${SESSION}`;

export const REVOKE_USER_SESSIONS = `mutation RevokeUserSessions($identifier: String!, $exceptSessionId: ID, ${SCOPE_VARIABLES}) {
  revokeUserSessions(identifier: $identifier, exceptSessionId: $exceptSessionId, ${SCOPE_ARGS}) { count }
}`;

export const REVOKE_STARTED_BEFORE = `mutation RevokeSessionsStartedBefore($tag: String, $before: DateTime, ${SCOPE_VARIABLES}) {
  revokeSessionsStartedBefore(tag: $tag, before: $before, ${SCOPE_ARGS}) { tag notBefore count }
}`;

export const MARK_FRESH = `mutation MarkSessionFresh($tag: String!, $sessionId: ID!, ${SCOPE_VARIABLES}) {
  markSessionFresh(tag: $tag, sessionId: $sessionId, ${SCOPE_ARGS}) { ...ClientSession }
}
${SESSION}`;

export const SET_DEVICE_NAME = `mutation SetSessionDeviceName($tag: String!, $sessionId: ID!, $name: String, ${SCOPE_VARIABLES}) {
  setSessionDeviceName(tag: $tag, sessionId: $sessionId, name: $name, ${SCOPE_ARGS}) { ...ClientSession }
}
${SESSION}`;

/** A session in a user's list, marked when it is the caller's own. */
export interface UserSession<TData = SessionData> extends ListedSession<TData> {
  /** True for the session of the `currentToken` passed. */
  readonly current: boolean;
}

/** One page of a user's sessions across tags. */
export interface UserSessionList<TData = SessionData> {
  readonly count: number;
  readonly sessions: readonly UserSession<TData>[];
  readonly currentSessionId: string | null;
  readonly endCursor: string | null;
  readonly hasNextPage: boolean;
}

/** The outcome of a not-before revocation. */
export interface NotBeforeRevocation {
  readonly tag: string | null;
  readonly notBefore: string;
  readonly count: number;
}

/** The control calls, over the client's transport and its default product and env. */
export function sessionControls(request: Request, defaults: ScopeSpelling) {
  return {
    /**
     * One user's active sessions across every tag of the env (or one `tag`), newest first; the
     * admin key with `product` and no `env` covers every env. Pass the caller's own session
     * token as `currentToken` to mark its session `current`.
     */
    async listForUser<TData = SessionData>(
      input: { identifier: string; tag?: string; currentToken?: string } & PageInput &
        ScopeSpelling,
    ): Promise<UserSessionList<TData>> {
      const data = await request<{
        userSessions: ConnectionAnswer & {
          currentSessionId: string | null;
          edges: { current: boolean; node: Session<TData> }[];
        };
      }>(USER_SESSIONS, {
        identifier: textOf(input.identifier, 'identifier'),
        tag: input.tag ?? null,
        ...pageVariables(input),
        currentToken: input.currentToken ?? null,
        ...scopeVariables(input, defaults),
      });
      const page = data.userSessions;
      return {
        ...pagePosition(page),
        sessions: page.edges.map((e) => ({ ...e.node, sessionId: e.node.id, current: e.current })),
        currentSessionId: page.currentSessionId,
      };
    },
    /**
     * Signs a user out everywhere (SuperTokens `revokeAllSessionsForUser`): every session of
     * the identifier across all tags, but `exceptSessionId` (or Ductape's
     * `excludeCurrentSession`). The admin key with `product` and no `env` covers every env.
     */
    async revokeEverywhere(
      input: {
        identifier: string;
        exceptSessionId?: string;
        excludeCurrentSession?: string;
      } & ScopeSpelling,
    ): Promise<{ count: number }> {
      const data = await request<{ revokeUserSessions: { count: number } }>(REVOKE_USER_SESSIONS, {
        identifier: textOf(input.identifier, 'identifier'),
        exceptSessionId: input.exceptSessionId ?? input.excludeCurrentSession ?? null,
        ...scopeVariables(input, defaults),
      });
      return data.revokeUserSessions;
    },
    /**
     * Revokes every session of `tag` (or of the whole env) started before `before` (default:
     * now), keeping the config; their tokens are refused at once.
     */
    async revokeStartedBefore(
      input: { tag?: string; before?: Date | string } & ScopeSpelling = {},
    ): Promise<NotBeforeRevocation> {
      const data = await request<{ revokeSessionsStartedBefore: NotBeforeRevocation }>(
        REVOKE_STARTED_BEFORE,
        {
          tag: input.tag ?? null,
          before: instantOf(input.before, 'before'),
          ...scopeVariables(input, defaults),
        },
      );
      return data.revokeSessionsStartedBefore;
    },
    /** Step-up: the user just proved who they are again; `verify({ maxAge })` accepts it. */
    async markFresh<TData = SessionData>(
      input: SessionAddress & ScopeSpelling,
    ): Promise<Session<TData>> {
      const data = await request<{ markSessionFresh: Session<TData> }>(MARK_FRESH, {
        tag: textOf(input.tag, 'tag'),
        sessionId: textOf(input.sessionId, 'sessionId'),
        ...scopeVariables(input, defaults),
      });
      return data.markSessionFresh;
    },
    /** Gives a session's device a display name (null clears it). */
    async setDeviceName<TData = SessionData>(
      input: SessionAddress & { name: string | null } & ScopeSpelling,
    ): Promise<Session<TData>> {
      const data = await request<{ setSessionDeviceName: Session<TData> }>(SET_DEVICE_NAME, {
        tag: textOf(input.tag, 'tag'),
        sessionId: textOf(input.sessionId, 'sessionId'),
        name: input.name,
        ...scopeVariables(input, defaults),
      });
      return data.setSessionDeviceName;
    },
  };
}

/**
 * Minting, written once: the session token of a session (start and every refresh path), and the
 * next pair of a refresh with its successor sealed for the grace window.
 */
import { SealedBox } from '../../../tokens/sealed-box.js';
import { hashSecret } from '../../../tokens/secrets.js';
import { mintSessionToken } from '../../../tokens/session-token.js';
import type { Keyring } from '../../../tokens/keyring.js';
import type { Scope } from '../../callers.js';
import type { SessionTokens } from '../types.js';
import type { RefreshSnapshot } from './snapshot.js';
import { newRefreshToken, type PresentedToken } from './token.js';

/** What a session token carries of its session. */
export type MintInputs = Pick<
  RefreshSnapshot,
  | 'sessionId'
  | 'tag'
  | 'identifier'
  | 'data'
  | 'version'
  | 'idleTimeoutSeconds'
  | 'createdAt'
  | 'authenticatedAt'
  | 'actor'
>;

/** The expiries a pair carries: the session's, and the refresh token's (the token's own `exp`). */
export interface PairTimes {
  readonly expiresAt: Date;
  readonly refreshExpiresAt: Date;
  /** The token's `iat` (default: now). */
  readonly issuedAt?: Date;
}

/** Mints the session token of `inputs`: it expires with the refresh token, and says when the session does. */
export function mintSessionTokenOf(
  keyring: Keyring,
  scope: Scope,
  inputs: MintInputs,
  times: PairTimes,
): Promise<string> {
  return mintSessionToken(keyring, scope, {
    sessionId: inputs.sessionId,
    tag: inputs.tag,
    identifier: inputs.identifier,
    data: inputs.data,
    ...(times.issuedAt === undefined ? {} : { issuedAt: times.issuedAt }),
    expiresAt: times.refreshExpiresAt,
    version: inputs.version,
    sessionExpiresAt: times.expiresAt,
    idleTimeout: inputs.idleTimeoutSeconds !== null,
    startedAt: inputs.createdAt,
    authenticatedAt: inputs.authenticatedAt,
    actor: inputs.actor,
  });
}

/**
 * The box a spent refresh token's successor pair is sealed in: its key derives from the spent
 * token itself, so only a holder of that token (not a reader of the database) can open it.
 */
function successorBox(refreshToken: string): SealedBox {
  return SealedBox.derive(refreshToken, 'refresh-successor', 'successor-pair');
}

/** What a successor box holds. */
interface SealedPair {
  readonly token: string;
  readonly refreshToken: string;
  /** ISO 8601. */
  readonly expiresAt: string;
}

/** The next pair of a refresh, and what storing it needs. */
export interface NextPair {
  readonly tokens: SessionTokens;
  /** The new refresh token's hash, as stored. */
  readonly nextTokenHash: string;
  /** The pair sealed for the spent token's `successor_enc` (the grace-window answer). */
  readonly successorEnc: string;
}

/** Mints the pair that succeeds `spent`, and seals it so that only a holder of `spent` opens it. */
export async function mintNextPair(
  keyring: Keyring,
  scope: Scope,
  spent: PresentedToken,
  inputs: MintInputs,
  times: PairTimes,
): Promise<NextPair> {
  const refreshToken = newRefreshToken();
  const token = await mintSessionTokenOf(keyring, scope, inputs, times);
  const sealed: SealedPair = { token, refreshToken, expiresAt: times.expiresAt.toISOString() };
  return {
    tokens: {
      token,
      refreshToken,
      sessionId: inputs.sessionId,
      identifier: inputs.identifier,
      expiresAt: times.expiresAt,
      actor: inputs.actor,
    },
    nextTokenHash: hashSecret(refreshToken),
    successorEnc: successorBox(spent.token).seal(JSON.stringify(sealed), inputs.sessionId),
  };
}

/** The pair `spent` was exchanged for, from its `successor_enc` (a racing refresh's answer). */
export function openSuccessor(
  spent: PresentedToken,
  successorEnc: string,
  session: { readonly id: string; readonly identifier: string; readonly actor: string | null },
): SessionTokens {
  const pair = JSON.parse(successorBox(spent.token).open(successorEnc, session.id)) as SealedPair;
  return {
    token: pair.token,
    refreshToken: pair.refreshToken,
    sessionId: session.id,
    identifier: session.identifier,
    expiresAt: new Date(pair.expiresAt),
    actor: session.actor,
  };
}

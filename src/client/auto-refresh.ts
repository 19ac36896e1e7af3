import type { SessionServiceError } from './errors.js';
import type { SessionTokens } from './types.js';

export interface AutoRefreshOptions {
  /** The session type the tokens belong to. */
  readonly tag: string;
  /** How long before the token expires to refresh it, in seconds (default 60). */
  readonly refreshBeforeSeconds?: number;
  /** Called with each new pair: store it where the old one was (the old refresh token is spent). */
  readonly onRefresh?: (tokens: SessionTokens) => void | Promise<void>;
  /**
   * Called once when refreshing stops on a failure: the refresh's {@link SessionServiceError}
   * (`SESSION_REVOKED`, `TOKEN_EXPIRED`, `NETWORK_ERROR`...), or what `onRefresh` threw.
   */
  readonly onError?: (error: SessionServiceError | Error) => void;
}

/** A running auto-refresh: what Ductape's docs build by hand as `SessionManager`. */
export interface AutoRefresh {
  /** The latest pair. */
  readonly tokens: SessionTokens;
  /** Whether refreshing has stopped (by `stop()` or a failure). */
  readonly stopped: boolean;
  /** Refreshes now, whatever the time, and schedules the next one. */
  refreshNow(): Promise<SessionTokens>;
  /** Stops refreshing. */
  stop(): void;
}

/** setTimeout's longest delay; longer waits are taken in steps. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Keeps a session's tokens fresh: refreshes `refreshBeforeSeconds` before each expiry, hands the
 * new pair to `onRefresh`, and stops on the first failure (reported to `onError`).
 */
export function startAutoRefresh(
  refresh: (input: { tag: string; refreshToken: string }) => Promise<SessionTokens>,
  initial: SessionTokens,
  options: AutoRefreshOptions,
): AutoRefresh {
  const before = (options.refreshBeforeSeconds ?? 60) * 1000;
  let tokens = initial;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight: Promise<SessionTokens> | undefined;

  const schedule = () => {
    if (stopped) return;
    const wait = Date.parse(tokens.expiresAt) - before - Date.now();
    timer = setTimeout(
      () => {
        if (wait > MAX_TIMER_MS) schedule();
        else void run().catch(() => undefined);
      },
      Math.min(Math.max(wait, 0), MAX_TIMER_MS),
    );
  };

  const run = (): Promise<SessionTokens> => {
    inFlight ??= (async () => {
      try {
        const next = await refresh({ tag: options.tag, refreshToken: tokens.refreshToken });
        tokens = next;
        // Even after stop(): the old refresh token is spent, the new pair is the one to keep.
        await options.onRefresh?.(next);
        schedule();
        return next;
      } catch (error) {
        const wasStopped = stopped;
        handle.stop();
        if (!wasStopped)
          options.onError?.(error instanceof Error ? error : new Error(String(error)));
        throw error;
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  };

  const handle: AutoRefresh = {
    get tokens() {
      return tokens;
    },
    get stopped() {
      return stopped;
    },
    refreshNow() {
      if (stopped) return Promise.reject(new Error('auto-refresh has stopped'));
      clearTimeout(timer);
      return run();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
  schedule();
  return handle;
}

import { createClient, type Client } from 'graphql-ws';
import { documentIdOf, gql, type Scope } from './api';
import { FEED_SUBSCRIPTION, LATEST_QUERY } from './documents';

export interface SessionEvent {
  readonly id: string;
  readonly type: string;
  readonly sessionId: string;
  readonly tag: string;
  readonly identifier: string;
  readonly reason: string | null;
  readonly actor: string | null;
  readonly at: string;
}

export type FeedStatus = 'connecting' | 'live' | 'reconnecting' | 'stopped';

/** How many past events the feed shows when it opens. */
export const FEED_BACKLOG = 50;

/**
 * The live feed of session events over graphql-ws. It starts a little before the latest event
 * (so the page is not empty), keeps the id of the last event it received, and after any drop
 * subscribes again with `after` set to it: the server replays what was missed, in order, with
 * no gap and no duplicate (an id already seen is ignored all the same).
 */
export function startFeed(
  scope: Scope,
  onEvent: (event: SessionEvent) => void,
  onStatus: (status: FeedStatus) => void,
): () => void {
  let lastId: bigint | null = null;
  let stopped = false;
  let client: Client | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;

  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;

  const retry = () => {
    if (stopped) return;
    onStatus('reconnecting');
    void client?.dispose();
    client = undefined;
    const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
    failures += 1;
    timer = setTimeout(() => void open(), delay);
  };

  const open = async () => {
    if (stopped) return;
    try {
      if (lastId === null) {
        const data = await gql<{ latestSessionEventId: string | null }>(scope, LATEST_QUERY);
        const latest = BigInt(data.latestSessionEventId ?? '0');
        lastId = latest > BigInt(FEED_BACKLOG) ? latest - BigInt(FEED_BACKLOG) : 0n;
      }
    } catch {
      retry();
      return;
    }
    const documentId = await documentIdOf(FEED_SUBSCRIPTION);
    if (stopped) return;
    const socket = createClient({
      url,
      lazy: true,
      // Reconnecting is done here, so that each new subscription carries the latest `after`.
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${scope.key}` },
      on: {
        connected: () => {
          failures = 0;
          onStatus('live');
        },
      },
    });
    client = socket;
    onStatus('connecting');
    // graphql-ws sends the payload as it is: the trusted-document id beside the text.
    const payload = {
      documentId,
      query: FEED_SUBSCRIPTION,
      variables: { after: String(lastId), product: scope.product, env: scope.env },
    };
    socket.subscribe<{ sessionEvents: SessionEvent }>(payload, {
      next: (result) => {
        const event = result.data?.sessionEvents;
        if (!event) return;
        const id = BigInt(event.id);
        if (lastId !== null && id <= lastId) return;
        lastId = id;
        onEvent(event);
      },
      error: () => {
        if (client === socket) retry();
      },
      complete: () => {
        if (client === socket) retry();
      },
    });
  };

  void open();
  return () => {
    stopped = true;
    clearTimeout(timer);
    void client?.dispose();
    client = undefined;
    onStatus('stopped');
  };
}

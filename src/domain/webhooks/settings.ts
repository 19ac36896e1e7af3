/** How webhooks are accepted and delivered (docs/guides/webhooks.md); read from the configuration. */
export interface WebhookSettings {
  /** Accept URLs that resolve to loopback, private, link-local or metadata addresses. */
  readonly allowPrivateUrls: boolean;
  /** Accept `http:` URLs (else `https:` only). */
  readonly allowHttp: boolean;
  /** One attempt (connect, send, answer) gets this long. */
  readonly timeoutMs: number;
  /** Endpoints delivered to at once by one instance. */
  readonly concurrency: number;
  /** Attempts of one delivery before it is given up (`FAILED`). */
  readonly maxAttempts: number;
  /** The first retry waits this long; each next one twice as long (with jitter). */
  readonly retryBaseMs: number;
  /** An endpoint is disabled after this many failed attempts in a row. */
  readonly disableAfterFailures: number;
  /** Endpoints one product and env may have. */
  readonly maxEndpointsPerEnv: number;
  /** How often an instance looks for work even without a notification. */
  readonly pollIntervalMs: number;
  /** Whether this instance delivers at all. */
  readonly deliver: boolean;
  /** Finished deliveries (and their attempts) are deleted this long after they were queued. */
  readonly retentionSeconds: number;
}

/** The defaults: retries doubling from 5 s over 15 attempts span about 23 hours. */
export const DEFAULT_WEBHOOK_SETTINGS: WebhookSettings = {
  allowPrivateUrls: false,
  allowHttp: true,
  timeoutMs: 10_000,
  concurrency: 8,
  maxAttempts: 15,
  retryBaseMs: 5_000,
  disableAfterFailures: 30,
  maxEndpointsPerEnv: 20,
  pollIntervalMs: 5_000,
  deliver: true,
  retentionSeconds: 30 * 86_400,
};

/** The wait before attempt `attempt + 1` after `attempt` failures: base × 2^(n−1), ±10 %. */
export function retryDelayMs(settings: WebhookSettings, failedAttempts: number): number {
  const exact = settings.retryBaseMs * 2 ** Math.max(0, failedAttempts - 1);
  return Math.round(exact * (0.9 + Math.random() * 0.2));
}

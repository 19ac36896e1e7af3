import { Counter, Histogram, type Registry } from 'prom-client';
import type { FailureReason } from './webhook-sender.js';

/** Webhook metrics, in the server's registry; labels are bounded sets (never an endpoint or URL). */
export class WebhookMetrics {
  readonly #attempts: Counter<'outcome'>;
  readonly #failures: Counter<'reason'>;
  readonly #lag: Histogram;
  readonly #duration: Histogram;
  readonly #disabled: Counter;
  readonly #gaveUp: Counter;

  constructor(registry: Registry) {
    this.#attempts = new Counter({
      name: 'webhook_attempts_total',
      help: 'Webhook delivery attempts, by outcome (success, failure).',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.#failures = new Counter({
      name: 'webhook_failures_total',
      help: 'Failed webhook attempts, by reason (timeout, address_refused, connection, http_status).',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.#lag = new Histogram({
      name: 'webhook_delivery_lag_seconds',
      help: 'From an event being committed to its webhook being accepted by the endpoint.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 3600, 86_400],
      registers: [registry],
    });
    this.#duration = new Histogram({
      name: 'webhook_attempt_duration_seconds',
      help: 'How long one webhook attempt took, answer or not.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    this.#disabled = new Counter({
      name: 'webhook_endpoints_disabled_total',
      help: 'Endpoints disabled after WEBHOOK_DISABLE_AFTER_FAILURES failed attempts in a row.',
      registers: [registry],
    });
    this.#gaveUp = new Counter({
      name: 'webhook_deliveries_failed_total',
      help: 'Deliveries given up after WEBHOOK_MAX_ATTEMPTS attempts.',
      registers: [registry],
    });
  }

  /** Counts one attempt; a success also records the event's lag. */
  attempt(reason: FailureReason | null, seconds: number, eventAt: Date): void {
    this.#duration.observe(seconds);
    if (reason === null) {
      this.#attempts.inc({ outcome: 'success' });
      this.#lag.observe(Math.max(0, (Date.now() - eventAt.getTime()) / 1000));
    } else {
      this.#attempts.inc({ outcome: 'failure' });
      this.#failures.inc({ reason });
    }
  }

  endpointDisabled(): void {
    this.#disabled.inc();
  }

  deliveryGaveUp(): void {
    this.#gaveUp.inc();
  }
}

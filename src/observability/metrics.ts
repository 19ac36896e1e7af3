import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Operation } from '../domain/activity/index.js';

/**
 * The server's Prometheus metrics, in a registry of its own (tests build several servers in one
 * process). Yoga's plugin adds request counts and latency per operation to the same registry.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #operations = new Counter({
    name: 'session_operations_total',
    help: 'Session operations by operation, outcome and error code.',
    labelNames: ['operation', 'status', 'code'] as const,
    registers: [this.registry],
  });
  readonly #duration = new Histogram({
    name: 'session_operation_duration_seconds',
    help: 'How long session operations take, by operation.',
    labelNames: ['operation'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly #started = this.#counter('sessions_started_total', 'Sessions started.');
  readonly #refreshed = this.#counter('sessions_refreshed_total', 'Successful refreshes.');
  readonly #revoked = this.#counter(
    'session_revocations_total',
    'revokeSession and revokeAllSessions calls that succeeded.',
  );
  readonly #reuse = this.#counter(
    'refresh_token_reuse_detected_total',
    'Rotated refresh tokens presented after the grace window (the session was revoked).',
  );
  readonly #verifyFailures = new Counter({
    name: 'session_verify_failures_total',
    help: 'Failed verifies, by error code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly #busLag = new Histogram({
    name: 'event_bus_lag_seconds',
    help: 'From an event being written to its delivery to a subscriber on this instance.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
    registers: [this.registry],
  });

  /** A counter with no labels, in this registry. */
  #counter(name: string, help: string): Counter {
    return new Counter({ name, help, registers: [this.registry] });
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Counts one finished session operation. */
  operation(operation: Operation, code: string | null, seconds: number): void {
    this.#operations.inc({
      operation,
      status: code === null ? 'success' : 'failure',
      code: code ?? '',
    });
    this.#duration.observe({ operation }, seconds);
    if (code === null) {
      if (operation === 'start') this.#started.inc();
      else if (operation === 'refresh') this.#refreshed.inc();
      else if (operation === 'revoke' || operation === 'revoke_all') this.#revoked.inc();
    } else {
      if (operation === 'verify') this.#verifyFailures.inc({ code });
      if (code === 'REFRESH_TOKEN_REUSED') this.#reuse.inc();
    }
  }

  /** Records how long an event took from its commit to a subscriber. */
  eventDelivered(writtenAt: Date): void {
    this.#busLag.observe(Math.max(0, (Date.now() - writtenAt.getTime()) / 1000));
  }

  /**
   * `db_statements_sent`: statements sent to the database since start (queries, BEGIN and
   * COMMIT), read from `sent` at each scrape: divided by operations, round trips per operation.
   */
  countStatements(sent: () => number): void {
    new Gauge({
      name: 'db_statements_sent',
      help: 'Statements sent to the database since the process started (queries, BEGIN, COMMIT).',
      registers: [this.registry],
      collect() {
        this.set(sent());
      },
    });
  }
}

import { useEffect, useRef, useState } from 'preact/hooks';
import { gql, type Scope } from './api';
import { formatTime } from './format';
import { ErrorNote, EVENT_TYPES, SecretOnce, useConfirm } from './ui';
import {
  CREATE_ENDPOINT_MUTATION,
  ENDPOINTS_QUERY,
  ENDPOINT_QUERY,
  ENABLE_ENDPOINT_MUTATION,
  DISABLE_ENDPOINT_MUTATION,
  ROTATE_SECRET_MUTATION,
  REDELIVER_MUTATION,
  DELETE_ENDPOINT_MUTATION,
} from './documents';

interface Endpoint {
  id: string;
  url: string;
  description: string;
  eventTypes: string[] | null;
  enabled: boolean;
  disabledAt: string | null;
  disabledReason: string | null;
  failureRun: number;
  previousSecretExpiresAt: string | null;
  createdAt: string;
  updatedAt: string;
}

interface Attempt {
  at: string;
  succeeded: boolean;
  responseCode: number | null;
  latencyMs: number;
  error: string | null;
  nextAttemptAt: string | null;
}

interface Delivery {
  id: string;
  messageId: string;
  eventId: string;
  eventType: string;
  status: 'PENDING' | 'DELIVERED' | 'FAILED';
  attempts: number;
  createdAt: string;
  deliveredAt: string | null;
  nextAttemptAt: string | null;
  lastResponseCode: number | null;
  lastError: string | null;
  attemptLog: Attempt[];
}

/** Deliveries shown per page (the API's default). */
const DELIVERY_PAGE = 20;
/** How often an open endpoint's deliveries are read again, so retries show as they happen. */
const REFRESH_MS = 3000;

const webhookHref = (id?: string) => (id ? `#/webhooks/${encodeURIComponent(id)}` : '#/webhooks');

function EndpointState({ endpoint }: { endpoint: Endpoint }) {
  return endpoint.enabled ? (
    <span class="badge success">enabled</span>
  ) : (
    <span class="badge failure" title={endpoint.disabledReason ?? ''}>
      disabled{endpoint.disabledReason ? ` (${endpoint.disabledReason})` : ''}
    </span>
  );
}

/** Up to 20 event types, or none for every type. */
function EventTypePicker({
  value,
  onChange,
}: {
  value: string[];
  onChange: (types: string[]) => void;
}) {
  return (
    <fieldset class="event-types">
      <legend>Event types (none checked: every type)</legend>
      {EVENT_TYPES.map((type) => (
        <label key={type} class="check">
          <input
            type="checkbox"
            name="eventType"
            value={type}
            checked={value.includes(type)}
            onChange={(e) =>
              onChange(e.currentTarget.checked ? [...value, type] : value.filter((t) => t !== type))
            }
          />
          {type}
        </label>
      ))}
    </fieldset>
  );
}

function NewEndpoint({
  scope,
  onCreated,
  onCancel,
}: {
  scope: Scope;
  onCreated: (secret: string, endpoint: Endpoint) => void;
  onCancel: () => void;
}) {
  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [types, setTypes] = useState<string[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      const data = await gql<{
        createWebhookEndpoint: { secret: string; endpoint: Endpoint };
      }>(scope, CREATE_ENDPOINT_MUTATION, {
        input: {
          url: url.trim(),
          description: description || null,
          eventTypes: types.length > 0 ? types : null,
        },
      });
      setError(null);
      onCreated(data.createWebhookEndpoint.secret, data.createWebhookEndpoint.endpoint);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="editor" onSubmit={submit} aria-label="New endpoint">
      <h3>New endpoint</h3>
      <label>
        URL
        <input
          name="url"
          type="url"
          value={url}
          maxLength={2048}
          required
          placeholder="https://hooks.example.com/sessions"
          onInput={(e) => setUrl(e.currentTarget.value)}
        />
      </label>
      <label>
        Description
        <input
          name="description"
          value={description}
          maxLength={500}
          placeholder="What it is for"
          onInput={(e) => setDescription(e.currentTarget.value)}
        />
      </label>
      <EventTypePicker value={types} onChange={setTypes} />
      <ErrorNote error={error} />
      <div class="actions">
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" disabled={busy}>
          Create
        </button>
      </div>
    </form>
  );
}

export function WebhooksPage({ scope }: { scope: Scope }) {
  const [endpoints, setEndpoints] = useState<Endpoint[] | null>(null);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<{ secret: string; endpoint: Endpoint } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = async () => {
    try {
      const data = await gql<{ webhookEndpoints: Endpoint[] }>(scope, ENDPOINTS_QUERY);
      setEndpoints(data.webhookEndpoints);
      setError(null);
    } catch (caught) {
      setError(caught);
    }
  };
  useEffect(() => {
    void load();
  }, [scope]);

  return (
    <section>
      <h2>Webhook endpoints</h2>
      <p class="hint">
        Session events POSTed to your URLs, signed (Standard Webhooks), retried until they are
        accepted.
      </p>
      <ErrorNote error={error} />
      {created && (
        <SecretOnce
          label={`Signing secret of ${created.endpoint.url}`}
          secret={created.secret}
          onDismiss={() => setCreated(null)}
        />
      )}
      {creating ? (
        <NewEndpoint
          scope={scope}
          onCancel={() => setCreating(false)}
          onCreated={(secret, endpoint) => {
            setCreating(false);
            setCreated({ secret, endpoint });
            void load();
          }}
        />
      ) : (
        <button type="button" onClick={() => setCreating(true)}>
          New endpoint
        </button>
      )}
      <table class="endpoints">
        <thead>
          <tr>
            <th>URL</th>
            <th>Description</th>
            <th>Events</th>
            <th>State</th>
            <th>Failures in a row</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {(endpoints ?? []).map((e) => (
            <tr key={e.id} data-endpoint={e.id}>
              <td class="mono">
                <a href={webhookHref(e.id)}>{e.url}</a>
              </td>
              <td>{e.description}</td>
              <td>{e.eventTypes ? e.eventTypes.join(', ') : 'all'}</td>
              <td>
                <EndpointState endpoint={e} />
              </td>
              <td>{e.failureRun}</td>
              <td>{formatTime(e.createdAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {endpoints?.length === 0 && <p class="empty">No endpoint yet.</p>}
    </section>
  );
}

function AttemptLog({ attempts }: { attempts: Attempt[] }) {
  return (
    <table class="attempts">
      <thead>
        <tr>
          <th>At</th>
          <th>Outcome</th>
          <th>HTTP</th>
          <th>ms</th>
          <th>Next try</th>
        </tr>
      </thead>
      <tbody>
        {attempts.map((a, i) => (
          <tr key={i} data-succeeded={String(a.succeeded)}>
            <td>{formatTime(a.at)}</td>
            <td>
              <span class={`badge ${a.succeeded ? 'success' : 'failure'}`}>
                {a.succeeded ? 'accepted' : (a.error ?? 'failed')}
              </span>
            </td>
            <td>{a.responseCode ?? '—'}</td>
            <td>{a.latencyMs.toFixed(0)}</td>
            <td>{formatTime(a.nextAttemptAt)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function WebhookPage({ scope, id }: { scope: Scope; id: string }) {
  const [endpoint, setEndpoint] = useState<Endpoint | null>(null);
  const [deliveries, setDeliveries] = useState<Delivery[]>([]);
  const [more, setMore] = useState(false);
  const [status, setStatus] = useState('');
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const [overlap, setOverlap] = useState('86400');
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const { ask, dialog } = useConfirm();
  // Pages beyond the first that the operator asked for stay loaded on a refresh.
  const shownCount = useRef(DELIVERY_PAGE);

  const load = async () => {
    try {
      const data = await gql<{ webhookEndpoint: Endpoint & { deliveries: Delivery[] } }>(
        scope,
        ENDPOINT_QUERY,
        { id, first: Math.min(shownCount.current + 1, 100), status: status || null },
      );
      const { deliveries: list, ...rest } = data.webhookEndpoint;
      setEndpoint(rest);
      setDeliveries(list.slice(0, shownCount.current));
      setMore(list.length > shownCount.current);
      setLoadError(null);
    } catch (caught) {
      setLoadError(caught);
    }
  };
  useEffect(() => {
    shownCount.current = DELIVERY_PAGE;
    void load();
    const timer = setInterval(() => void load(), REFRESH_MS);
    return () => clearInterval(timer);
  }, [scope, id, status]);

  const act = async (question: string | null, run: () => Promise<string>) => {
    if (question !== null && !(await ask(question))) return;
    try {
      setNotice(await run());
      setError(null);
    } catch (caught) {
      setNotice(null);
      setError(caught);
    }
    await load();
  };
  const setEnabled = (enabled: boolean) =>
    act(
      enabled
        ? null
        : `Disable ${endpoint?.url}? Its events wait (kept for the event retention) and go out once it is enabled again.`,
      async () => {
        if (enabled) {
          await gql(scope, ENABLE_ENDPOINT_MUTATION, { id });
          return 'Endpoint enabled: delivery resumes where it stopped.';
        }
        await gql(scope, DISABLE_ENDPOINT_MUTATION, { id });
        return 'Endpoint disabled.';
      },
    );
  const rotate = () => {
    const seconds = /^\d+$/.test(overlap.trim()) ? Number(overlap.trim()) : overlap;
    return act(
      `Give ${endpoint?.url} a new signing secret? The current one keeps signing beside it for ${overlap} seconds.`,
      async () => {
        const data = await gql<{ rotateWebhookSecret: { secret: string } }>(
          scope,
          ROTATE_SECRET_MUTATION,
          { id, overlapSeconds: seconds },
        );
        setSecret(data.rotateWebhookSecret.secret);
        return 'Secret rotated.';
      },
    );
  };
  const redeliver = (delivery: Delivery) =>
    act(
      `Send event ${delivery.eventId} (${delivery.eventType}) to ${endpoint?.url} again now, with the same webhook-id?`,
      async () => {
        await gql(scope, REDELIVER_MUTATION, { deliveryId: delivery.id });
        return `Event ${delivery.eventId} queued for delivery again.`;
      },
    );
  const remove = () =>
    act(`Delete ${endpoint?.url} with its deliveries? This cannot be undone.`, async () => {
      await gql(scope, DELETE_ENDPOINT_MUTATION, { id });
      location.hash = webhookHref();
      return 'Endpoint deleted.';
    });
  const toggle = (deliveryId: string) =>
    setOpen((old) => {
      const next = new Set(old);
      if (next.has(deliveryId)) next.delete(deliveryId);
      else next.add(deliveryId);
      return next;
    });

  return (
    <section>
      <p>
        <a href={webhookHref()}>← Webhook endpoints</a>
      </p>
      <h2 class="mono">{endpoint?.url ?? id}</h2>
      <ErrorNote error={loadError} />
      <ErrorNote error={error} />
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      {secret && (
        <SecretOnce label="New signing secret" secret={secret} onDismiss={() => setSecret(null)} />
      )}
      {endpoint && (
        <>
          <dl class="facts">
            <div>
              <dt>State</dt>
              <dd data-fact="state">
                <EndpointState endpoint={endpoint} />
              </dd>
            </div>
            <div>
              <dt>Events</dt>
              <dd>{endpoint.eventTypes ? endpoint.eventTypes.join(', ') : 'all'}</dd>
            </div>
            <div>
              <dt>Failed attempts in a row</dt>
              <dd>{endpoint.failureRun}</dd>
            </div>
            <div>
              <dt>Previous secret signs until</dt>
              <dd data-fact="previous-secret">
                {endpoint.previousSecretExpiresAt
                  ? formatTime(endpoint.previousSecretExpiresAt)
                  : '—'}
              </dd>
            </div>
            <div>
              <dt>Description</dt>
              <dd>{endpoint.description || '—'}</dd>
            </div>
          </dl>
          <div class="toolbar">
            {endpoint.enabled ? (
              <button type="button" class="danger" onClick={() => void setEnabled(false)}>
                Disable
              </button>
            ) : (
              <button type="button" onClick={() => void setEnabled(true)}>
                Enable
              </button>
            )}
            <label class="inline">
              Overlap (s)
              <input
                name="overlapSeconds"
                value={overlap}
                inputMode="numeric"
                size={8}
                onInput={(e) => setOverlap(e.currentTarget.value)}
              />
            </label>
            <button type="button" class="secondary" onClick={() => void rotate()}>
              Rotate secret
            </button>
            <button type="button" class="danger" onClick={() => void remove()}>
              Delete
            </button>
          </div>
        </>
      )}
      <h3>Deliveries</h3>
      <div class="filters">
        <label>
          Status
          <select
            name="deliveryStatus"
            value={status}
            onChange={(e) => setStatus(e.currentTarget.value)}
          >
            <option value="">all</option>
            <option value="PENDING">pending</option>
            <option value="DELIVERED">delivered</option>
            <option value="FAILED">failed</option>
          </select>
        </label>
        <button type="button" class="secondary" onClick={() => void load()}>
          Refresh
        </button>
      </div>
      <table class="deliveries">
        <thead>
          <tr>
            <th>Event</th>
            <th>Type</th>
            <th>webhook-id</th>
            <th>Status</th>
            <th>Attempts</th>
            <th>Last answer</th>
            <th>Queued</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {deliveries.map((d) => [
            <tr key={d.id} data-delivery={d.id} data-event={d.eventId}>
              <td>{d.eventId}</td>
              <td>{d.eventType}</td>
              <td class="mono">{d.messageId}</td>
              <td>
                <span class={`badge ${d.status.toLowerCase()}`} data-status={d.status}>
                  {d.status}
                </span>
                {d.status === 'PENDING' && d.nextAttemptAt && (
                  <small> next {formatTime(d.nextAttemptAt)}</small>
                )}
              </td>
              <td data-attempts={d.attempts}>{d.attempts}</td>
              <td>{d.lastResponseCode ?? d.lastError ?? ''}</td>
              <td>{formatTime(d.createdAt)}</td>
              <td class="row-actions">
                <button type="button" class="secondary" onClick={() => toggle(d.id)}>
                  {open.has(d.id) ? 'Hide attempts' : 'Attempts'}
                </button>
                <button type="button" class="secondary" onClick={() => void redeliver(d)}>
                  Redeliver
                </button>
              </td>
            </tr>,
            open.has(d.id) && (
              <tr key={`${d.id}-log`} class="attempt-log" data-attempts-of={d.id}>
                <td colSpan={8}>
                  {d.attemptLog.length > 0 ? (
                    <AttemptLog attempts={d.attemptLog} />
                  ) : (
                    <p class="empty">No attempt yet.</p>
                  )}
                </td>
              </tr>
            ),
          ])}
        </tbody>
      </table>
      {deliveries.length === 0 && <p class="empty">No delivery yet.</p>}
      <p class="hint">Newest event first, up to 100; read again every few seconds.</p>
      {more && (
        <button
          type="button"
          class="secondary"
          onClick={() => {
            shownCount.current = Math.min(shownCount.current + DELIVERY_PAGE, 100);
            void load();
          }}
        >
          More
        </button>
      )}
      {dialog}
    </section>
  );
}

import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, gql, messageOf, type Scope } from './api';
import { formatTime } from './format';
import {
  CONFIGS_QUERY,
  UPDATE_CONFIG_MUTATION,
  CREATE_CONFIG_MUTATION,
  USERS_QUERY,
  FIND_USER_QUERY,
  ACTIVITY_QUERY,
  PAGE,
} from './documents';

// ---------------------------------------------------------------- shared pieces

interface ConfigRow {
  tag: string;
  name: string;
  description: string;
  selector: string;
  expiry: number;
  period: string;
  refreshExpiresIn: number;
  idleTimeout: number | null;
  maxSessionsPerIdentifier: number | null;
  schema: unknown;
  env: string | null;
  activeSessionCount: number;
  updatedAt: string;
}

/** The configs of the signed-in product and env, reloaded on demand. */
export function useConfigs(scope: Scope) {
  const [configs, setConfigs] = useState<ConfigRow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const reload = () =>
    gql<{ sessionConfigs: ConfigRow[] }>(scope, CONFIGS_QUERY).then(
      (data) => {
        setConfigs(data.sessionConfigs);
        setError(null);
      },
      (caught: unknown) => setError(messageOf(caught)),
    );
  useEffect(() => {
    void reload();
  }, [scope]);
  return { configs, error, reload };
}

/** A select of the product's config tags; picks the first one when none is chosen. */
export function TagSelect({
  scope,
  value,
  onChange,
  allowAll = false,
}: {
  scope: Scope;
  value: string;
  onChange: (tag: string) => void;
  allowAll?: boolean;
}) {
  const { configs, error } = useConfigs(scope);
  useEffect(() => {
    if (!allowAll && !value && configs && configs[0]) onChange(configs[0].tag);
  }, [configs]);
  if (error) return <p class="error">{error}</p>;
  return (
    <label>
      Config
      <select value={value} onChange={(e) => onChange(e.currentTarget.value)} name="tag">
        {allowAll && <option value="">all</option>}
        {(configs ?? []).map((c) => (
          <option key={c.tag} value={c.tag}>
            {c.tag}
          </option>
        ))}
      </select>
    </label>
  );
}

// ---------------------------------------------------------------- configs

const PERIODS = ['SECONDS', 'MINUTES', 'HOURS', 'DAYS', 'WEEKS'];

interface ConfigForm {
  name: string;
  tag: string;
  description: string;
  schema: string;
  selector: string;
  expiry: string;
  period: string;
  refreshExpiresIn: string;
  idleTimeout: string;
  maxSessionsPerIdentifier: string;
}

const emptyForm: ConfigForm = {
  name: '',
  tag: '',
  description: '',
  schema: '{\n  "userId": "user-123"\n}',
  selector: '$Session{userId}',
  expiry: '1',
  period: 'HOURS',
  refreshExpiresIn: '',
  idleTimeout: '',
  maxSessionsPerIdentifier: '',
};

const formOf = (c: ConfigRow): ConfigForm => ({
  name: c.name,
  tag: c.tag,
  description: c.description,
  schema: JSON.stringify(c.schema, null, 2),
  selector: c.selector,
  expiry: String(c.expiry),
  period: c.period,
  refreshExpiresIn: String(c.refreshExpiresIn),
  idleTimeout: c.idleTimeout === null ? '' : String(c.idleTimeout),
  maxSessionsPerIdentifier:
    c.maxSessionsPerIdentifier === null ? '' : String(c.maxSessionsPerIdentifier),
});

/** A whole number as typed; anything else goes to the API as is, which says what is wrong. */
const numberOrRaw = (text: string): unknown =>
  /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : text;

function Field({
  label,
  error,
  children,
}: {
  label: string;
  error: string | undefined;
  children?: ComponentChildren;
}) {
  return (
    <label class={error ? 'invalid' : undefined}>
      {label}
      {children}
      {error && <span class="field-error">{error}</span>}
    </label>
  );
}

function ConfigEditor({
  scope,
  editing,
  onDone,
}: {
  scope: Scope;
  editing: ConfigRow | null;
  onDone: () => void;
}) {
  const [form, setForm] = useState<ConfigForm>(editing ? formOf(editing) : emptyForm);
  const [error, setError] = useState<ApiError | Error | null>(null);
  const [busy, setBusy] = useState(false);
  const set = (field: keyof ConfigForm) => (e: { currentTarget: { value: string } }) =>
    setForm({ ...form, [field]: e.currentTarget.value });

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    let schema: unknown;
    try {
      schema = JSON.parse(form.schema);
    } catch {
      setError(
        new ApiError('The schema is not valid JSON.', [
          { message: 'not valid JSON', extensions: { field: 'schema' } },
        ]),
      );
      return;
    }
    const input: Record<string, unknown> = {
      name: form.name,
      tag: form.tag,
      description: form.description,
      schema,
      selector: form.selector,
      expiry: numberOrRaw(form.expiry),
      period: form.period,
    };
    const optional = ['refreshExpiresIn', 'idleTimeout', 'maxSessionsPerIdentifier'] as const;
    for (const field of optional) {
      if (form[field].trim() !== '') input[field] = numberOrRaw(form[field]);
      else if (editing && field !== 'refreshExpiresIn') input[field] = null;
    }
    setBusy(true);
    try {
      if (editing) {
        await gql(scope, UPDATE_CONFIG_MUTATION, { tag: editing.tag, input });
      } else {
        await gql(scope, CREATE_CONFIG_MUTATION, { input });
      }
      onDone();
    } catch (caught) {
      setError(caught instanceof Error ? caught : new Error(String(caught)));
    } finally {
      setBusy(false);
    }
  };

  const fieldError = (field: string) =>
    error instanceof ApiError ? error.forField(field) : undefined;
  return (
    <form class="editor" onSubmit={submit} aria-label={editing ? 'Edit config' : 'New config'}>
      <h3>{editing ? `Edit ${editing.tag}` : 'New config'}</h3>
      <div class="grid">
        <Field error={fieldError('name')} label="Name">
          <input name="name" value={form.name} onInput={set('name')} />
        </Field>
        <Field error={fieldError('tag')} label="Tag">
          <input name="tag" value={form.tag} onInput={set('tag')} />
        </Field>
        <Field error={fieldError('description')} label="Description">
          <input name="description" value={form.description} onInput={set('description')} />
        </Field>
        <Field error={fieldError('selector')} label="Selector">
          <input name="selector" value={form.selector} onInput={set('selector')} />
        </Field>
        <Field error={fieldError('expiry')} label="Expiry">
          <input name="expiry" value={form.expiry} onInput={set('expiry')} inputMode="numeric" />
        </Field>
        <Field error={fieldError('period')} label="Period">
          <select name="period" value={form.period} onChange={set('period')}>
            {PERIODS.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </Field>
        <Field error={fieldError('refreshExpiresIn')} label="Refresh token lifetime (s)">
          <input
            name="refreshExpiresIn"
            value={form.refreshExpiresIn}
            onInput={set('refreshExpiresIn')}
            placeholder="default"
          />
        </Field>
        <Field error={fieldError('idleTimeout')} label="Idle timeout (s)">
          <input
            name="idleTimeout"
            value={form.idleTimeout}
            onInput={set('idleTimeout')}
            placeholder="none"
          />
        </Field>
        <Field error={fieldError('maxSessionsPerIdentifier')} label="Most sessions per user">
          <input
            name="maxSessionsPerIdentifier"
            value={form.maxSessionsPerIdentifier}
            onInput={set('maxSessionsPerIdentifier')}
            placeholder="no cap"
          />
        </Field>
      </div>
      <Field error={fieldError('schema')} label="Sample data (JSON)">
        <textarea name="schema" rows={5} value={form.schema} onInput={set('schema')} />
      </Field>
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
      <div class="actions">
        <button type="button" class="secondary" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" disabled={busy}>
          {editing ? 'Save' : 'Create'}
        </button>
      </div>
    </form>
  );
}

export function ConfigsPage({ scope }: { scope: Scope }) {
  const { configs, error, reload } = useConfigs(scope);
  const [editing, setEditing] = useState<ConfigRow | 'new' | null>(null);
  return (
    <section>
      <h2>Session configs</h2>
      {error && <p class="error">{error}</p>}
      {editing === null ? (
        <button type="button" onClick={() => setEditing('new')}>
          New config
        </button>
      ) : (
        <ConfigEditor
          key={editing === 'new' ? 'new' : editing.tag}
          scope={scope}
          editing={editing === 'new' ? null : editing}
          onDone={() => {
            setEditing(null);
            void reload();
          }}
        />
      )}
      <table>
        <thead>
          <tr>
            <th>Tag</th>
            <th>Name</th>
            <th>Selector</th>
            <th>Lifetime</th>
            <th>Env</th>
            <th>Active sessions</th>
            <th>Updated</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(configs ?? []).map((c) => (
            <tr key={c.tag} data-tag={c.tag}>
              <td class="mono">{c.tag}</td>
              <td>{c.name}</td>
              <td class="mono">{c.selector}</td>
              <td>
                {c.expiry} {c.period.toLowerCase()}
              </td>
              <td>{c.env ?? 'all'}</td>
              <td>{c.activeSessionCount}</td>
              <td>{formatTime(c.updatedAt)}</td>
              <td>
                <button type="button" class="secondary" onClick={() => setEditing(c)}>
                  Edit
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

// ---------------------------------------------------------------- users

export interface UserRow {
  identifier: string;
  firstSeenAt: string;
  lastSeenAt: string;
  totalSessions: number;
  activeSessions: number;
}

export function UsersPage({ scope, tag: initialTag }: { scope: Scope; tag?: string }) {
  const [tag, setTag] = useState(initialTag ?? '');
  const [rows, setRows] = useState<UserRow[]>([]);
  const [total, setTotal] = useState(0);
  const [cursor, setCursor] = useState<string | null>(null);
  const [search, setSearch] = useState('');
  const [found, setFound] = useState<UserRow | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);

  const latest = useRef(0);
  const load = async (after: string | null) => {
    if (!tag) return;
    const call = ++latest.current;
    try {
      const data = await gql<{
        sessionUsers: {
          totalCount: number;
          edges: { node: UserRow }[];
          pageInfo: { hasNextPage: boolean; endCursor: string | null };
        };
      }>(scope, USERS_QUERY, { tag, first: PAGE, after });
      // An answer to an older request (another tag) is dropped.
      if (call !== latest.current) return;
      const page = data.sessionUsers.edges.map((e) => e.node);
      setRows((old) => (after ? [...old, ...page] : page));
      setTotal(data.sessionUsers.totalCount);
      setCursor(
        data.sessionUsers.pageInfo.hasNextPage ? data.sessionUsers.pageInfo.endCursor : null,
      );
      setError(null);
    } catch (caught) {
      setError(messageOf(caught));
    }
  };
  useEffect(() => {
    setFound(undefined);
    void load(null);
  }, [tag, scope]);

  const find = async (event: Event) => {
    event.preventDefault();
    const identifier = search.trim();
    if (!identifier || !tag) return;
    try {
      const data = await gql<{ sessionUser: UserRow | null }>(scope, FIND_USER_QUERY, {
        tag,
        identifier,
      });
      setFound(data.sessionUser);
      setError(null);
    } catch (caught) {
      setError(messageOf(caught));
    }
  };

  const needle = search.trim().toLowerCase();
  const shown =
    found !== undefined
      ? found
        ? [found]
        : []
      : rows.filter((r) => !needle || r.identifier.toLowerCase().includes(needle));

  return (
    <section>
      <h2>Users</h2>
      <div class="filters">
        <TagSelect scope={scope} value={tag} onChange={setTag} />
        <form onSubmit={find} class="search" role="search">
          <label>
            Identifier
            <input
              name="identifier"
              value={search}
              onInput={(e) => {
                setSearch(e.currentTarget.value);
                setFound(undefined);
              }}
              placeholder="exact identifier, or filter the list"
            />
          </label>
          <button type="submit">Find</button>
        </form>
      </div>
      {error && <p class="error">{error}</p>}
      <p class="hint">
        {total} users of {tag || '…'}, most recently seen first
        {found === null && ' · no user with that identifier'}
      </p>
      <table>
        <thead>
          <tr>
            <th>Identifier</th>
            <th>Active sessions</th>
            <th>All sessions</th>
            <th>Last seen</th>
            <th>First seen</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((u) => (
            <tr key={u.identifier}>
              <td>
                <a href={`#/users/${encodeURIComponent(tag)}/${encodeURIComponent(u.identifier)}`}>
                  {u.identifier}
                </a>
              </td>
              <td>{u.activeSessions}</td>
              <td>{u.totalSessions}</td>
              <td>{formatTime(u.lastSeenAt)}</td>
              <td>{formatTime(u.firstSeenAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {cursor && found === undefined && (
        <button type="button" class="secondary" onClick={() => void load(cursor)}>
          More
        </button>
      )}
    </section>
  );
}

// ---------------------------------------------------------------- activity

interface ActivityRow {
  id: string;
  at: string;
  operation: string;
  status: string;
  errorCode: string | null;
  tag: string | null;
  sessionId: string | null;
  identifier: string | null;
  durationMs: number;
  actor: string | null;
}

const OPERATIONS = [
  'START',
  'REFRESH',
  'REVOKE',
  'REVOKE_ALL',
  'TOUCH',
  'EXTEND',
  'SET_EXPIRATION',
  'UPDATE_DATA',
  'MERGE_DATA',
  'SET_VALUE',
  'REMOVE_VALUE',
  'CLEAR_DATA',
  'MARK_FRESH',
  'SET_DEVICE_NAME',
  'REVOKE_STARTED_BEFORE',
];

/** A `datetime-local` value as an ISO instant (local time), or null when empty. */
const toInstant = (local: string) => (local ? new Date(local).toISOString() : null);

export function ActivityPage({ scope }: { scope: Scope }) {
  const [tag, setTag] = useState('');
  const [operation, setOperation] = useState('');
  const [status, setStatus] = useState('');
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const [rows, setRows] = useState<ActivityRow[]>([]);
  const [total, setTotal] = useState(0);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const latest = useRef(0);
  const load = async (after: string | null) => {
    const call = ++latest.current;
    try {
      const data = await gql<{
        activityLog: {
          totalCount: number;
          edges: { node: ActivityRow }[];
          pageInfo: { hasNextPage: boolean; endCursor: string | null };
        };
      }>(scope, ACTIVITY_QUERY, {
        tag: tag || null,
        operation: operation || null,
        status: status || null,
        since: toInstant(since),
        until: toInstant(until),
        after,
      });
      // An answer to an older request (other filters) is dropped.
      if (call !== latest.current) return;
      const page = data.activityLog.edges.map((e) => e.node);
      setRows((old) => (after ? [...old, ...page] : page));
      setTotal(data.activityLog.totalCount);
      setCursor(data.activityLog.pageInfo.hasNextPage ? data.activityLog.pageInfo.endCursor : null);
      setError(null);
    } catch (caught) {
      setError(messageOf(caught));
    }
  };
  useEffect(() => {
    void load(null);
  }, [scope, tag, operation, status, since, until]);

  return (
    <section>
      <h2>Activity log</h2>
      <div class="filters">
        <TagSelect scope={scope} value={tag} onChange={setTag} allowAll />
        <label>
          Operation
          <select
            name="operation"
            value={operation}
            onChange={(e) => setOperation(e.currentTarget.value)}
          >
            <option value="">all</option>
            {OPERATIONS.map((op) => (
              <option key={op} value={op}>
                {op}
              </option>
            ))}
          </select>
        </label>
        <label>
          Outcome
          <select name="status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            <option value="">all</option>
            <option value="SUCCESS">success</option>
            <option value="FAILURE">failure</option>
          </select>
        </label>
        <label>
          Since
          <input
            type="datetime-local"
            value={since}
            onChange={(e) => setSince(e.currentTarget.value)}
          />
        </label>
        <label>
          Until
          <input
            type="datetime-local"
            value={until}
            onChange={(e) => setUntil(e.currentTarget.value)}
          />
        </label>
      </div>
      {error && <p class="error">{error}</p>}
      <p class="hint">{total} entries, newest first</p>
      <table>
        <thead>
          <tr>
            <th>At</th>
            <th>Operation</th>
            <th>Outcome</th>
            <th>Tag</th>
            <th>User</th>
            <th>Session</th>
            <th>ms</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.id}>
              <td>{formatTime(r.at)}</td>
              <td>{r.operation}</td>
              <td>
                <span class={`badge ${r.status.toLowerCase()}`}>
                  {r.status === 'SUCCESS' ? 'success' : (r.errorCode ?? 'failure')}
                </span>
              </td>
              <td>{r.tag ?? ''}</td>
              <td>
                {r.identifier ?? ''}
                {r.actor && <span class="badge actor">as {r.actor}</span>}
              </td>
              <td class="mono">{r.sessionId ?? ''}</td>
              <td>{r.durationMs.toFixed(1)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {cursor && (
        <button type="button" class="secondary" onClick={() => void load(cursor)}>
          More
        </button>
      )}
    </section>
  );
}

export { USER_FIELDS } from './documents';

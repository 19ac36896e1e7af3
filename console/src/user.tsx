import { useEffect, useState } from 'preact/hooks';
import { gql, type Scope } from './api';
import { describeDevice, formatTime } from './format';
import type { UserRow } from './pages';
import { ErrorNote, useConfirm } from './ui';
import {
  USER_SESSIONS_QUERY,
  REVOKE_ONE_MUTATION,
  REVOKE_ALL_MUTATION,
  SIGN_OUT_EVERYWHERE_MUTATION,
  NAME_DEVICE_MUTATION,
} from './documents';

interface PastDevice {
  userAgent: string | null;
  ip: string | null;
  until: string;
}

interface SessionRow {
  id: string;
  status: 'ACTIVE' | 'EXPIRED' | 'REVOKED';
  createdAt: string;
  lastActiveAt: string;
  expiresAt: string;
  revokedAt: string | null;
  revokeReason: string | null;
  actor: string | null;
  deviceName: string | null;
  device: { userAgent: string | null; ip: string | null };
  deviceHistory: PastDevice[];
}

/** The API's limit on a device name. */
const MAX_DEVICE_NAME = 64;

/** A session's device: its name when it has one, what it is, and the devices it used before. */
function DeviceCell({
  session,
  onRename,
}: {
  session: SessionRow;
  onRename: (name: string | null) => Promise<boolean>;
}) {
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(session.deviceName ?? '');
  const [busy, setBusy] = useState(false);
  const save = async (value: string | null) => {
    setBusy(true);
    const ok = await onRename(value);
    setBusy(false);
    if (ok) setEditing(false);
  };
  return (
    <td class="device">
      {session.deviceName && <strong class="device-name">{session.deviceName}</strong>}
      <span title={session.device.userAgent ?? ''}>{describeDevice(session.device.userAgent)}</span>
      {session.deviceHistory.length > 0 && (
        <details class="device-history">
          <summary>
            {session.deviceHistory.length} earlier device
            {session.deviceHistory.length === 1 ? '' : 's'}
          </summary>
          <ul>
            {session.deviceHistory.map((d) => (
              <li key={d.until} title={d.userAgent ?? ''}>
                {describeDevice(d.userAgent)} <span class="mono">{d.ip ?? ''}</span> · until{' '}
                {formatTime(d.until)}
              </li>
            ))}
          </ul>
        </details>
      )}
      {editing ? (
        <form
          class="inline"
          aria-label="Device name"
          onSubmit={(e) => {
            e.preventDefault();
            void save(name.trim() === '' ? null : name.trim());
          }}
        >
          <input
            name="deviceName"
            value={name}
            maxLength={MAX_DEVICE_NAME}
            placeholder="e.g. Ada’s laptop"
            onInput={(e) => setName(e.currentTarget.value)}
          />
          <button type="submit" disabled={busy}>
            Save
          </button>
          <button type="button" class="secondary" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <button type="button" class="link" onClick={() => setEditing(true)}>
          {session.deviceName ? 'Rename' : 'Name'}
        </button>
      )}
    </td>
  );
}

export function UserPage({
  scope,
  tag,
  identifier,
}: {
  scope: Scope;
  tag: string;
  identifier: string;
}) {
  const [user, setUser] = useState<(UserRow & { sessions: SessionRow[] }) | null | undefined>(
    undefined,
  );
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const { ask, dialog } = useConfirm();

  const load = async () => {
    try {
      const data = await gql<{
        sessionUser: (UserRow & { sessions: { edges: { node: SessionRow }[] } }) | null;
      }>(scope, USER_SESSIONS_QUERY, { tag, identifier });
      const found = data.sessionUser;
      setUser(found ? { ...found, sessions: found.sessions.edges.map((e) => e.node) } : null);
      setError(null);
    } catch (caught) {
      setError(caught);
    }
  };
  useEffect(() => {
    void load();
  }, [scope, tag, identifier]);

  const act = async (question: string, run: () => Promise<string>) => {
    if (!(await ask(question))) return;
    try {
      setNotice(await run());
      setError(null);
    } catch (caught) {
      setNotice(null);
      setError(caught);
    }
    await load();
  };
  const revokeOne = (id: string) =>
    act(`Revoke session ${id}? Its tokens stop working at once.`, async () => {
      await gql(scope, REVOKE_ONE_MUTATION, { tag, sessionId: id });
      return `Session ${id} revoked.`;
    });
  const revokeAll = (keep: string | null) =>
    act(
      keep
        ? `Revoke every session of ${identifier} except ${keep}?`
        : `Revoke every session of ${identifier}? They are signed out everywhere.`,
      async () => {
        const data = await gql<{ revokeAllSessions: { count: number } }>(
          scope,
          REVOKE_ALL_MUTATION,
          { tag, identifier, excludeSessionId: keep },
        );
        const n = data.revokeAllSessions.count;
        return `${n} session${n === 1 ? '' : 's'} revoked.`;
      },
    );
  const signOutEverywhere = () =>
    act(
      `Sign ${identifier} out everywhere? Every active session of ${identifier} in every session ` +
        `type of ${scope.admin ? `${scope.product}/${scope.env}` : 'this environment'} ends, ` +
        'impersonations included.',
      async () => {
        const data = await gql<{ revokeUserSessions: { count: number } }>(
          scope,
          SIGN_OUT_EVERYWHERE_MUTATION,
          { identifier },
        );
        const n = data.revokeUserSessions.count;
        return `Signed out everywhere: ${n} session${n === 1 ? '' : 's'} revoked, across every session type.`;
      },
    );
  const rename = async (id: string, name: string | null) => {
    try {
      await gql(scope, NAME_DEVICE_MUTATION, { tag, sessionId: id, name });
      setNotice(name ? `Device of ${id} named “${name}”.` : `Device name of ${id} cleared.`);
      setError(null);
      await load();
      return true;
    } catch (caught) {
      setNotice(null);
      setError(caught);
      return false;
    }
  };

  const active = user?.sessions.filter((s) => s.status === 'ACTIVE') ?? [];
  return (
    <section>
      <p>
        <a href={`#/users/${encodeURIComponent(tag)}`}>← Users of {tag}</a>
      </p>
      <h2>
        {identifier} <small>({tag})</small>
      </h2>
      <ErrorNote error={error} />
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      {user === null && <p class="empty">No such user for this config.</p>}
      {user && (
        <>
          <p class="hint">
            {user.activeSessions} active of {user.totalSessions} sessions · last seen{' '}
            {formatTime(user.lastSeenAt)}
          </p>
          <div class="toolbar">
            <button
              type="button"
              class="danger"
              disabled={active.length === 0}
              onClick={() => void revokeAll(null)}
            >
              Revoke all
            </button>
            <button type="button" class="danger" onClick={() => void signOutEverywhere()}>
              Sign out everywhere
            </button>
            <span class="hint">
              “Revoke all” ends the sessions of {tag}; “Sign out everywhere” those of every session
              type.
            </span>
          </div>
          <table class="sessions">
            <thead>
              <tr>
                <th>Session</th>
                <th>Device</th>
                <th>IP</th>
                <th>Started</th>
                <th>Last active</th>
                <th>Status</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {user.sessions.map((s) => (
                <tr key={s.id} data-session={s.id}>
                  <td class="mono">
                    {s.id}
                    {s.actor && (
                      <span class="badge actor" title="Impersonation: the operator acting">
                        impersonated by {s.actor}
                      </span>
                    )}
                  </td>
                  <DeviceCell session={s} onRename={(name) => rename(s.id, name)} />
                  <td class="mono">{s.device.ip ?? ''}</td>
                  <td>{formatTime(s.createdAt)}</td>
                  <td>{formatTime(s.lastActiveAt)}</td>
                  <td>
                    <span class={`badge ${s.status.toLowerCase()}`}>{s.status}</span>
                    {s.revokeReason && <small> {s.revokeReason}</small>}
                  </td>
                  <td class="row-actions">
                    {s.status === 'ACTIVE' && (
                      <>
                        <button type="button" class="danger" onClick={() => void revokeOne(s.id)}>
                          Revoke
                        </button>
                        {active.length > 1 && (
                          <button
                            type="button"
                            class="secondary"
                            onClick={() => void revokeAll(s.id)}
                          >
                            Revoke all but this
                          </button>
                        )}
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {dialog}
    </section>
  );
}

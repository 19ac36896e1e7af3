import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import type { Scope } from './api';
import { startFeed, type FeedStatus, type SessionEvent } from './feed';
import { formatTime } from './format';

/** Events kept on the page; older ones drop off. */
const MAX_EVENTS = 500;

interface Live {
  readonly status: FeedStatus;
  readonly events: readonly SessionEvent[];
}

const LiveContext = createContext<Live>({ status: 'stopped', events: [] });

/** The feed runs while signed in, whatever page is open; signing out stops it. */
export function LiveProvider({ scope, children }: { scope: Scope; children: ComponentChildren }) {
  const [status, setStatus] = useState<FeedStatus>('connecting');
  const [events, setEvents] = useState<readonly SessionEvent[]>([]);
  useEffect(() => {
    setEvents([]);
    return startFeed(
      scope,
      (event) => setEvents((list) => [event, ...list].slice(0, MAX_EVENTS)),
      setStatus,
    );
  }, [scope]);
  return <LiveContext.Provider value={{ status, events }}>{children}</LiveContext.Provider>;
}

export const useLive = () => useContext(LiveContext);

export function LivePage() {
  const { status, events } = useLive();
  const [type, setType] = useState('');
  const shown = type ? events.filter((e) => e.type === type) : events;
  return (
    <section>
      <h2>Live feed</h2>
      <p class="hint">
        Session events as they happen ({status}). After a dropped connection the feed resumes from
        the last event it received.
      </p>
      <div class="filters">
        <label>
          Type
          <select value={type} onChange={(e) => setType(e.currentTarget.value)}>
            <option value="">all</option>
            {[
              'STARTED',
              'REFRESHED',
              'REVOKED',
              'EXPIRED',
              'REUSE_DETECTED',
              'EXTENDED',
              'DATA_UPDATED',
            ].map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
      </div>
      <table class="feed">
        <thead>
          <tr>
            <th>#</th>
            <th>At</th>
            <th>Type</th>
            <th>Tag</th>
            <th>User</th>
            <th>Session</th>
            <th>Reason</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((e) => (
            <tr key={e.id} data-session={e.sessionId} data-type={e.type}>
              <td>{e.id}</td>
              <td>{formatTime(e.at)}</td>
              <td>
                <span class={`badge ${e.type.toLowerCase()}`}>{e.type}</span>
              </td>
              <td>{e.tag}</td>
              <td>
                {e.identifier}
                {e.actor && <span class="badge actor">as {e.actor}</span>}
              </td>
              <td class="mono">{e.sessionId}</td>
              <td>{e.reason ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {shown.length === 0 && <p class="empty">No events yet.</p>}
    </section>
  );
}

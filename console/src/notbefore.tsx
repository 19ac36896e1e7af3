import { useEffect, useState } from 'preact/hooks';
import { gql, type Scope } from './api';
import { formatTime } from './format';
import { TagSelect } from './pages';
import { ErrorNote, useConfirm } from './ui';
import { NOT_BEFORE_QUERY, SET_NOT_BEFORE_MUTATION } from './documents';

interface NotBefore {
  tag: string | null;
  notBefore: string;
  count: number;
}

/**
 * Not-before revocation (after a key leak or a breach): every session of a config, or of the
 * whole environment, started before an instant is refused from now on.
 */
export function NotBeforePage({ scope }: { scope: Scope }) {
  const [marks, setMarks] = useState<NotBefore[] | null>(null);
  const [tag, setTag] = useState('');
  const [before, setBefore] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const { ask, dialog } = useConfirm();

  const load = async () => {
    try {
      const data = await gql<{ notBeforeRevocations: NotBefore[] }>(scope, NOT_BEFORE_QUERY);
      setMarks(data.notBeforeRevocations);
    } catch (caught) {
      setError(caught);
    }
  };
  useEffect(() => {
    void load();
  }, [scope]);

  const submit = async (event: Event) => {
    event.preventDefault();
    const what = tag ? `every session of ${tag}` : 'every session of every config of this env';
    const when = before
      ? `started before ${formatTime(new Date(before).toISOString())}`
      : 'started until now';
    if (
      !(await ask(
        `Revoke ${what} ${when}? Their tokens are refused at once; this cannot be undone.`,
      ))
    )
      return;
    setBusy(true);
    try {
      const data = await gql<{ revokeSessionsStartedBefore: NotBefore }>(
        scope,
        SET_NOT_BEFORE_MUTATION,
        { tag: tag || null, before: before ? new Date(before).toISOString() : null },
      );
      const mark = data.revokeSessionsStartedBefore;
      setNotice(
        `Not-before mark set for ${mark.tag ?? 'the whole environment'} at ` +
          `${formatTime(mark.notBefore)}: ${mark.count} session${mark.count === 1 ? '' : 's'} revoked.`,
      );
      setError(null);
    } catch (caught) {
      setNotice(null);
      setError(caught);
    } finally {
      setBusy(false);
    }
    await load();
  };

  return (
    <section>
      <h2>Not-before revocation</h2>
      <p class="hint">
        After a key leak or a breach: every session started before the instant (default now) is
        refused from this moment, and marked revoked (reason not_before). The configs stay. Run it
        again with the same instant to finish an interrupted call.
      </p>
      <form class="filters" onSubmit={submit} aria-label="New not-before mark">
        <TagSelect scope={scope} value={tag} onChange={setTag} allowAll />
        <label>
          Started before
          <input
            type="datetime-local"
            name="before"
            step={1}
            value={before}
            onChange={(e) => setBefore(e.currentTarget.value)}
          />
        </label>
        <button type="submit" class="danger" disabled={busy}>
          Revoke sessions started before
        </button>
      </form>
      <p class="hint">Config “all” covers the whole environment; an empty date means now.</p>
      <ErrorNote error={error} />
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <h3>Marks in force</h3>
      <table class="marks">
        <thead>
          <tr>
            <th>Covers</th>
            <th>Sessions started before</th>
          </tr>
        </thead>
        <tbody>
          {(marks ?? []).map((m) => (
            <tr key={m.tag ?? '*'} data-mark={m.tag ?? '*'}>
              <td>{m.tag ?? 'the whole environment'}</td>
              <td>{formatTime(m.notBefore)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {marks?.length === 0 && <p class="empty">No not-before mark.</p>}
      {dialog}
    </section>
  );
}

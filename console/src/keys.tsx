import { useEffect, useState } from 'preact/hooks';
import { gql, type Scope } from './api';
import { formatTime } from './format';
import { ErrorNote, SecretOnce, useConfirm } from './ui';
import { KEYS_QUERY, CREATE_KEY_MUTATION, REVOKE_KEY_MUTATION } from './documents';

interface ApiKey {
  id: string;
  name: string;
  kind: 'SECRET' | 'PUBLISHABLE';
  env: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

/** The API's limit on a key's name. */
const MAX_KEY_NAME = 200;

/**
 * The signed-in product's API keys: list, create (the key is shown once), revoke. Keys are the
 * admin key's business only (the API answers FORBIDDEN to a secret key).
 */
export function KeysPage({ scope }: { scope: Scope }) {
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [envs, setEnvs] = useState<string[]>([]);
  const [name, setName] = useState('');
  const [kind, setKind] = useState<'SECRET' | 'PUBLISHABLE'>('SECRET');
  const [env, setEnv] = useState(scope.env ?? '');
  const [created, setCreated] = useState<{ key: string; apiKey: ApiKey } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const { ask, dialog } = useConfirm();

  const load = async () => {
    try {
      const data = await gql<{ products: { tag: string; envs: string[]; apiKeys: ApiKey[] }[] }>(
        scope,
        KEYS_QUERY,
      );
      const product = data.products.find((p) => p.tag === scope.product);
      setKeys(
        product ? [...product.apiKeys].sort((a, b) => b.createdAt.localeCompare(a.createdAt)) : [],
      );
      setEnvs(product?.envs ?? []);
    } catch (caught) {
      setError(caught);
    }
  };
  useEffect(() => {
    if (scope.admin) void load();
  }, [scope]);

  if (!scope.admin) {
    return (
      <section>
        <h2>API keys</h2>
        <p class="empty">
          Keys are managed with the admin key: sign out and sign in with it (ak_…) to list, create
          and revoke this product’s keys.
        </p>
      </section>
    );
  }

  const create = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      const data = await gql<{ createApiKey: { key: string; apiKey: ApiKey } }>(
        scope,
        CREATE_KEY_MUTATION,
        { input: { product: scope.product, env, kind, name } },
      );
      setCreated(data.createApiKey);
      setName('');
      setNotice(null);
      setError(null);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
    await load();
  };
  const revoke = async (key: ApiKey) => {
    if (
      !(await ask(
        `Revoke the ${key.kind.toLowerCase()} key “${key.name}” (${key.prefix}…, ${key.env})? ` +
          'Its next request is refused; this cannot be undone.',
      ))
    )
      return;
    try {
      await gql(scope, REVOKE_KEY_MUTATION, {
        id: key.id,
      });
      setNotice(`Key “${key.name}” revoked.`);
      setError(null);
    } catch (caught) {
      setNotice(null);
      setError(caught);
    }
    await load();
  };

  return (
    <section>
      <h2>
        API keys <small>({scope.product})</small>
      </h2>
      <p class="hint">
        A secret key (sk_…) manages sessions from a backend; a publishable key (pk_…) is for
        browsers. A key is shown once, when it is created; the list shows only its first characters.
      </p>
      <ErrorNote error={error} />
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      {created && (
        <SecretOnce
          label={`New ${created.apiKey.kind.toLowerCase()} key “${created.apiKey.name}” (${created.apiKey.env})`}
          secret={created.key}
          onDismiss={() => setCreated(null)}
        />
      )}
      <form class="filters" onSubmit={create} aria-label="New key">
        <label>
          Name
          <input
            name="keyName"
            value={name}
            maxLength={MAX_KEY_NAME}
            required
            placeholder="e.g. checkout backend"
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </label>
        <label>
          Kind
          <select
            name="kind"
            value={kind}
            onChange={(e) => setKind(e.currentTarget.value as typeof kind)}
          >
            <option value="SECRET">secret</option>
            <option value="PUBLISHABLE">publishable</option>
          </select>
        </label>
        <label>
          Environment
          <select name="env" value={env} onChange={(e) => setEnv(e.currentTarget.value)}>
            {envs.map((e) => (
              <option key={e} value={e}>
                {e}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={busy}>
          Create key
        </button>
      </form>
      <table class="keys">
        <thead>
          <tr>
            <th>Name</th>
            <th>Kind</th>
            <th>Env</th>
            <th>Key</th>
            <th>Created</th>
            <th>State</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(keys ?? []).map((k) => (
            <tr key={k.id} data-key={k.id}>
              <td>{k.name}</td>
              <td>{k.kind.toLowerCase()}</td>
              <td>{k.env}</td>
              <td class="mono">{k.prefix}…</td>
              <td>{formatTime(k.createdAt)}</td>
              <td>
                {k.revokedAt ? (
                  <span class="badge revoked">revoked {formatTime(k.revokedAt)}</span>
                ) : (
                  <span class="badge active">active</span>
                )}
              </td>
              <td class="row-actions">
                {!k.revokedAt && (
                  <button type="button" class="danger" onClick={() => void revoke(k)}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {keys?.length === 0 && <p class="empty">No key.</p>}
      {dialog}
    </section>
  );
}

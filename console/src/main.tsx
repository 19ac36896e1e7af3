import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, clearScope, gql, loadScope, messageOf, saveScope, type Scope } from './api';
import { DashboardPage } from './dashboard';
import { LiveProvider, LivePage, useLive } from './live';
import { KeysPage } from './keys';
import { NotBeforePage } from './notbefore';
import { ActivityPage, ConfigsPage, UsersPage } from './pages';
import { UserPage } from './user';
import { WebhookPage, WebhooksPage } from './webhooks';
import { PRODUCTS_QUERY, CHECK_QUERY } from './documents';

/** The page named by the hash (`#/users/<tag>/<identifier>`); nothing of it reaches the server. */
function useRoute(): string[] {
  const read = () =>
    location.hash
      .replace(/^#\/?/, '')
      .split('/')
      .filter((part) => part.length > 0)
      .map((part) => decodeURIComponent(part));
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const onChange = () => setRoute(read());
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

export const href = (...parts: string[]) =>
  `#/${parts.map((part) => encodeURIComponent(part)).join('/')}`;

function SignIn({ onSignedIn }: { onSignedIn: (scope: Scope) => void }) {
  const [key, setKey] = useState('');
  const [products, setProducts] = useState<{ tag: string; envs: string[] }[] | null>(null);
  const [product, setProduct] = useState('');
  const [env, setEnv] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    const trimmed = key.trim();
    const admin = trimmed.startsWith('ak_');
    if (!admin && !trimmed.startsWith('sk_')) {
      setError('Sign in with a secret key (sk_…) or the admin key (ak_…).');
      return;
    }
    setBusy(true);
    try {
      if (admin && products === null) {
        const data = await gql<{ products: { tag: string; envs: string[] }[] }>(
          { key: trimmed, product: null, env: null },
          PRODUCTS_QUERY,
        );
        setProducts(data.products);
        setProduct(data.products[0]?.tag ?? '');
        setEnv(data.products[0]?.envs[0] ?? '');
        if (data.products.length === 0) setError('The admin key works, but there is no product.');
        return;
      }
      const scope: Scope = admin
        ? { key: trimmed, admin, product, env }
        : { key: trimmed, admin, product: null, env: null };
      // Checks the key and, for a secret key, that it may read configs (a publishable key may not).
      await gql(scope, CHECK_QUERY);
      onSignedIn(scope);
    } catch (caught) {
      setError(
        caught instanceof ApiError && caught.code === 'UNAUTHENTICATED'
          ? 'This key is not known (or was revoked).'
          : messageOf(caught),
      );
    } finally {
      setBusy(false);
    }
  };

  const envs = products?.find((p) => p.tag === product)?.envs ?? [];
  return (
    <main class="signin">
      <h1>Session service console</h1>
      <form onSubmit={submit} autocomplete="off">
        <label>
          Secret key or admin key
          <input
            type="password"
            value={key}
            onInput={(e) => {
              setKey(e.currentTarget.value);
              setProducts(null);
            }}
            placeholder="sk_… or ak_…"
            autocomplete="off"
            spellcheck={false}
            required
            autofocus
          />
        </label>
        {products && products.length > 0 && (
          <>
            <label>
              Product
              <select
                value={product}
                onChange={(e) => {
                  setProduct(e.currentTarget.value);
                  setEnv(products.find((p) => p.tag === e.currentTarget.value)?.envs[0] ?? '');
                }}
              >
                {products.map((p) => (
                  <option key={p.tag} value={p.tag}>
                    {p.tag}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Environment
              <select value={env} onChange={(e) => setEnv(e.currentTarget.value)}>
                {envs.map((name) => (
                  <option key={name} value={name}>
                    {name}
                  </option>
                ))}
              </select>
            </label>
          </>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {products ? 'Open' : 'Sign in'}
        </button>
        <p class="hint">
          The key stays in this tab only (session storage) and goes to the server in the
          Authorization header of each request.
        </p>
      </form>
    </main>
  );
}

const NAV: [string, string][] = [
  ['dashboard', 'Dashboard'],
  ['configs', 'Configs'],
  ['users', 'Users'],
  ['activity', 'Activity'],
  ['not-before', 'Not-before'],
  ['webhooks', 'Webhooks'],
  ['keys', 'API keys'],
  ['live', 'Live feed'],
];

function Shell({ scope, onSignOut }: { scope: Scope; onSignOut: () => void }) {
  const route = useRoute();
  const [page = 'dashboard', ...rest] = route;
  const live = useLive();
  let content;
  switch (page) {
    case 'configs':
      content = <ConfigsPage scope={scope} />;
      break;
    case 'users':
      content =
        rest.length >= 2 ? (
          <UserPage scope={scope} tag={rest[0]!} identifier={rest[1]!} />
        ) : (
          <UsersPage scope={scope} tag={rest[0]} />
        );
      break;
    case 'activity':
      content = <ActivityPage scope={scope} />;
      break;
    case 'not-before':
      content = <NotBeforePage scope={scope} />;
      break;
    case 'webhooks':
      content = rest[0] ? (
        <WebhookPage key={rest[0]} scope={scope} id={rest[0]} />
      ) : (
        <WebhooksPage scope={scope} />
      );
      break;
    case 'keys':
      content = <KeysPage scope={scope} />;
      break;
    case 'live':
      content = <LivePage />;
      break;
    default:
      content = <DashboardPage scope={scope} />;
  }
  return (
    <div class="shell">
      <header>
        <strong>Sessions</strong>
        <nav>
          {NAV.filter(([id]) => id !== 'keys' || scope.admin).map(([id, label]) => (
            <a key={id} href={href(id)} class={id === page ? 'active' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who">
          {scope.admin ? `admin · ${scope.product}/${scope.env}` : 'secret key'}
          <span class={`feed-status ${live.status}`} title="live feed">
            {live.status}
          </span>
          <button type="button" class="secondary" onClick={onSignOut}>
            Sign out
          </button>
        </span>
      </header>
      <main>{content}</main>
    </div>
  );
}

function App() {
  const [scope, setScope] = useState<Scope | null>(loadScope);
  if (!scope) {
    return (
      <SignIn
        onSignedIn={(signedIn) => {
          saveScope(signedIn);
          setScope(signedIn);
          location.hash = href('dashboard');
        }}
      />
    );
  }
  return (
    <LiveProvider scope={scope}>
      <Shell
        scope={scope}
        onSignOut={() => {
          clearScope();
          setScope(null);
          location.hash = '';
        }}
      />
    </LiveProvider>
  );
}

render(<App />, document.getElementById('app')!);

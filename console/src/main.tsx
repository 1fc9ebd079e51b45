// The Eddy web console: login, hash routing (#/overview, #/clients, …), and the pages.

import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { Component, render, type ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, basicAuthorization, get, setAuthorization, setUnauthorizedHandler } from './api.js';
import { statsStore } from './stats-store.js';
import { OverviewPage } from './pages/overview.js';
import { ClientsPage } from './pages/clients.js';
import { SessionsPage } from './pages/sessions.js';
import { ChannelsPage } from './pages/channels.js';
import { GroupsPage } from './pages/groups.js';
import { DeadLettersPage } from './pages/dead-letters.js';
import { PublishPage } from './pages/publish.js';
import { AsyncApiPage } from './pages/asyncapi.js';

const PAGES = [
  ['overview', 'Overview'],
  ['clients', 'Clients'],
  ['sessions', 'Sessions'],
  ['channels', 'Channels'],
  ['groups', 'Consumer groups'],
  ['dlq', 'Dead letters'],
  ['publish', 'Publish'],
  ['asyncapi', 'AsyncAPI'],
] as const;
type PageName = (typeof PAGES)[number][0];

interface Route {
  page: PageName;
  /** The selected item: `#/channels/<topic>`, `#/groups/<name>` (percent-encoded). */
  item: string | undefined;
  params: URLSearchParams;
}

function parseHash(hash: string): Route {
  const [path = '', query = ''] = hash.replace(/^#\/?/, '').split('?');
  const slash = path.indexOf('/');
  const name = slash === -1 ? path : path.slice(0, slash);
  const page = (PAGES.find(([p]) => p === name)?.[0] ?? 'overview') as PageName;
  let item: string | undefined;
  try {
    item = slash === -1 ? undefined : decodeURIComponent(path.slice(slash + 1));
  } catch {
    item = undefined;
  }
  return { page, item, params: new URLSearchParams(query) };
}

function go(page: PageName, item?: string): void {
  location.hash = `#/${page}${item !== undefined ? `/${encodeURIComponent(item)}` : ''}`;
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const changed = (): void => setRoute(parseHash(location.hash));
    window.addEventListener('hashchange', changed);
    return () => window.removeEventListener('hashchange', changed);
  }, []);
  return route;
}

type Auth = 'checking' | 'login' | 'ok';

/** A page that throws shows its error; the navigation and the other pages go on working. */
class PageBoundary extends Component<{ children: ComponentChildren }, { error: string | undefined }> {
  override state = { error: undefined as string | undefined };
  override componentDidCatch(err: unknown): void {
    console.error('console page failed', err);
    this.setState({ error: err instanceof Error ? err.message : String(err) });
  }
  render() {
    if (this.state.error) return <p class="error" data-testid="page-error">This page failed: {this.state.error}</p>;
    return this.props.children;
  }
}

function Login(props: { onLoggedIn: () => void; reason: string | undefined }) {
  const [mode, setMode] = useState<'password' | 'token'>('password');
  const [user, setUser] = useState('');
  const [secret, setSecret] = useState('');
  const [error, setError] = useState(props.reason);
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="card login"
      data-testid="login"
      onSubmit={(e) => {
        e.preventDefault();
        setBusy(true);
        setAuthorization(mode === 'password' ? basicAuthorization(user, secret) : `Bearer ${secret.trim()}`);
        check()
          .then((outcome) => (outcome === true ? props.onLoggedIn() : (setAuthorization(null), setError(outcome))))
          .finally(() => setBusy(false));
      }}
    >
      <h2>Eddy console</h2>
      <p class="muted small">Sign in with a user that has the admin role: a password-file user, or a JWT.</p>
      <div class="tabs">
        <button type="button" class={mode === 'password' ? 'active' : ''} onClick={() => setMode('password')}>
          user and password
        </button>
        <button type="button" class={mode === 'token' ? 'active' : ''} data-testid="login-token-tab" onClick={() => setMode('token')}>
          token (JWT)
        </button>
      </div>
      {mode === 'password' ? (
        <>
          <label>
            User
            <input name="username" autocomplete="username" value={user} data-testid="login-user" onInput={(e) => setUser((e.currentTarget as HTMLInputElement).value)} />
          </label>
          <label>
            Password
            <input name="password" type="password" autocomplete="current-password" value={secret} data-testid="login-password" onInput={(e) => setSecret((e.currentTarget as HTMLInputElement).value)} />
          </label>
        </>
      ) : (
        <label>
          Bearer token
          <textarea rows={4} class="mono" value={secret} data-testid="login-jwt" onInput={(e) => setSecret((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
      )}
      {error ? <p class="error" data-testid="login-error">{error}</p> : null}
      <button type="submit" disabled={busy} data-testid="login-submit">
        Sign in
      </button>
    </form>
  );
}

/** Whether the stored credentials (or none, where authentication is off) reach the admin API: true, or why not. */
async function check(): Promise<true | string> {
  try {
    await get('/v1/admin/stats');
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return 'The broker did not accept these credentials.';
    if (err instanceof ApiError && err.status === 403) return 'This user does not have the admin role.';
    return `The broker could not be reached: ${err instanceof Error ? err.message : String(err)}`;
  }
}

function App() {
  const route = useRoute();
  const [auth, setAuth] = useState<Auth>('checking');
  const [reason, setReason] = useState<string>();
  useEffect(() => {
    setUnauthorizedHandler(() => {
      statsStore.stop();
      setAuthorization(null);
      setReason('Signed out: the broker refused the credentials.');
      setAuth('login');
    });
    check().then((outcome) => {
      if (outcome === true) return setAuth('ok');
      // No credentials yet is no error to show.
      setAuth('login');
    });
  }, []);
  useEffect(() => {
    if (auth === 'ok') statsStore.start();
  }, [auth]);
  if (auth === 'checking') return <p class="muted center">Connecting…</p>;
  if (auth === 'login') return <Login reason={reason} onLoggedIn={() => (setReason(undefined), setAuth('ok'))} />;
  const title = PAGES.find(([p]) => p === route.page)![1];
  return (
    <div class="shell">
      <nav>
        <div class="brand">Eddy</div>
        {PAGES.map(([page, label]) => (
          <a href={`#/${page}`} class={route.page === page ? 'active' : ''} data-testid={`nav-${page}`}>
            {label}
          </a>
        ))}
        <button
          class="signout"
          data-testid="signout"
          onClick={() => {
            statsStore.stop();
            setAuthorization(null);
            setAuth('login');
          }}
        >
          sign out
        </button>
      </nav>
      <main data-page={route.page}>
        <h1>{title}</h1>
        <PageBoundary key={route.page}>
        {route.page === 'overview' ? <OverviewPage /> : null}
        {route.page === 'clients' ? <ClientsPage /> : null}
        {route.page === 'sessions' ? <SessionsPage /> : null}
        {route.page === 'channels' ? <ChannelsPage selected={route.item} select={(name) => go('channels', name)} /> : null}
        {route.page === 'groups' ? <GroupsPage selected={route.item} select={(name) => go('groups', name)} /> : null}
        {route.page === 'dlq' ? <DeadLettersPage /> : null}
        {route.page === 'publish' ? <PublishPage channel={route.params.get('channel') ?? undefined} /> : null}
        {route.page === 'asyncapi' ? <AsyncApiPage /> : null}
        </PageBoundary>
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);

// The shell: sign-in, navigation and hash routing (`#/licenses?status=banned`). Each page is a
// module of its own under pages/, loaded when first visited.

import { html, render, useState, useEffect, useRef, Field, Form, Notices, ErrorBox } from './kit.mjs';
import { session, login, logout, refresh, UI_TOKEN_SECS } from './api.mjs';

// [hash path, nav label, page module]; `:id` segments become `params.id`.
export const ROUTES = [
  ['/overview', 'Overview', 'overview'],
  ['/apps', 'Apps', 'apps'],
  ['/apps/:id', null, 'app'],
  ['/licenses', 'Licenses', 'licenses'],
  ['/licenses/:id', null, 'license'],
  ['/machines', 'Machines', 'machines'],
  ['/users', 'End users', 'users'],
  ['/subscriptions', 'Subscriptions', 'subscriptions'],
  ['/variables', 'Variables', 'variables'],
  ['/sessions', 'Sessions', 'sessions'],
  ['/logs', 'Client logs', 'logs'],
  ['/blacklist', 'Blacklist', 'blacklist'],
  ['/webhooks', 'Webhooks', 'webhooks'],
  ['/api-keys', 'API keys', 'api-keys'],
  ['/seller-keys', 'Seller keys', 'seller-keys'],
  ['/signing-keys', 'Signing keys', 'signing-keys'],
  ['/audit', 'Audit log', 'audit'],
  ['/account', 'Account', 'account'],
];

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/overview';
  const [path, qs] = raw.split('?');
  const query = Object.fromEntries(new URLSearchParams(qs ?? ''));
  for (const [pattern, , module] of ROUTES) {
    const p = pattern.split('/');
    const s = path.split('/');
    if (p.length !== s.length) continue;
    const params = {};
    if (p.every((seg, i) => (seg.startsWith(':') ? ((params[seg.slice(1)] = decodeURIComponent(s[i])), true) : seg === s[i]))) {
      return { path, query, params, module, pattern };
    }
  }
  return { path, query, params: {}, module: null, pattern: null };
}

// Builds a hash link with a query; empty values are left out.
export function link(path, query = {}) {
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  const s = q.toString();
  return `#${path}${s ? `?${s}` : ''}`;
}

export function navigate(path, query) {
  location.hash = link(path, query);
}

function useRoute() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const on = () => setRoute(parseHash());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

const loaded = new Map();
function usePage(module) {
  const [state, setState] = useState(() => ({ module, page: loaded.get(module) ?? null }));
  const [error, setError] = useState(null);
  useEffect(() => {
    setError(null);
    if (!module) return;
    if (loaded.has(module)) { setState({ module, page: loaded.get(module) }); return; }
    setState({ module, page: null });
    import(`./pages/${module}.mjs`).then(
      (m) => { loaded.set(module, m.default); setState({ module, page: m.default }); },
      (e) => setError(e),
    );
  }, [module]);
  // Never the previous route's page with this route's params (it would load the wrong ids).
  return { page: state.module === module ? state.page : (loaded.get(module) ?? null), error };
}

function SignIn() {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const ref = useRef(null);
  useEffect(() => { ref.current?.querySelector('input')?.focus(); }, []);
  return html`<main id="main" class="signin">
    <div class="signin-card" ref=${ref}>
      <h1 class="brand-big">Keyward</h1>
      <p class="muted">Sign in to the admin console.</p>
      <${Form} submitLabel="Sign in" busyLabel="Signing in…" onSubmit=${() => login(username, password)}>
        <${Field} label="Username or e-mail" name="username" value=${username} onInput=${setUsername} autocomplete="username" required />
        <${Field} label="Password" name="password" type="password" value=${password} onInput=${setPassword} autocomplete="current-password" required />
      <//>
    </div>
  </main>`;
}

function Shell() {
  const route = useRoute();
  const { page: PageComponent, error } = usePage(route.module);
  const [menuOpen, setMenuOpen] = useState(false);
  const main = useRef(null);
  const navigated = useRef(false);
  useEffect(() => {
    setMenuOpen(false);
    // After a navigation, focus moves to the new page's heading so that keyboard and
    // screen-reader users land on it; a fresh load starts at the top (the skip link first).
    if (!navigated.current) {
      navigated.current = true;
      return;
    }
    requestAnimationFrame(() => main.current?.querySelector('h1')?.focus({ preventScroll: true }));
  }, [route.path]);
  const account = session.account;
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); main.current?.querySelector('h1')?.focus(); }}>Skip to content</a>
    <header class="topbar">
      <button type="button" class="icon menu-toggle" aria-expanded=${menuOpen} aria-controls="nav"
        aria-label="Menu" onClick=${() => setMenuOpen(!menuOpen)}>☰</button>
      <a class="brand" href="#/overview">Keyward</a>
      <span class="who muted">${account?.username ?? ''}</span>
      <button type="button" class="signout" onClick=${logout}>Sign out</button>
    </header>
    <nav id="nav" class=${menuOpen ? 'nav open' : 'nav'} aria-label="Main">
      <ul>
        ${ROUTES.filter(([, label]) => label).map(([path, label]) => html`<li key=${path}>
          <a href=${`#${path}`} aria-current=${route.pattern === path || route.path.startsWith(`${path}/`) ? 'page' : undefined}>${label}</a>
        </li>`)}
      </ul>
    </nav>
    <main id="main" ref=${main}>
      ${error ? html`<${ErrorBox} error=${error} />` : null}
      ${!route.module ? html`<section class="page"><h1 tabindex="-1">Not found</h1><p>No page at ${route.path}.</p></section>` : null}
      ${PageComponent ? html`<${PageComponent} key=${route.path} params=${route.params} query=${route.query} />` : null}
    </main>
    <${Notices} />
  </div>`;
}

function App() {
  const [current, setCurrent] = useState(session.current);
  useEffect(() => session.subscribe(setCurrent), []);
  // Renews the short token while the tab is in use (navigation or input), at most once a minute
  // and only past a third of its life; an idle tab lets it lapse and signs out.
  useEffect(() => {
    if (!current) return undefined;
    let last = 0;
    const maybe = () => {
      const left = Date.parse(session.current?.expires_at ?? 0) - Date.now();
      if (Date.now() - last > 60_000 && left < (UI_TOKEN_SECS * 1000 * 2) / 3) {
        last = Date.now();
        refresh().catch(() => {});
      }
    };
    const expire = setInterval(() => {
      if (Date.parse(session.current?.expires_at ?? 0) <= Date.now()) logout();
    }, 5000);
    addEventListener('hashchange', maybe);
    addEventListener('keydown', maybe);
    addEventListener('pointerdown', maybe);
    return () => {
      clearInterval(expire);
      removeEventListener('hashchange', maybe);
      removeEventListener('keydown', maybe);
      removeEventListener('pointerdown', maybe);
    };
  }, [!!current]);
  return current ? html`<${Shell} />` : html`<${SignIn} />`;
}

const root = document.getElementById('root');
root.textContent = '';
render(html`<${App} />`, root);

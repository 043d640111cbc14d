// The one way the UI talks to the control-plane: the documented /v1 API with a Bearer token.
// No cookie is ever set, so no request is made with an ambient credential (no CSRF surface).

const STORE_KEY = 'keyward.session';
// UI logins ask for a short token and renew it while the admin is active.
export const UI_TOKEN_SECS = 1800;

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

const listeners = new Set();

// The token lives in memory, mirrored to sessionStorage so that a reload keeps the admin signed in
// (sessionStorage is per tab and gone when the tab closes).
export const session = {
  current: load(),
  get token() { return this.current?.token ?? null; },
  get account() { return this.current?.account ?? null; },
  set(value) {
    this.current = value;
    if (value) sessionStorage.setItem(STORE_KEY, JSON.stringify(value));
    else sessionStorage.removeItem(STORE_KEY);
    listeners.forEach((f) => f(value));
  },
  subscribe(f) { listeners.add(f); return () => listeners.delete(f); },
};

function load() {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORE_KEY) ?? 'null');
    if (s && typeof s.token === 'string' && Date.parse(s.expires_at) > Date.now()) return s;
  } catch { /* a damaged entry is a signed-out tab */ }
  sessionStorage.removeItem(STORE_KEY);
  return null;
}

function url(path, query) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

async function send(method, path, { body, query, raw } = {}) {
  const headers = { Accept: raw ? '*/*' : 'application/json' };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'NETWORK', `The control-plane cannot be reached (${e.message}).`);
  }
  if (res.status === 401 && session.token) {
    // Expired or revoked: back to the sign-in page, whatever the page was doing.
    session.set(null);
  }
  if (!res.ok) {
    let data = null;
    try { data = await res.json(); } catch { /* not JSON */ }
    // Native errors are {success:false, code, message}.
    const message = data?.message ?? res.statusText;
    throw new ApiError(res.status, data?.code ?? String(res.status), message || `HTTP ${res.status}`, data);
  }
  if (raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

export const api = {
  get: (path, query) => send('GET', path, { query }),
  post: (path, body = {}, query) => send('POST', path, { body, query }),
  put: (path, body = {}) => send('PUT', path, { body }),
  patch: (path, body = {}) => send('PATCH', path, { body }),
  del: (path, query) => send('DELETE', path, { query }),
};

// Saves what an authenticated GET returns as a file (a plain link could not send the token).
export async function download(path, query, fallbackName) {
  const res = await send('GET', path, { query, raw: true });
  const disposition = res.headers.get('Content-Disposition') ?? '';
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? fallbackName;
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
  return name;
}

export async function login(username, password) {
  const r = await send('POST', '/v1/auth/login', {
    body: { username, password, ttl_secs: UI_TOKEN_SECS },
  });
  session.set({ token: r.token, expires_at: r.expires_at, account: r.account });
  return r;
}

// Renews the short UI token while the admin is active; an idle tab lets it lapse.
export async function refresh() {
  if (!session.token) return;
  const r = await send('POST', '/v1/auth/refresh', { body: { ttl_secs: UI_TOKEN_SECS } });
  session.set({ ...session.current, token: r.token, expires_at: r.expires_at });
}

export function logout() {
  session.set(null);
}

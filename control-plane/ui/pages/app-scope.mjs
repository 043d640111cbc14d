// What the pages of an app's end-user data share (users, subscriptions, variables, sessions,
// client logs): the app and the filters live in the hash query, so a view can be bookmarked.
// Not a page itself: no route loads it.
import { html, useState, useEffect, useRef, AppSelect, useApps, Field } from '../kit.mjs';
import { link } from '../app.mjs';

// Writes the hash query. `replace` leaves no history entry (an automatic pick, a keystroke).
export function setQuery(path, query, replace = false) {
  const h = link(path, query);
  if (!replace) { location.hash = h; return; }
  history.replaceState(null, '', h);
  dispatchEvent(new HashChangeEvent('hashchange'));
}

// The app picker of a page whose data belongs to one app. The first app, picked automatically,
// replaces the history entry, so that Back does not land on a page that picks it again.
export function AppPicker({ path, query }) {
  return html`<${AppSelect} value=${query.app ?? ''} allowAll=${false}
    onChange=${(id) => setQuery(path, { app: id }, !query.app)} />`;
}

// "Create an app first" when the account has none.
export function NoApps() {
  const apps = useApps();
  return apps.data && apps.data.length === 0
    ? html`<p>Create an app first (<a href="#/apps">Apps</a>).</p>` : null;
}

// A search box whose text reaches the hash query 250 ms after the last keystroke.
export function SearchBox({ path, query, label = 'Search', placeholder }) {
  const [text, setText] = useState(query.search ?? '');
  const pushed = useRef(query.search ?? '');
  // Back/forward (or a link) changes the query: the box follows.
  useEffect(() => {
    const q = query.search ?? '';
    if (q !== pushed.current) { pushed.current = q; setText(q); }
  }, [query.search]);
  useEffect(() => {
    if (text === pushed.current) return undefined;
    const t = setTimeout(() => { pushed.current = text; setQuery(path, { ...query, search: text }, true); }, 250);
    return () => clearTimeout(t);
  }, [text]);
  return html`<${Field} label=${label} name="search" type="search" value=${text} onInput=${setText}
    placeholder=${placeholder} autocomplete="off" spellcheck=${false} />`;
}

// Date over time, each kept whole, so that a column stays narrow.
export function When({ ts, fmt }) {
  const t = fmt(ts);
  if (t === '—') return t;
  return html`<div class="nowrap-text">${t.slice(0, 10)}<span class="sub">${t.slice(11)}</span></div>`;
}

// A CSV cell: quoted when needed, and a leading formula character neutralised (spreadsheets
// would run `=…` from a client's log line).
export function csvCell(v) {
  let s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// Saves text as a file (a Blob: nothing leaves the browser).
export function saveText(text, name, type = 'text/csv;charset=utf-8') {
  const href = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

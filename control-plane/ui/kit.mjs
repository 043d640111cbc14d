// The UI's building blocks. Everything renders through htm/Preact, which makes text nodes of
// every interpolated value: API data is never parsed as HTML.

import { html, render, useState, useEffect, useRef, useCallback } from './vendor/preact-htm.mjs';
import { api } from './api.mjs';

export { html, render, useState, useEffect, useRef, useCallback };
export { useMemo } from './vendor/preact-htm.mjs';

let nextId = 0;
// Unique ids tie each label to its input.
export function useId(prefix = 'f') {
  const ref = useRef(null);
  if (ref.current === null) ref.current = `${prefix}-${++nextId}`;
  return ref.current;
}

// Loads with `fn` whenever `deps` change; `reload()` loads again. Answers from a superseded
// load are ignored, so a slow page never overwrites a newer one.
export function useLoad(fn, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const seq = useRef(0);
  const load = useCallback(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true, error: null }));
    Promise.resolve()
      .then(fn)
      .then(
        (data) => { if (seq.current === mine) setState({ data, error: null, loading: false }); },
        (error) => { if (seq.current === mine) setState((s) => ({ ...s, error, loading: false })); },
      );
  }, deps);
  useEffect(() => { load(); }, [load]);
  return { ...state, reload: load };
}

// Keyset pagination over a `/v1` list that answers `{items, next_cursor}`.
export function useCursor(resetKey) {
  const [stack, setStack] = useState([null]);
  useEffect(() => setStack([null]), [resetKey]);
  const cursor = stack[stack.length - 1];
  return {
    cursor,
    page: stack.length,
    next: (c) => c && setStack((s) => [...s, c]),
    prev: () => setStack((s) => (s.length > 1 ? s.slice(0, -1) : s)),
    reset: () => setStack([null]),
  };
}

export function Page({ title, actions, children }) {
  const id = useId('page');
  useEffect(() => { document.title = `${title} · Keyward admin`; }, [title]);
  return html`<section class="page" aria-labelledby=${id}>
    <header class="page-head">
      <h1 id=${id} tabindex="-1">${title}</h1>
      ${actions ? html`<div class="page-actions">${actions}</div>` : null}
    </header>
    ${children}
  </section>`;
}

// columns: [{ key, label, render?(row), className? }]. On narrow screens each row becomes a card
// whose cells are labelled by `data-label` (style.css).
export function DataTable({ columns, rows, rowKey = (r) => r.id, caption, empty = 'Nothing here yet.', loading }) {
  if (!rows) return html`<p class="muted" role="status">${loading ? 'Loading…' : ''}</p>`;
  return html`<div class="table-wrap">
    <table class="data">
      ${caption ? html`<caption class="sr-only">${caption}</caption>` : null}
      <thead><tr>${columns.map((c) => html`<th scope="col" class=${c.className ?? ''}>${c.label}</th>`)}</tr></thead>
      <tbody>
        ${rows.length === 0
          ? html`<tr class="empty"><td colspan=${columns.length}>${empty}</td></tr>`
          : rows.map((r) => html`<tr key=${rowKey(r)}>
              ${columns.map((c) => html`<td data-label=${c.label} class=${c.className ?? ''}>
                ${c.render ? c.render(r) : fmtValue(r[c.key])}</td>`)}
            </tr>`)}
      </tbody>
    </table>
  </div>`;
}

export function Pager({ cursor, nextCursor, onNext, label = 'Pages' }) {
  return html`<nav class="pager" aria-label=${label}>
    <button type="button" disabled=${cursor.page <= 1} onClick=${() => cursor.prev()}>Previous</button>
    <span aria-live="polite">Page ${cursor.page}</span>
    <button type="button" disabled=${!nextCursor} onClick=${() => { cursor.next(nextCursor); onNext?.(); }}>Next</button>
  </nav>`;
}

export function Field({ label, hint, type = 'text', value, onInput, name, ...rest }) {
  const id = useId(name ?? 'f');
  const hintId = hint ? `${id}-hint` : undefined;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <input id=${id} name=${name ?? id} type=${type} value=${value ?? ''}
      aria-describedby=${hintId}
      onInput=${(e) => onInput?.(type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value)}
      ...${rest} />
    ${hint ? html`<small id=${hintId} class="muted">${hint}</small>` : null}
  </div>`;
}

export function Check({ label, checked, onChange, name }) {
  const id = useId(name ?? 'c');
  return html`<div class="field check">
    <input id=${id} type="checkbox" checked=${!!checked} onChange=${(e) => onChange(e.currentTarget.checked)} />
    <label for=${id}>${label}</label>
  </div>`;
}

// options: [[value, text]]
export function Select({ label, value, onChange, options, name, ...rest }) {
  const id = useId(name ?? 's');
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <select id=${id} name=${name ?? id} value=${value ?? ''} onChange=${(e) => onChange(e.currentTarget.value)} ...${rest}>
      ${options.map(([v, t]) => html`<option value=${v}>${t}</option>`)}
    </select>
  </div>`;
}

export function TextArea({ label, value, onInput, name, ...rest }) {
  const id = useId(name ?? 't');
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <textarea id=${id} name=${name ?? id} value=${value ?? ''} onInput=${(e) => onInput(e.currentTarget.value)} ...${rest}></textarea>
  </div>`;
}

// A form that submits through fetch (native submission is blocked by `form-action 'none'`).
// `onSubmit` may be async; its error is shown under the form.
export function Form({ onSubmit, submitLabel = 'Save', children, busyLabel = 'Working…', className = '' }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try { await onSubmit(); } catch (err) { setError(err); } finally { setBusy(false); }
  };
  return html`<form class=${`form ${className}`} onSubmit=${submit} novalidate=${false}>
    ${children}
    <${ErrorBox} error=${error} />
    <div class="form-actions"><button type="submit" class="primary" disabled=${busy}>${busy ? busyLabel : submitLabel}</button></div>
  </form>`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message ?? String(error)}</p>`;
}

// A modal dialog on the native <dialog> (focus trapped by the browser, Escape closes it).
export function Modal({ title, onClose, children, wide }) {
  const ref = useRef(null);
  const id = useId('dlg');
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    const cancel = (e) => { e.preventDefault(); onClose(); };
    d?.addEventListener('cancel', cancel);
    return () => d?.removeEventListener('cancel', cancel);
  }, []);
  return html`<dialog ref=${ref} class=${wide ? 'modal wide' : 'modal'} aria-labelledby=${id}>
    <header class="modal-head">
      <h2 id=${id}>${title}</h2>
      <button type="button" class="icon" aria-label="Close" onClick=${onClose}>×</button>
    </header>
    <div class="modal-body">${children}</div>
  </dialog>`;
}

let overlayRoot;
function overlay() {
  if (!overlayRoot) {
    overlayRoot = document.createElement('div');
    overlayRoot.id = 'overlay';
    document.body.append(overlayRoot);
  }
  return overlayRoot;
}

// Asks before a destructive action; resolves true only on an explicit confirmation.
export function confirm(message, { confirmLabel = 'Confirm', danger = true, title = 'Are you sure?' } = {}) {
  return new Promise((resolve) => {
    const root = document.createElement('div');
    overlay().append(root);
    const done = (answer) => { render(null, root); root.remove(); resolve(answer); };
    render(html`<${Modal} title=${title} onClose=${() => done(false)}>
      <p>${message}</p>
      <div class="form-actions">
        <button type="button" onClick=${() => done(false)}>Cancel</button>
        <button type="button" class=${danger ? 'danger' : 'primary'} onClick=${() => done(true)}>${confirmLabel}</button>
      </div>
    <//>`, root);
  });
}

// Announces the outcome of an action (a polite live region, cleared after a while).
let notices = [];
const noticeListeners = new Set();
export function notice(text, kind = 'ok') {
  const n = { id: ++nextId, text, kind };
  notices = [...notices, n];
  noticeListeners.forEach((f) => f(notices));
  setTimeout(() => {
    notices = notices.filter((x) => x !== n);
    noticeListeners.forEach((f) => f(notices));
  }, 6000);
}

export function Notices() {
  const [list, setList] = useState(notices);
  useEffect(() => { noticeListeners.add(setList); return () => noticeListeners.delete(setList); }, []);
  return html`<div class="notices" role="status" aria-live="polite">
    ${list.map((n) => html`<p key=${n.id} class=${`notice ${n.kind}`}>${n.text}</p>`)}
  </div>`;
}

// A secret shown once (API key, seller key, app secret): copy it now, it is not kept anywhere.
export function CopyOnce({ label, secret }) {
  const id = useId('secret');
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied(true);
    } catch {
      document.getElementById(id)?.select();
    }
  };
  return html`<div class="copy-once">
    <label for=${id}>${label}</label>
    <div class="copy-row">
      <input id=${id} class="mono" readonly value=${secret} onFocus=${(e) => e.currentTarget.select()} />
      <button type="button" onClick=${copy}>${copied ? 'Copied' : 'Copy'}</button>
    </div>
    <p class="warn">Shown once: copy it now. It cannot be read again.</p>
  </div>`;
}

export function CopyButton({ text, label = 'Copy' }) {
  const [copied, setCopied] = useState(false);
  return html`<button type="button" class="small" aria-label=${`${label}: copy to clipboard`}
    onClick=${async () => { try { await navigator.clipboard.writeText(text); setCopied(true); } catch { /* no clipboard */ } }}>
    ${copied ? 'Copied' : label}</button>`;
}

// The caller's apps, loaded once per mount.
export function useApps() {
  return useLoad(() => api.get('/v1/apps').then((r) => r.items), []);
}

export function AppSelect({ value, onChange, allowAll = true, label = 'App' }) {
  const apps = useApps();
  const options = [
    ...(allowAll ? [['', 'All apps']] : []),
    ...(apps.data ?? []).map((a) => [a.id, a.name]),
  ];
  // A page that needs one app gets the first as soon as they are loaded.
  useEffect(() => {
    if (!allowAll && !value && apps.data?.length) onChange(apps.data[0].id);
  }, [apps.data]);
  return html`<${Select} label=${label} value=${value ?? ''} onChange=${onChange} options=${options} name="app" />`;
}

export function Badge({ value }) {
  const v = String(value ?? '');
  return html`<span class=${`badge b-${v.toLowerCase().replace(/[^a-z]/g, '')}`}>${v}</span>`;
}

export function fmtDate(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return d.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

export function fmtValue(v) {
  if (v === null || v === undefined || v === '') return '—';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function Toolbar({ children }) {
  return html`<div class="toolbar">${children}</div>`;
}

// Runs an action with its outcome announced; errors become notices instead of unhandled rejections.
export async function act(fn, okText) {
  try {
    const r = await fn();
    if (okText) notice(okText);
    return r;
  } catch (e) {
    notice(e.message ?? String(e), 'bad');
    return undefined;
  }
}

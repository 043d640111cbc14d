// The audit log (GET /v1/audit-log): who did what, when and from where. The filters and the page
// (`before`) live in the hash query, so a view can be bookmarked and Back returns to newer pages.
import {
  html, useState, useEffect, Page, DataTable, Field, Form, ErrorBox, Badge, useLoad, act, notice, fmtDate, fmtValue,
} from '../kit.mjs';
import { api } from '../api.mjs';
import { link } from '../app.mjs';

const FILTERS = ['action', 'target_type', 'target_id', 'actor', 'since', 'until'];
const PAGE = 50;
// The export reads the log page by page; past this many rows it stops and says so.
const EXPORT_MAX = 10_000;

// <input type="datetime-local"> ⇄ RFC 3339 in UTC (the page shows every time in UTC).
const toInput = (rfc) => (rfc ? rfc.replace(/Z$/, '').slice(0, 16) : '');
const fromInput = (v) => (v ? `${v}:00Z` : '');

// Date over time, each kept whole, so that the column stays narrow.
function when(ts) {
  const t = fmtDate(ts);
  return html`<div class="nowrap-text">${t.slice(0, 10)}<span class="sub">${t.slice(11)}</span></div>`;
}

function filtersOf(query) {
  return Object.fromEntries(FILTERS.map((k) => [k, query[k] ?? '']));
}

function Details({ entry }) {
  const d = entry.details;
  const empty = d === null || d === undefined || (typeof d === 'object' && Object.keys(d).length === 0);
  if (empty && !entry.user_agent) return '—';
  const text = JSON.stringify(d ?? {}, null, 2);
  const summary = empty ? 'user agent' : (text.length > 60 ? `${JSON.stringify(d).slice(0, 48)}…` : JSON.stringify(d));
  return html`<details class="details">
    <summary class="mono">${summary}</summary>
    ${empty ? null : html`<pre class="json">${text}</pre>`}
    ${entry.user_agent ? html`<p class="muted">User agent: ${entry.user_agent}</p>` : null}
  </details>`;
}

// RFC 4180, with cells that a spreadsheet would run as a formula prefixed by an apostrophe.
function csvCell(v) {
  let s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

async function exportCsv(filters) {
  const cols = ['id', 'created_at', 'actor', 'action', 'target_type', 'target_id', 'ip', 'success', 'user_agent', 'details'];
  const lines = [cols.join(',')];
  let before;
  let truncated = false;
  for (;;) {
    const r = await api.get('/v1/audit-log', { ...filters, before, limit: 500 });
    for (const e of r.items) lines.push(cols.map((c) => csvCell(e[c])).join(','));
    if (!r.next_before) break;
    if (lines.length - 1 >= EXPORT_MAX) { truncated = true; break; }
    before = r.next_before;
  }
  const blob = new Blob([`${lines.join('\r\n')}\r\n`], { type: 'text/csv;charset=utf-8' });
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = `audit-log-${new Date().toISOString().replace(/[:.]/g, '-')}.csv`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
  return { rows: lines.length - 1, truncated };
}

function show(query) {
  const h = link('/audit', query);
  if (location.hash !== h) location.hash = h;
}

function FilterForm({ query, onReload }) {
  const [f, setF] = useState(filtersOf(query));
  // Back/forward or a bookmarked link changes the query: the inputs follow it.
  useEffect(() => setF(filtersOf(query)), [FILTERS.map((k) => query[k] ?? '').join('\u0000')]);
  const set = (k) => (v) => setF((old) => ({ ...old, [k]: v }));
  // The same filters again reload (new entries may have come in).
  const apply = () => (location.hash === link('/audit', f) ? onReload() : show(f));
  return html`<div class="panel">
    <${Form} className="inline" submitLabel="Filter" busyLabel="Filtering…" onSubmit=${apply}>
      <${Field} label="Action" name="action" value=${f.action} onInput=${set('action')} placeholder="license. or license.ban"
        autocomplete="off" />
      <${Field} label="Target type" name="target_type" value=${f.target_type} onInput=${set('target_type')} placeholder="license"
        autocomplete="off" />
      <${Field} label="Target id" name="target_id" value=${f.target_id} onInput=${set('target_id')} autocomplete="off" />
      <${Field} label="Actor" name="actor" value=${f.actor} onInput=${set('actor')} placeholder="admin:alice"
        autocomplete="off" />
      <${Field} label="Since" name="since" type="datetime-local" value=${toInput(f.since)}
        onInput=${(v) => set('since')(fromInput(v))} />
      <${Field} label="Until" name="until" type="datetime-local" value=${toInput(f.until)}
        onInput=${(v) => set('until')(fromInput(v))} />
    <//>
    <p class="muted form-note">An action is matched exactly, or as a prefix when it ends in a dot (<code>license.</code>).
      Times are UTC: since is inclusive, until exclusive.
      ${FILTERS.some((k) => query[k]) ? html` <a href="#/audit">Clear the filters</a>` : null}</p>
  </div>`;
}

export default function AuditPage({ query }) {
  const filters = filtersOf(query);
  const before = query.before ?? '';
  const key = JSON.stringify([filters, before]);
  const log = useLoad(() => api.get('/v1/audit-log', { ...filters, before, limit: PAGE }), [key]);
  const [exporting, setExporting] = useState(false);
  const doExport = async () => {
    setExporting(true);
    const r = await act(() => exportCsv(filters));
    setExporting(false);
    if (r) notice(r.truncated ? `Exported the newest ${r.rows} entries (an export stops at ${EXPORT_MAX}).` : `Exported ${r.rows} entries.`);
  };
  const columns = [
    { key: 'created_at', label: 'Time', render: (e) => when(e.created_at) },
    { key: 'actor', label: 'Actor', className: 'nowrap', render: (e) => e.actor },
    { key: 'action', label: 'Action', render: (e) => e.action },
    {
      key: 'target', label: 'Target',
      render: (e) => html`<div>${e.target_type}${e.target_id ? html`<span class="sub mono">${e.target_id}</span>` : null}</div>`,
    },
    { key: 'ip', label: 'IP', className: 'nowrap', render: (e) => html`<span class="mono">${fmtValue(e.ip)}</span>` },
    { key: 'success', label: 'Success', render: (e) => html`<${Badge} value=${e.success ? 'ok' : 'failed'} />` },
    { key: 'details', label: 'Details', render: (e) => html`<${Details} entry=${e} />` },
  ];
  const next = log.data?.next_before;
  return html`<${Page} title="Audit log"
    actions=${html`<button type="button" disabled=${exporting} onClick=${doExport}>${exporting ? 'Exporting…' : 'Export CSV'}</button>`}>
    <${FilterForm} query=${query} onReload=${log.reload} />
    <${ErrorBox} error=${log.error} />
    <${DataTable} caption="Audit log entries" columns=${columns} rows=${log.data?.items} loading=${log.loading}
      empty=${before ? 'No older entries.' : 'No entries match.'} />
    <nav class="pager" aria-label="Audit log pages">
      <button type="button" disabled=${!before} onClick=${() => show(filters)}>Newest</button>
      <button type="button" disabled=${!next} onClick=${() => show({ ...filters, before: next })}>Older</button>
    </nav>
  <//>`;
}

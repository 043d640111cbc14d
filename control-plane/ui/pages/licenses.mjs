// Licenses: one server page of 50 at a time (GET /v1/licenses with limit/cursor), filtered by
// the hash query (?search=&app=&status=&expiry=) so a view can be bookmarked, with its total
// (GET /v1/licenses/count). App names come from the one /v1/apps call; nothing is asked per row.
import {
  html, useState, useEffect, useRef, useMemo, Page, DataTable, Pager, useCursor, Field, Select, Check, Form,
  Modal, ErrorBox, Toolbar, Badge, useLoad, useApps, confirm, act, notice, fmtDate,
} from '../kit.mjs';
import { api, download } from '../api.mjs';
import { link } from '../app.mjs';

const PAGE = 50;
const STATUS = [
  ['', 'Any status'], ['active', 'Active'], ['unused', 'Unused'], ['used', 'Used'], ['banned', 'Banned'],
  ['expired', 'Expired'], ['disabled', 'Disabled'], ['revoked', 'Revoked'],
];
const EXPIRY = [
  ['', 'Any expiry'], ['expiring', 'Expiring within 7 days'], ['expired', 'Past its expiry'],
  ['unexpired', 'Not expired'], ['never', 'Never expires'],
];
// Seconds per unit of a generated batch's validity.
export const UNITS = [
  ['days', 'Days', 86_400], ['hours', 'Hours', 3_600], ['minutes', 'Minutes', 60], ['weeks', 'Weeks', 604_800],
  ['months', 'Months (30 days)', 2_592_000], ['years', 'Years (365 days)', 31_536_000], ['lifetime', 'Lifetime (never expires)', 0],
];

// Replaces the hash query without a history entry per keystroke; the shell re-renders the page.
function setQuery(query, replace = false) {
  const h = link('/licenses', query);
  if (replace) {
    history.replaceState(null, '', h);
    dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    location.hash = h;
  }
}

// What a row shows as its state: an active license past its date is "expired".
export function effectiveStatus(l) {
  if (l.status === 'active' && l.expires_at && Date.parse(l.expires_at) <= Date.now()) return 'expired';
  return l.status;
}

export function fmtDuration(secs) {
  if (!secs) return '';
  if (secs % 86_400 === 0) return `${secs / 86_400} d`;
  if (secs % 3_600 === 0) return `${secs / 3_600} h`;
  return `${Math.round(secs / 60)} min`;
}

// A table cell's date: minutes, in UTC like fmtDate (the column header says so).
export function fmtShort(ts, withTime = true) {
  const full = fmtDate(ts);
  return full === '—' ? full : full.replace(' UTC', '').slice(0, withTime ? 16 : 10);
}

export function expiryText(l) {
  if (l.expires_at) return fmtShort(l.expires_at);
  if (l.duration_secs) return `${fmtDuration(l.duration_secs)} from first use`;
  return 'Never';
}

export function canExtend(l) {
  return !!(l.expires_at || l.duration_secs);
}

// The row actions' dialogs, shared with the license page: each resolves once the API answered.
export function BanDialog({ license, onDone, onClose }) {
  const [reason, setReason] = useState('');
  return html`<${Modal} title=${`Ban ${license.key}`} onClose=${onClose}>
    <p>Every validator refuses this key within a second. Unban it to let it validate again.</p>
    <${Form} submitLabel="Ban" busyLabel="Banning…" onSubmit=${async () => {
      const r = await api.post(`/v1/licenses/${encodeURIComponent(license.id)}/ban`, reason.trim() ? { reason: reason.trim() } : {});
      notice(`Banned ${license.key}.`);
      onDone(r);
    }}>
      <${Field} label="Reason" name="reason" value=${reason} onInput=${setReason} maxlength="500"
        placeholder="Optional, shown to the client" autocomplete="off" />
    <//>
  <//>`;
}

export function ExtendDialog({ license, onDone, onClose }) {
  const [days, setDays] = useState('30');
  return html`<${Modal} title=${`Extend ${license.key}`} onClose=${onClose}>
    <p>${license.expires_at ? `Expires ${fmtDate(license.expires_at)}; an expired key is extended from now.`
      : 'Its validity starts at first use; it gets longer.'}</p>
    <${Form} submitLabel="Extend" busyLabel="Extending…" onSubmit=${async () => {
      const r = await api.post(`/v1/licenses/${encodeURIComponent(license.id)}/extend`, { days: Number(days) });
      notice(`Extended ${license.key} by ${days} days.`);
      onDone(r);
    }}>
      <${Field} label="Days" name="days" type="number" min="1" max="999999" step="1" value=${days} onInput=${setDays} required />
    <//>
  <//>`;
}

// The generated keys, as a list (text nodes) with copy-all and a .txt download.
function Generated({ keys, appName }) {
  const [copied, setCopied] = useState(false);
  const text = `${keys.join('\n')}\n`;
  const save = () => {
    const href = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    const a = document.createElement('a');
    a.href = href;
    a.download = `licenses-${(appName || 'app').replace(/[^A-Za-z0-9_-]+/g, '-')}-${keys.length}.txt`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10_000);
  };
  return html`<div class="generated">
    <p role="status"><strong>${keys.length}</strong> ${keys.length === 1 ? 'license' : 'licenses'} generated for ${appName}.</p>
    <div class="form-actions start">
      <button type="button" class="primary" onClick=${async () => {
        try { await navigator.clipboard.writeText(text); setCopied(true); } catch { notice('The clipboard is not available: use the download.', 'bad'); }
      }}>${copied ? 'Copied' : 'Copy all'}</button>
      <button type="button" onClick=${save}>Download .txt</button>
    </div>
    <ol class="keys mono" aria-label="Generated keys">${keys.map((k) => html`<li key=${k}>${k}</li>`)}</ol>
  </div>`;
}

function GenerateDialog({ apps, app, onClose, onGenerated }) {
  const [appId, setAppId] = useState(app || apps[0]?.id || '');
  const [count, setCount] = useState('10');
  const [mask, setMask] = useState('XXXX-XXXX-XXXX');
  const [duration, setDuration] = useState('30');
  const [unit, setUnit] = useState('days');
  const [firstUse, setFirstUse] = useState(false);
  const [level, setLevel] = useState('1');
  const [note, setNote] = useState('');
  const [keys, setKeys] = useState(null);
  const submit = async () => {
    const n = Number(count);
    if (!Number.isInteger(n) || n < 1 || n > 100) throw new Error('Count must be a whole number from 1 to 100.');
    const body = { count: n, mask: mask.trim(), level: Number(level) };
    if (note.trim()) body.note = note.trim();
    const perUnit = UNITS.find(([u]) => u === unit)?.[2] ?? 86_400;
    if (perUnit) {
      const d = Number(duration);
      if (!Number.isInteger(d) || d < 1) throw new Error('Duration must be a whole number of at least 1.');
      if (unit === 'days') body.duration_days = d; else body.duration_secs = d * perUnit;
      if (firstUse) body.expiry_on_first_use = true;
    } else {
      body.no_expiry = true;
    }
    const r = await api.post(`/v1/apps/${encodeURIComponent(appId)}/licenses`, body);
    setKeys(r.licenses.map((l) => l.key));
    onGenerated();
  };
  const appName = apps.find((a) => a.id === appId)?.name ?? '';
  return html`<${Modal} title="Generate licenses" onClose=${onClose} wide>
    ${keys ? html`<${Generated} keys=${keys} appName=${appName} />
      <div class="form-actions"><button type="button" onClick=${() => setKeys(null)}>New batch</button></div>` : html`
      <${Form} className="grid2" submitLabel="Generate" busyLabel="Generating…" onSubmit=${submit}>
        <${Select} label="App" name="gen-app" value=${appId} onChange=${setAppId} options=${apps.map((a) => [a.id, a.name])} required />
        <${Field} label="Count" name="count" type="number" min="1" max="100" step="1" value=${count} onInput=${setCount} required
          hint="1 to 100 per batch" />
        <${Field} label="Mask" name="mask" value=${mask} onInput=${setMask} required maxlength="128" autocomplete="off" spellcheck=${false}
          class="mono" hint="X or * = A–Z/0–9, x = a–z/0–9, # = digit, anything else kept; at least 8 random" />
        <${Field} label="Level" name="level" type="number" min="0" max="1000000" step="1" value=${level} onInput=${setLevel} required />
        <${Field} label="Duration" name="duration" type="number" min="1" step="1" value=${duration} onInput=${setDuration}
          disabled=${unit === 'lifetime'} required=${unit !== 'lifetime'} />
        <${Select} label="Unit" name="unit" value=${unit} onChange=${setUnit} options=${UNITS.map(([u, t]) => [u, t])} />
        <${Check} label="Validity starts at first use" name="first-use" checked=${firstUse} onChange=${setFirstUse} />
        <${Field} label="Note" name="note" value=${note} onInput=${setNote} maxlength="1000" autocomplete="off" placeholder="Optional" />
      <//>`}
  <//>`;
}

function BulkBar({ selected, onClear, onDone }) {
  const [extending, setExtending] = useState(false);
  const [days, setDays] = useState('30');
  const ids = [...selected.keys()];
  const n = ids.length;
  const plural = `${n} ${n === 1 ? 'license' : 'licenses'}`;
  const run = async (action, extra, okText) => {
    const r = await act(() => api.post('/v1/licenses/bulk', { ids, action, ...extra }), okText);
    if (r !== undefined) onDone();
  };
  const ask = async (action, verb, done, message) => {
    if (await confirm(message, { confirmLabel: `${verb} ${plural}` })) await run(action, {}, `${done}: ${plural}.`);
  };
  return html`<div class="bulkbar" role="region" aria-label="Selected licenses">
    <strong>${n} selected</strong>
    <button type="button" class="small" onClick=${() => ask('ban', 'Ban', 'Banned', `Ban ${plural}? Validators refuse them within a second.`)}>Ban selected</button>
    <button type="button" class="small" onClick=${() => run('unban', {}, `Unbanned: ${plural}.`)}>Unban selected</button>
    <button type="button" class="small" onClick=${() => setExtending(true)}>Extend selected</button>
    <button type="button" class="small" onClick=${() => ask('reset_hwids', 'Reset HWIDs of', 'HWIDs reset', `Unbind every HWID of ${plural}?`)}>Reset HWIDs of selected</button>
    <button type="button" class="small danger" onClick=${() => ask('delete', 'Delete', 'Deleted', `Delete ${plural} for good? Their keys stop validating.`)}>Delete selected</button>
    <button type="button" class="small" onClick=${onClear}>Clear selection</button>
    ${extending ? html`<${Modal} title=${`Extend ${plural}`} onClose=${() => setExtending(false)}>
      <p>Licenses that never expire refuse an extension, and then none is extended.</p>
      <${Form} submitLabel="Extend" onSubmit=${async () => { setExtending(false); await run('extend', { days: Number(days) }, `Extended: ${plural}.`); }}>
        <${Field} label="Days" name="bulk-days" type="number" min="1" max="999999" step="1" value=${days} onInput=${setDays} required />
      <//>
    <//>` : null}
  </div>`;
}

export default function LicensesPage({ query }) {
  const apps = useApps();
  const filters = {
    search: query.search ?? '', app: query.app ?? '', status: query.status ?? '', expiry: query.expiry ?? '',
  };
  const filterKey = JSON.stringify(filters);
  const apiFilters = {
    search: filters.search || undefined, app_id: filters.app || undefined,
    status: filters.status || undefined, expiry: filters.expiry || undefined,
  };
  const cursor = useCursor(filterKey);
  const list = useLoad(() => api.get('/v1/licenses', { ...apiFilters, limit: PAGE, cursor: cursor.cursor }), [filterKey, cursor.cursor]);
  const total = useLoad(() => api.get('/v1/licenses/count', apiFilters), [filterKey]);
  const reload = () => { list.reload(); total.reload(); };

  // The search box types freely; the query follows 250 ms after the last keystroke. A filter
  // changed meanwhile takes the typed search along, so neither overwrites the other.
  const [search, setSearch] = useState(filters.search);
  const pushed = useRef(filters.search);
  const latest = useRef(filters);
  latest.current = filters;
  useEffect(() => {
    if (filters.search !== pushed.current) { pushed.current = filters.search; setSearch(filters.search); }
  }, [filters.search]);
  const typed = useRef(search);
  typed.current = search;
  const update = (patch, replace = false) => {
    pushed.current = typed.current;
    setQuery({ ...latest.current, search: typed.current, ...patch }, replace);
  };
  useEffect(() => {
    if (search === pushed.current) return undefined;
    const t = setTimeout(() => update({}, true), 250);
    return () => clearTimeout(t);
  }, [search]);

  const [dialog, setDialog] = useState(null);
  const [selected, setSelected] = useState(() => new Map());
  useEffect(() => setSelected(new Map()), [filterKey, cursor.cursor]);

  const appName = useMemo(() => new Map((apps.data ?? []).map((a) => [a.id, a.name])), [apps.data]);
  const rows = list.data?.items ?? null;
  const done = () => { setDialog(null); list.reload(); total.reload(); };

  const unban = (l) => act(() => api.post(`/v1/licenses/${encodeURIComponent(l.id)}/unban`), `Unbanned ${l.key}.`).then((r) => r && list.reload());
  const resetHwids = async (l) => {
    if (!await confirm(`Unbind every HWID of ${l.key}? Its next validations bind new ones.`, { confirmLabel: 'Reset HWIDs' })) return;
    if (await act(() => api.post(`/v1/licenses/${encodeURIComponent(l.id)}/reset-hwids`), `HWIDs of ${l.key} reset.`)) list.reload();
  };
  const remove = async (l) => {
    if (!await confirm(`Delete ${l.key} for good? It stops validating at once.`, { confirmLabel: 'Delete' })) return;
    if (await act(() => api.del(`/v1/licenses/${encodeURIComponent(l.id)}`), `Deleted ${l.key}.`) !== undefined) reload();
  };
  const toggle = (l, on) => setSelected((s) => { const m = new Map(s); if (on) m.set(l.id, l.key); else m.delete(l.id); return m; });
  const allOnPage = rows?.length > 0 && rows.every((l) => selected.has(l.id));

  const columns = [
    {
      key: 'select', label: 'Select', className: 'select-cell',
      render: (l) => html`<input type="checkbox" aria-label=${`Select ${l.key}`} checked=${selected.has(l.id)}
        onChange=${(e) => toggle(l, e.currentTarget.checked)} />`,
    },
    { key: 'key', label: 'Key', className: 'nowrap', render: (l) => html`<a class="mono" href=${`#/licenses/${encodeURIComponent(l.id)}`}>${l.key}</a>` },
    { key: 'app', label: 'App', className: 'roomy', render: (l) => appName.get(l.app_id) ?? '—' },
    { key: 'status', label: 'Status', render: (l) => html`<${Badge} value=${effectiveStatus(l)} />` },
    { key: 'level', label: 'Level' },
    { key: 'note', label: 'Note', className: 'clip roomy', render: (l) => l.note || '—' },
    { key: 'expires', label: 'Expires (UTC)', className: 'nowrap', render: expiryText },
    { key: 'hwids', label: 'HWIDs', render: (l) => `${l.hwids.length} / ${l.hwid_limit || '∞'}` },
    { key: 'created', label: 'Created', className: 'nowrap', render: (l) => html`<span title=${fmtDate(l.created_at)}>${fmtShort(l.created_at, false)}</span>` },
    {
      key: 'actions', label: 'Actions', className: 'actions-cell',
      render: (l) => html`<div class="row-actions">
        ${l.status === 'banned'
          ? html`<button type="button" class="small" aria-label=${`Unban ${l.key}`} onClick=${() => unban(l)}>Unban</button>`
          : l.status !== 'revoked'
            ? html`<button type="button" class="small" aria-label=${`Ban ${l.key}`} onClick=${() => setDialog({ kind: 'ban', license: l })}>Ban</button>`
            : null}
        ${canExtend(l) ? html`<button type="button" class="small" aria-label=${`Extend ${l.key}`}
          onClick=${() => setDialog({ kind: 'extend', license: l })}>Extend</button>` : null}
        <button type="button" class="small" aria-label=${`Reset HWIDs ${l.key}`} disabled=${l.hwids.length === 0}
          onClick=${() => resetHwids(l)}>Reset HWIDs</button>
        <button type="button" class="small" aria-label=${`Delete ${l.key}`} onClick=${() => remove(l)}>Delete</button>
      </div>`,
    },
  ];

  const noApps = apps.data && apps.data.length === 0;
  const count = total.data?.total;
  return html`<${Page} title="Licenses" actions=${html`
      <button type="button" onClick=${() => act(() => download('/v1/licenses/export', { format: 'csv', app_id: filters.app || undefined }, 'licenses.csv'), 'Export downloaded.')}>Export CSV</button>
      <button type="button" class="primary" disabled=${!apps.data?.length} onClick=${() => setDialog({ kind: 'generate' })}>Generate</button>`}>
    <${Toolbar}>
      <${Field} label="Search" name="search" type="search" value=${search} onInput=${setSearch}
        placeholder="Key, note or HWID" autocomplete="off" spellcheck=${false} />
      <${Select} label="App" name="app" value=${filters.app} onChange=${(v) => update({ app: v })}
        options=${[['', 'All apps'], ...(apps.data ?? []).map((a) => [a.id, a.name])]} />
      <${Select} label="Status" name="status" value=${filters.status} onChange=${(v) => update({ status: v })} options=${STATUS} />
      <${Select} label="Expiry" name="expiry" value=${filters.expiry} onChange=${(v) => update({ expiry: v })} options=${EXPIRY} />
    <//>
    <${ErrorBox} error=${apps.error ?? list.error ?? total.error} />
    ${noApps ? html`<p>Create an app first (<a href="#/apps">Apps</a>), then generate its licenses.</p>` : null}
    <div class="list-head">
      <span role="status">${count === undefined ? '' : `${count.toLocaleString('en')} ${count === 1 ? 'license' : 'licenses'}`}${
        rows?.length ? ` · showing ${(cursor.page - 1) * PAGE + 1}–${(cursor.page - 1) * PAGE + rows.length}` : ''}</span>
      ${rows?.length ? html`<label class="inline-check"><input type="checkbox" checked=${allOnPage}
        onChange=${(e) => { const on = e.currentTarget.checked; setSelected((s) => { const m = new Map(s); rows.forEach((l) => (on ? m.set(l.id, l.key) : m.delete(l.id))); return m; }); }} />
        Select all on this page</label>` : null}
    </div>
    ${selected.size ? html`<${BulkBar} selected=${selected} onClear=${() => setSelected(new Map())}
      onDone=${() => { setSelected(new Map()); reload(); }} />` : null}
    <div class="compact"><${DataTable} caption="Licenses" columns=${columns} rows=${rows} loading=${list.loading}
      empty=${Object.values(filters).some(Boolean) ? 'No license matches these filters.' : 'No licenses yet: generate some.'} /></div>
    <${Pager} cursor=${cursor} nextCursor=${list.data?.next_cursor} label="License pages" />
    ${dialog?.kind === 'generate' ? html`<${GenerateDialog} apps=${apps.data ?? []} app=${filters.app}
      onClose=${() => setDialog(null)} onGenerated=${reload} />` : null}
    ${dialog?.kind === 'ban' ? html`<${BanDialog} license=${dialog.license} onClose=${() => setDialog(null)} onDone=${done} />` : null}
    ${dialog?.kind === 'extend' ? html`<${ExtendDialog} license=${dialog.license} onClose=${() => setDialog(null)} onDone=${done} />` : null}
  <//>`;
}

// Machines: every device bound to the account's licenses (GET /v1/machines, keyset pages of 50,
// filtered by the hash query ?search=&app=), newest first, each deactivated with a confirmation
// (DELETE /v1/machines/{id}).
import {
  html, useState, useEffect, useRef, useMemo, Page, DataTable, Pager, useCursor, Field, Select, ErrorBox, Toolbar,
  useLoad, useApps, confirm, act, fmtDate,
} from '../kit.mjs';
import { api } from '../api.mjs';
import { link } from '../app.mjs';

const PAGE = 50;
const enc = encodeURIComponent;

function setQuery(query, replace = false) {
  const h = link('/machines', query);
  if (replace) {
    history.replaceState(null, '', h);
    dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    location.hash = h;
  }
}

export default function MachinesPage({ query }) {
  const apps = useApps();
  const filters = { search: query.search ?? '', app: query.app ?? '', license: query.license ?? '' };
  const filterKey = JSON.stringify(filters);
  const cursor = useCursor(filterKey);
  const list = useLoad(() => api.get('/v1/machines', {
    search: filters.search || undefined, app_id: filters.app || undefined, license_id: filters.license || undefined,
    limit: PAGE, cursor: cursor.cursor,
  }), [filterKey, cursor.cursor]);

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

  const appName = useMemo(() => new Map((apps.data ?? []).map((a) => [a.id, a.name])), [apps.data]);
  const deactivate = async (m) => {
    if (!await confirm(`Deactivate ${m.fingerprint} on ${m.license_key}? Its slot is freed and every validator forgets it.`,
      { confirmLabel: 'Deactivate' })) return;
    if (await act(() => api.del(`/v1/machines/${enc(m.id)}`), `Deactivated ${m.fingerprint}.`) !== undefined) list.reload();
  };
  const columns = [
    { key: 'fingerprint', label: 'Fingerprint', render: (m) => html`<span class="mono">${m.fingerprint}</span>` },
    { key: 'name', label: 'Name', render: (m) => [m.name, m.hostname].filter(Boolean).join(' · ') || '—' },
    { key: 'platform', label: 'Platform', render: (m) => m.platform || '—' },
    {
      key: 'license', label: 'License', className: 'nowrap',
      render: (m) => html`<a class="mono" href=${`#/licenses/${enc(m.license_id)}`}>${m.license_key}</a>`,
    },
    { key: 'app', label: 'App', render: (m) => appName.get(m.app_id) ?? '—' },
    { key: 'ip', label: 'IP', className: 'nowrap', render: (m) => (m.ip ? html`<span class="mono">${m.ip}</span>` : '—') },
    { key: 'heartbeat', label: 'Last heartbeat', className: 'nowrap', render: (m) => fmtDate(m.last_heartbeat_at) },
    { key: 'created_at', label: 'Activated', className: 'nowrap', render: (m) => fmtDate(m.created_at) },
    {
      key: 'actions', label: 'Actions',
      render: (m) => html`<div class="row-actions"><button type="button" class="small"
        aria-label=${`Deactivate ${m.fingerprint} on ${m.license_key}`} onClick=${() => deactivate(m)}>Deactivate</button></div>`,
    },
  ];
  const rows = list.data?.items ?? null;
  return html`<${Page} title="Machines">
    <p class="muted">Devices bound to your licenses: by a client's first validation (<span class="mono">validate</span>),
      an admin or the API. Deactivating one frees its slot on the license.</p>
    <${Toolbar}>
      <${Field} label="Search" name="search" type="search" value=${search} onInput=${setSearch}
        placeholder="Fingerprint, name, host or key" autocomplete="off" spellcheck=${false} />
      <${Select} label="App" name="app" value=${filters.app} onChange=${(v) => update({ app: v })}
        options=${[['', 'All apps'], ...(apps.data ?? []).map((a) => [a.id, a.name])]} />
      ${filters.license ? html`<div class="field"><span class="muted">One license only</span>
        <button type="button" class="small" onClick=${() => update({ license: '' })}>Show all licenses</button></div>` : null}
    <//>
    <${ErrorBox} error=${apps.error ?? list.error} />
    <${DataTable} caption="Machines" columns=${columns} rows=${rows} loading=${list.loading}
      empty=${filters.search || filters.app || filters.license ? 'No machine matches these filters.' : 'No machine is bound yet.'} />
    <${Pager} cursor=${cursor} nextCursor=${list.data?.next_cursor} label="Machine pages" />
  <//>`;
}

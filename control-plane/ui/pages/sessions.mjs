// Live client-API sessions of an app (KeyAuth's "online"): list, end one, end all. GET/DELETE
// /v1/apps/{id}/sessions, DELETE /v1/sessions/{id}; #/sessions?app=…&validated=true.
import {
  html, Page, DataTable, Pager, useCursor, Select, ErrorBox, Toolbar, Badge, useLoad, confirm, act, notice, fmtDate,
} from '../kit.mjs';
import { api } from '../api.mjs';
import { AppPicker, NoApps, When, setQuery } from './app-scope.mjs';

const PATH = '/sessions';
const PAGE = 50;
const enc = encodeURIComponent;
const SHOW = [['', 'All live sessions'], ['true', 'Logged in'], ['false', 'Not logged in']];

export default function SessionsPage({ query }) {
  const app = query.app ?? '';
  const validated = query.validated ?? '';
  const cursor = useCursor(`${app}|${validated}`);
  const list = useLoad(
    () => (app ? api.get(`/v1/apps/${enc(app)}/sessions`, { validated: validated || undefined, limit: PAGE, cursor: cursor.cursor }) : null),
    [app, validated, cursor.cursor],
  );
  const who = (s) => s.username ?? s.credential ?? 'not logged in';
  const kill = async (s) => {
    if (!await confirm(`End the session of ${who(s)} (${s.id})? Its next call answers "Session not found".`, { confirmLabel: 'End session' })) return;
    if (await act(() => api.del(`/v1/sessions/${enc(s.id)}`), 'Session ended.') !== undefined) list.reload();
  };
  const killAll = async () => {
    if (!await confirm('End every session of this app? Every client has to start again (init and login).', { confirmLabel: 'End all sessions' })) return;
    const r = await act(() => api.del(`/v1/apps/${enc(app)}/sessions`));
    if (r) { notice(`Ended ${r.deleted} ${r.deleted === 1 ? 'session' : 'sessions'}.`); cursor.reset(); list.reload(); }
  };
  const columns = [
    { key: 'user', label: 'User', render: (s) => (s.username ?? s.credential ?? html`<span class="muted">—</span>`) },
    { key: 'validated', label: 'State', render: (s) => html`<${Badge} value=${s.validated ? 'active' : 'pending'} />` },
    { key: 'ip', label: 'IP', render: (s) => (s.ip ? html`<span class="mono">${s.ip}</span>` : '—') },
    { key: 'hwid', label: 'HWID', className: 'clip', render: (s) => (s.hwid ? html`<span class="mono">${s.hwid}</span>` : '—') },
    { key: 'created_at', label: 'Started', render: (s) => html`<${When} ts=${s.created_at} fmt=${fmtDate} />` },
    { key: 'expires_at', label: 'Expires', render: (s) => html`<${When} ts=${s.expires_at} fmt=${fmtDate} />` },
    { key: 'id', label: 'Session id', render: (s) => html`<span class="mono">${s.id}</span>` },
    {
      key: 'actions', label: 'Actions',
      render: (s) => html`<div class="row-actions">
        <button type="button" class="small" aria-label=${`End session ${s.id}`} onClick=${() => kill(s)}>End</button>
      </div>`,
    },
  ];
  return html`<${Page} title="Sessions" actions=${app ? html`
      <button type="button" onClick=${() => list.reload()}>Refresh</button>
      <button type="button" class="danger" onClick=${killAll}>End all</button>` : null}>
    <p class="muted">Sessions clients opened with <code>init</code>, newest first; "logged in" ones passed <code>login</code>, <code>register</code> or <code>license</code>. An ended session is refused
      by every validator within a second.</p>
    <${Toolbar}>
      <${AppPicker} path=${PATH} query=${query} />
      ${app ? html`<${Select} label="Show" name="validated" value=${validated} options=${SHOW}
        onChange=${(v) => setQuery(PATH, { ...query, validated: v })} />` : null}
    <//>
    <${NoApps} />
    <${ErrorBox} error=${list.error} />
    ${app ? html`
      <div class="compact"><${DataTable} caption="Sessions" columns=${columns} rows=${list.data?.items ?? null} loading=${list.loading}
        empty="No live sessions." /></div>
      <${Pager} cursor=${cursor} nextCursor=${list.data?.next_cursor} label="Session pages" />` : null}
  <//>`;
}

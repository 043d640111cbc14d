// What an app's clients sent through KeyAuth's `log`: read newest first in keyset pages,
// searched, downloaded as CSV, cleared. GET/DELETE /v1/apps/{id}/logs; #/logs?app=…&search=….
import {
  html, Page, DataTable, Pager, useCursor, ErrorBox, Toolbar, useLoad, confirm, act, notice, fmtDate,
} from '../kit.mjs';
import { api } from '../api.mjs';
import { AppPicker, NoApps, SearchBox, When, csvCell, saveText } from './app-scope.mjs';

const PATH = '/logs';
const PAGE = 100;
const enc = encodeURIComponent;
// A download reads the log page by page; past this many lines it stops and says so.
const EXPORT_MAX = 10_000;
const COLUMNS = ['id', 'created_at', 'action', 'username', 'ip', 'data'];

async function exportCsv(app, filters) {
  const lines = [COLUMNS.join(',')];
  let cursor;
  let truncated = false;
  for (;;) {
    const r = await api.get(`/v1/apps/${enc(app)}/logs`, { ...filters, limit: 1000, cursor });
    for (const e of r.items) lines.push(COLUMNS.map((c) => csvCell(e[c])).join(','));
    if (!r.next_cursor) break;
    if (lines.length - 1 >= EXPORT_MAX) { truncated = true; break; }
    cursor = r.next_cursor;
  }
  saveText(`${lines.join('\r\n')}\r\n`, `client-logs-${new Date().toISOString().replace(/[:.]/g, '-')}.csv`);
  return { rows: lines.length - 1, truncated };
}

export default function LogsPage({ query }) {
  const app = query.app ?? '';
  const filters = { search: query.search || undefined };
  const key = `${app}|${query.search ?? ''}`;
  const cursor = useCursor(key);
  const list = useLoad(
    () => (app ? api.get(`/v1/apps/${enc(app)}/logs`, { ...filters, limit: PAGE, cursor: cursor.cursor }) : null),
    [key, cursor.cursor],
  );
  const clear = async () => {
    if (!await confirm('Delete every log line of this app? This cannot be undone.', { confirmLabel: 'Clear logs' })) return;
    const r = await act(() => api.del(`/v1/apps/${enc(app)}/logs`));
    if (r) { notice(`Deleted ${r.deleted} log ${r.deleted === 1 ? 'line' : 'lines'}.`); cursor.reset(); list.reload(); }
  };
  const download = async () => {
    const r = await act(() => exportCsv(app, filters));
    if (r) notice(r.truncated ? `Downloaded the newest ${r.rows} lines (a download stops at ${EXPORT_MAX}).` : `Downloaded ${r.rows} ${r.rows === 1 ? 'line' : 'lines'}.`);
  };
  const columns = [
    { key: 'created_at', label: 'Time', render: (l) => html`<${When} ts=${l.created_at} fmt=${fmtDate} />` },
    { key: 'username', label: 'User', render: (l) => l.username ?? '—' },
    { key: 'ip', label: 'IP', render: (l) => (l.ip ? html`<span class="mono">${l.ip}</span>` : '—') },
    { key: 'data', label: 'Message', render: (l) => (l.data ? html`<span class="mono">${l.data}</span>` : '—') },
  ];
  return html`<${Page} title="Client logs" actions=${app ? html`
      <button type="button" onClick=${download}>Download CSV</button>
      <button type="button" class="danger" onClick=${clear}>Clear</button>` : null}>
    <p class="muted">Lines an app's clients sent with <code>log</code>, newest first.</p>
    <${Toolbar}>
      <${AppPicker} path=${PATH} query=${query} />
      ${app ? html`
        <${SearchBox} path=${PATH} query=${query} placeholder="User, IP or message" />` : null}
    <//>
    <${NoApps} />
    <${ErrorBox} error=${list.error} />
    ${app ? html`
      <${DataTable} caption="Client logs" columns=${columns} rows=${list.data?.items ?? null} loading=${list.loading}
        empty=${filters.search ? 'No log line matches.' : 'No log lines.'} />
      <${Pager} cursor=${cursor} nextCursor=${list.data?.next_cursor} label="Log pages" />` : null}
  <//>`;
}

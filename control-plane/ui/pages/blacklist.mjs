// An app's blacklist: IPs, CIDR networks and HWIDs its validations refuse (GET/POST
// /v1/apps/{id}/blacklist, DELETE /v1/blacklist/{id}). The API stores CIDR networks as kind `ip`;
// the page tells them apart by the `/` of their value.
import {
  html, useState, Page, DataTable, Field, Select, Form, ErrorBox, AppSelect, Toolbar, useLoad, useApps,
  confirm, act, notice, fmtDate,
} from '../kit.mjs';
import { api } from '../api.mjs';
import { link } from '../app.mjs';

const KINDS = [['ip', 'IP'], ['cidr', 'CIDR'], ['hwid', 'HWID']];
const EXAMPLES = { ip: '203.0.113.7', cidr: '203.0.113.0/24', hwid: 'HWID as clients send it' };

// The app is kept in the hash query (bookmarkable). The first app, picked automatically, replaces
// the history entry, so that Back does not land on a page that picks it again.
function showApp(id, replace) {
  const h = link('/blacklist', { app: id });
  if (!replace) { location.hash = h; return; }
  history.replaceState(null, '', h);
  dispatchEvent(new HashChangeEvent('hashchange'));
}

function kindLabel(e) {
  if (e.kind === 'hwid') return 'HWID';
  return e.value.includes('/') ? 'CIDR' : 'IP';
}

function AddForm({ app, onAdded }) {
  const [kind, setKind] = useState('ip');
  const [value, setValue] = useState('');
  const [reason, setReason] = useState('');
  const submit = async () => {
    const v = value.trim();
    if (kind === 'cidr' && !v.includes('/')) throw new Error('A CIDR value needs a prefix length, e.g. 203.0.113.0/24.');
    const body = { kind: kind === 'hwid' ? 'hwid' : 'ip', value: v };
    if (reason.trim()) body.note = reason.trim();
    const e = await api.post(`/v1/apps/${encodeURIComponent(app)}/blacklist`, body);
    setValue('');
    setReason('');
    onAdded(e);
  };
  return html`<div class="panel">
    <h2>Add an entry</h2>
    <${Form} className="inline" submitLabel="Add" busyLabel="Adding…" onSubmit=${submit}>
      <${Select} label="Kind" name="kind" value=${kind} onChange=${setKind} options=${KINDS} />
      <${Field} label="Value" name="value" value=${value} onInput=${setValue} placeholder=${EXAMPLES[kind]}
        required maxlength="256" autocomplete="off" spellcheck=${false} />
      <${Field} label="Reason" name="reason" value=${reason} onInput=${setReason} maxlength="1000"
        placeholder="Optional" autocomplete="off" />
    <//>
    <p class="muted form-note">IP: an IPv4 or IPv6 address. CIDR: a network such as 203.0.113.0/24 or 2001:db8::/32.
      HWID: the hardware id exactly as clients send it.</p>
  </div>`;
}

export default function BlacklistPage({ query }) {
  const app = query.app ?? '';
  const apps = useApps();
  const list = useLoad(
    () => (app ? api.get(`/v1/apps/${encodeURIComponent(app)}/blacklist`).then((r) => r.items) : null),
    [app],
  );
  const remove = async (e) => {
    const ok = await confirm(`Remove ${kindLabel(e)} ${e.value} from the blacklist? Its validations are no longer refused for it.`,
      { confirmLabel: 'Remove' });
    if (!ok) return;
    if ((await act(() => api.del(`/v1/blacklist/${encodeURIComponent(e.id)}`), `Removed ${e.value}.`)) !== undefined) list.reload();
  };
  const columns = [
    { key: 'kind', label: 'Kind', render: (e) => kindLabel(e) },
    { key: 'value', label: 'Value', render: (e) => html`<span class="mono">${e.value}</span>` },
    { key: 'note', label: 'Reason', render: (e) => e.note || '—' },
    { key: 'created_at', label: 'Created', render: (e) => fmtDate(e.created_at) },
    {
      key: 'actions', label: 'Actions',
      render: (e) => html`<div class="row-actions">
        <button type="button" class="small" aria-label=${`Delete ${e.value}`} onClick=${() => remove(e)}>Delete</button>
      </div>`,
    },
  ];
  const noApps = apps.data && apps.data.length === 0;
  return html`<${Page} title="Blacklist">
    <p class="muted">Validations from a blacklisted IP, network or HWID are refused by every validator within a second of
      the change. The API has no whitelist and no "clear all": remove entries one by one.</p>
    <${Toolbar}>
      <${AppSelect} value=${app} allowAll=${false} onChange=${(id) => showApp(id, !app)} />
    <//>
    <${ErrorBox} error=${apps.error} />
    ${noApps ? html`<p>Create an app first (<a href="#/apps">Apps</a>).</p>` : null}
    ${app ? html`
      <${AddForm} app=${app} onAdded=${(e) => { list.reload(); notice(`Blacklisted ${e.value}.`); }} />
      <${ErrorBox} error=${list.error} />
      <${DataTable} caption="Blacklist entries" columns=${columns} rows=${list.data} loading=${list.loading}
        empty="Nothing is blacklisted for this app." />` : null}
  <//>`;
}

// Apps: the caller's apps (GET /v1/apps) with their license counts (one GET /v1/licenses/count,
// per app in `by_app`), and a new app (POST /v1/apps). Each links to its settings page.
import { html, useState, useMemo, Page, DataTable, Field, Form, Modal, ErrorBox, Badge, useLoad, notice, fmtDate } from '../kit.mjs';
import { api } from '../api.mjs';
import { link } from '../app.mjs';

function NewApp({ onClose, onCreated }) {
  const [name, setName] = useState('');
  const [version, setVersion] = useState('1.0');
  return html`<${Modal} title="New app" onClose=${onClose}>
    <${Form} submitLabel="Create" busyLabel="Creating…" onSubmit=${async () => {
      const body = { name: name.trim() };
      if (version.trim()) body.version = version.trim();
      const app = await api.post('/v1/apps', body);
      notice(`Created ${app.name}.`);
      onCreated(app);
    }}>
      <${Field} label="Name" name="name" value=${name} onInput=${setName} required maxlength="100" autocomplete="off"
        hint="What KeyAuth clients send as the app name" />
      <${Field} label="Version" name="version" value=${version} onInput=${setVersion} maxlength="32" autocomplete="off" />
    <//>
  <//>`;
}

export default function AppsPage() {
  const apps = useLoad(() => api.get('/v1/apps').then((r) => r.items), []);
  const counts = useLoad(() => api.get('/v1/licenses/count'), []);
  const [creating, setCreating] = useState(false);
  const byApp = counts.data?.by_app ?? {};
  const rows = useMemo(() => (apps.data ? [...apps.data].sort((a, b) => a.name.localeCompare(b.name)) : null), [apps.data]);
  const columns = [
    { key: 'name', label: 'Name', render: (a) => html`<a href=${`#/apps/${encodeURIComponent(a.id)}`}>${a.name}</a>` },
    { key: 'version', label: 'Version' },
    { key: 'state', label: 'State', render: (a) => html`<${Badge} value=${a.paused ? 'paused' : 'active'} />` },
    { key: 'hwid_lock', label: 'HWID lock', render: (a) => (a.hwid_lock ? 'on' : 'off') },
    {
      key: 'licenses', label: 'Licenses',
      render: (a) => (counts.data ? html`<a href=${link('/licenses', { app: a.id })}>${(byApp[a.id] ?? 0).toLocaleString('en')}</a>` : '…'),
    },
    { key: 'created_at', label: 'Created', render: (a) => fmtDate(a.created_at) },
  ];
  return html`<${Page} title="Apps" actions=${html`<button type="button" class="primary" onClick=${() => setCreating(true)}>New app</button>`}>
    <p class="muted">An app is what clients validate against: its name, owner id and secret go into the client, its
      settings decide how validations are checked.</p>
    <${ErrorBox} error=${apps.error ?? counts.error} />
    <${DataTable} caption="Apps" columns=${columns} rows=${rows} loading=${apps.loading}
      empty="No apps yet: create one to generate licenses." />
    ${creating ? html`<${NewApp} onClose=${() => setCreating(false)}
      onCreated=${() => { setCreating(false); apps.reload(); counts.reload(); }} />` : null}
  <//>`;
}

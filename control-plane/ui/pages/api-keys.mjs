// The account's API keys (/v1/api-keys): scoped credentials for scripts and integrations. A new
// key's secret is shown once; the list only ever shows its prefix.
import {
  html, useState, Page, DataTable, Field, Check, Form, Modal, ErrorBox, Toolbar, Badge, CopyOnce, useLoad, useId,
  confirm, act, notice, fmtDate,
} from '../kit.mjs';
import { api } from '../api.mjs';

const ALL = '*';

function ScopePicker({ scopes, value, onChange }) {
  const id = useId('scopes');
  const all = value.includes(ALL);
  const toggle = (s, on) => onChange(on ? [...value.filter((v) => v !== s), s] : value.filter((v) => v !== s));
  return html`<fieldset class="checks-set" aria-describedby=${`${id}-hint`}>
    <legend>Scopes</legend>
    <${Check} label="Everything (*)" checked=${all} onChange=${(on) => onChange(on ? [ALL] : [])} />
    <small id=${`${id}-hint`} class="muted">${all
      ? 'Full access, like an admin signed in. Prefer the narrowest scopes that work.'
      : 'A key can do only what its scopes allow (read scopes do not include writes).'}</small>
    ${all ? null : html`<div class="checks">
      ${(scopes ?? []).filter((s) => s !== ALL).map((s) => html`<${Check} key=${s} label=${s} checked=${value.includes(s)}
        onChange=${(on) => toggle(s, on)} />`)}
    </div>`}
  </fieldset>`;
}

function CreateKey({ scopes, onClose, onCreated }) {
  const [name, setName] = useState('');
  const [chosen, setChosen] = useState([]);
  // The plaintext lives only in this dialog's state: gone when it closes.
  const [created, setCreated] = useState(null);
  const submit = async () => {
    if (chosen.length === 0) throw new Error('Choose at least one scope.');
    const r = await api.post('/v1/api-keys', { name: name.trim(), scopes: chosen });
    setCreated(r);
    onCreated();
  };
  return html`<${Modal} title=${created ? 'API key created' : 'New API key'} onClose=${onClose} wide>
    ${created ? html`
      <p>Key <strong>${created.name}</strong> (${created.scopes.join(', ')}). Send it as <code>Authorization: Bearer …</code>.</p>
      <${CopyOnce} label="API key" secret=${created.key} />
      <div class="form-actions"><button type="button" class="primary" onClick=${onClose}>Done</button></div>`
    : html`<${Form} submitLabel="Create" busyLabel="Creating…" onSubmit=${submit}>
      <${Field} label="Name" name="name" value=${name} onInput=${setName} required maxlength="100"
        hint="What uses it, e.g. billing-sync" autocomplete="off" />
      <${ScopePicker} scopes=${scopes} value=${chosen} onChange=${setChosen} />
    <//>`}
  <//>`;
}

export default function ApiKeysPage() {
  const keys = useLoad(() => api.get('/v1/api-keys').then((r) => r.items), []);
  const scopes = useLoad(() => api.get('/v1/api-keys/scopes').then((r) => r.items), []);
  const [creating, setCreating] = useState(false);
  const [showRevoked, setShowRevoked] = useState(false);
  const revoke = async (k) => {
    const ok = await confirm(`Revoke the key "${k.name}" (${k.prefix}…)? Whatever uses it stops working at once. This cannot be undone.`,
      { confirmLabel: 'Revoke' });
    if (!ok) return;
    if ((await act(() => api.del(`/v1/api-keys/${encodeURIComponent(k.id)}`), `Revoked ${k.name}.`)) !== undefined) keys.reload();
  };
  const rows = keys.data?.filter((k) => showRevoked || !k.revoked_at);
  const revokedCount = keys.data?.filter((k) => k.revoked_at).length ?? 0;
  const columns = [
    { key: 'name', label: 'Name', render: (k) => k.name },
    { key: 'prefix', label: 'Prefix', className: 'nowrap', render: (k) => html`<span class="mono">${k.prefix}…</span>` },
    { key: 'scopes', label: 'Scopes', render: (k) => k.scopes.join(', ') },
    { key: 'created_at', label: 'Created', render: (k) => fmtDate(k.created_at) },
    { key: 'last_used_at', label: 'Last used', render: (k) => (k.last_used_at ? fmtDate(k.last_used_at) : 'never') },
    { key: 'status', label: 'Status', render: (k) => html`<${Badge} value=${k.revoked_at ? 'revoked' : 'active'} />` },
    {
      key: 'actions', label: 'Actions',
      render: (k) => (k.revoked_at ? html`<span class="muted">${fmtDate(k.revoked_at)}</span>` : html`<div class="row-actions">
        <button type="button" class="small" aria-label=${`Revoke ${k.name}`} onClick=${() => revoke(k)}>Revoke</button>
      </div>`),
    },
  ];
  return html`<${Page} title="API keys"
    actions=${html`<button type="button" class="primary" onClick=${() => setCreating(true)}>New API key</button>`}>
    <p class="muted">Keys authenticate scripts and integrations on the REST API (<code>Authorization: Bearer kw_…</code>).
      A key's secret is shown once, when it is created.</p>
    <${Toolbar}>
      <${Check} label=${`Show revoked keys (${revokedCount})`} checked=${showRevoked} onChange=${setShowRevoked} />
    <//>
    <${ErrorBox} error=${keys.error ?? scopes.error} />
    <${DataTable} caption="API keys" columns=${columns} rows=${rows} loading=${keys.loading}
      empty=${showRevoked ? 'No API keys yet.' : 'No active API keys.'} />
    ${creating ? html`<${CreateKey} scopes=${scopes.data} onClose=${() => setCreating(false)}
      onCreated=${() => { keys.reload(); notice('API key created: copy it now.'); }} />` : null}
  <//>`;
}

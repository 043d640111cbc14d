// Seller keys (/v1/seller-keys): the account's keys for the KeyAuth-style seller API
// (`/api/seller/`), e.g. for a shop or a Discord bot. A new key is shown once; revoking deletes it.
import {
  html, useState, Page, DataTable, Field, Form, Modal, ErrorBox, CopyOnce, useLoad, confirm, act, notice, fmtDate,
} from '../kit.mjs';
import { api } from '../api.mjs';

function CreateKey({ onClose, onCreated }) {
  const [name, setName] = useState('');
  // The plaintext lives only in this dialog's state: gone when it closes.
  const [created, setCreated] = useState(null);
  const submit = async () => {
    const r = await api.post('/v1/seller-keys', { name: name.trim() });
    setCreated(r);
    onCreated();
  };
  return html`<${Modal} title=${created ? 'Seller key created' : 'New seller key'} onClose=${onClose} wide>
    ${created ? html`
      <p>Key <strong>${created.name}</strong>. Send it as the <code>sellerkey</code> query parameter or
        as the <code>X-API-Key</code> header of <code>/api/seller/?type=…&appname=…</code>.</p>
      <${CopyOnce} label="Seller key" secret=${created.key} />
      <div class="form-actions"><button type="button" class="primary" onClick=${onClose}>Done</button></div>`
    : html`<${Form} submitLabel="Create" busyLabel="Creating…" onSubmit=${submit}>
      <${Field} label="Name" name="name" value=${name} onInput=${setName} required maxlength="100"
        hint="What uses it, e.g. discord-bot" autocomplete="off" />
    <//>`}
  <//>`;
}

export default function SellerKeysPage() {
  const keys = useLoad(() => api.get('/v1/seller-keys').then((r) => r.items), []);
  const [creating, setCreating] = useState(false);
  const revoke = async (k) => {
    const ok = await confirm(`Revoke the seller key "${k.name}" (${k.prefix}…)? Whatever uses it stops working at once. This cannot be undone.`,
      { confirmLabel: 'Revoke' });
    if (!ok) return;
    if ((await act(() => api.del(`/v1/seller-keys/${encodeURIComponent(k.id)}`), `Revoked ${k.name}.`)) !== undefined) keys.reload();
  };
  const columns = [
    { key: 'name', label: 'Name' },
    { key: 'prefix', label: 'Prefix', className: 'nowrap', render: (k) => html`<span class="mono">${k.prefix}…</span>` },
    { key: 'created_at', label: 'Created', render: (k) => fmtDate(k.created_at) },
    { key: 'last_used_at', label: 'Last used', render: (k) => (k.last_used_at ? fmtDate(k.last_used_at) : 'never') },
    {
      key: 'actions', label: 'Actions',
      render: (k) => html`<div class="row-actions">
        <button type="button" class="small" aria-label=${`Revoke ${k.name}`} onClick=${() => revoke(k)}>Revoke</button>
      </div>`,
    },
  ];
  return html`<${Page} title="Seller keys"
    actions=${html`<button type="button" class="primary" onClick=${() => setCreating(true)}>New seller key</button>`}>
    <p class="muted">A seller key opens the KeyAuth-style seller API for every app of the account: generating and banning
      licenses, managing users and variables. It carries no scopes; give it only to what needs all of that. Its secret
      is shown once, when it is created.</p>
    <${ErrorBox} error=${keys.error} />
    <${DataTable} caption="Seller keys" columns=${columns} rows=${keys.data} loading=${keys.loading} empty="No seller keys." />
    ${creating ? html`<${CreateKey} onClose=${() => setCreating(false)}
      onCreated=${() => { keys.reload(); notice('Seller key created: copy it now.'); }} />` : null}
  <//>`;
}

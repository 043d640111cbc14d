// The Ed25519 keys that sign KeyAuth 1.3 answers (GET /v1/signing-keys): their public keys to
// copy into clients, and which of the account's apps sign with which. Read-only: the keys
// belong to the deployment and its operator rotates them (`control-plane signing-key …`).
import { html, Page, DataTable, ErrorBox, Badge, CopyButton, useLoad, fmtDate } from '../kit.mjs';
import { api } from '../api.mjs';

function Apps({ list }) {
  if (!list.length) return html`<span class="muted">none of yours</span>`;
  return html`<div>${list.map((a) => html`<div key=${a.app_id}>
    <a href=${`#/apps/${encodeURIComponent(a.app_id)}`}>${a.app_name}</a>
    <span class="sub">${a.pinned ? 'pinned' : 'follows the primary'}</span></div>`)}</div>`;
}

function PublicKey({ hex }) {
  return html`<div class="secret-row"><span class="mono">${hex}</span><${CopyButton} text=${hex} label="Copy key" /></div>`;
}

export default function SigningKeysPage() {
  const data = useLoad(() => api.get('/v1/signing-keys'), []);
  const d = data.data;
  // The primary by name, another key by the start of its public key (as the table below shows it).
  const keyName = (a) => (a.key_id === d?.primary?.id ? 'the primary' : `key ${a.public_key.slice(0, 8)}…`);
  const keyColumns = [
    { key: 'state', label: 'State', render: (k) => html`<${Badge} value=${k.is_primary ? 'primary' : (k.retired_at ? 'retired' : 'active')} />` },
    { key: 'public_key', label: 'Public key (hex)', render: (k) => html`<${PublicKey} hex=${k.public_key} />` },
    { key: 'used_by', label: 'Your apps signing with it', render: (k) => html`<${Apps} list=${k.used_by} />` },
    { key: 'created_at', label: 'Created', render: (k) => fmtDate(k.created_at) },
    { key: 'retired_at', label: 'Retired', render: (k) => (k.retired_at ? fmtDate(k.retired_at) : '—') },
  ];
  const appColumns = [
    { key: 'app_name', label: 'App', render: (a) => html`<a href=${`#/apps/${encodeURIComponent(a.app_id)}`}>${a.app_name}</a>` },
    { key: 'key', label: 'Signs with', render: (a) => `${keyName(a)}${a.pinned ? ' (pinned)' : ''}` },
    { key: 'public_key', label: 'Public key its 1.3 clients embed', render: (a) => html`<${PublicKey} hex=${a.public_key} />` },
  ];
  return html`<${Page} title="Signing keys">
    <p class="muted">KeyAuth 1.3 answers carry an Ed25519 signature (<code>x-signature-ed25519</code>); clients pin the
      public key as these 64 hex characters, the form Keygen SDKs take too. The keys belong to this deployment and are
      shared by every account; an app signs with the key it is pinned to, or with the primary. After a rotation, apps that
      used the old primary stay pinned to it until you move them (app settings), so shipped clients keep verifying.</p>
    <${ErrorBox} error=${data.error} />
    ${d?.primary ? html`<div class="panel">
      <h2>Primary key</h2>
      <p class="muted">New apps sign with it.</p>
      <${PublicKey} hex=${d.primary.public_key} />
    </div>` : null}
    <h2>Your apps</h2>
    <${DataTable} caption="Which key each app signs with" columns=${appColumns} rows=${d?.apps ?? null} rowKey=${(a) => a.app_id}
      loading=${data.loading} empty="No apps yet." />
    <h2>All keys</h2>
    <${DataTable} caption="Signing keys" columns=${keyColumns} rows=${d?.keys ?? null} loading=${data.loading} empty="No keys." />
  <//>`;
}

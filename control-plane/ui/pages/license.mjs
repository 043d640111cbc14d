// One license (route /licenses/:id): every field, its metadata as JSON text, its devices (the
// bound HWIDs, each a machine) with remove-one, its entitlements, and every action the API has.
import {
  html, useState, Page, DataTable, Field, Form, Modal, TextArea, ErrorBox, Badge, useLoad, confirm, act, notice,
  fmtDate, fmtValue, CopyButton,
} from '../kit.mjs';
import { api } from '../api.mjs';
import { navigate } from '../app.mjs';
import { BanDialog, ExtendDialog, effectiveStatus, expiryText, fmtDuration, canExtend } from './licenses.mjs';

const enc = encodeURIComponent;

// A datetime-local value (UTC) from an ISO time, and back.
function toLocalInput(ts) {
  return ts ? new Date(ts).toISOString().slice(0, 16) : '';
}

function EditDialog({ license, metadata, onClose, onDone }) {
  const [note, setNote] = useState(license.note ?? '');
  const [level, setLevel] = useState(String(license.level));
  const [hwidLimit, setHwidLimit] = useState(String(license.hwid_limit));
  const [ipLimit, setIpLimit] = useState(String(license.ip_limit));
  const [expires, setExpires] = useState(toLocalInput(license.expires_at));
  const [meta, setMeta] = useState(JSON.stringify(metadata ?? {}, null, 2));
  const submit = async () => {
    const body = {};
    if (note !== (license.note ?? '')) body.note = note;
    if (Number(level) !== license.level) body.level = Number(level);
    if (Number(hwidLimit) !== license.hwid_limit) body.hwid_limit = Number(hwidLimit);
    if (Number(ipLimit) !== license.ip_limit) body.ip_limit = Number(ipLimit);
    if (expires !== toLocalInput(license.expires_at)) body.expires_at = expires ? new Date(`${expires}Z`).toISOString() : null;
    let parsed;
    try { parsed = JSON.parse(meta || '{}'); } catch (e) { throw new Error(`Metadata is not JSON: ${e.message}`); }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('Metadata must be a JSON object.');
    if (JSON.stringify(parsed) !== JSON.stringify(metadata ?? {})) body.metadata = parsed;
    if (Object.keys(body).length === 0) { onClose(); return; }
    await api.patch(`/v1/licenses/${enc(license.id)}`, body);
    notice(`Saved ${license.key}.`);
    onDone();
  };
  return html`<${Modal} title=${`Edit ${license.key}`} onClose=${onClose} wide>
    <${Form} className="grid2" onSubmit=${submit}>
      <${Field} label="Note" name="note" value=${note} onInput=${setNote} maxlength="1000" autocomplete="off" />
      <${Field} label="Level" name="level" type="number" min="0" max="1000000" step="1" value=${level} onInput=${setLevel} required />
      <${Field} label="HWID limit" name="hwid_limit" type="number" min="0" max="10000" step="1" value=${hwidLimit}
        onInput=${setHwidLimit} hint="0: any number" required />
      <${Field} label="IP limit" name="ip_limit" type="number" min="0" max="10000" step="1" value=${ipLimit}
        onInput=${setIpLimit} hint="0: any number" required />
      <${Field} label="Expires at (UTC)" name="expires_at" type="datetime-local" value=${expires} onInput=${setExpires}
        hint="Empty: never expires" />
      <div class="span2"><${TextArea} label="Metadata (JSON object)" name="metadata" value=${meta} onInput=${setMeta}
        class="mono" rows="6" spellcheck=${false} /></div>
    <//>
  <//>`;
}

function Facts({ l, appName }) {
  const t = l.traits ?? {};
  const rows = [
    ['Key', html`<span class="mono">${l.key}</span> <${CopyButton} text=${l.key} label="Copy key" />`],
    ['App', html`<a href=${`#/apps/${enc(l.app_id)}`}>${appName ?? l.app_id}</a>`],
    ['Status', html`<${Badge} value=${effectiveStatus(l)} />${l.ban_reason ? html` <span class="muted">${l.ban_reason}</span>` : null}`],
    ['Type', l.license_type],
    ['Level', l.level],
    ['Note', l.note || '—'],
    ['Created', fmtDate(l.created_at)],
    ['First used', fmtDate(l.used_at)],
    ['Expires', l.expires_at ? fmtDate(l.expires_at) : expiryText(l)],
    ['Validity from first use', l.duration_secs ? fmtDuration(l.duration_secs) : '—'],
    ['HWID limit', l.hwid_limit || 'any'],
    ['IP limit', l.ip_limit || 'any'],
    ['Uses', l.max_uses ? `${l.uses} of ${l.max_uses}` : String(l.uses)],
    ['Used by', l.used_by || '—'],
    ['Validations', l.validation_count],
    ['Last validated', fmtDate(l.last_validated_at)],
    ['IPs seen', l.ips.length ? html`<span class="mono">${l.ips.join(', ')}</span>` : '—'],
    ['Policy', html`<span class="mono">${l.policy_id}</span>`],
    ['Owner', l.owner_id ? html`<span class="mono">${l.owner_id}</span>` : '—'],
    ['Premium', fmtValue(t.premium)],
    ['HWID check', fmtValue(t.hwid_check)],
    ['One-time use', fmtValue(t.one_time_use)],
    ['Discord id', t.discord_id || '—'],
    ['Provider', t.provider_id ?? '—'],
    ['Last HWID reset', fmtDate(t.hwid_reset_at)],
    ['Numeric id', t.num_id ?? '—'],
    ['License id', html`<span class="mono">${l.id}</span>`],
  ];
  return html`<div class="panel"><dl class="kv">
    ${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}
  </dl></div>`;
}

export default function LicensePage({ params }) {
  const id = params.id;
  const lic = useLoad(() => api.get(`/v1/licenses/${enc(id)}`), [id]);
  const machines = useLoad(() => api.get(`/v1/licenses/${enc(id)}/machines`).then((r) => r.items), [id]);
  const ents = useLoad(() => api.get(`/v1/licenses/${enc(id)}/entitlements`).then((r) => r.items), [id]);
  const l = lic.data;
  const app = useLoad(() => (l ? api.get(`/v1/apps/${enc(l.app_id)}`) : null), [l?.app_id]);
  const [dialog, setDialog] = useState(null);
  const reload = () => { lic.reload(); machines.reload(); };
  const done = () => { setDialog(null); reload(); };

  // Runs a POST action on the license, after a confirmation when `ask` is given.
  const action = async (path, okText, ask, confirmLabel) => {
    if (ask && !await confirm(ask, { confirmLabel })) return;
    if (await act(() => api.post(`/v1/licenses/${enc(id)}/${path}`), okText) !== undefined) reload();
  };
  const remove = async () => {
    if (!await confirm(`Delete ${l.key} for good? It stops validating at once.`, { confirmLabel: 'Delete' })) return;
    if (await act(() => api.del(`/v1/licenses/${enc(id)}`), `Deleted ${l.key}.`) !== undefined) navigate('/licenses');
  };
  const unbind = async (m) => {
    if (!await confirm(`Unbind HWID ${m.fingerprint} from ${l.key}? The device can bind again on its next validation if a slot is free.`,
      { confirmLabel: 'Remove' })) return;
    if (await act(() => api.del(`/v1/licenses/${enc(id)}/hwids/${enc(m.fingerprint)}`), `Removed HWID ${m.fingerprint}.`) !== undefined) reload();
  };

  if (lic.error) {
    return html`<${Page} title="License"><${ErrorBox} error=${lic.error} /><p><a href="#/licenses">Back to licenses</a></p><//>`;
  }
  if (!l) return html`<${Page} title="License"><p class="muted" role="status">Loading…</p><//>`;

  const revoked = l.status === 'revoked';
  const deviceColumns = [
    { key: 'fingerprint', label: 'HWID', render: (m) => html`<span class="mono">${m.fingerprint}</span>` },
    { key: 'name', label: 'Device', render: (m) => [m.name, m.hostname, m.platform].filter(Boolean).join(' · ') || '—' },
    { key: 'ip', label: 'IP', className: 'nowrap', render: (m) => (m.ip ? html`<span class="mono">${m.ip}</span>` : '—') },
    { key: 'bound_by', label: 'Bound by' },
    { key: 'created_at', label: 'Bound', className: 'nowrap', render: (m) => fmtDate(m.created_at) },
    { key: 'last_heartbeat_at', label: 'Last heartbeat', className: 'nowrap', render: (m) => fmtDate(m.last_heartbeat_at) },
    {
      key: 'actions', label: 'Actions',
      render: (m) => html`<div class="row-actions"><button type="button" class="small"
        aria-label=${`Remove HWID ${m.fingerprint}`} onClick=${() => unbind(m)}>Remove</button></div>`,
    },
  ];
  const entColumns = [
    { key: 'code', label: 'Code', render: (e) => html`<span class="mono">${e.code}</span>` },
    { key: 'name', label: 'Name' },
    { key: 'created_at', label: 'Created', render: (e) => fmtDate(e.created_at) },
  ];
  return html`<${Page} title=${`License ${l.key}`} actions=${html`
      <button type="button" onClick=${() => setDialog('edit')}>Edit</button>
      ${l.status === 'banned'
        ? html`<button type="button" onClick=${() => action('unban', `Unbanned ${l.key}.`)}>Unban</button>`
        : !revoked ? html`<button type="button" onClick=${() => setDialog('ban')}>Ban</button>` : null}
      ${canExtend(l) ? html`<button type="button" onClick=${() => setDialog('extend')}>Extend</button>` : null}
      <button type="button" class="danger" onClick=${remove}>Delete</button>`}>
    <p><a href="#/licenses">← All licenses</a></p>
    <${Facts} l=${l} appName=${app.data?.name} />

    <h2>Devices (bound HWIDs)</h2>
    <p class="muted">${l.hwids.length} of ${l.hwid_limit || 'any number of'} HWIDs bound. Removing one frees its slot;
      every validator forgets the binding within a second.</p>
    <${ErrorBox} error=${machines.error} />
    <${DataTable} caption="Devices" columns=${deviceColumns} rows=${machines.data} loading=${machines.loading}
      rowKey=${(m) => m.id} empty="No HWID is bound: the next validation binds one." />
    <div class="form-actions start">
      <button type="button" disabled=${l.hwids.length === 0}
        onClick=${() => action('reset-hwids', `HWIDs of ${l.key} reset.`, `Unbind every HWID of ${l.key}?`, 'Reset HWIDs')}>Reset HWIDs</button>
      <button type="button" disabled=${l.hwids.length === 0 && l.ips.length === 0}
        onClick=${() => action('clear', `HWIDs and IPs of ${l.key} cleared.`, `Forget every HWID and IP ${l.key} has seen?`, 'Clear')}>Clear HWIDs and IPs</button>
    </div>

    <h2>Entitlements</h2>
    <${ErrorBox} error=${ents.error} />
    <${DataTable} caption="Entitlements" columns=${entColumns} rows=${ents.data} loading=${ents.loading}
      empty="None attached to this license (its policy's apply too)." />

    <h2>Metadata</h2>
    <pre class="json" aria-label="Metadata">${JSON.stringify(l.metadata ?? {}, null, 2)}</pre>

    <h2>State</h2>
    <div class="panel">
      <p class="muted">Disable switches a license off until it is enabled again. Revoke is permanent. Rotate gives it a new key
        (<span class="mono">${app.data?.license_prefix ?? 'LIC'}-XXXXXX-XXXXXX</span>) and refuses the old one at once.</p>
      <div class="form-actions start">
        ${l.status === 'disabled'
          ? html`<button type="button" onClick=${() => action('enable', `Enabled ${l.key}.`)}>Enable</button>`
          : html`<button type="button" disabled=${revoked}
              onClick=${() => action('disable', `Disabled ${l.key}.`, `Disable ${l.key}? It is refused until enabled again.`, 'Disable')}>Disable</button>`}
        <button type="button" disabled=${revoked}
          onClick=${() => action('rotate', `New key for this license.`, `Give this license a new key? ${l.key} stops validating at once.`, 'Rotate key')}>Rotate key</button>
        <button type="button" class="danger" disabled=${revoked}
          onClick=${() => action('revoke', `Revoked ${l.key}.`, `Revoke ${l.key} for good? This cannot be undone.`, 'Revoke')}>Revoke</button>
      </div>
    </div>
    ${dialog === 'ban' ? html`<${BanDialog} license=${l} onClose=${() => setDialog(null)} onDone=${done} />` : null}
    ${dialog === 'extend' ? html`<${ExtendDialog} license=${l} onClose=${() => setDialog(null)} onDone=${done} />` : null}
    ${dialog === 'edit' ? html`<${EditDialog} license=${l} metadata=${l.metadata} onClose=${() => setDialog(null)} onDone=${done} />` : null}
  <//>`;
}

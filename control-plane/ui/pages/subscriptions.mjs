// Subscription tiers of an app (KeyAuth's subscriptions): what end users hold, and which tier a
// license of a given level grants. GET/POST /v1/apps/{id}/subscriptions, PATCH/DELETE
// /v1/subscriptions/{id}; the app lives in the hash query (#/subscriptions?app=…).
import {
  html, useState, Page, DataTable, Field, Form, Modal, ErrorBox, Toolbar, useLoad, confirm, act, notice, fmtDate,
} from '../kit.mjs';
import { api } from '../api.mjs';
import { AppPicker, NoApps } from './app-scope.mjs';

const PATH = '/subscriptions';
const enc = encodeURIComponent;

function CreateForm({ app, onDone }) {
  const [name, setName] = useState('');
  const [level, setLevel] = useState('1');
  const [days, setDays] = useState('30');
  const submit = async () => {
    const s = await api.post(`/v1/apps/${enc(app)}/subscriptions`, {
      name: name.trim(), level: Number(level), duration_days: Number(days),
    });
    notice(`Created the tier ${s.name}.`);
    setName('');
    onDone();
  };
  return html`<div class="panel">
    <h2>Add a tier</h2>
    <${Form} className="inline" submitLabel="Add" busyLabel="Adding…" onSubmit=${submit}>
      <${Field} label="Name" name="name" value=${name} onInput=${setName} required maxlength="64" autocomplete="off" />
      <${Field} label="Level" name="level" type="number" min="0" max="1000000" step="1" value=${level} onInput=${setLevel} required />
      <${Field} label="Default days" name="days" type="number" min="1" max="36600" step="1" value=${days} onInput=${setDays} required />
    <//>
    <p class="muted form-note">A license of level N grants the tier of level N. A tier's name cannot change later: users hold
      their subscriptions by it.</p>
  </div>`;
}

function EditDialog({ tier, onClose, onDone }) {
  const [level, setLevel] = useState(String(tier.level));
  const [days, setDays] = useState(String(tier.duration_days));
  const submit = async () => {
    await api.patch(`/v1/subscriptions/${enc(tier.id)}`, { level: Number(level), duration_days: Number(days) });
    notice(`Saved ${tier.name}.`);
    onDone();
  };
  return html`<${Modal} title=${`Tier ${tier.name}`} onClose=${onClose}>
    <p class="muted">What users already hold keeps its level and expiry.</p>
    <${Form} submitLabel="Save" busyLabel="Saving…" onSubmit=${submit}>
      <${Field} label="Level" name="edit-level" type="number" min="0" max="1000000" step="1" value=${level} onInput=${setLevel} required />
      <${Field} label="Default days" name="edit-days" type="number" min="1" max="36600" step="1" value=${days} onInput=${setDays} required />
    <//>
  <//>`;
}

export default function SubscriptionsPage({ query }) {
  const app = query.app ?? '';
  const list = useLoad(() => (app ? api.get(`/v1/apps/${enc(app)}/subscriptions`).then((r) => r.items) : null), [app]);
  const [editing, setEditing] = useState(null);
  const remove = async (t) => {
    if (!await confirm(`Delete the tier ${t.name}? Users keep what they hold of it until it expires; licenses of level ${t.level} no longer grant it.`,
      { confirmLabel: 'Delete' })) return;
    if (await act(() => api.del(`/v1/subscriptions/${enc(t.id)}`), `Deleted ${t.name}.`) !== undefined) list.reload();
  };
  const columns = [
    { key: 'name', label: 'Name' },
    { key: 'level', label: 'Level' },
    { key: 'duration_days', label: 'Default days' },
    { key: 'created_at', label: 'Created', render: (t) => fmtDate(t.created_at) },
    {
      key: 'actions', label: 'Actions',
      render: (t) => html`<div class="row-actions">
        <button type="button" class="small" aria-label=${`Edit ${t.name}`} onClick=${() => setEditing(t)}>Edit</button>
        <button type="button" class="small" aria-label=${`Delete ${t.name}`} onClick=${() => remove(t)}>Delete</button>
      </div>`,
    },
  ];
  return html`<${Page} title="Subscriptions">
    <p class="muted">Tiers of an app's end users, lowest level first. Every app starts with a <code>default</code> tier.</p>
    <${Toolbar}><${AppPicker} path=${PATH} query=${query} /><//>
    <${NoApps} />
    ${app ? html`
      <${CreateForm} app=${app} onDone=${() => list.reload()} />
      <${ErrorBox} error=${list.error} />
      <${DataTable} caption="Subscription tiers" columns=${columns} rows=${list.data} loading=${list.loading} empty="No tiers." />` : null}
    ${editing ? html`<${EditDialog} tier=${editing} onClose=${() => setEditing(null)}
      onDone=${() => { setEditing(null); list.reload(); }} />` : null}
  <//>`;
}

// An app's global variables (KeyAuth's `var`): small values its clients read. GET/POST
// /v1/apps/{id}/variables, DELETE /v1/variables/{id}. A user's own variables are in its detail
// dialog on the End users page.
import {
  html, useState, useRef, Page, DataTable, Field, TextArea, Form, ErrorBox, Toolbar, useLoad, confirm, act, notice, fmtDate,
} from '../kit.mjs';
import { api } from '../api.mjs';
import { AppPicker, NoApps } from './app-scope.mjs';

const PATH = '/variables';
const enc = encodeURIComponent;

function Value({ text }) {
  if (!text) return html`<span class="muted">(empty)</span>`;
  if (text.length <= 80 && !text.includes('\n')) return html`<span class="mono">${text}</span>`;
  return html`<details class="details"><summary class="mono">${text.slice(0, 40)}…</summary><pre class="json">${text}</pre></details>`;
}

export default function VariablesPage({ query }) {
  const app = query.app ?? '';
  const list = useLoad(() => (app ? api.get(`/v1/apps/${enc(app)}/variables`).then((r) => r.items) : null), [app]);
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const form = useRef(null);
  const save = async () => {
    const v = await api.post(`/v1/apps/${enc(app)}/variables`, { key: key.trim(), value });
    notice(`Saved ${v.key}: clients read the new value within a second.`);
    setKey('');
    setValue('');
    list.reload();
  };
  const edit = (v) => {
    setKey(v.key);
    setValue(v.value);
    form.current?.querySelector('textarea')?.focus();
  };
  const remove = async (v) => {
    if (!await confirm(`Delete the variable ${v.key}? Clients asking for it get "Variable not found".`, { confirmLabel: 'Delete' })) return;
    if (await act(() => api.del(`/v1/variables/${enc(v.id)}`), `Deleted ${v.key}.`) !== undefined) list.reload();
  };
  const columns = [
    { key: 'key', label: 'Key', render: (v) => html`<span class="mono">${v.key}</span>` },
    { key: 'value', label: 'Value', className: 'clip', render: (v) => html`<${Value} text=${v.value} />` },
    { key: 'updated_at', label: 'Updated', render: (v) => fmtDate(v.updated_at) },
    {
      key: 'actions', label: 'Actions',
      render: (v) => html`<div class="row-actions">
        <button type="button" class="small" aria-label=${`Edit ${v.key}`} onClick=${() => edit(v)}>Edit</button>
        <button type="button" class="small" aria-label=${`Delete ${v.key}`} onClick=${() => remove(v)}>Delete</button>
      </div>`,
    },
  ];
  return html`<${Page} title="Variables">
    <p class="muted">Global variables of an app, served to its clients (<code>var</code>) after they log in. Per-user variables
      are on each user's page under <a href="#/users">End users</a>.</p>
    <${Toolbar}><${AppPicker} path=${PATH} query=${query} /><//>
    <${NoApps} />
    ${app ? html`
      <div class="panel" ref=${form}>
        <h2>Set a variable</h2>
        <${Form} submitLabel="Save" busyLabel="Saving…" onSubmit=${save}>
          <${Field} label="Key" name="key" value=${key} onInput=${setKey} required maxlength="128" autocomplete="off" spellcheck=${false}
            hint="An existing key is replaced." />
          <${TextArea} label="Value" name="value" value=${value} onInput=${setValue} spellcheck=${false} />
        <//>
      </div>
      <${ErrorBox} error=${list.error} />
      <${DataTable} caption="Global variables" columns=${columns} rows=${list.data} loading=${list.loading} empty="No variables yet." />` : null}
  <//>`;
}

// One app (route /apps/:id): its credentials and a client snippet, every setting PATCH
// /v1/apps/{id} takes, its secret reset (shown once), its Panda service keys and keyless HWIDs,
// and its deletion.
import {
  html, useState, useEffect, Page, DataTable, Field, Select, Check, TextArea, Form, Modal, ErrorBox, Badge,
  useLoad, confirm, act, notice, CopyOnce, CopyButton, fmtDate,
} from '../kit.mjs';
import { api } from '../api.mjs';
import { navigate, link } from '../app.mjs';

const enc = encodeURIComponent;
const AUTH_MODES = ['hwidonly', 'playerid', 'hwidplayer', 'fingerprint', 'iponly'].map((m) => [m, m]);

// Each setting: [field, label, kind, hint?]. `kind` says how the form edits it and how it goes
// back to the API: text ('' clears a nullable one), number, check, lines, list (comma-separated),
// json, or a select's options.
const GROUPS = [
  ['General', [
    ['name', 'Name', 'text', 'What KeyAuth clients send as the app name'],
    ['version', 'Version', 'text', 'Clients with another version are sent to the download URL'],
    ['download_url', 'Download URL', 'text', 'Where an outdated client is sent (http or https); empty: none'],
    ['description', 'Description', 'textarea'],
    ['license_prefix', 'Rotated key prefix', 'text', 'A rotated license gets PREFIX-XXXXXX-XXXXXX'],
    ['paused', 'Paused: every validation is refused', 'check'],
  ]],
  ['Client checks', [
    ['hwid_lock', 'HWID lock: licenses bind up to their HWID limit', 'check'],
    ['force_hwid', 'Logins must send a HWID', 'check'],
    ['min_hwid_len', 'Minimum HWID length', 'number'],
    ['anti_vpn', 'Refuse VPN addresses', 'check'],
    ['hash_check', 'Check the program hash', 'check'],
    ['program_hashes', 'Accepted program hashes (one a line)', 'lines', 'Empty: learned from the next client'],
    ['force_encryption', 'Refuse 1.2 init without an enckey', 'check'],
    ['session_secs', 'Session lifetime (seconds)', 'number'],
    ['min_username_len', 'Minimum username length', 'number'],
    ['signing_key_id', 'Signing key (KeyAuth 1.3)', 'signing'],
  ]],
  ['Messages', [
    ['messages', 'Custom client messages (JSON object: name → text)', 'json',
      'e.g. {"keynotfound": "Unknown key", "hwidmismatch": "Ask support for a reset"}; the API lists the known names if one is wrong'],
  ]],
  ['Key system', [
    ['service_id', 'Service id (Panda)', 'text', 'Letters, digits, _ or -; empty: none'],
    ['keyless_mode', 'Keyless mode: validations pass without a key', 'check'],
    ['keyless_ttl_secs', 'Keyless entry lifetime (seconds)', 'number'],
    ['auth_mode', 'Auth mode', AUTH_MODES],
    ['get_key_url', 'Get-key URL', 'text', 'Where end users get a key; empty: none'],
    ['hwid_reset_cooldown_secs', 'HWID reset cooldown (seconds)', 'number', '0: none'],
    ['self_hwid_reset', 'End users may reset their own HWIDs', 'check'],
  ]],
  ['Product', [
    ['code', 'Product code', 'text', 'Empty: none'],
    ['url', 'Product URL', 'text', 'Empty: none'],
    ['platforms', 'Platforms (comma-separated)', 'list'],
    ['metadata', 'Metadata (JSON object)', 'json'],
  ]],
];
const FIELDS = GROUPS.flatMap(([, fs]) => fs);
const NULLABLE = new Set(['description', 'service_id', 'get_key_url', 'code', 'url']);

// The app's value of a setting (key-system ones live under `key_system`).
function current(app, field) {
  return field in app ? app[field] : app.key_system?.[field];
}

// The form's value: what an input shows.
function toForm(kind, v) {
  if (kind === 'check') return !!v;
  if (kind === 'lines') return (v ?? []).join('\n');
  if (kind === 'list') return (v ?? []).join(', ');
  if (kind === 'json') return JSON.stringify(v ?? {}, null, 2);
  return v === null || v === undefined ? '' : String(v);
}

// The API's value of a form value, or throws a message naming the setting.
function toApi(field, label, kind, v) {
  if (kind === 'check') return v;
  if (kind === 'number') {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n)) throw new Error(`${label}: a whole number is needed.`);
    return n;
  }
  if (kind === 'lines') return v.split('\n').map((s) => s.trim()).filter(Boolean);
  if (kind === 'list') return v.split(',').map((s) => s.trim()).filter(Boolean);
  if (kind === 'json') {
    let parsed;
    try { parsed = JSON.parse(v.trim() || '{}'); } catch (e) { throw new Error(`${label}: not JSON (${e.message}).`); }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${label}: a JSON object is needed.`);
    return parsed;
  }
  if (kind === 'signing') return v || null;
  const t = v.trim();
  return NULLABLE.has(field) && t === '' ? null : t;
}

function Settings({ app, signingKeys, onSaved }) {
  const initial = () => Object.fromEntries(FIELDS.map(([f, , kind]) => [f, toForm(kind, current(app, f))]));
  const [form, setForm] = useState(initial);
  useEffect(() => setForm(initial()), [app]);
  const set = (f) => (v) => setForm((s) => ({ ...s, [f]: v }));
  const submit = async () => {
    const patch = {};
    for (const [f, label, kind] of FIELDS) {
      const was = toApi(f, label, kind, toForm(kind, current(app, f)));
      const now = toApi(f, label, kind, form[f]);
      if (JSON.stringify(was) !== JSON.stringify(now)) patch[f] = f === 'download_url' && now === null ? '' : now;
    }
    if (Object.keys(patch).length === 0) { notice('Nothing changed.'); return; }
    const saved = await api.patch(`/v1/apps/${enc(app.id)}`, patch);
    notice(`Saved ${Object.keys(patch).length} ${Object.keys(patch).length === 1 ? 'setting' : 'settings'}.`);
    onSaved(saved);
  };
  const input = ([f, label, kind, hint]) => {
    if (kind === 'check') return html`<${Check} key=${f} label=${label} name=${f} checked=${form[f]} onChange=${set(f)} />`;
    if (Array.isArray(kind)) return html`<${Select} key=${f} label=${label} name=${f} value=${form[f]} onChange=${set(f)} options=${kind} />`;
    if (kind === 'signing') {
      const options = [['', 'The deployment\u2019s primary key'],
        ...signingKeys.map((k) => [k.id, `${k.public_key.slice(0, 16)}…${k.is_primary ? ' (primary)' : ''}${k.retired_at ? ' (retired)' : ''}`])];
      return html`<${Select} key=${f} label=${label} name=${f} value=${form[f]} onChange=${set(f)} options=${options} />`;
    }
    if (['textarea', 'lines', 'json'].includes(kind)) {
      return html`<div class="span2" key=${f}><${TextArea} label=${label} name=${f} value=${form[f]} onInput=${set(f)}
        rows=${kind === 'json' ? 5 : 3} class=${kind === 'textarea' ? '' : 'mono'} spellcheck=${kind === 'textarea'} />
        ${hint ? html`<small class="muted">${hint}</small>` : null}</div>`;
    }
    return html`<${Field} key=${f} label=${label} name=${f} type=${kind === 'number' ? 'number' : 'text'} value=${form[f]}
      onInput=${set(f)} hint=${hint} autocomplete="off" required=${f === 'name' || f === 'version'} />`;
  };
  return html`<${Form} className="settings" submitLabel="Save settings" busyLabel="Saving…" onSubmit=${submit}>
    ${GROUPS.map(([title, fields]) => html`<fieldset class="group" key=${title}>
      <legend>${title}</legend>
      <div class="form grid2 nested">${fields.map(input)}</div>
    </fieldset>`)}
  <//>`;
}

// What a client needs: app id, owner id, name, version and secret, with snippets to paste.
function Credentials({ app, ownerId, onReset }) {
  const [shown, setShown] = useState(false);
  const [validator, setValidator] = useState(`${location.protocol}//${location.hostname}:8081`);
  const v = validator.replace(/\/+$/, '');
  const keyauth = [
    '// KeyAuth SDKs (C++ shown; other languages take the same five values)',
    `std::string name = "${app.name}";`,
    `std::string ownerid = "${ownerId ?? ''}";`,
    `std::string secret = "${shown ? app.secret : '<the secret above>'}"; // 1.2 only`,
    `std::string version = "${app.version}";`,
    `std::string url = "${v}/api/1.2/"; // or /api/1.3/ (Ed25519-signed)`,
  ].join('\n');
  const curl = `curl -s -X POST ${v}/v1/validate -H 'content-type: application/json' \\\n  -d '{"app":"${app.id}","key":"<a license key>","hwid":"<the device id>"}'`;
  return html`<div class="panel">
    <dl class="kv">
      <dt>App id</dt><dd><span class="mono">${app.id}</span> <${CopyButton} text=${app.id} label="Copy app id" /></dd>
      <dt>Owner id</dt><dd><span class="mono">${ownerId ?? '…'}</span> ${ownerId ? html`<${CopyButton} text=${ownerId} label="Copy owner id" />` : null}</dd>
      <dt>Name</dt><dd>${app.name}</dd>
      <dt>Version</dt><dd>${app.version}</dd>
      <dt>Secret</dt><dd><div class="secret-row">
        <span class="mono">${shown ? app.secret : '•'.repeat(16)}</span>
        <button type="button" class="small" aria-pressed=${shown} onClick=${() => setShown(!shown)}>${shown ? 'Hide secret' : 'Show secret'}</button>
        <${CopyButton} text=${app.secret} label="Copy secret" />
        <button type="button" class="small danger" onClick=${onReset}>Reset secret</button>
      </div></dd>
    </dl>
    <${Field} label="Validator URL" name="validator-url" value=${validator} onInput=${setValidator} autocomplete="off"
      hint="Where your validators answer (not stored; only used in the snippets below)" />
    <h3>KeyAuth client</h3>
    <pre class="snippet" aria-label="KeyAuth client snippet">${keyauth}</pre>
    <${CopyButton} text=${keyauth.replace('<the secret above>', app.secret)} label="Copy KeyAuth snippet" />
    <h3>Native validation (curl)</h3>
    <pre class="snippet" aria-label="curl snippet">${curl}</pre>
    <${CopyButton} text=${curl} label="Copy curl" />
  </div>`;
}

function ServiceKeys({ app }) {
  const keys = useLoad(() => api.get(`/v1/apps/${enc(app.id)}/service-keys`).then((r) => r.items), [app.id]);
  const [name, setName] = useState('');
  const [made, setMade] = useState(null);
  const revoke = async (k) => {
    if (!await confirm(`Revoke the service key "${k.name}" (${k.prefix}…)? Bots using it are refused at once.`, { confirmLabel: 'Revoke' })) return;
    if (await act(() => api.del(`/v1/apps/${enc(app.id)}/service-keys/${enc(k.id)}`), `Revoked ${k.name}.`) !== undefined) keys.reload();
  };
  const columns = [
    { key: 'name', label: 'Name' },
    { key: 'prefix', label: 'Prefix', render: (k) => html`<span class="mono">${k.prefix}…</span>` },
    { key: 'created_at', label: 'Created', render: (k) => fmtDate(k.created_at) },
    { key: 'last_used_at', label: 'Last used', render: (k) => fmtDate(k.last_used_at) },
    { key: 'state', label: 'State', render: (k) => html`<${Badge} value=${k.revoked_at ? 'revoked' : 'active'} />` },
    {
      key: 'actions', label: 'Actions',
      render: (k) => (k.revoked_at ? '—' : html`<div class="row-actions"><button type="button" class="small"
        aria-label=${`Revoke service key ${k.name}`} onClick=${() => revoke(k)}>Revoke</button></div>`),
    },
  ];
  return html`<section aria-labelledby="svc-keys">
    <h2 id="svc-keys">Service keys (Panda <span class="mono">apiKey</span>)</h2>
    <${ErrorBox} error=${keys.error} />
    <${DataTable} caption="Service keys" columns=${columns} rows=${keys.data} loading=${keys.loading} empty="No service keys." />
    <div class="panel">
      <${Form} className="inline" submitLabel="Create service key" busyLabel="Creating…" onSubmit=${async () => {
        const r = await api.post(`/v1/apps/${enc(app.id)}/service-keys`, { name: name.trim() });
        setName('');
        setMade(r);
        keys.reload();
      }}>
        <${Field} label="Service key name" name="svc-name" value=${name} onInput=${setName} required maxlength="100" autocomplete="off" />
      <//>
    </div>
    ${made ? html`<${Modal} title="Service key created" onClose=${() => setMade(null)}>
      <${CopyOnce} label=${`Service key "${made.name}"`} secret=${made.key} />
    <//>` : null}
  </section>`;
}

function Keyless({ app }) {
  const list = useLoad(() => api.get(`/v1/apps/${enc(app.id)}/keyless`).then((r) => r.items), [app.id]);
  const [hwid, setHwid] = useState('');
  const [premium, setPremium] = useState(false);
  const remove = async (e) => {
    if (!await confirm(`Remove the keyless entry of ${e.hwid}? It needs a key again.`, { confirmLabel: 'Remove' })) return;
    if (await act(() => api.del(`/v1/apps/${enc(app.id)}/keyless/${enc(e.hwid)}`), `Removed ${e.hwid}.`) !== undefined) list.reload();
  };
  const columns = [
    { key: 'hwid', label: 'HWID', render: (e) => html`<span class="mono">${e.hwid}</span>` },
    { key: 'premium', label: 'Premium', render: (e) => (e.premium ? 'yes' : 'no') },
    { key: 'expires_at', label: 'Expires', render: (e) => fmtDate(e.expires_at) },
    { key: 'created_at', label: 'Created', render: (e) => fmtDate(e.created_at) },
    {
      key: 'actions', label: 'Actions',
      render: (e) => html`<div class="row-actions"><button type="button" class="small" aria-label=${`Remove keyless ${e.hwid}`}
        onClick=${() => remove(e)}>Remove</button></div>`,
    },
  ];
  return html`<section aria-labelledby="keyless">
    <h2 id="keyless">Keyless HWIDs</h2>
    <p class="muted">These HWIDs validate without a key until their entry expires${app.key_system?.keyless_mode ? ' (keyless mode is on: every HWID does)' : ''}.</p>
    <${ErrorBox} error=${list.error} />
    <${DataTable} caption="Keyless HWIDs" columns=${columns} rows=${list.data} loading=${list.loading} empty="No keyless entries." />
    <div class="panel">
      <${Form} className="inline" submitLabel="Add keyless HWID" busyLabel="Adding…" onSubmit=${async () => {
        await api.put(`/v1/apps/${enc(app.id)}/keyless`, { hwid: hwid.trim(), premium });
        notice(`${hwid.trim()} validates without a key.`);
        setHwid('');
        list.reload();
      }}>
        <${Field} label="Keyless HWID" name="keyless-hwid" value=${hwid} onInput=${setHwid} required maxlength="256" autocomplete="off" />
        <${Check} label="Premium" name="keyless-premium" checked=${premium} onChange=${setPremium} />
      <//>
    </div>
  </section>`;
}

export default function AppPage({ params }) {
  const id = params.id;
  const app = useLoad(() => api.get(`/v1/apps/${enc(id)}`), [id]);
  const account = useLoad(() => api.get('/v1/account'), []);
  const signing = useLoad(() => api.get('/v1/signing-keys').then((r) => r.keys ?? []).catch(() => []), []);
  const count = useLoad(() => api.get('/v1/licenses/count', { app_id: id }), [id]);
  const [secret, setSecret] = useState(null);
  const a = app.data;

  const resetSecret = async () => {
    if (!await confirm(`Reset the secret of ${a.name}? Clients built with the old one (KeyAuth 1.2) stop working until updated.`,
      { confirmLabel: 'Reset secret' })) return;
    const r = await act(() => api.post(`/v1/apps/${enc(id)}/reset-secret`));
    if (r) { setSecret(r.secret); app.reload(); }
  };
  const remove = async () => {
    const n = count.data?.total ?? 0;
    if (!await confirm(`Delete ${a.name} and its ${n} ${n === 1 ? 'license' : 'licenses'}, users and settings? This cannot be undone.`,
      { confirmLabel: 'Delete app' })) return;
    if (await act(() => api.del(`/v1/apps/${enc(id)}`), `Deleted ${a.name}.`) !== undefined) navigate('/apps');
  };

  if (app.error) return html`<${Page} title="App"><${ErrorBox} error=${app.error} /><p><a href="#/apps">Back to apps</a></p><//>`;
  if (!a) return html`<${Page} title="App"><p class="muted" role="status">Loading…</p><//>`;
  return html`<${Page} title=${a.name} actions=${html`<a class="button" href=${link('/licenses', { app: a.id })}>Licenses (${count.data?.total ?? '…'})</a>`}>
    <p><a href="#/apps">← All apps</a> ${a.paused ? html`<${Badge} value="paused" />` : null}</p>
    <h2>Credentials</h2>
    <${ErrorBox} error=${account.error} />
    <${Credentials} app=${a} ownerId=${account.data?.public_id} onReset=${resetSecret} />
    <h2>Settings</h2>
    <${Settings} app=${a} signingKeys=${signing.data ?? []} onSaved=${() => app.reload()} />
    <${ServiceKeys} app=${a} />
    <${Keyless} app=${a} />
    <h2>Danger zone</h2>
    <div class="panel danger-zone">
      <p>Deleting the app deletes its licenses, end users, sessions and settings.</p>
      <button type="button" class="danger" onClick=${remove}>Delete app</button>
    </div>
    ${secret ? html`<${Modal} title="New app secret" onClose=${() => setSecret(null)}>
      <${CopyOnce} label=${`Secret of ${a.name}`} secret=${secret} />
    <//>` : null}
  <//>`;
}

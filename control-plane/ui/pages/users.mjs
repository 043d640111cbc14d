// End users of an app (KeyAuth's users): search, keyset pages, create, ban/unban with a reason,
// reset the HWID, add or take off subscription time, delete, and a detail dialog with the user's
// subscriptions, variables and settings. /v1/apps/{id}/users and /v1/users/{id}/…; the app and
// the search live in the hash query (#/users?app=…&search=…).
import {
  html, useState, Page, DataTable, Pager, useCursor, Field, Select, Form, Modal, ErrorBox, Toolbar, Badge,
  useLoad, confirm, act, notice, fmtDate,
} from '../kit.mjs';
import { api } from '../api.mjs';
import { AppPicker, NoApps, SearchBox, When } from './app-scope.mjs';

const PATH = '/users';
const PAGE = 50;
const MAX_DAYS = 36600;

const enc = encodeURIComponent;
const userPath = (u, tail = '') => `/v1/users/${enc(u.id)}${tail}`;
const expired = (ts) => ts && Date.parse(ts) <= Date.now();

function Subscriptions({ user }) {
  if (!user.subscriptions.length) return html`<span class="muted">none</span>`;
  return html`<div>${user.subscriptions.map((s) => html`<div key=${s.name} class="nowrap-text">
    ${s.name} <span class="sub">${expired(s.expires_at) ? 'expired ' : 'until '}${fmtDate(s.expires_at)}</span></div>`)}</div>`;
}

function CreateDialog({ app, tiers, onClose, onDone }) {
  const [f, setF] = useState({ username: '', password: '', email: '', subscription: '', days: '' });
  const set = (k) => (v) => setF((x) => ({ ...x, [k]: v }));
  const submit = async () => {
    const body = { username: f.username.trim(), password: f.password };
    if (f.email.trim()) body.email = f.email.trim();
    if (f.subscription) body.subscription = f.subscription;
    if (f.days !== '') body.days = Number(f.days);
    const u = await api.post(`/v1/apps/${enc(app)}/users`, body);
    notice(`Created ${u.username}.`);
    onDone();
  };
  return html`<${Modal} title="New end user" onClose=${onClose}>
    <${Form} submitLabel="Create" busyLabel="Creating…" onSubmit=${submit}>
      <${Field} label="Username" name="username" value=${f.username} onInput=${set('username')} required maxlength="128" autocomplete="off" />
      <${Field} label="Password" name="password" type="password" value=${f.password} onInput=${set('password')} required
        autocomplete="new-password" hint="What the user logs in with (1 to 1024 bytes)." />
      <${Field} label="E-mail" name="email" type="email" value=${f.email} onInput=${set('email')} maxlength="254" placeholder="Optional" />
      <${Select} label="Subscription" name="subscription" value=${f.subscription} onChange=${set('subscription')}
        options=${[['', 'The lowest tier'], ...(tiers ?? []).map((t) => [t.name, `${t.name} (level ${t.level}, ${t.duration_days} days)`])]} />
      <${Field} label="Days" name="days" type="number" min="1" max=${MAX_DAYS} step="1" value=${f.days} onInput=${set('days')}
        hint="Leave empty for the tier's length." />
    <//>
  <//>`;
}

function BanDialog({ user, onClose, onDone }) {
  const [reason, setReason] = useState('');
  const submit = async () => {
    await api.post(userPath(user, '/ban'), { reason: reason.trim() || null });
    notice(`Banned ${user.username}.`);
    onDone();
  };
  return html`<${Modal} title=${`Ban ${user.username}`} onClose=${onClose}>
    <p>Its logins and logged-in sessions are refused by every validator at once.</p>
    <${Form} submitLabel="Ban" busyLabel="Banning…" onSubmit=${submit}>
      <${Field} label="Reason" name="reason" value=${reason} onInput=${setReason} maxlength="500"
        placeholder="Optional; shown to the user" autocomplete="off" />
    <//>
  <//>`;
}

function TimeDialog({ user, tiers, onClose, onDone }) {
  const [mode, setMode] = useState('extend');
  const [days, setDays] = useState('30');
  const [sub, setSub] = useState('');
  const held = user.subscriptions.map((s) => s.name);
  // Time can be added to a tier the user lacks (it is granted), but only taken off what it holds.
  const names = mode === 'extend' ? [...new Set([...held, ...(tiers ?? []).map((t) => t.name)])] : held;
  const submit = async () => {
    const body = { days: Number(days) };
    if (sub) body.subscription = sub;
    await api.post(userPath(user, mode === 'extend' ? '/extend' : '/subtract'), body);
    notice(mode === 'extend' ? `Added ${days} days to ${user.username}.` : `Took ${days} days off ${user.username}.`);
    onDone();
  };
  return html`<${Modal} title=${`Subscription time of ${user.username}`} onClose=${onClose}>
    <${Form} submitLabel=${mode === 'extend' ? 'Add time' : 'Take time off'} onSubmit=${submit}>
      <${Select} label="Change" name="mode" value=${mode} onChange=${(m) => { setMode(m); setSub(''); }}
        options=${[['extend', 'Add time'], ['subtract', 'Take time off']]} />
      <${Field} label="Days" name="days" type="number" min="1" max=${MAX_DAYS} step="1" value=${days} onInput=${setDays} required />
      <${Select} label="Subscription" name="subscription" value=${sub} onChange=${setSub}
        options=${[['', held.length ? 'Every one it holds' : 'The lowest tier'], ...names.map((n) => [n, held.includes(n) ? n : `${n} (new)`])]} />
    <//>
  <//>`;
}

function Variables({ user, onChanged }) {
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const vars = user.variables ?? [];
  const save = async () => {
    await api.put(userPath(user, '/variables'), { key: key.trim(), value });
    notice(`Saved ${key.trim()}.`);
    setKey('');
    setValue('');
    onChanged();
  };
  const remove = async (v) => {
    if (!await confirm(`Delete the variable ${v.key} of ${user.username}?`, { confirmLabel: 'Delete' })) return;
    if (await act(() => api.del(userPath(user, `/variables/${enc(v.id)}`)), `Deleted ${v.key}.`) !== undefined) onChanged();
  };
  return html`<h3>Variables</h3>
    <${DataTable} caption=${`Variables of ${user.username}`} rows=${vars} empty="No variables."
      columns=${[
        { key: 'key', label: 'Key', render: (v) => html`<span class="mono">${v.key}</span>` },
        { key: 'value', label: 'Value', className: 'clip', render: (v) => html`<span class="mono">${v.value || '—'}</span>` },
        { key: 'updated_at', label: 'Updated', render: (v) => fmtDate(v.updated_at) },
        { key: 'actions', label: 'Actions', render: (v) => html`<div class="row-actions">
          <button type="button" class="small" aria-label=${`Edit ${v.key}`} onClick=${() => { setKey(v.key); setValue(v.value); }}>Edit</button>
          <button type="button" class="small" aria-label=${`Delete ${v.key}`} onClick=${() => remove(v)}>Delete</button></div>` },
      ]} />
    <div class="subform"><${Form} className="inline" submitLabel="Set variable" busyLabel="Saving…" onSubmit=${save}>
      <${Field} label="Key" name="var-key" value=${key} onInput=${setKey} required maxlength="128" autocomplete="off" spellcheck=${false} />
      <${Field} label="Value" name="var-value" value=${value} onInput=${setValue} autocomplete="off" spellcheck=${false} />
    <//></div>`;
}

function EditForm({ user, onChanged }) {
  const [username, setUsername] = useState(user.username);
  const [email, setEmail] = useState(user.email ?? '');
  const [password, setPassword] = useState('');
  const submit = async () => {
    const body = {};
    if (username.trim() !== user.username) body.username = username.trim();
    if (email.trim() !== (user.email ?? '')) body.email = email.trim() || null;
    if (password) body.password = password;
    if (!Object.keys(body).length) throw new Error('Nothing changed.');
    if (body.username && !await confirm(`Rename ${user.username} to ${body.username}? Its sessions end.`, { confirmLabel: 'Rename', danger: false })) return;
    await api.patch(userPath(user), body);
    setPassword('');
    notice(`Saved ${body.username ?? user.username}.`);
    onChanged();
  };
  return html`<h3>Settings</h3>
    <${Form} className="grid2" submitLabel="Save changes" busyLabel="Saving…" onSubmit=${submit}>
      <${Field} label="Username" name="edit-username" value=${username} onInput=${setUsername} required maxlength="128" autocomplete="off" />
      <${Field} label="E-mail" name="edit-email" type="email" value=${email} onInput=${setEmail} maxlength="254" placeholder="None" />
      <${Field} label="New password" name="edit-password" type="password" value=${password} onInput=${setPassword}
        autocomplete="new-password" placeholder="Unchanged" />
    <//>`;
}

function DetailDialog({ id, onClose, onChanged }) {
  const user = useLoad(() => api.get(`/v1/users/${enc(id)}`), [id]);
  const u = user.data;
  const changed = () => { user.reload(); onChanged(); };
  return html`<${Modal} title=${u ? `End user ${u.username}` : 'End user'} onClose=${onClose} wide>
    <${ErrorBox} error=${user.error} />
    ${u ? html`
      <dl class="kv">
        <dt>Status</dt><dd><${Badge} value=${u.banned ? 'banned' : 'active'} />${u.ban_reason ? html` <span class="muted">${u.ban_reason}</span>` : null}</dd>
        <dt>E-mail</dt><dd>${u.email ?? '—'}</dd>
        <dt>HWID</dt><dd class="mono">${u.hwid ?? '— (the next login binds one)'}</dd>
        <dt>Last IP</dt><dd class="mono">${u.ip ?? '—'}</dd>
        <dt>Created</dt><dd>${fmtDate(u.created_at)}</dd>
        <dt>Last login</dt><dd>${u.last_login_at ? fmtDate(u.last_login_at) : 'never'}</dd>
        <dt>Id</dt><dd class="mono">${u.id}</dd>
      </dl>
      <h3>Subscriptions</h3>
      <${DataTable} caption=${`Subscriptions of ${u.username}`} rows=${u.subscriptions} rowKey=${(s) => s.name} empty="No subscription."
        columns=${[
          { key: 'name', label: 'Tier' },
          { key: 'level', label: 'Level' },
          { key: 'expires_at', label: 'Expires', render: (s) => html`${fmtDate(s.expires_at)} ${expired(s.expires_at) ? html`<${Badge} value="expired" />` : null}` },
          { key: 'key', label: 'Granted by key', render: (s) => (s.key ? html`<span class="mono">${s.key}</span>` : '—') },
        ]} />
      <${Variables} user=${u} onChanged=${changed} />
      <${EditForm} key=${u.username + (u.email ?? '')} user=${u} onChanged=${changed} />` : html`<p class="muted" role="status">Loading…</p>`}
  <//>`;
}

export default function UsersPage({ query }) {
  const app = query.app ?? '';
  const search = query.search ?? '';
  const cursor = useCursor(`${app}|${search}`);
  const list = useLoad(
    () => (app ? api.get(`/v1/apps/${enc(app)}/users`, { search: search || undefined, limit: PAGE, cursor: cursor.cursor }) : null),
    [app, search, cursor.cursor],
  );
  const tiers = useLoad(() => (app ? api.get(`/v1/apps/${enc(app)}/subscriptions`).then((r) => r.items) : null), [app]);
  const [dialog, setDialog] = useState(null);
  const done = () => { setDialog(null); list.reload(); };

  const unban = (u) => act(() => api.post(userPath(u, '/unban')), `Unbanned ${u.username}.`).then((r) => r && list.reload());
  const resetHwid = async (u) => {
    if (!await confirm(`Reset the HWID of ${u.username}? Its next login binds the machine it comes from.`, { confirmLabel: 'Reset HWID' })) return;
    if (await act(() => api.post(userPath(u, '/reset-hwid')), `HWID of ${u.username} reset.`)) list.reload();
  };
  const remove = async (u) => {
    if (!await confirm(`Delete ${u.username} for good, with its subscriptions, variables and sessions?`, { confirmLabel: 'Delete' })) return;
    if (await act(() => api.del(userPath(u)), `Deleted ${u.username}.`) !== undefined) list.reload();
  };
  const deleteExpired = async () => {
    if (!await confirm('Delete every user of this app without a running subscription?', { confirmLabel: 'Delete expired users' })) return;
    const r = await act(() => api.del(`/v1/apps/${enc(app)}/users`, { which: 'expired' }));
    if (r) { notice(`Deleted ${r.deleted} expired ${r.deleted === 1 ? 'user' : 'users'}.`); cursor.reset(); list.reload(); }
  };

  const columns = [
    {
      key: 'username', label: 'Username',
      render: (u) => html`<button type="button" class="small linkish" aria-label=${`Details of ${u.username}`}
        onClick=${() => setDialog({ kind: 'detail', id: u.id })}>${u.username}</button>`,
    },
    { key: 'email', label: 'E-mail', className: 'clip', render: (u) => u.email ?? '—' },
    { key: 'status', label: 'Status', render: (u) => html`<${Badge} value=${u.banned ? 'banned' : (expired(u.expires_at) || !u.expires_at ? 'expired' : 'active')} />` },
    { key: 'subscriptions', label: 'Subscriptions', render: (u) => html`<${Subscriptions} user=${u} />` },
    { key: 'hwid', label: 'HWID', className: 'clip', render: (u) => (u.hwid ? html`<span class="mono">${u.hwid}</span>` : '—') },
    { key: 'last_login_at', label: 'Last login', render: (u) => (u.last_login_at ? html`<${When} ts=${u.last_login_at} fmt=${fmtDate} />` : 'never') },
    {
      key: 'actions', label: 'Actions', className: 'actions-cell actions-wide',
      render: (u) => html`<div class="row-actions">
        ${u.banned
          ? html`<button type="button" class="small" aria-label=${`Unban ${u.username}`} onClick=${() => unban(u)}>Unban</button>`
          : html`<button type="button" class="small" aria-label=${`Ban ${u.username}`} onClick=${() => setDialog({ kind: 'ban', user: u })}>Ban</button>`}
        <button type="button" class="small" aria-label=${`Change subscription time of ${u.username}`}
          onClick=${() => setDialog({ kind: 'time', user: u })}>Time</button>
        <button type="button" class="small" aria-label=${`Reset HWID of ${u.username}`} disabled=${!u.hwid} onClick=${() => resetHwid(u)}>Reset HWID</button>
        <button type="button" class="small" aria-label=${`Delete ${u.username}`} onClick=${() => remove(u)}>Delete</button>
      </div>`,
    },
  ];
  const rows = list.data?.items ?? null;
  return html`<${Page} title="End users" actions=${app ? html`
      <button type="button" onClick=${deleteExpired}>Delete expired</button>
      <button type="button" class="primary" onClick=${() => setDialog({ kind: 'create' })}>New user</button>` : null}>
    <p class="muted">Users of an app log in through the KeyAuth client API. Bans, HWID resets and subscription changes
      reach every validator within a second.</p>
    <${Toolbar}>
      <${AppPicker} path=${PATH} query=${query} />
      ${app ? html`<${SearchBox} path=${PATH} query=${query} placeholder="Name, e-mail, HWID, IP" />` : null}
    <//>
    <${NoApps} />
    <${ErrorBox} error=${list.error ?? tiers.error} />
    ${app ? html`
      <div class="compact"><${DataTable} caption="End users" columns=${columns} rows=${rows} loading=${list.loading}
        empty=${search ? 'No user matches this search.' : 'No users yet.'} /></div>
      <${Pager} cursor=${cursor} nextCursor=${list.data?.next_cursor} label="User pages" />` : null}
    ${dialog?.kind === 'create' ? html`<${CreateDialog} app=${app} tiers=${tiers.data} onClose=${() => setDialog(null)} onDone=${done} />` : null}
    ${dialog?.kind === 'ban' ? html`<${BanDialog} user=${dialog.user} onClose=${() => setDialog(null)} onDone=${done} />` : null}
    ${dialog?.kind === 'time' ? html`<${TimeDialog} user=${dialog.user} tiers=${tiers.data} onClose=${() => setDialog(null)} onDone=${done} />` : null}
    ${dialog?.kind === 'detail' ? html`<${DetailDialog} id=${dialog.id} onClose=${() => setDialog(null)} onChanged=${() => list.reload()} />` : null}
  <//>`;
}

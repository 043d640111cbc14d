// Event webhooks: endpoints (/v1/webhook-endpoints) and the delivery log (/v1/webhook-events).
// Deliveries carry no shared secret: they are signed with the deployment's Ed25519 key
// (Keygen-Signature), whose public half is on the Signing keys page.
import {
  html, useState, useEffect, Page, DataTable, Pager, useCursor, Field, Select, Check, Form, Modal, ErrorBox,
  Toolbar, Badge, AppSelect, useApps, useLoad, useId, confirm, act, notice, fmtDate,
} from '../kit.mjs';
import { api } from '../api.mjs';
import { link } from '../app.mjs';

const STATUSES = [['', 'Any status'], ['queued', 'Queued'], ['delivering', 'Delivering'], ['delivered', 'Delivered'], ['failed', 'Failed']];
const ALL = '*';

const path = (p, id) => `${p}/${encodeURIComponent(id)}`;

// Filters live in the hash query, so a filtered log can be bookmarked.
function setQuery(query, patch) {
  location.hash = link('/webhooks', { ...query, ...patch });
}

function pretty(v) {
  if (v === null || v === undefined) return '—';
  return JSON.stringify(v, null, 2);
}

// The events an endpoint subscribes to: "*" or a choice among the documented names.
function EventPicker({ names, value, onChange }) {
  const all = value.includes(ALL);
  const id = useId('events');
  const toggle = (name, on) => onChange(on ? [...value.filter((v) => v !== name), name] : value.filter((v) => v !== name));
  const groups = new Map();
  for (const n of names ?? []) {
    const g = n.split('.')[0];
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(n);
  }
  return html`<fieldset class="checks-set" aria-describedby=${`${id}-hint`}>
    <legend>Events</legend>
    <${Check} label="All events (*)" checked=${all} onChange=${(on) => onChange(on ? [ALL] : [])} />
    <small id=${`${id}-hint`} class="muted">${all ? 'Every event, including ones added later.' : `${value.length} selected.`}</small>
    ${all ? null : [...groups].map(([g, list]) => html`<div class="check-group" key=${g}>
      <span class="check-group-name">${g}</span>
      <div class="checks">${list.map((n) => html`<${Check} key=${n} label=${n} checked=${value.includes(n)}
        onChange=${(on) => toggle(n, on)} />`)}</div>
    </div>`)}
  </fieldset>`;
}

function EndpointForm({ endpoint, names, onDone, onClose }) {
  const [url, setUrl] = useState(endpoint?.url ?? '');
  const [app, setApp] = useState(endpoint?.app_id ?? '');
  const [subs, setSubs] = useState(endpoint?.subscriptions ?? [ALL]);
  const [enabled, setEnabled] = useState(endpoint?.enabled ?? true);
  const submit = async () => {
    if (subs.length === 0) throw new Error('Choose at least one event, or All events.');
    const body = { url: url.trim(), subscriptions: subs, enabled, app_id: app || null };
    const saved = endpoint
      ? await api.patch(path('/v1/webhook-endpoints', endpoint.id), body)
      : await api.post('/v1/webhook-endpoints', body);
    onDone(saved, !endpoint);
  };
  return html`<${Modal} title=${endpoint ? 'Edit endpoint' : 'New endpoint'} onClose=${onClose} wide>
    <${Form} submitLabel=${endpoint ? 'Save' : 'Create'} busyLabel="Saving…" onSubmit=${submit}>
      <${Field} label="URL" name="url" type="url" value=${url} onInput=${setUrl} required maxlength="2048"
        placeholder="https://example.com/keyward-hooks" hint="Where events are POSTed (https unless the operator allows http)" />
      <${AppSelect} label="App scope" value=${app} onChange=${setApp} />
      <${Check} label="Enabled" checked=${enabled} onChange=${setEnabled} />
      <${EventPicker} names=${names} value=${subs} onChange=${setSubs} />
      <p class="muted">Deliveries are signed with the deployment's Ed25519 key (<a href="#/signing-keys">Signing keys</a>);
        there is no shared secret to copy.</p>
    <//>
  <//>`;
}

function EventDetail({ id, endpoints, onClose, onChanged }) {
  const ev = useLoad(() => api.get(path('/v1/webhook-events', id)), [id]);
  const e = ev.data;
  const retry = async () => {
    if ((await act(() => api.post(`${path('/v1/webhook-events', id)}/retry`), 'Queued for delivery now.')) !== undefined) {
      ev.reload();
      onChanged();
    }
  };
  const remove = async () => {
    if (!(await confirm('Delete this event from the log? A queued event is not delivered then.', { confirmLabel: 'Delete' }))) return;
    if ((await act(() => api.del(path('/v1/webhook-events', id)), 'Event deleted.')) !== undefined) {
      onChanged();
      onClose();
    }
  };
  return html`<${Modal} title="Webhook event" onClose=${onClose} wide>
    <${ErrorBox} error=${ev.error} />
    ${!e ? html`<p class="muted" role="status">Loading…</p>` : html`
      <dl class="kv">
        <dt>Event</dt><dd>${e.event}</dd>
        <dt>Id</dt><dd class="mono">${e.id}</dd>
        <dt>Endpoint</dt><dd class="mono">${endpoints.get(e.endpoint_id)?.url ?? e.endpoint_id}</dd>
        <dt>Status</dt><dd><${Badge} value=${e.status} /></dd>
        <dt>Attempts</dt><dd>${e.attempts}</dd>
        <dt>Created</dt><dd>${fmtDate(e.created_at)}</dd>
        <dt>${e.status === 'delivering' ? 'Lease ends' : 'Next attempt'}</dt>
        <dd>${e.status === 'queued' || e.status === 'delivering' ? fmtDate(e.next_attempt_at) : '—'}</dd>
        <dt>Delivered</dt><dd>${fmtDate(e.delivered_at)}</dd>
        <dt>Last response</dt><dd>${e.last_response_code ?? '—'}</dd>
        <dt>Last error</dt><dd>${e.last_error ?? '—'}</dd>
      </dl>
      <h3>Payload</h3>
      <pre class="json" tabindex="0">${pretty(e.payload)}</pre>
      <h3>Attempts</h3>
      <pre class="json" tabindex="0">${pretty(e.attempt_log)}</pre>
      <h3>Last response body</h3>
      <pre class="json" tabindex="0">${e.last_response_body ?? '—'}</pre>
      <div class="form-actions">
        <button type="button" class="danger" onClick=${remove}>Delete event</button>
        <button type="button" class="primary" disabled=${e.status === 'delivering'} onClick=${retry}>Retry now</button>
      </div>`}
  <//>`;
}

function DeliveryLog({ query, endpoints, refreshKey }) {
  const endpoint = query.endpoint ?? '';
  const status = query.status ?? '';
  const cursor = useCursor(`${endpoint}|${status}`);
  const [open, setOpen] = useState(null);
  const log = useLoad(
    () => api.get('/v1/webhook-events', { endpoint_id: endpoint, status, cursor: cursor.cursor, limit: 25 }),
    [endpoint, status, cursor.cursor, refreshKey],
  );
  // While something on this page is being delivered or due within a minute, look again shortly.
  const pending = log.data?.items.some((e) => e.status === 'delivering'
    || (e.status === 'queued' && Date.parse(e.next_attempt_at) - Date.now() < 60_000));
  useEffect(() => {
    if (!pending) return undefined;
    const t = setTimeout(log.reload, 4000);
    return () => clearTimeout(t);
  }, [log.data]);
  const retry = async (e) => {
    if ((await act(() => api.post(`${path('/v1/webhook-events', e.id)}/retry`), `Queued ${e.event} for delivery now.`)) !== undefined) log.reload();
  };
  const endpointOptions = [['', 'All endpoints'], ...[...endpoints.values()].map((x) => [x.id, x.url])];
  const columns = [
    { key: 'created_at', label: 'Time', className: 'nowrap', render: (e) => fmtDate(e.created_at) },
    { key: 'event', label: 'Event', render: (e) => e.event },
    { key: 'endpoint', label: 'Endpoint', className: 'clip', render: (e) => html`<span class="mono">${endpoints.get(e.endpoint_id)?.url ?? e.endpoint_id}</span>` },
    { key: 'status', label: 'Status', render: (e) => html`<${Badge} value=${e.status} />` },
    { key: 'attempts', label: 'Attempts', render: (e) => String(e.attempts) },
    { key: 'code', label: 'Last response', render: (e) => (e.last_response_code ?? (e.last_error ? 'error' : '—')) },
    {
      key: 'next', label: 'Next attempt',
      render: (e) => (e.status === 'queued' || e.status === 'delivering' ? fmtDate(e.next_attempt_at) : '—'),
    },
    {
      key: 'actions', label: 'Actions',
      render: (e) => html`<div class="row-actions">
        <button type="button" class="small" aria-label=${`Details of ${e.event} at ${fmtDate(e.created_at)}`} onClick=${() => setOpen(e.id)}>Details</button>
        ${e.status === 'failed' ? html`<button type="button" class="small" aria-label=${`Retry ${e.event} at ${fmtDate(e.created_at)}`}
          onClick=${() => retry(e)}>Retry</button>` : null}
      </div>`,
    },
  ];
  return html`<section aria-labelledby="delivery-log">
    <h2 id="delivery-log">Delivery log</h2>
    <${Toolbar}>
      <${Select} label="Endpoint" name="endpoint" value=${endpoint} options=${endpointOptions}
        onChange=${(v) => setQuery(query, { endpoint: v })} />
      <${Select} label="Status" name="status" value=${status} options=${STATUSES}
        onChange=${(v) => setQuery(query, { status: v })} />
      <button type="button" onClick=${log.reload}>Refresh</button>
    <//>
    <${ErrorBox} error=${log.error} />
    <${DataTable} caption="Webhook deliveries" columns=${columns} rows=${log.data?.items} loading=${log.loading}
      empty="No events match." />
    <${Pager} cursor=${cursor} nextCursor=${log.data?.next_cursor} label="Delivery log pages" />
    ${open ? html`<${EventDetail} id=${open} endpoints=${endpoints} onClose=${() => setOpen(null)} onChanged=${log.reload} />` : null}
  </section>`;
}

export default function WebhooksPage({ query }) {
  const eps = useLoad(() => api.get('/v1/webhook-endpoints').then((r) => r.items), []);
  const names = useLoad(() => api.get('/v1/webhook-endpoints/events').then((r) => r.items), []);
  const apps = useApps();
  const [editing, setEditing] = useState(null); // null | 'new' | endpoint
  const [refreshKey, setRefreshKey] = useState(0);
  const byId = new Map((eps.data ?? []).map((e) => [e.id, e]));
  const appName = (id) => (id ? (apps.data ?? []).find((a) => a.id === id)?.name ?? id : 'All apps');

  const test = async (e) => {
    const r = await act(() => api.post(`${path('/v1/webhook-endpoints', e.id)}/test`), `Test event queued for ${e.url}.`);
    if (r !== undefined) setRefreshKey((k) => k + 1);
  };
  const remove = async (e) => {
    if (!(await confirm(`Delete the endpoint ${e.url}? Its events, delivered or not, are deleted with it.`, { confirmLabel: 'Delete' }))) return;
    if ((await act(() => api.del(path('/v1/webhook-endpoints', e.id)), 'Endpoint deleted.')) !== undefined) {
      eps.reload();
      setRefreshKey((k) => k + 1);
    }
  };
  const columns = [
    { key: 'url', label: 'URL', className: 'clip', render: (e) => html`<span class="mono">${e.url}</span>` },
    { key: 'app', label: 'App scope', render: (e) => appName(e.app_id) },
    {
      key: 'subscriptions', label: 'Events',
      render: (e) => (e.subscriptions.includes(ALL) ? 'All events' : html`<span title=${e.subscriptions.join(', ')}>${
        e.subscriptions.length <= 3 ? e.subscriptions.join(', ') : `${e.subscriptions.slice(0, 3).join(', ')} +${e.subscriptions.length - 3} more`}</span>`),
    },
    { key: 'enabled', label: 'Enabled', render: (e) => html`<${Badge} value=${e.enabled ? 'enabled' : 'disabled'} />` },
    { key: 'created_at', label: 'Created', render: (e) => fmtDate(e.created_at) },
    {
      key: 'actions', label: 'Actions',
      render: (e) => html`<div class="row-actions">
        <button type="button" class="small" aria-label=${`Edit ${e.url}`} onClick=${() => setEditing(e)}>Edit</button>
        <button type="button" class="small" aria-label=${`Send a test event to ${e.url}`} disabled=${!e.enabled}
          title=${e.enabled ? '' : 'Enable the endpoint to send a test'} onClick=${() => test(e)}>Send test</button>
        <button type="button" class="small" aria-label=${`Delete ${e.url}`} onClick=${() => remove(e)}>Delete</button>
      </div>`,
    },
  ];
  return html`<${Page} title="Webhooks"
    actions=${html`<button type="button" class="primary" onClick=${() => setEditing('new')}>New endpoint</button>`}>
    <section aria-labelledby="endpoints">
      <h2 id="endpoints">Endpoints</h2>
      <${ErrorBox} error=${eps.error ?? names.error} />
      <${DataTable} caption="Webhook endpoints" columns=${columns} rows=${eps.data} loading=${eps.loading}
        empty="No endpoints yet: events are not sent anywhere." />
    </section>
    <${DeliveryLog} query=${query} endpoints=${byId} refreshKey=${refreshKey} />
    ${editing ? html`<${EndpointForm} endpoint=${editing === 'new' ? null : editing} names=${names.data}
      onClose=${() => setEditing(null)}
      onDone=${(saved, created) => { setEditing(null); eps.reload(); notice(created ? `Endpoint created: ${saved.url}` : 'Endpoint saved.'); }} />` : null}
  <//>`;
}

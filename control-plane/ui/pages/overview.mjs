// The Overview: the account's counts (GET /v1/stats/overview), validations per minute drawn with
// uPlot (GET /v1/stats/validations, polled every 10 s while the tab is visible) and the newest
// audit events. The app and the time range live in the hash query (?app=&minutes=), so a view
// can be bookmarked.
import { html, useEffect, useRef, useMemo, Page, Select, AppSelect, Toolbar, ErrorBox, useLoad, fmtDate } from '../kit.mjs';
import { api } from '../api.mjs';
import { link, navigate } from '../app.mjs';

const POLL_MS = 10_000;
// The counts change slowly and cost more to compute: every sixth poll.
const COUNTS_EVERY = 6;
const RANGES = [['60', 'Last hour'], ['180', 'Last 3 hours'], ['720', 'Last 12 hours'], ['1440', 'Last 24 hours']];
const VALID = 'valid';

const num = (n) => (typeof n === 'number' ? n.toLocaleString('en') : '—');
// `hwid_mismatch` → `HWID mismatch`.
const outcomeLabel = (o) => {
  const s = o.replace(/_/g, ' ').replace(/\bhwids?\b/g, (w) => w.toUpperCase()).replace(/\bip\b/g, 'IP');
  return s.charAt(0).toUpperCase() + s.slice(1);
};
const rangeLabel = (minutes) => (RANGES.find(([m]) => m === String(minutes))?.[1] ?? `Last ${minutes} minutes`).toLowerCase();

function Card({ label, value, href }) {
  const body = html`<span class="n">${num(value)}</span><span class="l">${label}</span>`;
  return href ? html`<a class="card" href=${href}>${body}</a>` : html`<div class="card">${body}</div>`;
}

function Counts({ data, app }) {
  if (!data) return null;
  const l = data.licenses;
  const licenses = (query) => link('/licenses', { app, ...query });
  return html`
    <h2>Licenses</h2>
    <div class="cards">
      <${Card} label="Licenses" value=${l.total} href=${licenses({})} />
      <${Card} label="Active" value=${l.active} href=${licenses({ status: 'active' })} />
      <${Card} label="Unused" value=${l.unused} href=${licenses({ status: 'unused' })} />
      <${Card} label="Used" value=${l.used} href=${licenses({ status: 'used' })} />
      <${Card} label="Expiring within 7 days" value=${l.expiring_soon} href=${licenses({ status: 'active', expiry: 'expiring' })} />
      <${Card} label="Expired" value=${l.expired} href=${licenses({ status: 'expired' })} />
      <${Card} label="Banned" value=${l.banned} href=${licenses({ status: 'banned' })} />
      <${Card} label="Disabled" value=${l.disabled} href=${licenses({ status: 'disabled' })} />
      <${Card} label="Revoked" value=${l.revoked} href=${licenses({ status: 'revoked' })} />
    </div>
    <h2>Activity</h2>
    <div class="cards">
      <${Card} label="Apps" value=${data.apps} href="#/apps" />
      <${Card} label="End users" value=${data.end_users} href=${link('/users', { app })} />
      <${Card} label="Online sessions" value=${data.online_sessions} href=${link('/sessions', { app })} />
      <${Card} label="Machines" value=${data.machines} href=${link('/machines', { app })} />
      <${Card} label="Validations, last hour" value=${data.validations.last_hour} />
      <${Card} label="Validations, last 24 h" value=${data.validations.last_24h} />
    </div>`;
}

// The series as uPlot wants them: [times (s), valid, refused (every other outcome)].
function chartData(s) {
  const xs = s.minutes.map((t) => Date.parse(t) / 1000);
  const valid = s.series[VALID] ?? xs.map(() => 0);
  const refused = xs.map((_, i) => Object.entries(s.series)
    .reduce((sum, [o, ys]) => (o === VALID ? sum : sum + (ys[i] ?? 0)), 0));
  return [xs, valid, refused];
}

const utc = (secs) => new Date(secs * 1000).toISOString();

function chartSize(box) {
  const width = Math.max(240, Math.floor(box.clientWidth));
  return { width, height: width < 500 ? 200 : 260 };
}

// uPlot owns the DOM inside `box`; Preact renders nothing into it.
function Chart({ data, label, describedBy }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const UPlot = globalThis.uPlot;
    if (typeof UPlot !== 'function' || !box.current) return undefined;
    const css = getComputedStyle(document.documentElement);
    const color = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    const ok = color('--ok', '#1d6b33');
    const bad = color('--danger', '#b3261e');
    const u = new UPlot({
      ...chartSize(box.current),
      // Times in UTC, like every time the console shows.
      tzDate: (ts) => UPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(5, Math.ceil(max * 1.1))] } },
      series: [
        { label: 'Time (UTC)', value: (_u, t) => (t == null ? '--' : utc(t).slice(0, 16).replace('T', ' ')) },
        { label: 'Valid', stroke: ok, fill: `${ok}22`, width: 2 },
        { label: 'Refused', stroke: bad, fill: `${bad}1f`, width: 2 },
      ],
      // 24-hour UTC times; the date under the first tick of each day.
      axes: [
        { values: (_u, ticks) => ticks.map((t, i) => {
          const d = utc(t);
          const day = i === 0 || utc(ticks[i - 1]).slice(0, 10) !== d.slice(0, 10);
          return day ? `${d.slice(11, 16)}\n${d.slice(5, 10)}` : d.slice(11, 16);
        }) },
        { label: 'Validations per minute', size: 60 },
      ],
    }, data, box.current);
    plot.current = u;
    const observer = new ResizeObserver(() => u.setSize(chartSize(box.current)));
    observer.observe(box.current);
    return () => { observer.disconnect(); u.destroy(); plot.current = null; };
  }, []);
  useEffect(() => { plot.current?.setData(data); }, [data]);
  return html`<div class="chart chart-box" ref=${box} role="img" aria-label=${label} aria-describedby=${describedBy}></div>`;
}

function Validations({ series, minutes }) {
  const data = useMemo(() => (series ? chartData(series) : null), [series]);
  if (!series) return null;
  const totals = Object.entries(series.totals).sort((a, b) => b[1] - a[1]);
  const valid = series.totals[VALID] ?? 0;
  const refused = totals.reduce((sum, [o, n]) => (o === VALID ? sum : sum + n), 0);
  const range = rangeLabel(minutes);
  const label = `Validations per minute, ${range}: ${num(valid)} valid, ${num(refused)} refused.`;
  return html`
    <${Chart} data=${data} label=${label} describedBy="validation-totals" />
    <div id="validation-totals" class="chart-summary">
      <p><strong>${num(valid + refused)}</strong> validations ${range}: ${num(valid)} valid, ${num(refused)} refused.</p>
      ${totals.length ? html`<ul class="outcomes" aria-label="By outcome">
        ${totals.map(([o, n]) => html`<li key=${o}><span class=${`badge b-${o === VALID ? 'valid' : 'refused'}`}>${outcomeLabel(o)}</span> ${num(n)}</li>`)}
      </ul>` : html`<p class="muted">No validation in this period.</p>`}
    </div>`;
}

function Events({ data }) {
  if (!data) return null;
  if (!data.items.length) return html`<p class="muted">No audit events yet.</p>`;
  return html`<ol class="events">
    ${data.items.map((e) => html`<li key=${e.id}>
      <span class="when">${fmtDate(e.created_at)}</span>
      <span><strong>${e.actor}</strong> ${e.action}${e.success === false ? ' (refused)' : ''}</span>
      <span class="muted">${e.target_type}${e.target_id ? html` <span class="mono">${e.target_id}</span>` : null}</span>
    </li>`)}
  </ol>`;
}

export default function OverviewPage({ query }) {
  const app = query.app ?? '';
  const minutes = RANGES.some(([m]) => m === query.minutes) ? query.minutes : '180';
  const counts = useLoad(() => api.get('/v1/stats/overview', { app_id: app }), [app]);
  const series = useLoad(() => api.get('/v1/stats/validations', { minutes, app_id: app }), [app, minutes]);
  const events = useLoad(() => api.get('/v1/audit-log', { limit: 10 }), []);
  // The latest loaders, for the timer that outlives each render.
  const latest = useRef({});
  latest.current = { series: series.reload, counts: counts.reload };
  useEffect(() => {
    let n = 0;
    const timer = setInterval(() => {
      if (document.hidden) return;
      n += 1;
      latest.current.series();
      if (n % COUNTS_EVERY === 0) latest.current.counts();
    }, POLL_MS);
    return () => clearInterval(timer);
  }, []);
  const update = (change) => navigate('/overview', { app, minutes: minutes === '180' ? undefined : minutes, ...change });
  return html`<${Page} title="Overview">
    <${Toolbar}>
      <${AppSelect} value=${app} onChange=${(v) => update({ app: v })} />
      <${Select} label="Period" name="minutes" value=${minutes} options=${RANGES}
        onChange=${(v) => update({ minutes: v === '180' ? undefined : v })} />
    <//>
    <${ErrorBox} error=${counts.error} />
    <${Counts} data=${counts.data} app=${app || undefined} />
    <h2>Validations</h2>
    <${ErrorBox} error=${series.error} />
    ${series.data ? null : html`<p class="muted" role="status">${series.loading ? 'Loading…' : ''}</p>`}
    <${Validations} series=${series.data} minutes=${minutes} />
    <h2>Recent activity</h2>
    <${ErrorBox} error=${events.error} />
    <${Events} data=${events.data} />
    <p><a href="#/audit">The whole audit log</a></p>
  <//>`;
}

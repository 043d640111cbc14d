// The signed-in admin's account and session.
import { html, Page, useLoad, fmtDate, ErrorBox } from '../kit.mjs';
import { api, session, logout } from '../api.mjs';

export default function AccountPage() {
  const account = useLoad(() => api.get('/v1/account'), []);
  const a = account.data;
  return html`<${Page} title="Account">
    <${ErrorBox} error=${account.error} />
    ${a ? html`<div class="panel"><dl class="kv">
      <dt>Username</dt><dd>${a.username}</dd>
      <dt>E-mail</dt><dd>${a.email ?? '—'}</dd>
      <dt>Account id</dt><dd class="mono">${a.id}</dd>
      <dt>Created</dt><dd>${fmtDate(a.created_at)}</dd>
      <dt>This session ends</dt><dd>${fmtDate(session.current?.expires_at)} (renewed while you work)</dd>
    </dl></div>` : null}
    <button type="button" onClick=${logout}>Sign out</button>
  <//>`;
}

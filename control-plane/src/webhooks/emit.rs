//! Events of the native routes' writes, recorded in the write's own transaction (the outbox), with
//! the resource's Keygen document as payload. Each first asks whether any endpoint of the
//! account listens, so a tenant without webhooks pays one indexed read per transaction, and no
//! rendering.

use chrono::Utc;
use keyward_shared::error::StoreResult;
use keyward_shared::keygen_doc::{self, Links};
use keyward_shared::model::Machine;
use keyward_shared::store::{license_details, machines};
use keyward_shared::write::WriteTx;
use serde_json::{json, Value};
use uuid::Uuid;

/// The license's Keygen document (`{"data": …}`) and its app, as it is now in this transaction.
async fn license_doc(w: &WriteTx<'_>, id: Uuid) -> StoreResult<Option<(Uuid, Value)>> {
    let account = w.account_id();
    let Some(d) = license_details::by_id(w.tx(), account, id).await? else {
        return Ok(None);
    };
    let doc = json!({"data": keygen_doc::license(&d, &Links::new(account), Utc::now())});
    Ok(Some((d.license.app_id, doc)))
}

/// Records `event` for the license `id` as it is now (call it after the write; before, for a
/// deletion).
pub async fn license(w: &mut WriteTx<'_>, event: &str, id: Uuid) -> StoreResult<()> {
    if !w.subscribed(event).await? {
        return Ok(());
    }
    if let Some((app, doc)) = license_doc(w, id).await? {
        w.event_in_app(event, Some(app), doc);
    }
    Ok(())
}

/// [`license`] for several licenses (a generated batch).
pub async fn licenses(w: &mut WriteTx<'_>, event: &str, ids: &[Uuid]) -> StoreResult<()> {
    if !w.subscribed(event).await? {
        return Ok(());
    }
    for &id in ids {
        if let Some((app, doc)) = license_doc(w, id).await? {
            w.event_in_app(event, Some(app), doc);
        }
    }
    Ok(())
}

/// Records `event` for a machine, rendered with its license as it is now in this transaction
/// (for a deactivation, call it before the machine goes).
pub async fn machine(w: &mut WriteTx<'_>, event: &str, m: &Machine) -> StoreResult<()> {
    if !w.subscribed(event).await? {
        return Ok(());
    }
    let account = w.account_id();
    let Some(d) = license_details::by_id(w.tx(), account, m.license_id).await? else {
        return Ok(());
    };
    let doc = json!({"data": keygen_doc::machine(m, &d, &Links::new(account), Utc::now())});
    w.event_in_app(event, Some(d.license.app_id), doc);
    Ok(())
}

/// [`machine`] for the machine `id`, read in this transaction (before a deactivation).
pub async fn machine_by_id(w: &mut WriteTx<'_>, event: &str, id: Uuid) -> StoreResult<()> {
    if !w.subscribed(event).await? {
        return Ok(());
    }
    let m = machines::get(w.tx(), w.account_id(), id).await?;
    machine(w, event, &m).await
}

/// Records `event` with the document `render` makes (wrapped in `{"data": …}`), rendered only
/// when an endpoint listens. For resources whose document the caller already has at hand.
pub async fn document(
    w: &mut WriteTx<'_>,
    event: &str,
    app: Option<Uuid>,
    render: impl FnOnce() -> Value,
) -> StoreResult<()> {
    if w.subscribed(event).await? {
        w.event_in_app(event, app, json!({"data": render()}));
    }
    Ok(())
}

//! The few writes the Keygen client API makes (activations, heartbeats, check-outs, the start
//! of an expiry on first use): each one transaction for the bearer's account, after which this
//! validator forgets what it changed at once (the others hear of it through the invalidation).

use keyward_shared::store::license_details::LicenseDetail;
use keyward_shared::store::licenses;
use keyward_shared::verdict::keygen::{starts_expiry, FirstUse};
use keyward_shared::write::{Actor, WriteTx};
use keyward_shared::StoreError;
use std::sync::Arc;

use super::{KgError, State};

/// Runs one write for the bearer's account and forgets what it changed here at once (the
/// other validators hear of it through the invalidation).
pub(super) async fn write<T>(
    state: &State,
    license: &LicenseDetail,
    op: impl for<'a> FnOnce(
        &'a mut WriteTx<'_>,
    ) -> futures_util::future::BoxFuture<'a, Result<T, StoreError>>,
) -> Result<Result<T, StoreError>, KgError> {
    let unavailable = |e: StoreError| super::unavailable(&crate::cache::CacheError::from(&e));
    let mut client = keyward_shared::db::checkout(&state.pool)
        .await
        .map_err(unavailable)?;
    let actor = Actor {
        origin: Default::default(),
        account_id: license.license.account_id,
        label: "keygen license".into(),
    };
    let mut wtx = WriteTx::begin(&mut client, actor)
        .await
        .map_err(unavailable)?;
    let done = match op(&mut wtx).await {
        Ok(done) => done,
        Err(e) if e.is_unavailable() || matches!(e, StoreError::Database(_)) => {
            return Err(unavailable(e))
        }
        Err(e) => return Ok(Err(e)),
    };
    wtx.commit().await.map_err(unavailable)?;
    state
        .caches
        .forget_license(license.license.app_id, &license.license.key);
    Ok(Ok(done))
}

/// Starts the license's expiry when `event` is its policy's first use, and answers the license
/// as it is then (its clock started), re-read from the store.
pub(super) async fn first_use(
    state: &State,
    license: Arc<LicenseDetail>,
    event: FirstUse,
) -> Result<Arc<LicenseDetail>, KgError> {
    let l = &license.license;
    if !starts_expiry(&license.policy, l.expires_at, l.duration_secs, event) {
        return Ok(license);
    }
    let id = l.id;
    match write(state, &license, |w| Box::pin(licenses::start_expiry(w, id))).await? {
        Ok(_) => {}
        Err(e) => return Err(super::unavailable(&crate::cache::CacheError::from(&e))),
    }
    Ok(super::validate::reload(state, &license)
        .await?
        .unwrap_or(license))
}

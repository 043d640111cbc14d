//! What the tests of real Keygen clients (keygen-sdk, keygen-rs) share: a license such a client
//! can use, and a way to run the client without blocking the validator under test.

use keyward_shared::model::License;
use keyward_shared::policy::{AuthenticationStrategy, PolicyPatch};
use keyward_shared::store::policies;
use keyward_shared::testing::Tenant;
use keyward_shared::write::WriteTx;

/// Runs `f` on the blocking pool (the validator under test serves from this runtime), passing
/// its panic on as is.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// A license a client can use: the app's default policy made explicit (license authentication,
/// node-locked with one machine, no heartbeat required), so a change of defaults cannot quietly
/// change what the client tests cover.
pub async fn client_license(c: &mut tokio_postgres::Client, t: &Tenant) -> License {
    let l = super::one_license(c, t, 1).await;
    let mut w = WriteTx::begin(c, t.actor.clone()).await.unwrap();
    policies::update(
        &mut w,
        l.policy_id,
        &PolicyPatch {
            authentication_strategy: Some(AuthenticationStrategy::License),
            floating: Some(false),
            max_machines: Some(Some(1)),
            require_heartbeat: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    l
}

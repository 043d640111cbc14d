//! The Ed25519 keys that sign KeyAuth 1.3 answers, as a tenant sees them: read-only. The keys are
//! deployment-wide and belong to the operator, who rotates, imports and retires them with the
//! `control-plane signing-key` subcommands, never over the tenants' API.

use axum::extract::State;
use keyward_shared::store::signing_keys::{self, SigningKey};
use serde::Serialize;
use tokio_postgres::IsolationLevel;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::AppState;

#[derive(Serialize)]
pub struct SigningKeys {
    /// The key new apps sign with.
    primary: Option<SigningKey>,
    /// Every key, newest first; `apps_pinned` counts the caller's apps only.
    keys: Vec<SigningKey>,
    /// The public key each of the caller's apps signs with: what its 1.3 clients must embed.
    apps: Vec<AppKey>,
}

#[derive(Serialize)]
pub struct AppKey {
    app_id: Uuid,
    app_name: String,
    public_key: String,
}

/// Any authenticated caller may read this: public keys are public, and only the caller's own
/// apps are listed.
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<SigningKeys>> {
    let mut client = state.client().await?;
    // One snapshot, so a rotation in between cannot show a primary the apps disagree with.
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(keyward_shared::StoreError::from)?;
    let keys = signing_keys::list_for_tenant(&*tx, auth.account_id()).await?;
    let apps = signing_keys::for_account(&*tx, auth.account_id())
        .await?
        .into_iter()
        .map(|(app_id, app_name, public_key)| AppKey {
            app_id,
            app_name,
            public_key,
        })
        .collect();
    tx.commit()
        .await
        .map_err(keyward_shared::StoreError::from)?;
    Ok(Json(SigningKeys {
        primary: keys.iter().find(|k| k.is_primary).cloned(),
        keys,
        apps,
    }))
}

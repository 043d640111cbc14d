//! The Ed25519 keys that sign KeyAuth 1.3 answers, as a tenant sees them: read-only. The keys are
//! deployment-wide and belong to the operator, who rotates, imports and retires them with the
//! `control-plane signing-key` subcommands, never over the tenants' API.

use axum::extract::State;
use keyward_shared::store::signing_keys::{self, AppSigningKey, SigningKey};
use serde::Serialize;
use tokio_postgres::IsolationLevel;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::AppState;

/// Says in the answer who the keys belong to, so that a UI need not guess.
const SCOPE: &str = "deployment";

#[derive(Serialize)]
pub struct SigningKeys {
    /// `deployment`: every key is shared by all accounts of this deployment; an app signs with
    /// its pinned key or, unpinned, with the primary.
    scope: &'static str,
    /// The key new apps sign with.
    primary: Option<KeyUse>,
    /// Every key, newest first; `apps_pinned` and `used_by` count the caller's apps only.
    keys: Vec<KeyUse>,
    /// The key each of the caller's apps signs with: what its 1.3 clients must embed.
    apps: Vec<AppSigningKey>,
}

/// A key and which of the caller's apps sign with it.
#[derive(Serialize, Clone)]
pub struct KeyUse {
    #[serde(flatten)]
    key: SigningKey,
    used_by: Vec<AppRef>,
}

#[derive(Serialize, Clone)]
pub struct AppRef {
    app_id: Uuid,
    app_name: String,
    /// False: the app follows the primary.
    pinned: bool,
}

/// Any authenticated caller may read this: public keys are public, and only the caller's own
/// apps are listed.
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<SigningKeys>> {
    let mut client = state.read_client().await?;
    // One snapshot, so a rotation in between cannot show a primary the apps disagree with.
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(keyward_shared::StoreError::from)?;
    let keys = signing_keys::list_for_tenant(&*tx, auth.account_id()).await?;
    let apps = signing_keys::for_account(&*tx, auth.account_id()).await?;
    tx.commit()
        .await
        .map_err(keyward_shared::StoreError::from)?;
    let keys: Vec<KeyUse> = keys
        .into_iter()
        .map(|key| KeyUse {
            used_by: apps
                .iter()
                .filter(|a| a.key_id == key.id)
                .map(|a| AppRef {
                    app_id: a.app_id,
                    app_name: a.app_name.clone(),
                    pinned: a.pinned,
                })
                .collect(),
            key,
        })
        .collect();
    Ok(Json(SigningKeys {
        scope: SCOPE,
        primary: keys.iter().find(|k| k.key.is_primary).cloned(),
        keys,
        apps,
    }))
}

//! The key-system resources of an app over native REST: its service keys (Panda's `apiKey`;
//! the plaintext is shown once, at creation) and its keyless entries (HWIDs that validate
//! without a key). Scopes `apps:read` / `apps:write`.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use keyward_shared::model::ApiKey;
use keyward_shared::store::keyless::{self, KeylessEntry};
use keyward_shared::store::{api_keys, apps};
use keyward_shared::write::WriteTx;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::routes::apps::Items;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceKey {
    name: String,
}

#[derive(Serialize)]
pub struct CreatedServiceKey {
    #[serde(flatten)]
    service_key: ApiKey,
    /// The key itself, shown only in this response.
    key: String,
}

pub async fn create_service_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(app): Path<Uuid>,
    Json(req): Json<CreateServiceKey>,
) -> ApiResult<(StatusCode, Json<CreatedServiceKey>)> {
    auth.require("apps:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let (service_key, key) = api_keys::create_service_key(&mut w, app, &req.name).await?;
    w.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedServiceKey { service_key, key }),
    ))
}

pub async fn list_service_keys(
    State(state): State<AppState>,
    auth: Auth,
    Path(app): Path<Uuid>,
) -> ApiResult<Json<Items<ApiKey>>> {
    auth.require("apps:read")?;
    let client = state.read_client().await?;
    // Another tenant's app is a 404, not an empty list.
    apps::get(&**client, auth.account_id(), app).await?;
    Ok(Json(Items {
        items: api_keys::list_service_keys(&**client, auth.account_id(), app).await?,
    }))
}

pub async fn revoke_service_key(
    State(state): State<AppState>,
    auth: Auth,
    Path((app, id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<ApiKey>> {
    auth.require("apps:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let key = api_keys::revoke_service_key(&mut w, app, id).await?;
    w.commit().await?;
    Ok(Json(key))
}

pub async fn list_keyless(
    State(state): State<AppState>,
    auth: Auth,
    Path(app): Path<Uuid>,
) -> ApiResult<Json<Items<KeylessEntry>>> {
    auth.require("apps:read")?;
    let client = state.read_client().await?;
    apps::get(&**client, auth.account_id(), app).await?;
    Ok(Json(Items {
        items: keyless::list(&**client, auth.account_id(), app).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutKeyless {
    hwid: String,
    /// Default: now + the app's `keyless_ttl_secs`.
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    premium: bool,
}

pub async fn put_keyless(
    State(state): State<AppState>,
    auth: Auth,
    Path(app): Path<Uuid>,
    Json(req): Json<PutKeyless>,
) -> ApiResult<Json<KeylessEntry>> {
    auth.require("apps:write")?;
    let mut client = state.client().await?;
    let expires_at = match req.expires_at {
        Some(at) => at,
        None => {
            let a = apps::get(&**client, auth.account_id(), app).await?;
            Utc::now() + Duration::seconds(a.key_system.keyless_ttl_secs.into())
        }
    };
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let entry = keyless::put(&mut w, app, &req.hwid, expires_at, req.premium).await?;
    w.commit().await?;
    Ok(Json(entry))
}

pub async fn delete_keyless(
    State(state): State<AppState>,
    auth: Auth,
    Path((app, hwid)): Path<(Uuid, String)>,
) -> ApiResult<StatusCode> {
    auth.require("apps:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    keyless::delete(&mut w, app, &hwid).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

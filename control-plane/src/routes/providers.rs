//! Checkpoint providers that hand out keys (`key_providers`): a name, whether it is active, the
//! default validity of the keys made for it (`provider_id` of a generation) and its link.

use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::store::key_providers::{self, KeyProvider, NewProvider};
use keyward_shared::write::WriteTx;
use serde::Deserialize;

use super::apps::Items;
use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    name: String,
    is_active: Option<bool>,
    /// Default validity of its keys; absent or null: forever.
    key_valid_minutes: Option<i32>,
    link_url: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<CreateRequest>,
) -> ApiResult<(StatusCode, Json<KeyProvider>)> {
    auth.require("licenses:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let p = key_providers::create(
        &mut w,
        &NewProvider {
            name: req.name,
            is_active: req.is_active.unwrap_or(true),
            key_valid_minutes: req.key_valid_minutes,
            link_url: req.link_url,
        },
    )
    .await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(p)))
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Items<KeyProvider>>> {
    auth.require("licenses:read")?;
    let client = state.read_client().await?;
    Ok(Json(Items {
        items: key_providers::list(&**client, auth.account_id()).await?,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<KeyProvider>> {
    auth.require("licenses:read")?;
    let client = state.read_client().await?;
    Ok(Json(
        key_providers::get(&**client, auth.account_id(), id).await?,
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    auth.require("licenses:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    key_providers::delete(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

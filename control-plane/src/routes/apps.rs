use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::model::App;
use keyward_shared::store::apps::{self, AppPatch};
use keyward_shared::write::WriteTx;
use serde::Serialize;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::AppState;

/// The envelope of list responses.
#[derive(Serialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(patch): Json<AppPatch>,
) -> ApiResult<(StatusCode, Json<App>)> {
    auth.require("apps:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let app = apps::create(&mut w, &patch).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(app)))
}

pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Items<App>>> {
    auth.require("apps:read")?;
    let client = state.read_client().await?;
    Ok(Json(Items {
        items: apps::list(&**client, auth.account_id()).await?,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<App>> {
    auth.require("apps:read")?;
    let client = state.read_client().await?;
    Ok(Json(apps::get(&**client, auth.account_id(), id).await?))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<AppPatch>,
) -> ApiResult<Json<App>> {
    auth.require("apps:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let app = apps::update(&mut w, id, &patch).await?;
    w.commit().await?;
    Ok(Json(app))
}

pub async fn reset_secret(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<App>> {
    auth.require("apps:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let app = apps::reset_secret(&mut w, id).await?;
    w.commit().await?;
    Ok(Json(app))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require("apps:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    apps::delete(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::policy::{Policy, PolicyPatch};
use keyward_shared::store::policies;
use keyward_shared::write::WriteTx;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::routes::apps::Items;
use crate::AppState;

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
    Json(patch): Json<PolicyPatch>,
) -> ApiResult<(StatusCode, Json<Policy>)> {
    auth.require("policies:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let policy = policies::create(&mut w, app_id, &patch).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(policy)))
}

pub async fn list_for_app(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
) -> ApiResult<Json<Items<Policy>>> {
    auth.require("policies:read")?;
    let client = state.read_client().await?;
    // Another tenant's app is "not found", not an empty list.
    keyward_shared::store::apps::get(&**client, auth.account_id(), app_id).await?;
    Ok(Json(Items {
        items: policies::list(&**client, auth.account_id(), Some(app_id)).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    app_id: Option<Uuid>,
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Items<Policy>>> {
    auth.require("policies:read")?;
    let client = state.read_client().await?;
    Ok(Json(Items {
        items: policies::list(&**client, auth.account_id(), q.app_id).await?,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Policy>> {
    auth.require("policies:read")?;
    let client = state.read_client().await?;
    Ok(Json(policies::get(&**client, auth.account_id(), id).await?))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<PolicyPatch>,
) -> ApiResult<Json<Policy>> {
    auth.require("policies:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let policy = policies::update(&mut w, id, &patch).await?;
    w.commit().await?;
    Ok(Json(policy))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require("policies:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    policies::delete(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::model::BlacklistEntry;
use keyward_shared::store::{apps, blacklist};
use keyward_shared::write::WriteTx;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::routes::apps::Items;
use crate::AppState;

pub async fn add(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
    Json(entry): Json<blacklist::NewEntry>,
) -> ApiResult<(StatusCode, Json<BlacklistEntry>)> {
    auth.require("blacklist:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let e = blacklist::add(&mut w, app_id, &entry).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(e)))
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
) -> ApiResult<Json<Items<BlacklistEntry>>> {
    auth.require("blacklist:read")?;
    let client = state.read_client().await?;
    // Another tenant's app is "not found", not an empty list.
    apps::get(&**client, auth.account_id(), app_id).await?;
    Ok(Json(Items {
        items: blacklist::list(&**client, auth.account_id(), app_id).await?,
    }))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require("blacklist:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    blacklist::delete(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

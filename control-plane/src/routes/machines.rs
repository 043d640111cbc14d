use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::model::Machine;
use keyward_shared::store::machines::{self, Listed, MachinePatch, NewMachine, PageQuery};
use keyward_shared::write::WriteTx;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::routes::apps::Items;
use crate::webhooks::emit;
use crate::AppState;

pub async fn activate(
    State(state): State<AppState>,
    auth: Auth,
    Path(license_id): Path<Uuid>,
    Json(new): Json<NewMachine>,
) -> ApiResult<(StatusCode, Json<Machine>)> {
    auth.require("licenses:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let machine = machines::activate(&mut w, license_id, &new).await?;
    emit::machine(&mut w, "machine.created", &machine).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(machine)))
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(license_id): Path<Uuid>,
) -> ApiResult<Json<Items<Machine>>> {
    auth.require("licenses:read")?;
    let client = state.read_client().await?;
    Ok(Json(Items {
        items: machines::list_for_license(&**client, auth.account_id(), license_id).await?,
    }))
}

#[derive(serde::Serialize)]
pub struct Page {
    items: Vec<Listed>,
    next_cursor: Option<String>,
}

/// The account's machines across its licenses, newest first.
pub async fn list_all(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page>> {
    auth.require("licenses:read")?;
    let client = state.read_client().await?;
    let (items, next_cursor) = machines::page(&**client, auth.account_id(), &q).await?;
    Ok(Json(Page { items, next_cursor }))
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Machine>> {
    auth.require("licenses:read")?;
    let client = state.read_client().await?;
    Ok(Json(machines::get(&**client, auth.account_id(), id).await?))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<MachinePatch>,
) -> ApiResult<Json<Machine>> {
    auth.require("licenses:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let machine = machines::update(&mut w, id, &patch).await?;
    emit::machine(&mut w, "machine.updated", &machine).await?;
    w.commit().await?;
    Ok(Json(machine))
}

pub async fn deactivate(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require("licenses:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    // Rendered before it goes, in the same transaction.
    emit::machine_by_id(&mut w, "machine.deleted", id).await?;
    machines::deactivate(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

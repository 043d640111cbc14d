//! Purchases the vendor records (`transactions`): a customer, a license and a product of the
//! account, an amount in the currency's minor unit, a status. CyberLicense's transaction export
//! reads them.

use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::store::transactions::{
    self, NewTransaction, Transaction, TransactionFilter, TransactionPatch,
};
use keyward_shared::write::WriteTx;
use serde::Serialize;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::AppState;

#[derive(Serialize)]
pub struct Page {
    items: Vec<Transaction>,
    next_cursor: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<NewTransaction>,
) -> ApiResult<(StatusCode, Json<Transaction>)> {
    auth.require("transactions:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let t = transactions::create(&mut w, &req).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(t)))
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(f): Query<TransactionFilter>,
) -> ApiResult<Json<Page>> {
    auth.require("transactions:read")?;
    let client = state.read_client().await?;
    let page = transactions::list(&**client, auth.account_id(), &f).await?;
    Ok(Json(Page {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Transaction>> {
    auth.require("transactions:read")?;
    let client = state.read_client().await?;
    Ok(Json(
        transactions::get(&**client, auth.account_id(), id).await?,
    ))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<TransactionPatch>,
) -> ApiResult<Json<Transaction>> {
    auth.require("transactions:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let t = transactions::update(&mut w, id, &patch).await?;
    w.commit().await?;
    Ok(Json(t))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require("transactions:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    transactions::delete(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

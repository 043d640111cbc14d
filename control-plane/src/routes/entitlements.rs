use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::model::Entitlement;
use keyward_shared::store::entitlements::{self, EntitlementPatch, Holder};
use keyward_shared::write::WriteTx;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::routes::apps::Items;
use crate::AppState;

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(patch): Json<EntitlementPatch>,
) -> ApiResult<(StatusCode, Json<Entitlement>)> {
    auth.require("entitlements:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let e = entitlements::create(&mut w, &patch).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(e)))
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Items<Entitlement>>> {
    auth.require("entitlements:read")?;
    let client = state.read_client().await?;
    Ok(Json(Items {
        items: entitlements::list(&**client, auth.account_id()).await?,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Entitlement>> {
    auth.require("entitlements:read")?;
    let client = state.read_client().await?;
    Ok(Json(
        entitlements::get(&**client, auth.account_id(), id).await?,
    ))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<EntitlementPatch>,
) -> ApiResult<Json<Entitlement>> {
    auth.require("entitlements:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let e = entitlements::update(&mut w, id, &patch).await?;
    w.commit().await?;
    Ok(Json(e))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require("entitlements:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    entitlements::delete(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attach {
    entitlement_ids: Vec<Uuid>,
}

/// The scope a holder's attachments need: a policy's or a license's.
fn scope(holder: Holder, write: bool) -> &'static str {
    match (holder, write) {
        (Holder::Policy(_), false) => "policies:read",
        (Holder::Policy(_), true) => "policies:write",
        (Holder::License(_), false) => "licenses:read",
        (Holder::License(_), true) => "licenses:write",
    }
}

async fn attached(
    state: AppState,
    auth: Auth,
    holder: Holder,
) -> ApiResult<Json<Items<Entitlement>>> {
    auth.require(scope(holder, false))?;
    let client = state.read_client().await?;
    Ok(Json(Items {
        items: entitlements::attached(&**client, auth.account_id(), holder).await?,
    }))
}

async fn attach(
    state: AppState,
    auth: Auth,
    holder: Holder,
    body: Attach,
) -> ApiResult<Json<Items<Entitlement>>> {
    auth.require(scope(holder, true))?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let items = entitlements::attach(&mut w, holder, &body.entitlement_ids).await?;
    w.commit().await?;
    Ok(Json(Items { items }))
}

async fn detach(
    state: AppState,
    auth: Auth,
    holder: Holder,
    entitlement: Uuid,
) -> ApiResult<StatusCode> {
    auth.require(scope(holder, true))?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    entitlements::detach(&mut w, holder, entitlement).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn of_policy(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Items<Entitlement>>> {
    attached(state, auth, Holder::Policy(id)).await
}

pub async fn attach_to_policy(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(body): Json<Attach>,
) -> ApiResult<Json<Items<Entitlement>>> {
    attach(state, auth, Holder::Policy(id), body).await
}

pub async fn detach_from_policy(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, entitlement)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    detach(state, auth, Holder::Policy(id), entitlement).await
}

pub async fn of_license(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Items<Entitlement>>> {
    attached(state, auth, Holder::License(id)).await
}

pub async fn attach_to_license(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(body): Json<Attach>,
) -> ApiResult<Json<Items<Entitlement>>> {
    attach(state, auth, Holder::License(id), body).await
}

pub async fn detach_from_license(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, entitlement)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    detach(state, auth, Holder::License(id), entitlement).await
}

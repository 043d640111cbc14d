//! Subscription tiers of an app (KeyAuth's subscriptions): what a user holds, and which tier a
//! license of a given level grants.

use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::model::Subscription;
use keyward_shared::store::apps;
use keyward_shared::store::subscriptions::{self, NewSubscription, SubscriptionPatch};
use keyward_shared::write::WriteTx;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::routes::apps::Items;
use crate::AppState;

// Tiers are app settings.
const READ: &str = "apps:read";
const WRITE: &str = "apps:write";

/// `GET /v1/apps/{id}/subscriptions`: lowest level first.
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
) -> ApiResult<Json<Items<Subscription>>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    apps::get(&**client, auth.account_id(), app_id).await?;
    Ok(Json(Items {
        items: subscriptions::list(&**client, auth.account_id(), app_id).await?,
    }))
}

/// `POST /v1/apps/{id}/subscriptions`.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
    Json(req): Json<NewSubscription>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let s = subscriptions::create(&mut w, app_id, &req).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// `GET /v1/subscriptions/{subId}`.
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Subscription>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    Ok(Json(
        subscriptions::get(&**client, auth.account_id(), id).await?,
    ))
}

/// `PATCH /v1/subscriptions/{subId}`: level and default length (not the name).
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(p): Json<SubscriptionPatch>,
) -> ApiResult<Json<Subscription>> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let s = subscriptions::update(&mut w, id, &p).await?;
    w.commit().await?;
    Ok(Json(s))
}

/// `DELETE /v1/subscriptions/{subId}`: users keep what they hold of it until it expires.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    subscriptions::delete_by_id(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

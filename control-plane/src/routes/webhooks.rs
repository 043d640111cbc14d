//! Event webhooks: endpoints (where an account's events go) and events (the delivery log and
//! queue). Deliveries are made by `crate::webhooks`.

use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::store::webhook_endpoints::{self, EndpointPatch, WebhookEndpoint};
use keyward_shared::store::webhook_events::{self, ListQuery, WebhookEvent};
use keyward_shared::write::WriteTx;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::routes::apps::Items;
use crate::AppState;

const READ: &str = "webhooks:read";
const WRITE: &str = "webhooks:write";

pub async fn create_endpoint(
    State(state): State<AppState>,
    auth: Auth,
    Json(patch): Json<EndpointPatch>,
) -> ApiResult<(StatusCode, Json<WebhookEndpoint>)> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let e = webhook_endpoints::create(&mut w, &patch, state.webhook_urls()).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(e)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointQuery {
    app_id: Option<Uuid>,
}

pub async fn list_endpoints(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<EndpointQuery>,
) -> ApiResult<Json<Items<WebhookEndpoint>>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    Ok(Json(Items {
        items: webhook_endpoints::list(&**client, auth.account_id(), q.app_id).await?,
    }))
}

pub async fn get_endpoint(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<WebhookEndpoint>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    Ok(Json(
        webhook_endpoints::get(&**client, auth.account_id(), id).await?,
    ))
}

pub async fn update_endpoint(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<EndpointPatch>,
) -> ApiResult<Json<WebhookEndpoint>> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let e = webhook_endpoints::update(&mut w, id, &patch, state.webhook_urls()).await?;
    w.commit().await?;
    Ok(Json(e))
}

pub async fn delete_endpoint(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    webhook_endpoints::delete(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct EventPage {
    items: Vec<WebhookEvent>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

pub async fn list_events(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<EventPage>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    let page = webhook_events::list(&**client, auth.account_id(), &q).await?;
    Ok(Json(EventPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

pub async fn get_event(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<WebhookEvent>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    Ok(Json(
        webhook_events::get(&**client, auth.account_id(), id).await?,
    ))
}

pub async fn delete_event(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    webhook_events::delete(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a `webhook.test` event for this endpoint alone; the worker is woken at commit.
pub async fn test_endpoint(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<WebhookEvent>)> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let e = webhook_events::send_test(&mut w, id).await?;
    w.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(e)))
}

/// The event names an endpoint can subscribe to (besides `*`), for clients that offer a choice.
pub async fn event_names(auth: Auth) -> ApiResult<Json<Items<&'static str>>> {
    auth.require(READ)?;
    Ok(Json(Items {
        items: webhook_endpoints::EVENTS.to_vec(),
    }))
}

/// Queues the event for delivery now; the worker is woken at commit.
pub async fn retry_event(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<WebhookEvent>> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let e = webhook_events::retry(&mut w, id).await?;
    w.commit().await?;
    Ok(Json(e))
}

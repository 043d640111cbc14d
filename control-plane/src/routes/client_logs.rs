//! What an app's clients sent through KeyAuth's `log` (and client-API events), per app: read in
//! keyset pages, filtered, cleared.

use axum::extract::State;
use keyward_shared::model::ClientLog;
use keyward_shared::store::{apps, client_logs};
use keyward_shared::write::WriteTx;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::routes::users::{Deleted, Page};
use crate::AppState;

// As the KeyAux dashboard: logs are read like the audit log; clearing is an app write.
const READ: &str = "audit:read";
const WRITE: &str = "apps:write";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Exact action (`log` for what clients sent).
    action: Option<String>,
    /// Part of the username, IP or message (case-insensitive).
    search: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /v1/apps/{id}/logs`: newest first.
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<ClientLog>>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    apps::get(&**client, auth.account_id(), app_id).await?;
    let page = client_logs::page(
        &**client,
        auth.account_id(),
        app_id,
        q.action.as_deref(),
        q.search.as_deref(),
        q.limit,
        q.cursor.as_deref(),
    )
    .await?;
    Ok(Json(Page {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// `DELETE /v1/apps/{id}/logs`: all of them (audited).
pub async fn clear(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
) -> ApiResult<Json<Deleted>> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let deleted = client_logs::clear(&mut w, app_id).await?;
    w.commit().await?;
    Ok(Json(Deleted { deleted }))
}

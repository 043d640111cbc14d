//! Client-API sessions of an app (KeyAuth's "online" list): list the live ones, end one or all.
//! An ended session is dropped by every validator at commit, so its next call answers "Session
//! not found".

use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::store::apps;
use keyward_shared::store::sessions::{self, SessionView};
use keyward_shared::write::WriteTx;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::routes::users::{Deleted, Page};
use crate::AppState;

// Sessions are the end users' logins.
const READ: &str = "users:read";
const WRITE: &str = "users:write";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only logged-in (true) or only not yet logged-in (false) sessions.
    validated: Option<bool>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /v1/apps/{id}/sessions`: the unexpired ones, newest first.
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<SessionView>>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    apps::get(&**client, auth.account_id(), app_id).await?;
    let page = sessions::list(
        &**client,
        auth.account_id(),
        app_id,
        q.validated,
        q.limit,
        q.cursor.as_deref(),
    )
    .await?;
    Ok(Json(Page {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// `DELETE /v1/sessions/{sessionId}`.
pub async fn kill(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    sessions::kill(&mut w, &id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/apps/{id}/sessions`: every session of the app.
pub async fn kill_all(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
) -> ApiResult<Json<Deleted>> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let deleted = sessions::kill_all(&mut w, app_id).await?;
    w.commit().await?;
    Ok(Json(Deleted { deleted }))
}

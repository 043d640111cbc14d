//! An app's global variables (KeyAuth's `var`): small values its clients read. Per-user
//! variables live under `/v1/users/{id}/variables` (routes/users.rs).

use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::model::Variable;
use keyward_shared::store::{apps, variables};
use keyward_shared::write::WriteTx;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::routes::apps::Items;
use crate::AppState;

// Global variables are app settings.
const READ: &str = "apps:read";
const WRITE: &str = "apps:write";

/// `GET /v1/apps/{id}/variables`: by key.
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
) -> ApiResult<Json<Items<Variable>>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    apps::get(&**client, auth.account_id(), app_id).await?;
    Ok(Json(Items {
        items: variables::list_global(&**client, auth.account_id(), app_id).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVariable {
    key: String,
    value: String,
}

/// `POST /v1/apps/{id}/variables`: sets one (created, or replaced by key); validators drop the
/// app's variables at commit.
pub async fn set(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
    Json(req): Json<SetVariable>,
) -> ApiResult<Json<Variable>> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let v = variables::upsert_global(&mut w, app_id, &req.key, &req.value).await?;
    w.commit().await?;
    Ok(Json(v))
}

/// `DELETE /v1/variables/{varId}`.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    variables::delete_global_by_id(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

use axum::extract::State;
use keyward_shared::model::AuditEntry;
use keyward_shared::store::audit::{self, AuditFilter};
use serde::Serialize;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::AppState;

#[derive(Serialize)]
pub struct AuditPage {
    items: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    next_before: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(filter): Query<AuditFilter>,
) -> ApiResult<Json<AuditPage>> {
    auth.require("audit:read")?;
    let client = state.read_client().await?;
    let items = audit::list(&**client, auth.account_id(), &filter).await?;
    let limit = keyward_shared::store::page_size(filter.limit, 50, 500) as usize;
    let next_before = (items.len() == limit)
        .then(|| items.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage { items, next_before }))
}

//! `/v1/stats`: the Overview's counts and its per-minute validation series, for the caller's
//! account or one of its apps (`store::stats`, `store::validation_buckets`).

use axum::extract::State;
use chrono::Utc;
use keyward_shared::store::stats::{self, Overview};
use keyward_shared::store::validation_buckets::{self, Series};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewQuery {
    app_id: Option<Uuid>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// Minutes back from now (the current one included), clamped to 1..=1440.
    minutes: Option<i64>,
    app_id: Option<Uuid>,
}

/// `GET /v1/stats/overview`.
pub async fn overview(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<OverviewQuery>,
) -> ApiResult<Json<Overview>> {
    auth.require("licenses:read")?;
    let client = state.read_client().await?;
    let counts = stats::overview(&**client, auth.account_id(), q.app_id, Utc::now()).await?;
    Ok(Json(counts))
}

/// `GET /v1/stats/validations`.
pub async fn validations(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<SeriesQuery>,
) -> ApiResult<Json<Series>> {
    auth.require("licenses:read")?;
    let client = state.read_client().await?;
    let minutes = q.minutes.unwrap_or(180);
    let series =
        validation_buckets::series(&**client, auth.account_id(), q.app_id, minutes, Utc::now())
            .await?;
    Ok(Json(series))
}

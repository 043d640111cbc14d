use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let client = state.client().await?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| ApiError::from(keyward_shared::StoreError::from(e)))?;
    Ok(Json(json!({"ready": true})))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().render(),
    )
}

/// The OpenAPI 3.1 document of every route, native and compatible (kept in `openapi.json`; a test
/// checks that each documented operation is routed).
pub async fn openapi() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}

//! `POST /api/license/rotate` and `POST /api/license/clear`: an admin names a license by its
//! key (in any app of the account); the core gives it a new key or empties its HWIDs and IPs.

use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use keyward_shared::store::licenses;
use keyward_shared::write::WriteTx;
use serde_json::json;
use uuid::Uuid;

use super::{ok, ClAdmin, ClBody, ClError, ClResult};
use crate::webhooks::emit;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/license/rotate", post(rotate))
        .route("/api/license/clear", post(clear))
}

/// The body's `key`: a non-empty string (trimmed).
fn key_of(body: &ClBody) -> ClResult<&str> {
    body.0
        .get("key")
        .and_then(|k| k.as_str())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ClError::bad_request("License key is required"))
}

/// The caller's license with this key, read in the write's transaction. A key is unique in an
/// app only, and CyberLicense names no app: a key of several apps cannot be told apart.
async fn license_id(w: &WriteTx<'_>, key: &str) -> ClResult<Uuid> {
    match licenses::ids_by_key(w.tx(), w.account_id(), key).await?[..] {
        [] => Err(ClError::not_found("License not found")),
        [id] => Ok(id),
        _ => Err(ClError::bad_request("License key is ambiguous")),
    }
}

async fn rotate(
    State(state): State<AppState>,
    ClAdmin(auth): ClAdmin,
    body: ClBody,
) -> ClResult<Response> {
    let key = key_of(&body)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let id = license_id(&w, key).await?;
    let (old, new) = licenses::rotate_key(&mut w, id).await?;
    emit::license(&mut w, "license.updated", id).await?;
    w.commit().await?;
    Ok(ok(json!({"success": true, "oldKey": old, "newKey": new})))
}

async fn clear(
    State(state): State<AppState>,
    ClAdmin(auth): ClAdmin,
    body: ClBody,
) -> ClResult<Response> {
    let key = key_of(&body)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let id = license_id(&w, key).await?;
    licenses::clear_usage(&mut w, id).await?;
    emit::license(&mut w, "license.updated", id).await?;
    w.commit().await?;
    Ok(ok(
        json!({"success": true, "message": "License restrictions cleared"}),
    ))
}

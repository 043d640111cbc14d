//! `/api/v2/services`: Junkie's services are the account's apps, addressed by their integer id.
//! A service's description and premium flag are vendor data of the app, kept in its metadata
//! (`description`, `is_premium`); its keyless mode is the core's.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use keyward_shared::model::App;
use keyward_shared::store::apps::{self, AppPatch};
use keyward_shared::write::WriteTx;
use serde_json::{json, Map, Value};

use super::body::Body;
use super::{answer, num_id, JkAuth, JkBody, JkError, JkPath, JkResult};
use crate::AppState;

fn render(a: &App) -> Value {
    json!({
        "id": a.key_system.num_id,
        "name": a.name,
        "description": a.metadata.get("description").cloned().unwrap_or(Value::Null),
        "is_premium": a.metadata.get("is_premium").and_then(Value::as_bool).unwrap_or(false),
        "keyless_mode": a.key_system.keyless_mode,
        "created_at": super::repr::time(a.created_at),
    })
}

pub async fn list(State(state): State<AppState>, JkAuth(auth): JkAuth) -> JkResult<Response> {
    let client = state.client().await?;
    let services = apps::list(&**client, auth.account_id()).await?;
    Ok(answer(
        StatusCode::OK,
        json!({"services": services.iter().map(render).collect::<Vec<_>>()}),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    JkAuth(auth): JkAuth,
    JkBody(b): JkBody,
) -> JkResult<Response> {
    let b = Body(&b);
    let name = b
        .string("name")?
        .value()
        .ok_or_else(|| JkError::bad_request("name is required"))?;
    let mut metadata = Map::new();
    if let Some(d) = b.string("description")?.value() {
        metadata.insert("description".into(), Value::String(d));
    }
    metadata.insert(
        "is_premium".into(),
        Value::Bool(b.bool("is_premium")?.unwrap_or(false)),
    );
    let patch = AppPatch {
        name: Some(name),
        keyless_mode: b.bool("keyless_mode")?,
        metadata: Some(metadata),
        ..AppPatch::default()
    };
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let app = apps::create(&mut w, &patch).await?;
    w.commit().await?;
    Ok(answer(
        StatusCode::CREATED,
        json!({"service": render(&app)}),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    JkAuth(auth): JkAuth,
    JkPath(id): JkPath<String>,
) -> JkResult<Response> {
    let n = num_id(&id, JkError::service_not_found)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let app = apps::id_by_num(w.tx(), w.account_id(), n).await?;
    // Its keys go with it (the core's cascade).
    apps::delete(&mut w, app).await?;
    w.commit().await?;
    Ok(answer(
        StatusCode::OK,
        json!({"message": "Service deleted"}),
    ))
}

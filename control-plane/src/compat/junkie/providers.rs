//! `/api/v2/providers`: the account's checkpoint providers (the core's `key_providers`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use keyward_shared::store::key_providers::{self, KeyProvider, NewProvider};
use keyward_shared::write::WriteTx;
use serde_json::{json, Value};

use super::body::{Body, Field};
use super::{answer, num_id, JkAuth, JkBody, JkError, JkPath, JkResult};
use crate::AppState;

fn render(p: &KeyProvider) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "is_active": p.is_active,
        "key_valid_minutes": p.key_valid_minutes,
        "link_url": p.link_url,
        "created_at": super::repr::time(p.created_at),
    })
}

pub async fn list(State(state): State<AppState>, JkAuth(auth): JkAuth) -> JkResult<Response> {
    let client = state.client().await?;
    let providers = key_providers::list(&**client, auth.account_id()).await?;
    Ok(answer(
        StatusCode::OK,
        json!({"providers": providers.iter().map(render).collect::<Vec<_>>()}),
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
    // As for a key's validity: null or 0 is forever.
    let key_valid_minutes =
        match b.int("key_valid_minutes")? {
            Field::Set(m) if m != 0 => Some(i32::try_from(m).map_err(|_| {
                JkError::bad_request("key_valid_minutes must be at most 2147483647")
            })?),
            _ => None,
        };
    let p = NewProvider {
        name,
        is_active: b.bool("is_active")?.unwrap_or(true),
        key_valid_minutes,
        link_url: b.string("link_url")?.value().filter(|u| !u.is_empty()),
    };
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let provider = key_providers::create(&mut w, &p).await?;
    w.commit().await?;
    Ok(answer(
        StatusCode::CREATED,
        json!({"provider": render(&provider)}),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    JkAuth(auth): JkAuth,
    JkPath(id): JkPath<String>,
) -> JkResult<Response> {
    let n = num_id(&id, JkError::provider_not_found)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    key_providers::delete(&mut w, n).await?;
    w.commit().await?;
    Ok(answer(
        StatusCode::OK,
        json!({"message": "Provider deleted"}),
    ))
}

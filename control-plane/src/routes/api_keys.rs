use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::model::ApiKey;
use keyward_shared::store::api_keys;
use keyward_shared::write::WriteTx;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::routes::apps::Items;
use crate::AppState;

const SCOPE: &str = "api_keys:write";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    scopes: Vec<String>,
}

#[derive(Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    api_key: ApiKey,
    /// The key itself, shown only in this response.
    key: String,
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    auth.require(SCOPE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let (api_key, key) = api_keys::create(&mut w, &req.name, &req.scopes).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { api_key, key })))
}

pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Items<ApiKey>>> {
    auth.require(SCOPE)?;
    let client = state.read_client().await?;
    Ok(Json(Items {
        items: api_keys::list(&**client, auth.account_id()).await?,
    }))
}

/// The scopes a key may carry, for clients that offer a choice.
pub async fn scopes(auth: Auth) -> ApiResult<Json<Items<&'static str>>> {
    auth.require(SCOPE)?;
    Ok(Json(Items {
        items: api_keys::SCOPES.to_vec(),
    }))
}

pub async fn revoke(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ApiKey>> {
    auth.require(SCOPE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let key = api_keys::revoke(&mut w, id).await?;
    w.commit().await?;
    Ok(Json(key))
}

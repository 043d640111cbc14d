//! Seller keys (`ka_…`): the account's keys for the KeyAuth-style seller API
//! (`/api/seller/`). Shown once, stored hashed, carry no scopes, deleted rather than revoked.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
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

/// A seller key opens everything of the account that the seller API reaches.
const SCOPE: &str = "api_keys:write";

#[derive(Serialize)]
pub struct SellerKey {
    id: Uuid,
    name: String,
    /// The first characters, to tell keys apart.
    prefix: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for SellerKey {
    fn from(k: ApiKey) -> SellerKey {
        SellerKey {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}

#[derive(Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    seller_key: SellerKey,
    /// The key itself, shown only in this response.
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
}

/// `GET /v1/seller-keys`: newest first.
pub async fn list(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Items<SellerKey>>> {
    auth.require(SCOPE)?;
    let client = state.read_client().await?;
    let keys = api_keys::list_seller(&**client, auth.account_id()).await?;
    Ok(Json(Items {
        items: keys.into_iter().map(SellerKey::from).collect(),
    }))
}

/// `POST /v1/seller-keys`.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<NewKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    auth.require(SCOPE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let (key, plaintext) = api_keys::create_seller(&mut w, &req.name).await?;
    w.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            seller_key: key.into(),
            key: plaintext,
        }),
    ))
}

/// `DELETE /v1/seller-keys/{keyId}`: the key stops working at once.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require(SCOPE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    api_keys::delete_seller(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

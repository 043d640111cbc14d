//! Customers: the account's users (Keygen's users, CyberLicense's customers) over the native
//! API — create, list (search, keyset pages), read, change, delete — and their customer tokens
//! (`Bearer::User`, expiring), which open the CyberLicense customer API (`/api/customer/…`).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use keyward_shared::secrets;
use keyward_shared::store::account_users::{self, AccountUser, UserPatch};
use keyward_shared::store::accounts;
use keyward_shared::store::tokens::{self, Bearer};
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::AppState;

const READ: &str = "users:read";
const WRITE: &str = "users:write";

/// How long a customer token lives unless asked otherwise (a portal session's 24 h).
const TOKEN_TTL_SECS: i64 = 86_400;
/// The longest a customer token may be asked to live (a year).
const MAX_TOKEN_TTL_SECS: i64 = 366 * 86_400;

/// A customer as the native API shows it.
#[derive(Serialize)]
pub struct Customer {
    id: Uuid,
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    role: String,
    banned: bool,
    discord_id: Option<String>,
    metadata: Map<String, Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<AccountUser> for Customer {
    fn from(u: AccountUser) -> Customer {
        Customer {
            id: u.id,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            role: u.role,
            banned: u.banned,
            discord_id: u.discord_id,
            metadata: u.metadata,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// The store's "user" is this API's customer.
fn named(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound("user") => ApiError::not_found("customer not found"),
        e => ApiError::from(e),
    }
}

/// A body's customer fields, its password and its ban, each checked by the store.
struct Body {
    patch: UserPatch,
    password: Option<String>,
    banned: Option<bool>,
}

fn body(mut m: Map<String, Value>) -> ApiResult<Body> {
    let password = match m.remove("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p),
        Some(_) => return Err(ApiError::bad_request("password must be a string")),
    };
    let banned = match m.remove("banned") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(ApiError::bad_request("banned must be a boolean")),
    };
    let patch = serde_json::from_value(Value::Object(m))
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    Ok(Body {
        patch,
        password,
        banned,
    })
}

/// An argon2id hash of a new password (off the async workers).
async fn hash(password: String) -> ApiResult<String> {
    accounts::validate_password(&password)?;
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(|_| ApiError::internal("password hashing failed"))?
        .map_err(|_| ApiError::internal("password hashing failed"))
}

/// `POST /v1/customers`.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(m): Json<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<Customer>)> {
    auth.require(WRITE)?;
    let b = body(m)?;
    if b.banned.is_some() {
        return Err(ApiError::bad_request(
            "banned cannot be set on creation; PATCH the customer",
        ));
    }
    let hash = match b.password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let u = account_users::create(&mut w, &b.patch, hash.as_deref()).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(u.into())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Part of the e-mail, first or last name (case-insensitive).
    search: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
pub struct Page {
    items: Vec<Customer>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

/// `GET /v1/customers`.
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    let page = account_users::page(
        &**client,
        auth.account_id(),
        q.search.as_deref(),
        q.limit,
        q.cursor.as_deref(),
    )
    .await?;
    Ok(Json(Page {
        items: page.items.into_iter().map(Customer::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `GET /v1/customers/{id}`.
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Customer>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    let u = account_users::find(&**client, auth.account_id(), &id.to_string())
        .await
        .map_err(named)?;
    Ok(Json(u.into()))
}

/// `PATCH /v1/customers/{id}`: fields, password and ban in one transaction.
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(m): Json<Map<String, Value>>,
) -> ApiResult<Json<Customer>> {
    auth.require(WRITE)?;
    let b = body(m)?;
    let hash = match b.password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let p = &b.patch;
    let fields = p.email.is_some()
        || p.first_name.is_some()
        || p.last_name.is_some()
        || p.role.is_some()
        || p.metadata.is_some()
        || p.discord_id.is_some();
    // A password- or ban-only change writes (and audits) no empty field update.
    let mut u = if fields || (hash.is_none() && b.banned.is_none()) {
        account_users::update(&mut w, id, p).await
    } else {
        account_users::find(w.tx(), w.account_id(), &id.to_string()).await
    }
    .map_err(named)?;
    if let Some(h) = &hash {
        account_users::set_password_hash(&mut w, id, h)
            .await
            .map_err(named)?;
    }
    if let Some(banned) = b.banned.filter(|b| *b != u.banned) {
        u = account_users::set_banned(&mut w, id, banned)
            .await
            .map_err(named)?;
    }
    w.commit().await?;
    Ok(Json(u.into()))
}

/// `DELETE /v1/customers/{id}`: its tokens go with it; its licenses lose their owner.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    account_users::delete(&mut w, id).await.map_err(named)?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Lifetime in seconds (default 86 400, at most a year).
    expires_in_secs: Option<i64>,
    name: Option<String>,
}

#[derive(Serialize)]
pub struct IssuedToken {
    id: Uuid,
    customer_id: Uuid,
    /// The plaintext, shown this once.
    token: String,
    token_type: &'static str,
    expires_at: Option<DateTime<Utc>>,
}

/// `POST /v1/customers/{id}/tokens`: a customer token (the body is optional).
pub async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    auth.require(WRITE)?;
    let req: TokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?
    };
    let ttl = req.expires_in_secs.unwrap_or(TOKEN_TTL_SECS);
    if !(1..=MAX_TOKEN_TTL_SECS).contains(&ttl) {
        return Err(ApiError::bad_request(format!(
            "expires_in_secs must be between 1 and {MAX_TOKEN_TTL_SECS}"
        )));
    }
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let u = account_users::find(w.tx(), w.account_id(), &id.to_string())
        .await
        .map_err(named)?;
    if u.banned {
        return Err(ApiError::forbidden("this customer is banned"));
    }
    let expires_at = Utc::now() + chrono::Duration::seconds(ttl);
    let (t, token) = tokens::create(
        &mut w,
        Bearer::User(u.id),
        req.name.as_deref(),
        Some(expires_at),
    )
    .await?;
    w.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            id: t.id,
            customer_id: u.id,
            token,
            token_type: "Bearer",
            expires_at: t.expires_at,
        }),
    ))
}

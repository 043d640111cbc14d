//! End users of an app (KeyAuth's users) over the native API: list (search, keyset pages),
//! create, read with their subscriptions and variables, change, ban, reset the HWID, extend or
//! shorten subscriptions, delete; and their own variables. Every write invalidates the user on
//! the validators (the store does it), so a ban is refused at the next client call.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use keyward_shared::model::{present, AppUser, Variable};
use keyward_shared::store::{apps, users, variables};
use keyward_shared::write::WriteTx;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::apps::Items;
use crate::AppState;

const READ: &str = "users:read";
const WRITE: &str = "users:write";

/// A keyset page: `next_cursor` (absent on the last page) is the next request's `cursor`.
#[derive(Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A user as the native API shows it: its subscriptions, the latest expiry among them and, when
/// read alone, its variables.
#[derive(Serialize)]
pub struct User {
    #[serde(flatten)]
    user: AppUser,
    expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variables: Option<Vec<Variable>>,
}

impl User {
    fn of(user: AppUser, variables: Option<Vec<Variable>>) -> User {
        User {
            expires_at: user.expires_at(),
            user,
            variables,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    search: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /v1/apps/{id}/users`.
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page<User>>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    // Another tenant's app is "not found", not an empty list.
    apps::get(&**client, auth.account_id(), app_id).await?;
    let page = users::page(
        &**client,
        auth.account_id(),
        app_id,
        q.search.as_deref(),
        q.limit,
        q.cursor.as_deref(),
    )
    .await?;
    Ok(Json(Page {
        items: page.items.into_iter().map(|u| User::of(u, None)).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    email: Option<String>,
    /// Tier name; default: the app's lowest tier.
    subscription: Option<String>,
    /// Level when the named tier does not exist.
    level: Option<i32>,
    /// Length of the subscription; default: the tier's.
    days: Option<i64>,
}

/// An argon2id hash of an end user's new password (off the async workers).
async fn hash(password: String) -> ApiResult<String> {
    users::validate_password(&password)?;
    tokio::task::spawn_blocking(move || keyward_shared::secrets::hash_password(&password))
        .await
        .map_err(|_| ApiError::internal("password hashing failed"))?
        .map_err(|_| ApiError::internal("password hashing failed"))
}

/// `POST /v1/apps/{id}/users`.
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
    Json(req): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    auth.require(WRITE)?;
    // The cheap checks first: a bad name should not cost a password hash.
    users::validate_username(&req.username)?;
    let password_hash = hash(req.password).await?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let user = users::create(
        &mut w,
        app_id,
        &users::NewUser {
            username: &req.username,
            password_hash: &password_hash,
            email: req
                .email
                .as_deref()
                .map(str::trim)
                .filter(|e| !e.is_empty()),
            hwid: None,
            ip: None,
            subscription: req.subscription.as_deref(),
            level: req.level,
            days: req.days,
            key: None,
        },
    )
    .await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(User::of(user, Some(Vec::new())))))
}

/// The user with its subscriptions and variables.
async fn read(state: &AppState, account: Uuid, id: Uuid) -> ApiResult<User> {
    let client = state.read_client().await?;
    let app = users::app_of(&**client, account, id).await?;
    let user = users::get(&**client, account, app, id).await?;
    let vars = variables::list_user(&**client, account, app, Some(id)).await?;
    Ok(User::of(user, Some(vars)))
}

/// `GET /v1/users/{userId}`.
pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<User>> {
    auth.require(READ)?;
    Ok(Json(read(&state, auth.account_id(), id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// A new name; the user's sessions end.
    username: Option<String>,
    password: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
}

/// Runs one user write in its own transaction (the user's app resolved inside it) and answers
/// the user as it now is.
macro_rules! user_write {
    ($state:expr, $auth:expr, $id:expr, |$w:ident, $app:ident| $write:expr) => {{
        $auth.require(WRITE)?;
        let account = $auth.account_id();
        let mut client = $state.client().await?;
        let mut $w = WriteTx::begin(&mut client, $auth.actor).await?;
        let $app = users::app_of($w.tx(), account, $id).await?;
        $write;
        $w.commit().await?;
        drop(client);
        Ok(Json(read(&$state, account, $id).await?))
    }};
}

/// `PATCH /v1/users/{userId}`: name, password, e-mail, all or nothing.
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(p): Json<UserPatch>,
) -> ApiResult<Json<User>> {
    // Before the hash: a caller without the scope costs no argon2 run.
    auth.require(WRITE)?;
    if let Some(name) = &p.username {
        users::validate_username(name)?;
    }
    let password_hash = match p.password {
        Some(pw) => Some(hash(pw).await?),
        None => None,
    };
    user_write!(state, auth, id, |w, app| {
        if let Some(email) = &p.email {
            users::set_email(&mut w, app, id, email.as_deref()).await?;
        }
        if let Some(h) = &password_hash {
            users::set_password(&mut w, app, id, h).await?;
        }
        if let Some(name) = &p.username {
            let user = users::get(w.tx(), w.account_id(), app, id).await?;
            if user.username != users::validate_username(name)? {
                users::rename(&mut w, app, &user, name).await?;
            }
        }
    })
}

/// `DELETE /v1/users/{userId}`: its subscriptions, variables and sessions go with it.
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let app = users::app_of(w.tx(), w.account_id(), id).await?;
    users::delete(&mut w, app, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    /// Users without a subscription still running.
    Expired,
    All,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteMany {
    /// Required, so that no request deletes every user by leaving it out.
    which: Which,
}

#[derive(Serialize)]
pub struct Deleted {
    pub deleted: u64,
}

/// `DELETE /v1/apps/{id}/users?which=expired|all`.
pub async fn delete_many(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
    Query(q): Query<DeleteMany>,
) -> ApiResult<Json<Deleted>> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let deleted = users::delete_many(&mut w, app_id, q.which == Which::Expired).await?;
    w.commit().await?;
    Ok(Json(Deleted { deleted }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    reason: Option<String>,
}

/// `POST /v1/users/{userId}/ban`.
pub async fn ban(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(req): Json<BanRequest>,
) -> ApiResult<Json<User>> {
    user_write!(state, auth, id, |w, app| users::ban(
        &mut w,
        app,
        id,
        req.reason.as_deref()
    )
    .await?)
}

/// `POST /v1/users/{userId}/unban`.
pub async fn unban(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<User>> {
    user_write!(state, auth, id, |w, app| users::unban(&mut w, app, id)
        .await?)
}

/// `POST /v1/users/{userId}/reset-hwid`: the next login binds the HWID it comes from.
pub async fn reset_hwid(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<User>> {
    user_write!(state, auth, id, |w, app| users::reset_hwid(&mut w, app, id)
        .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    days: i64,
    /// One subscription (granted when the user lacks it); absent: every one the user holds.
    subscription: Option<String>,
}

/// `POST /v1/users/{userId}/extend`.
pub async fn extend(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(req): Json<ExtendRequest>,
) -> ApiResult<Json<User>> {
    user_write!(state, auth, id, |w, app| users::extend(
        &mut w,
        app,
        id,
        req.days,
        req.subscription.as_deref()
    )
    .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubtractRequest {
    /// Exactly one of `days` and `seconds`.
    days: Option<i64>,
    seconds: Option<i64>,
    /// One subscription; absent: every one the user holds.
    subscription: Option<String>,
}

/// `POST /v1/users/{userId}/subtract`.
pub async fn subtract(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(req): Json<SubtractRequest>,
) -> ApiResult<Json<User>> {
    auth.require(WRITE)?;
    let seconds = match (req.days, req.seconds) {
        (Some(d), None) if (1..=36_600).contains(&d) => d * 86_400,
        (Some(_), None) => return Err(ApiError::bad_request("days must be between 1 and 36600")),
        (None, Some(s)) => s,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of days and seconds",
            ))
        }
    };
    user_write!(state, auth, id, |w, app| users::subtract(
        &mut w,
        app,
        id,
        seconds,
        req.subscription.as_deref()
    )
    .await?)
}

/// `GET /v1/users/{userId}/variables`.
pub async fn list_variables(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Items<Variable>>> {
    auth.require(READ)?;
    let client = state.read_client().await?;
    let app = users::app_of(&**client, auth.account_id(), id).await?;
    Ok(Json(Items {
        items: variables::list_user(&**client, auth.account_id(), app, Some(id)).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVariable {
    key: String,
    value: String,
}

/// `PUT /v1/users/{userId}/variables`: sets one variable (created or replaced).
pub async fn set_variable(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(req): Json<SetVariable>,
) -> ApiResult<Json<Variable>> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let app = users::app_of(w.tx(), w.account_id(), id).await?;
    let v = variables::set_user(&mut w, app, id, &req.key, &req.value).await?;
    w.commit().await?;
    Ok(Json(v))
}

/// `DELETE /v1/users/{userId}/variables/{varId}`.
pub async fn delete_variable(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, var_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    auth.require(WRITE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    variables::delete_of_user(&mut w, id, var_id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

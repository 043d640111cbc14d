//! The KeyAux (KeyAuth-compatible) admin plane: the dashboard API (`/api/auth/*`,
//! `/api/dashboard/*`, JWT) and the seller API (`GET /api/seller/?type=…`, seller key). Routes
//! translate the documented parameters and shapes to the same core calls the native API makes.

mod dashboard;
mod repr;
mod seller;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use keyward_shared::StoreError;
use serde_json::json;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::AppState;

pub fn router() -> Router<AppState> {
    use dashboard as d;
    Router::new()
        .route("/api/auth/register", post(d::register))
        .route("/api/auth/login", post(d::login))
        .route("/api/dashboard/auth/me", get(d::me))
        .route("/api/dashboard/auth/password", put(d::change_password))
        .route("/api/dashboard/stats", get(d::stats))
        .route("/api/dashboard/apps", get(d::list_apps).post(d::create_app))
        .route(
            "/api/dashboard/apps/{appId}",
            get(d::get_app).put(d::update_app).delete(d::delete_app),
        )
        .route(
            "/api/dashboard/apps/{appId}/reset-secret",
            post(d::reset_secret),
        )
        .route(
            "/api/dashboard/licenses/{appId}",
            get(d::list_licenses).post(d::generate_licenses),
        )
        .route(
            "/api/dashboard/licenses/{appId}/unused/all",
            delete(d::delete_unused_licenses),
        )
        .route(
            "/api/dashboard/licenses/{appId}/used/all",
            delete(d::delete_used_licenses),
        )
        .route(
            "/api/dashboard/licenses/{appId}/{licenseId}",
            delete(d::delete_license),
        )
        .route(
            "/api/dashboard/licenses/{appId}/{licenseId}/ban",
            post(d::ban_license),
        )
        .route(
            "/api/dashboard/users/{appId}",
            get(d::list_users).post(d::create_user),
        )
        .route(
            "/api/dashboard/users/{appId}/all/users",
            delete(d::delete_all_users),
        )
        .route(
            "/api/dashboard/users/{appId}/{userId}",
            get(d::get_user).delete(d::delete_user),
        )
        .route(
            "/api/dashboard/users/{appId}/{userId}/ban",
            post(d::ban_user),
        )
        .route(
            "/api/dashboard/users/{appId}/{userId}/unban",
            post(d::unban_user),
        )
        .route(
            "/api/dashboard/users/{appId}/{userId}/reset-hwid",
            post(d::reset_user_hwid),
        )
        .route(
            "/api/dashboard/users/{appId}/{userId}/extend",
            post(d::extend_user),
        )
        .route(
            "/api/dashboard/subscriptions/{appId}",
            get(d::list_subscriptions).post(d::create_subscription),
        )
        .route(
            "/api/dashboard/subscriptions/{appId}/{subId}",
            delete(d::delete_subscription),
        )
        .route(
            "/api/dashboard/variables/{appId}/global",
            get(d::list_global_vars).post(d::set_global_var),
        )
        .route(
            "/api/dashboard/variables/{appId}/global/{varId}",
            delete(d::delete_global_var),
        )
        .route(
            "/api/dashboard/variables/{appId}/user",
            get(d::list_user_vars).post(d::set_user_var),
        )
        .route(
            "/api/dashboard/variables/{appId}/user/{varId}",
            delete(d::delete_user_var),
        )
        .route(
            "/api/dashboard/webhooks/{appId}",
            get(d::list_webhooks).post(d::create_webhook),
        )
        .route(
            "/api/dashboard/webhooks/{appId}/{webhookId}",
            delete(d::delete_webhook),
        )
        .route(
            "/api/dashboard/blacklist/{appId}",
            get(d::list_blacklist).post(d::add_blacklist),
        )
        .route(
            "/api/dashboard/blacklist/{appId}/{entryId}",
            delete(d::delete_blacklist),
        )
        .route(
            "/api/dashboard/logs/{appId}",
            get(d::list_logs).delete(d::clear_logs),
        )
        .route(
            "/api/dashboard/seller-keys",
            get(d::list_seller_keys).post(d::create_seller_key),
        )
        .route(
            "/api/dashboard/seller-keys/{keyId}",
            delete(d::delete_seller_key),
        )
        .route("/api/seller", get(seller::handle))
        .route("/api/seller/", get(seller::handle))
}

/// Whether a path belongs to this facade (its errors take KeyAux's shape).
pub fn owns(path: &str) -> bool {
    path.starts_with("/api/auth/")
        || path.starts_with("/api/dashboard/")
        || path.starts_with("/api/seller")
}

/// KeyAux's error shape: the status plus `{"success": false, "message": …}`.
#[derive(Debug)]
pub struct KaError(pub ApiError);

pub type KaResult<T> = Result<T, KaError>;

impl KaError {
    pub fn bad_request(message: impl Into<String>) -> KaError {
        KaError(ApiError::bad_request(message))
    }

    pub fn unauthorized(message: impl Into<String>) -> KaError {
        KaError(ApiError::unauthorized(message))
    }

    pub fn not_found(message: impl Into<String>) -> KaError {
        KaError(ApiError::not_found(message))
    }
}

impl From<ApiError> for KaError {
    fn from(e: ApiError) -> Self {
        KaError(e)
    }
}

impl From<StoreError> for KaError {
    fn from(e: StoreError) -> Self {
        store_err(e)
    }
}

impl IntoResponse for KaError {
    fn into_response(self) -> Response {
        let e = self.0;
        let mut resp = (
            e.status,
            axum::Json(json!({"success": false, "message": e.message})),
        )
            .into_response();
        if let Some(wait) = e.retry_after {
            let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Store errors in KeyAux wording ("Application not found" rather than "app not found").
pub fn store_err(e: StoreError) -> KaError {
    match e {
        StoreError::NotFound(what) => {
            let mut w = what.to_string();
            if let Some(first) = w.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            KaError::not_found(format!("{w} not found"))
        }
        other => KaError(ApiError::from(other)),
    }
}

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(KaError))]
pub struct KaJson<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(KaError))]
pub struct KaPath<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(KaError))]
pub struct KaQuery<T>(pub T);

impl From<JsonRejection> for KaError {
    fn from(r: JsonRejection) -> Self {
        KaError(ApiError::from(r))
    }
}

impl From<PathRejection> for KaError {
    fn from(_: PathRejection) -> Self {
        KaError::not_found("Not found")
    }
}

impl From<QueryRejection> for KaError {
    fn from(r: QueryRejection) -> Self {
        KaError(ApiError::from(r))
    }
}

/// A dashboard caller (JWT; API keys with their scopes work too).
pub struct KaAuth(pub Auth);

impl FromRequestParts<AppState> for KaAuth {
    type Rejection = KaError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, KaError> {
        Auth::from_request_parts(parts, state)
            .await
            .map(KaAuth)
            .map_err(|_| KaError::unauthorized("Unauthorized: invalid or expired token"))
    }
}

/// A `201 Created` JSON answer.
pub fn created(body: serde_json::Value) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// argon2id off the async workers.
pub async fn hash(password: String) -> KaResult<String> {
    tokio::task::spawn_blocking(move || keyward_shared::secrets::hash_password(&password))
        .await
        .map_err(|e| KaError(ApiError::internal(format!("hashing failed: {e}"))))?
        .map_err(|e| KaError(ApiError::internal(e.to_string())))
}

pub async fn verify(password: String, hash: String) -> KaResult<bool> {
    tokio::task::spawn_blocking(move || keyward_shared::secrets::verify_password(&password, &hash))
        .await
        .map_err(|e| KaError(ApiError::internal(format!("verification failed: {e}"))))
}

/// A raw body for routes whose JSON body is optional, with JSON errors (413 for oversize).
pub struct KaBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for KaBody {
    type Rejection = KaError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, KaError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(KaBody)
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    KaError(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "PAYLOAD_TOO_LARGE",
                        "Request body is too large",
                    ))
                } else {
                    KaError::bad_request(r.body_text())
                }
            })
    }
}

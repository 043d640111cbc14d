//! Junkie Key System REST API v2 (seed 002) under `/api/v2`: keys, services and providers of
//! the caller's account, addressed by the core's stable integer ids. Routes translate Junkie's
//! fields to the same `keyward_shared::store` calls the native API makes; they hold no rule.
//!
//! One request: the guard has read the body → [`JkAuth`] resolves the bearer (a Keyward API key
//! or an admin JWT) and requires the `rest-api:*` scope → [`body`] reads Junkie's snake_case
//! fields → a core call → [`repr`] renders the `Key` object. Every refusal under the prefix,
//! including the router's 404/405 and the input guard's, is `{"message", "error"}`.

mod body;
mod keys;
mod providers;
mod repr;
mod services;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use keyward_shared::StoreError;
use serde_json::{json, Map, Value};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::AppState;

const PREFIX: &str = "/api/v2";

/// Whether a path belongs to this facade (its errors take Junkie's `{"message","error"}` shape).
pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/api/v2/")
}

/// The router's own 404 and 405 under the prefix take Junkie's shape through [`reject`].
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v2/keys", get(keys::list).post(keys::create))
        .route("/api/v2/keys/batch", post(keys::batch))
        .route("/api/v2/keys/bulk-delete", post(keys::bulk_delete))
        .route(
            "/api/v2/keys/{junkieKey}",
            get(keys::get).put(keys::update).delete(keys::delete),
        )
        .route(
            "/api/v2/keys/{junkieKey}/reset-hwid",
            post(keys::reset_hwid),
        )
        .route(
            "/api/v2/services",
            get(services::list).post(services::create),
        )
        .route("/api/v2/services/{serviceNum}", delete(services::delete))
        .route(
            "/api/v2/providers",
            get(providers::list).post(providers::create),
        )
        .route("/api/v2/providers/{providerId}", delete(providers::delete))
}

/// A refusal made before the facade ran (the input guard's), in Junkie's shape.
pub fn reject(e: ApiError) -> Response {
    JkError::from(e).into_response()
}

/// Junkie's error: the status plus `{"message": …, "error": "<CODE>"}`.
#[derive(Debug)]
pub struct JkError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

pub type JkResult<T> = Result<T, JkError>;

impl JkError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> JkError {
        JkError {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> JkError {
        JkError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn key_not_found() -> JkError {
        JkError::new(StatusCode::NOT_FOUND, "KEY_NOT_FOUND", "Key not found")
    }

    pub fn service_not_found() -> JkError {
        JkError::new(
            StatusCode::NOT_FOUND,
            "SERVICE_NOT_FOUND",
            "Service not found",
        )
    }

    pub fn provider_not_found() -> JkError {
        JkError::new(
            StatusCode::NOT_FOUND,
            "PROVIDER_NOT_FOUND",
            "Provider not found",
        )
    }

    /// 429 with `Retry-After`.
    pub fn too_soon(retry_after_secs: i64, message: impl Into<String>) -> JkError {
        JkError {
            retry_after_secs: Some(retry_after_secs.max(1) as u64),
            ..JkError::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", message)
        }
    }
}

impl From<ApiError> for JkError {
    fn from(e: ApiError) -> Self {
        JkError {
            status: e.status,
            code: e.code,
            retry_after_secs: e
                .retry_after
                .map(|w| (w.as_secs() + u64::from(w.subsec_nanos() > 0)).max(1)),
            message: e.message,
        }
    }
}

/// Store errors in Junkie's words: what was not found is named as Junkie names it.
impl From<StoreError> for JkError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound("key" | "license") => JkError::key_not_found(),
            StoreError::NotFound("service" | "app") => JkError::service_not_found(),
            StoreError::NotFound("provider") => JkError::provider_not_found(),
            other => JkError::from(ApiError::from(other)),
        }
    }
}

impl From<PathRejection> for JkError {
    fn from(r: PathRejection) -> Self {
        JkError::from(ApiError::from(r))
    }
}

impl IntoResponse for JkError {
    fn into_response(self) -> Response {
        let body = json!({"message": self.message, "error": self.code});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The scope Junkie's bearer keys carry ("API Key with rest-api:* scope"); `*` allows it too.
const SCOPE: &str = "rest-api:*";

/// A caller of the REST API: a Keyward API key with [`SCOPE`] (or an admin's JWT).
pub struct JkAuth(pub Auth);

impl FromRequestParts<AppState> for JkAuth {
    type Rejection = JkError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, JkError> {
        let auth = Auth::from_request_parts(parts, state).await?;
        auth.require(SCOPE)?;
        Ok(JkAuth(auth))
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(JkError))]
pub struct JkPath<T>(pub T);

/// A request's JSON body as an object; an empty body is an empty object (the bodies of
/// `reset-hwid` and of creations with defaults are optional).
pub struct JkBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JkBody {
    type Rejection = JkError;

    async fn from_request(req: Request, state: &S) -> Result<Self, JkError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    JkError::from(ApiError::payload_too_large())
                } else {
                    JkError::bad_request(r.body_text())
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JkBody(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(o)) => Ok(JkBody(o)),
            Ok(_) => Err(JkError::bad_request("the body must be a JSON object")),
            Err(e) => Err(JkError::bad_request(format!(
                "the body is not valid JSON: {e}"
            ))),
        }
    }
}

/// The query string's pairs, percent-decoded (invalid UTF-8 becomes U+FFFD, never a refusal).
pub struct JkQuery(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for JkQuery {
    type Rejection = JkError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, JkError> {
        let q = parts.uri.query().unwrap_or("");
        Ok(JkQuery(
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl JkQuery {
    /// The last non-empty value of the first of `names` that is present (aliases).
    pub fn get(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| {
            self.0
                .iter()
                .rev()
                .find(|(k, v)| k == n && !v.trim().is_empty())
                .map(|(_, v)| v.trim())
        })
    }
}

/// A JSON answer with a status.
pub fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A positive integer id from a path segment; anything else names nothing.
pub fn num_id(segment: &str, not_found: fn() -> JkError) -> JkResult<i64> {
    match segment.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(not_found()),
    }
}

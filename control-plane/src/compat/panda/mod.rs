//! Panda Auth's admin API (seed 000; `specs/roblox-key-systems.md` §1.2–1.4) over the core.
//! A service key (`apiKey`, from the query, the body or a header) names one app; every route
//! translates its parameters to `keyward_shared::store` calls and answers Panda's exact shapes.
//! Errors are `{"message"}` and nothing else, because strict Jackson clients refuse extra keys.
//!
//! - `params.rs` — lenient parameters (query or body; bools and numbers as strings);
//! - `render.rs` — Panda's timestamp format and the key and keyless entry shapes;
//! - `generate.rs` — key generation (fixed-date and days keys);
//! - `keys.rs` — one key by value: fetch, delete, expand its expiration, reset its HWID;
//! - `edit.rs` — key edits;
//! - `keyless.rs` — keyless entries: add, fetch, delete;
//! - `service.rs` — the execution count and the identifier check;
//! - `redact.rs` — `apiKey` kept out of logged URIs.

mod edit;
mod generate;
mod keyless;
mod keys;
mod params;
mod redact;
mod render;
mod service;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use keyward_shared::store::api_keys;
use keyward_shared::write::{Actor, Origin};
use keyward_shared::StoreError;
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

pub use params::Params;

/// Every route of the facade (all fixed paths).
const ROUTES: [&str; 16] = [
    "/api/execution-count",
    "/api/generate-key/get",
    "/api/generate-key/post",
    "/api/key/delete",
    "/api/identifier-check",
    "/api/key/expand-expiration",
    "/api/key/fetch",
    "/api/reset-hwid",
    "/api/keyless/delete",
    "/api/generated-key/fetch",
    "/api/generated-key/delete",
    "/api/keyless/fetch",
    "/api/key/edit",
    "/api/generated-key/edit",
    "/api/keyless/add",
    // Served by the validator; named here so that a call that reaches the control-plane by
    // mistake is refused in Panda's shape.
    "/api/push-execution-count",
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/execution-count", get(service::execution_count))
        .route("/api/identifier-check", get(service::identifier_check))
        .route("/api/generate-key/get", get(generate::generate))
        .route("/api/generate-key/post", post(generate::generate))
        .route("/api/key/delete", post(keys::delete))
        .route("/api/key/expand-expiration", post(keys::expand_expiration))
        .route("/api/key/fetch", get(keys::fetch))
        .route("/api/key/edit", post(edit::edit))
        .route("/api/reset-hwid", post(keys::reset_hwid))
        .route("/api/generated-key/fetch", get(keys::fetch_generated))
        .route("/api/generated-key/delete", post(keys::delete_generated))
        .route("/api/generated-key/edit", post(edit::edit_generated))
        .route("/api/keyless/add", post(keyless::add))
        .route("/api/keyless/fetch", get(keyless::fetch))
        .route("/api/keyless/delete", post(keyless::delete))
}

/// Whether a path belongs to this facade (its errors take Panda's `{"message"}` shape).
pub fn owns(path: &str) -> bool {
    ROUTES.contains(&path)
}

/// An error in Panda's shape (for answers given before a handler: the input guard's, 404/405).
pub fn reject(e: ApiError) -> Response {
    PandaError::from(e).into_response()
}

/// Panda's error: a status and `{"message": …}`, nothing else.
#[derive(Debug)]
pub struct PandaError {
    status: StatusCode,
    message: String,
    retry_after_secs: Option<u64>,
}

pub type PandaResult<T> = Result<T, PandaError>;

impl PandaError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PandaError {
        PandaError {
            status,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> PandaError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn key_not_found() -> PandaError {
        Self::new(StatusCode::NOT_FOUND, "Key not found")
    }

    fn invalid_api_key(detail: Option<&str>) -> PandaError {
        let message = match detail {
            None => "Invalid API key".to_string(),
            Some(d) => format!("Invalid API key: {d}"),
        };
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn too_many(message: impl Into<String>, retry_after_secs: u64) -> PandaError {
        PandaError {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }
}

impl From<ApiError> for PandaError {
    fn from(e: ApiError) -> Self {
        PandaError {
            status: e.status,
            message: e.message,
            retry_after_secs: e
                .retry_after
                .map(|w| w.as_secs() + u64::from(w.subsec_nanos() > 0)),
        }
    }
}

impl From<StoreError> for PandaError {
    /// Panda documents 400, 401, 404 and 429: a refused value or state is a 400 with the core's
    /// reason; not-found errors use Panda's wording.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound("key" | "license") => PandaError::key_not_found(),
            StoreError::NotFound("keyless entry") => {
                PandaError::new(StatusCode::NOT_FOUND, "Keyless entry not found")
            }
            StoreError::NotFound("app") => {
                PandaError::new(StatusCode::NOT_FOUND, "Service not found")
            }
            StoreError::Invalid(m) | StoreError::Conflict(m) | StoreError::LimitReached(m) => {
                PandaError::bad_request(m)
            }
            other => ApiError::from(other).into(),
        }
    }
}

impl IntoResponse for PandaError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(json!({"message": self.message}))).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The app and account a service key opens, and how the audit log names its writes.
pub struct Caller {
    pub account_id: Uuid,
    pub app_id: Uuid,
    /// `panda:<key prefix>`.
    pub label: String,
    /// Where the call came from, for the audit log.
    pub origin: Origin,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor {
            origin: self.origin.clone(),
            account_id: self.account_id,
            label: self.label.clone(),
        }
    }
}

/// One authenticated Panda call: the caller, its parameters and the connection it was resolved
/// on (reused by the handler).
pub struct Call {
    pub caller: Caller,
    pub params: Params,
    pub client: deadpool_postgres::Client,
}

/// Header names that may carry the service key (besides the query and the body).
const KEY_HEADERS: [&str; 2] = ["apikey", "x-api-key"];

impl FromRequest<AppState> for Call {
    type Rejection = PandaError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PandaError> {
        let (parts, body) = req.into_parts();
        let origin = crate::auth::origin(&parts);
        let req = Request::from_parts(parts, body);
        let uri = req.uri().clone();
        let method = req.method().clone();
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                PandaError::from(ApiError::payload_too_large())
            } else {
                PandaError::bad_request(r.body_text())
            }
        })?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let params = Params::parse(uri.query(), content_type, &body);
        let Some(key) = api_key(&params, &headers) else {
            // The key may be inside a body that could not be read: say so rather than 401.
            params.check_body()?;
            return Err(PandaError::invalid_api_key(Some(
                "none was sent (apiKey as a query parameter, a JSON body field or an apiKey header)",
            )));
        };
        let client = state.client().await?;
        let found = api_keys::find_service_key(&**client, &key)
            .await?
            .ok_or_else(|| PandaError::invalid_api_key(None))?;
        let label = format!("panda:{}", key.chars().take(8).collect::<String>());
        tracing::debug!(%method, uri = %redact::uri(&uri), caller = %label, "panda admin call");
        params.check_body()?;
        Ok(Call {
            caller: Caller {
                account_id: found.account_id,
                app_id: found.app_id,
                label,
                origin,
            },
            params,
            client,
        })
    }
}

/// The presented service key: query, then body, then a header.
fn api_key(params: &Params, headers: &HeaderMap) -> Option<String> {
    if let Ok(Some(k)) = params.text("apiKey") {
        return Some(k);
    }
    KEY_HEADERS.iter().find_map(|h| {
        headers
            .get(*h)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    })
}

/// A `200 OK` JSON answer.
pub fn ok<T: serde::Serialize>(body: T) -> Response {
    axum::Json(body).into_response()
}

/// The answer `{"message": …}` with a status.
pub fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({"message": text}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owns_exactly_the_panda_paths() {
        assert!(owns("/api/key/fetch"));
        assert!(owns("/api/generate-key/post"));
        assert!(!owns("/api/key/fetch/"));
        assert!(!owns("/api/dashboard/apps"));
        assert!(!owns("/api/v2/keys"));
    }

    #[test]
    fn errors_have_only_a_message() {
        let resp = PandaError::too_many("wait", 3).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "3");
    }
}

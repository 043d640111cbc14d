//! CyberLicense's admin and customer API (seed 003, `../shared/specs/cyberlicense.md`) under
//! `/api/license/`, `/api/products`, `/api/audit`, `/api/export/` and `/api/customer/`: products
//! are apps, licenses the core's licenses, customers the account's users, the audit log the
//! core's. Routes translate CyberLicense's names to `keyward_shared::store` calls; they hold no
//! rule. (`POST /api/license/validate` is the validator's.)
//!
//! One request: the guard has read the body → [`ClAdmin`] (a Keyward admin JWT or an API key with
//! [`ADMIN_SCOPE`]) or [`ClCustomer`] (a customer's user token) → a core call → the seed's JSON.
//! Every refusal under these prefixes, the router's 404/405 and the input guard's included, is
//! `{"success": false, "error": "…"}`.

mod audit;
mod customer;
mod export;
mod license;
mod products;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Utc};
use keyward_shared::store::account_users;
use keyward_shared::store::tokens::{self, Bearer, Presented};
use keyward_shared::StoreError;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::AppState;

/// The scope an API key needs for CyberLicense's admin routes (`*` allows it too).
pub const ADMIN_SCOPE: &str = "cyberlicense:admin";

const PREFIXES: [&str; 5] = [
    "/api/license/",
    "/api/products",
    "/api/audit",
    "/api/export/",
    "/api/customer/",
];

/// Whether a path belongs to this facade (its errors take CyberLicense's shape).
pub fn owns(path: &str) -> bool {
    PREFIXES.iter().any(|p| {
        path.starts_with(p)
            && (p.ends_with('/') || path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
    })
}

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(license::routes())
        .merge(products::routes())
        .merge(audit::routes())
        .merge(export::routes())
        .merge(customer::routes())
}

/// A refusal made before the facade ran (the input guard's, the router's 404/405).
pub fn reject(e: ApiError) -> Response {
    let e = ClError::from(e);
    if e.status == StatusCode::NOT_FOUND {
        return ClError::not_found("Not found").into_response();
    }
    e.into_response()
}

/// CyberLicense's error: a status and `{"success": false, "error": …}`.
#[derive(Debug)]
pub struct ClError {
    pub status: StatusCode,
    pub error: String,
    retry_after_secs: Option<u64>,
}

pub type ClResult<T> = Result<T, ClError>;

impl ClError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ClError {
        ClError {
            status,
            error: error.into(),
            retry_after_secs: None,
        }
    }

    pub fn bad_request(error: impl Into<String>) -> ClError {
        ClError::new(StatusCode::BAD_REQUEST, error)
    }

    pub fn not_found(error: impl Into<String>) -> ClError {
        ClError::new(StatusCode::NOT_FOUND, error)
    }

    pub fn unauthorized() -> ClError {
        ClError::new(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    /// 400 "Invalid query parameter: <name>".
    pub fn bad_param(name: &str) -> ClError {
        ClError::bad_request(format!("Invalid query parameter: {name}"))
    }
}

impl From<ApiError> for ClError {
    fn from(e: ApiError) -> Self {
        ClError {
            status: e.status,
            retry_after_secs: e
                .retry_after
                .map(|w| (w.as_secs() + u64::from(w.subsec_nanos() > 0)).max(1)),
            error: e.message,
        }
    }
}

impl From<StoreError> for ClError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound("license" | "key") => ClError::not_found("License not found"),
            StoreError::NotFound("app" | "product") => ClError::not_found("Product not found"),
            other => ClError::from(ApiError::from(other)),
        }
    }
}

impl IntoResponse for ClError {
    fn into_response(self) -> Response {
        let body = json!({"success": false, "error": self.error});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// An admin: a Keyward admin JWT, or an API key with [`ADMIN_SCOPE`]. Anything else (a missing
/// or unknown token, a customer's token, a cookie) is 401 "Unauthorized".
pub struct ClAdmin(pub Auth);

impl FromRequestParts<AppState> for ClAdmin {
    type Rejection = ClError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ClError> {
        let auth = Auth::from_request_parts(parts, state)
            .await
            .map_err(|e| match e.status {
                StatusCode::UNAUTHORIZED => ClError::unauthorized(),
                _ => ClError::from(e),
            })?;
        // An API key without the scope is no admin either: 401, like every other credential
        // that is not one.
        auth.require(ADMIN_SCOPE)
            .map_err(|_| ClError::unauthorized())?;
        Ok(ClAdmin(auth))
    }
}

/// A customer: the bearer of a user token (an account user's, issued by the Discord login, the
/// Keygen facade's `POST /tokens` or the native API). Admin credentials are not customers.
pub struct ClCustomer {
    pub account_id: Uuid,
    pub user_id: Uuid,
}

impl FromRequestParts<AppState> for ClCustomer {
    type Rejection = ClError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ClError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(ClError::unauthorized)?;
        let client = state.client().await.map_err(ClError::from)?;
        match tokens::authenticate(&**client, token).await? {
            Presented::Valid(t) => match t.bearer {
                Bearer::User(user_id) => {
                    // A banned customer's tokens stop working at once, not when they expire.
                    let user = account_users::find(&**client, t.account_id, &user_id.to_string())
                        .await
                        .map_err(|e| match e {
                            StoreError::NotFound(_) => ClError::unauthorized(),
                            e => ClError::from(e),
                        })?;
                    if user.banned {
                        return Err(ClError::unauthorized());
                    }
                    Ok(ClCustomer {
                        account_id: t.account_id,
                        user_id,
                    })
                }
                Bearer::Admin | Bearer::Product(_) => Err(ClError::unauthorized()),
            },
            Presented::Expired | Presented::Unknown => Err(ClError::unauthorized()),
        }
    }
}

/// A JSON body as an object; an empty body is an empty object. Malformed JSON is a 400 in
/// CyberLicense's shape.
pub struct ClBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for ClBody {
    type Rejection = ClError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ClError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ClError::from(ApiError::payload_too_large())
                } else {
                    ClError::bad_request(r.body_text())
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ClBody(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(o)) => Ok(ClBody(o)),
            _ => Err(ClError::bad_request("Invalid request body")),
        }
    }
}

/// The query string's pairs, percent-decoded.
pub struct ClQuery(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for ClQuery {
    type Rejection = ClError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ClError> {
        let q = parts.uri.query().unwrap_or("");
        Ok(ClQuery(
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl ClQuery {
    /// The last non-empty value of `name`, trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }

    /// A boolean: `true`/`1`, `false`/`0`; anything else is 400 "Invalid query parameter".
    pub fn bool(&self, name: &str) -> ClResult<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(_) => Err(ClError::bad_param(name)),
        }
    }

    /// An ISO 8601 date or date-time (a bare date is midnight UTC).
    pub fn date(&self, name: &str) -> ClResult<Option<DateTime<Utc>>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        if let Ok(t) = DateTime::parse_from_rfc3339(v) {
            return Ok(Some(t.with_timezone(&Utc)));
        }
        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| Some(t.and_utc()))
            .ok_or_else(|| ClError::bad_param(name))
    }

    /// A non-negative integer.
    pub fn int(&self, name: &str) -> ClResult<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or_else(|| ClError::bad_param(name)),
        }
    }

    /// An id (Keyward's uuid as an opaque string); a malformed one names nothing.
    pub fn id(&self, name: &str) -> Option<Result<Uuid, ()>> {
        self.get(name).map(|v| Uuid::parse_str(v).map_err(|_| ()))
    }
}

/// A 200 answer.
pub fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// ISO 8601 UTC with milliseconds (`2024-12-31T23:59:59.000Z`).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn opt_timestamp(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(timestamp(t)))
}

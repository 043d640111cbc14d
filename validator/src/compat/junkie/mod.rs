//! Junkie's public end-user calls (spec `roblox-key-systems.md` §2.2; its Lua SDK sends them
//! without any credential) over the core: `verifyOpen` (a key's verdict, HTTP 200 for every
//! business outcome), `getKeyOpen` (a provider's link as plain text), and the script download,
//! which Keyward does not serve. Junkie's REST API v2 is the control-plane's.
//!
//! Both open routes are limited per client IP (429 with `Retry-After`).

mod get_key;
mod verify;

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::Value;

use crate::body::RequestBody;
use crate::client_ip::client_ip;
use crate::error::json_response;
use crate::State;

const WHITELIST: &str = "/api/v1/whitelist/";
const SCRIPTS: &str = "/api/v1/luascripts/";
const VERIFY: &str = "/api/v1/whitelist/verifyOpen";
const GET_KEY: &str = "/api/v1/whitelist/getKeyOpen";

/// Whether a path is one of Junkie's.
pub fn owns(path: &str) -> bool {
    path.starts_with(WHITELIST) || path.starts_with(SCRIPTS)
}

pub async fn handle(
    state: &State,
    peer: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
) -> Response<Full<Bytes>> {
    let path = parts.uri.path().trim_end_matches('/');
    let open = matches!(path, VERIFY | GET_KEY);
    if open && parts.method == Method::POST {
        let ip = client_ip(peer, &parts.headers, &state.cfg.trusted_proxies);
        if let Err(wait) = state.limiter.check(ip) {
            let mut resp = if path == VERIFY {
                verify::rate_limited()
            } else {
                get_key::rate_limited()
            };
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(whole_secs(wait)));
            return resp;
        }
        return if path == VERIFY {
            verify::verify_open(state, ip, parts, body).await
        } else {
            get_key::get_key_open(state, body).await
        };
    }
    if open {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed; use POST",
        );
    }
    if path.starts_with(SCRIPTS) && path.ends_with("/download") {
        return error(
            StatusCode::NOT_FOUND,
            "Scripts are not hosted here: Keyward serves keys, not scripts",
        );
    }
    error(StatusCode::NOT_FOUND, &format!("No route for {path}"))
}

/// A refusal outside the routes' own shapes: `{"message", "error"}`.
fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let code = match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        _ => "ERROR",
    };
    let body = serde_json::json!({"message": message, "error": code});
    json_response(status, body.to_string().into_bytes())
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A field the SDK may send as a JSON string or number (`identifier`, `service`, `provider`),
/// as trimmed text; `None` when absent, null, empty or of another type.
fn field(body: &Value, name: &str) -> Option<String> {
    match body.get(name)? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A service or provider name as the store could hold one (names are 1 to 100 characters);
/// anything else names nothing, without a lookup (PostgreSQL text holds no NUL).
fn plausible_name(name: &str) -> bool {
    name.chars().count() <= 100 && !name.contains('\0')
}

/// The account number an `identifier` names (the SDK sends `"unknown"` when none is set).
fn identifier(body: &Value) -> Option<i64> {
    field(body, "identifier")?.parse().ok().filter(|n| *n > 0)
}

/// Reads a JSON object body (at most the validator's body cap).
async fn json_body(state: &State, body: &mut RequestBody) -> Result<Value, String> {
    let bytes = body
        .read(state.cfg.max_body_bytes)
        .await
        .map_err(|e| e.to_string())?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("the body must be a JSON object".into()),
        Err(e) => Err(format!("invalid JSON body: {e}")),
    }
}

/// Rounded up to whole seconds, at least 1.
fn whole_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

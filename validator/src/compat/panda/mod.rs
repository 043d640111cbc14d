//! Panda Auth's end-user calls (spec `roblox-key-systems.md` §1.1, §1.5) over the core: the
//! validations of its legacy, new, newest and failsafe loaders, the service config, the get-key
//! link, the legacy self-service HWID reset and the execution counter. The admin API (seed 000)
//! is the control-plane's.
//!
//! One request: per-IP limit → method and path → a validation (`check.rs`, answered in each
//! route's own shape by `render.rs`, HTTP 200 for every verdict) or one of `service.rs`'s calls.
//! Transport errors (a bad body, the limit, PostgreSQL away) are Panda's `{"message"}`.

mod check;
mod query;
mod render;
mod service;

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;

use crate::body::RequestBody;
use crate::client_ip::client_ip;
use crate::error::{json_response, ApiError};
use crate::State;
use check::{check, Outcome, Request};
use query::Query;

const LEGACY: &str = "/v2_validation";
const V1: &str = "/api/v1/keys/validate";
const FAILSAFE: &str = "/failsafeValidation";
const SERVICEAPI: &str = "/serviceapi";
const RESET_HWID: &str = "/serviceapi/edit/hwid";
const GETKEY: &str = "/getkey";
const PUSH: &str = "/api/push-execution-count";

/// Whether a path is one of Panda's (a trailing `/` is ignored).
pub fn owns(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    matches!(
        path,
        LEGACY | V1 | FAILSAFE | SERVICEAPI | RESET_HWID | GETKEY | PUSH
    ) || path.starts_with("/getkey/")
}

/// A refusal in Panda's error shape: the status and `{"message": …}`, nothing else.
pub struct PandaError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
    /// A body of the route's own shape instead of `{"message"}`.
    shaped: Option<Vec<u8>>,
}

impl PandaError {
    fn new(status: StatusCode, message: impl Into<String>) -> PandaError {
        PandaError {
            status,
            message: message.into(),
            retry_after: None,
            shaped: None,
        }
    }

    fn shaped(status: StatusCode, body: Vec<u8>) -> PandaError {
        PandaError {
            shaped: Some(body),
            ..PandaError::new(status, "")
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = match self.shaped {
            Some(body) => json_response(self.status, body),
            None => message(self.status, &self.message),
        };
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        resp
    }
}

impl From<ApiError> for PandaError {
    fn from(e: ApiError) -> PandaError {
        PandaError {
            status: e.status,
            message: e.message,
            retry_after: e.retry_after.map(whole_secs),
            shaped: None,
        }
    }
}

impl From<crate::cache::CacheError> for PandaError {
    fn from(e: crate::cache::CacheError) -> PandaError {
        ApiError::from(e).into()
    }
}

/// Rounded up, at least 1: what `Retry-After` carries.
fn whole_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "message": text });
    json_response(status, body.to_string().into_bytes())
}

pub async fn handle(
    state: &State,
    peer: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
) -> Response<Full<Bytes>> {
    match serve(state, peer, parts, body).await {
        Ok(resp) => resp,
        Err(e) => {
            if e.status.is_server_error() {
                state.metrics.error("UNAVAILABLE");
            }
            e.into_response()
        }
    }
}

async fn serve(
    state: &State,
    peer: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<Response<Full<Bytes>>, PandaError> {
    let ip = client_ip(peer, &parts.headers, &state.cfg.trusted_proxies);
    if let Err(wait) = state.limiter.check(ip) {
        let secs = whole_secs(wait);
        return Err(PandaError {
            retry_after: Some(secs),
            ..PandaError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many requests from this address; retry in {secs} s"),
            )
        });
    }
    let path = parts.uri.path().trim_end_matches('/');
    let q = Query::parse(parts.uri.query());
    match (&parts.method, path) {
        (&Method::GET, LEGACY) => {
            let service = q.get("service").unwrap_or("");
            let req = Request {
                service,
                key: q.get("key").unwrap_or(""),
                hwid: q.get("hwid"),
            };
            let outcome = check(state, ip, &req).await?;
            Ok(ok(render::legacy(&outcome, service, req.hwid)))
        }
        (&Method::POST, LEGACY) => {
            let b: NewestBody = json_body(state, body, render::newest).await?;
            let outcome = validate_fields(state, ip, &b.serviceid, &b.key, &b.hwid).await?;
            Ok(ok(render::newest(&outcome)))
        }
        (&Method::POST, V1) => {
            let b: V1Body = json_body(state, body, render::v1).await?;
            let outcome = validate_fields(state, ip, &b.service_id, &b.key, &b.hwid).await?;
            Ok(ok(render::v1(&outcome)))
        }
        (&Method::GET, FAILSAFE) => {
            let service = q.get("service").unwrap_or("");
            let req = Request {
                service,
                key: q.get("key").unwrap_or(""),
                hwid: q.get("hwid"),
            };
            let outcome = check(state, ip, &req).await?;
            Ok(ok(render::failsafe(&outcome, service)))
        }
        (&Method::GET, SERVICEAPI) => service::serviceapi(state, &q).await,
        (&Method::POST, RESET_HWID) => service::reset_hwid(state, &q).await,
        (&Method::GET, GETKEY) => service::getkey(state, q.value("service")).await,
        (&Method::GET, p) if p.starts_with("/getkey/") => {
            let segment = p.trim_start_matches("/getkey/");
            let service = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            service::getkey(state, Some(service.trim()).filter(|s| !s.is_empty())).await
        }
        (&Method::POST, PUSH) => service::push_execution_count(state, peer, parts, &q, body).await,
        (_, LEGACY) => Err(not_allowed("GET or POST")),
        (_, V1 | RESET_HWID | PUSH) => Err(not_allowed("POST")),
        _ => Err(not_allowed("GET")),
    }
}

fn not_allowed(allowed: &str) -> PandaError {
    PandaError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("Method not allowed; use {allowed}"),
    )
}

fn ok(body: Vec<u8>) -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, body)
}

/// `POST /v2_validation` (lower-case names, V2LoaderLib @ HEAD).
#[derive(Deserialize)]
struct NewestBody {
    #[serde(default)]
    serviceid: String,
    #[serde(default)]
    hwid: String,
    #[serde(default)]
    key: String,
}

/// `POST /api/v1/keys/validate` (V2LoaderLib @ aacdee3).
#[derive(Deserialize)]
struct V1Body {
    #[serde(default, rename = "ServiceID")]
    service_id: String,
    #[serde(default, rename = "HWID")]
    hwid: String,
    #[serde(default, rename = "Key")]
    key: String,
}

/// A route's JSON body; one that does not parse is a 400 in that route's own failure shape, so
/// a client that reads only the body still sees a failure with its reason.
async fn json_body<T: for<'de> Deserialize<'de>>(
    state: &State,
    body: &mut RequestBody,
    shape: fn(&Outcome) -> Vec<u8>,
) -> Result<T, PandaError> {
    let bytes = body
        .read(state.cfg.max_body_bytes)
        .await
        .map_err(|e| PandaError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let outcome = Outcome::refused(format!("Invalid request body: {e}"));
        PandaError::shaped(StatusCode::BAD_REQUEST, shape(&outcome))
    })
}

async fn validate_fields(
    state: &State,
    ip: IpAddr,
    service: &str,
    key: &str,
    hwid: &str,
) -> Result<Outcome, PandaError> {
    let req = Request {
        service: service.trim(),
        key,
        hwid: Some(hwid),
    };
    Ok(check(state, ip, &req).await?)
}

//! Routing: a `match` on method and path, and the ops endpoints. Every handler gets the request
//! head and its [`RequestBody`], which is settled (drained or the connection marked to close)
//! before the answer goes out.

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};

use crate::body::{BodyError, RequestBody};
use crate::client_ip::client_ip;
use crate::compat::{cyberlicense, junkie, keyauth, keygen, panda};
use crate::error::{json_response, ApiError};
use crate::health::Readiness;
use crate::{self_reset, validate, State};

pub async fn handle(state: &State, peer: IpAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, incoming) = req.into_parts();
    let mut body = RequestBody::new(incoming, &parts.headers);
    let keyauth = keyauth::Api::from_path(parts.uri.path());
    let limit = match keyauth {
        Some(_) => state.cfg.client_api_max_body_bytes,
        None => state.cfg.max_body_bytes,
    };
    let mut resp = route(state, peer, &parts, &mut body, keyauth).await;
    body.settle(limit, &mut resp).await;
    resp
}

async fn route(
    state: &State,
    peer: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
    keyauth: Option<keyauth::Api>,
) -> Response<Full<Bytes>> {
    let result = match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/v1/validate") => validate_route(state, peer, parts, body).await,
        (_, "/v1/validate") => Err(ApiError::method_not_allowed("POST")),
        (&Method::POST, "/v1/reset-hwid") => reset_hwid_route(state, peer, parts, body).await,
        (_, "/v1/reset-hwid") => Err(ApiError::method_not_allowed("POST")),
        (&Method::GET | &Method::HEAD, "/healthz") => Ok(json_response(
            StatusCode::OK,
            br#"{"status":"ok"}"#.to_vec(),
        )),
        (&Method::GET | &Method::HEAD, "/readyz") => Ok(readyz(state)),
        (&Method::GET, "/metrics") => Ok(metrics(state).await),
        (_, "/healthz" | "/readyz" | "/metrics") => Err(ApiError::method_not_allowed("GET")),
        (_, path) if keygen::owns(path) => {
            return keygen::handle(state, peer, parts, body).await;
        }
        (_, path) if panda::owns(path) => {
            return panda::handle(state, peer, parts, body).await;
        }
        (_, path) if junkie::owns(path) => {
            return junkie::handle(state, peer, parts, body).await;
        }
        (_, path) if cyberlicense::owns(path) => {
            return cyberlicense::handle(state, peer, parts, body).await;
        }
        (&Method::GET | &Method::POST, _) if keyauth.is_some() => {
            let api = keyauth.unwrap_or(keyauth::Api::V1_2);
            return keyauth::handle(state, peer, parts, body, api).await;
        }
        (_, path) => Err(ApiError::not_found(
            "NOT_FOUND",
            format!("no route for {path}"),
        )),
    };
    result.unwrap_or_else(|e| {
        state.metrics.error(e.code);
        e.into_response()
    })
}

async fn validate_route(
    state: &State,
    peer: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let ip = client_ip(peer, &parts.headers, &state.cfg.trusted_proxies);
    state.limiter.check(ip).map_err(ApiError::rate_limited)?;
    if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
        let json = ct
            .to_str()
            .map(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            })
            .unwrap_or(false);
        if !json {
            return Err(ApiError::unsupported_media_type());
        }
    }
    let body = body.read(state.cfg.max_body_bytes).await?;
    let parsed = validate::parse(&body)?;
    let validation = parsed.check()?;
    let out = validate::validate(state, validation, ip).await?;
    Ok(json_response(StatusCode::OK, out))
}

/// The self-service HWID reset (`self_reset.rs`), per-IP limited like a validation.
async fn reset_hwid_route(
    state: &State,
    peer: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let ip = client_ip(peer, &parts.headers, &state.cfg.trusted_proxies);
    state.limiter.check(ip).map_err(ApiError::rate_limited)?;
    let body = body.read(state.cfg.max_body_bytes).await?;
    let out = self_reset::native(state, &body).await?;
    Ok(json_response(StatusCode::OK, out))
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(limit) => ApiError::payload_too_large(limit),
            BodyError::TimedOut => ApiError::request_timeout(e.to_string()),
            BodyError::Unreadable(_) => ApiError::bad_request(e.to_string()),
        }
    }
}

fn readyz(state: &State) -> Response<Full<Bytes>> {
    let readiness = state.health.readiness();
    let (status, body) = match readiness {
        Readiness::Live => (
            StatusCode::OK,
            r#"{"ready":true,"state":"live"}"#.to_string(),
        ),
        Readiness::Outage { grace_left } => (
            StatusCode::OK,
            format!(
                r#"{{"ready":true,"state":"outage","grace_left_secs":{},"message":"PostgreSQL is unreachable: cached answers are served for the rest of the outage grace, misses answer 503"}}"#,
                grace_left.as_secs()
            ),
        ),
        not_ready => {
            let why = match not_ready {
                Readiness::Starting => "starting: the caches have not yet been flushed under a connected invalidation listener",
                Readiness::GraceOver => "PostgreSQL has been unreachable for longer than the outage grace",
                Readiness::Resyncing => "the invalidation listener reconnected and the caches are being flushed",
                _ => "shutting down",
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    r#"{{"success":false,"ready":false,"code":"NOT_READY","message":"{why}"}}"#
                ),
            )
        }
    };
    json_response(status, body.into_bytes())
}

async fn metrics(state: &State) -> Response<Full<Bytes>> {
    state
        .metrics
        .license_cache_entries
        .set(state.caches.license_entries() as i64);
    state
        .metrics
        .rate_limiter_tracked
        .set(state.limiter.tracked() as i64);
    state
        .metrics
        .password_hashes
        .set(state.client.passwords.computed() as i64);
    state
        .metrics
        .usage_backlog
        .set(state.usage.backlog() as i64);
    state
        .metrics
        .execution_backlog
        .set(state.executions.backlog());
    let mut resp = Response::new(Full::new(Bytes::from(state.metrics.render())));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

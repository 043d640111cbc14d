//! Routing: a `match` on method and path, body reading with a size cap, and the ops endpoints.

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::client_ip::client_ip;
use crate::error::{json_response, ApiError};
use crate::{keyauth, validate, State};

pub async fn handle(state: &State, peer: IpAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let result = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/validate") => validate_route(state, peer, req).await,
        (_, "/v1/validate") => Err(ApiError::method_not_allowed("POST")),
        (&Method::GET | &Method::HEAD, "/healthz") => Ok(json_response(
            StatusCode::OK,
            br#"{"status":"ok"}"#.to_vec(),
        )),
        (&Method::GET | &Method::HEAD, "/readyz") => Ok(readyz(state)),
        (&Method::GET, "/metrics") => Ok(metrics(state).await),
        (_, "/healthz" | "/readyz" | "/metrics") => Err(ApiError::method_not_allowed("GET")),
        (&Method::GET | &Method::POST, path) if keyauth::Api::from_path(path).is_some() => {
            let api = keyauth::Api::from_path(path).unwrap_or(keyauth::Api::V1_2);
            return keyauth::handle(state, peer, req, api).await;
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
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let ip = client_ip(peer, req.headers(), &state.cfg.trusted_proxies);
    state.limiter.check(ip).map_err(ApiError::rate_limited)?;
    if let Some(ct) = req.headers().get(CONTENT_TYPE) {
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
    let body = read_body(req, state.cfg.max_body_bytes).await?;
    let parsed = validate::parse(&body)?;
    let validation = parsed.check()?;
    let out = validate::validate(state, validation, ip).await?;
    Ok(json_response(StatusCode::OK, out))
}

pub(crate) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

fn readyz(state: &State) -> Response<Full<Bytes>> {
    if state.health.is_ready() {
        json_response(StatusCode::OK, br#"{"ready":true}"#.to_vec())
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"success":false,"code":"NOT_READY","message":"the invalidation listener is not connected (or the validator is shutting down)"}"#.to_vec(),
        )
    }
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
    let mut resp = Response::new(Full::new(Bytes::from(state.metrics.render())));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

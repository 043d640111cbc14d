//! CyberLicense's public call (spec `cyberlicense.md` §1, §3.2–§3.6): `POST
//! /api/license/validate {key, ip?, hwid?, nonce?}` → 200 `{success, valid, license}` or 400/403
//! `{"success":false,"valid":false,"error"}`. Its admin and customer routes are the
//! control-plane's.
//!
//! One request: the route's rate limit (its headers on every answer) → method → body
//! (`request.rs`) → license by key, app, the core's decision and its write (`validate.rs`) →
//! answer (`render.rs`).

mod limit;
mod render;
mod request;
mod validate;

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::http::request::Parts;
use hyper::{Method, Response};

pub use limit::RateLimit;
use limit::Standing;
use render::ClError;

use crate::body::{BodyError, RequestBody};
use crate::client_ip::client_ip;
use crate::State;

const VALIDATE: &str = "/api/license/validate";

/// Whether a path is CyberLicense's validate route (a trailing `/` is ignored, as Express does).
pub fn owns(path: &str) -> bool {
    path.strip_suffix('/').unwrap_or(path) == VALIDATE
}

pub async fn handle(
    state: &State,
    peer: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
) -> Response<Full<Bytes>> {
    let client = client_ip(peer, &parts.headers, &state.cfg.trusted_proxies);
    let standing = state.cyberlicense_limit.check(client);
    let mut resp = match standing {
        Standing::Refused { .. } => render::too_many_requests(),
        _ if parts.method != Method::POST => render::not_found(),
        _ => match serve(state, client, parts, body).await {
            Ok(resp) => resp,
            Err(e) => {
                if e == ClError::Unavailable {
                    state.metrics.error("UNAVAILABLE");
                }
                e.into_response()
            }
        },
    };
    state
        .cyberlicense_limit
        .headers(standing, resp.headers_mut());
    resp
}

async fn serve(
    state: &State,
    client: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<Response<Full<Bytes>>, ClError> {
    // No Content-Type check: the body is read as JSON whatever it declares (scripts omit the
    // header); one that is not a JSON object answers "License key is required" (row 1).
    let bytes = body
        .read(state.cfg.max_body_bytes)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(_) => ClError::TooLarge,
            BodyError::TimedOut => ClError::TimedOut,
            BodyError::Unreadable(_) => ClError::InvalidBody,
        })?;
    let req = request::parse(&bytes, &parts.headers).map_err(|e| match e {
        request::BadBody::KeyRequired => ClError::KeyRequired,
        request::BadBody::Invalid => ClError::InvalidBody,
    })?;
    let shown = validate::validate(state, client, parts, &req).await?;
    Ok(render::valid(shown.license()))
}

#[cfg(test)]
mod tests {
    use super::owns;

    #[test]
    fn owns_the_validate_route_only() {
        assert!(owns("/api/license/validate"));
        assert!(owns("/api/license/validate/"));
        assert!(!owns("/api/license/validate/x"));
        assert!(!owns("/api/license/rotate"));
        assert!(!owns("/api/license/validatex"));
    }
}

//! Panda's calls around a validation: the service's config (`getconfig`), its get-key link, the
//! legacy self-service HWID reset, and the execution counter.

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, LOCATION};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde::Deserialize;

use super::query::Query;
use super::{message, PandaError};
use crate::body::RequestBody;
use crate::cache::AppView;
use crate::error::json_response;
use crate::self_reset::{self, SelfReset};
use crate::State;

/// The app of a service id; 404 `Service not found` when there is none.
async fn app_of(state: &State, service: Option<&str>) -> Result<AppView, PandaError> {
    let not_found = || PandaError::new(StatusCode::NOT_FOUND, "Service not found");
    let Some(service) = service else {
        return Err(PandaError::new(
            StatusCode::BAD_REQUEST,
            "service is required",
        ));
    };
    if !super::check::plausible_service(service) {
        return Err(not_found());
    }
    let Some(id) = state.caches.key_system.service(service).await? else {
        return Err(not_found());
    };
    state.caches.app(id).await?.ok_or_else(not_found)
}

/// `GET /serviceapi?service=S&command=getconfig` → `{"AuthMode": …}`.
pub async fn serviceapi(state: &State, q: &Query<'_>) -> Result<Response<Full<Bytes>>, PandaError> {
    match q.value("command") {
        Some(c) if c.eq_ignore_ascii_case("getconfig") => {}
        Some(c) => {
            return Err(PandaError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown command '{c}'; this server answers command=getconfig"),
            ))
        }
        None => {
            return Err(PandaError::new(
                StatusCode::BAD_REQUEST,
                "command is required (command=getconfig)",
            ))
        }
    }
    let app = app_of(state, q.value("service")).await?;
    let body = serde_json::json!({"AuthMode": app.app.key_system.auth_mode});
    Ok(json_response(StatusCode::OK, body.to_string().into_bytes()))
}

/// `GET /getkey?service=S&hwid=H` and `GET /getkey/{S}?hwid=H` → 302 to the service's get-key
/// page, 404 when it has none.
pub async fn getkey(
    state: &State,
    service: Option<&str>,
) -> Result<Response<Full<Bytes>>, PandaError> {
    let app = app_of(state, service).await?;
    let location = app
        .app
        .key_system
        .get_key_url
        .as_deref()
        .and_then(|url| HeaderValue::from_str(url).ok())
        .ok_or_else(|| {
            PandaError::new(StatusCode::NOT_FOUND, "This service has no get-key link")
        })?;
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FOUND;
    resp.headers_mut().insert(LOCATION, location);
    Ok(resp)
}

/// `POST /serviceapi/edit/hwid/?service&key&newhwid`: the self-service reset. `newhwid` is
/// accepted and not bound: the next validation binds the machine it comes from, as after any
/// reset (binding a HWID named by the caller would let anyone holding the key pick one).
pub async fn reset_hwid(state: &State, q: &Query<'_>) -> Result<Response<Full<Bytes>>, PandaError> {
    let app = app_of(state, q.value("service")).await?;
    let Some(key) = q.value("key") else {
        return Err(PandaError::new(StatusCode::BAD_REQUEST, "key is required"));
    };
    if key.len() > keyward_shared::keygen::MAX_KEY_LEN || key.contains('\0') {
        return Err(PandaError::new(StatusCode::NOT_FOUND, "Key not found"));
    }
    match self_reset::reset(state, &app, key).await? {
        SelfReset::Done => Ok(message(StatusCode::OK, "HWID reset successfully ✅")),
        SelfReset::Disabled => Err(PandaError::new(
            StatusCode::FORBIDDEN,
            "This service does not let users reset their HWID",
        )),
        SelfReset::UnknownKey => Err(PandaError::new(StatusCode::NOT_FOUND, "Key not found")),
        SelfReset::TooSoon { retry_after_secs } => Err(PandaError {
            retry_after: Some(retry_after_secs.max(1).unsigned_abs()),
            ..PandaError::new(
                StatusCode::TOO_MANY_REQUESTS,
                self_reset::next_allowed(retry_after_secs),
            )
        }),
    }
}

#[derive(Deserialize)]
struct PushBody {
    #[serde(rename = "apiKey", alias = "apikey")]
    api_key: Option<String>,
}

/// `POST /api/push-execution-count?apiKey=…` (or `apiKey` in a JSON body, or an `apiKey` /
/// `X-API-Key` header): one more execution for the key's service, counted in memory and
/// written behind.
pub async fn push_execution_count(
    state: &State,
    _peer: IpAddr,
    parts: &Parts,
    q: &Query<'_>,
    body: &mut RequestBody,
) -> Result<Response<Full<Bytes>>, PandaError> {
    let header = ["apikey", "x-api-key"].iter().find_map(|h| {
        parts
            .headers
            .get(*h)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    });
    let api_key = match q.value("apiKey").or(header) {
        Some(k) => k.to_string(),
        None => {
            let bytes = body
                .read(state.cfg.max_body_bytes)
                .await
                .map_err(|e| PandaError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
            serde_json::from_slice::<PushBody>(&bytes)
                .ok()
                .and_then(|b| b.api_key)
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .ok_or_else(|| PandaError::new(StatusCode::BAD_REQUEST, "apiKey is required"))?
        }
    };
    if api_key.len() > 256 || api_key.contains('\0') {
        return Err(PandaError::new(StatusCode::UNAUTHORIZED, "Invalid API key"));
    }
    let Some(found) = state.caches.key_system.service_key(&api_key).await? else {
        return Err(PandaError::new(StatusCode::UNAUTHORIZED, "Invalid API key"));
    };
    state.executions.record(found.app_id);
    Ok(json_response(
        StatusCode::OK,
        br#"{"success":true,"message":"Execution count incremented successfully"}"#.to_vec(),
    ))
}

//! `POST /api/v1/whitelist/verifyOpen {key, service, identifier, hwid?}` →
//! `{"valid", "message": CODE, "is_premium", "expires_at": unix seconds | null}`, HTTP 200 for
//! every verdict (the SDK turns any other status into `valid=false`).
//!
//! `identifier` names the account (its integer id; anything else is `KEY_INVALID`, which says
//! nothing about what exists), `service` one of its apps by integer id or exact name (else
//! `SERVICE_MISMATCH`). The HWID is the body's `hwid`, else the first fingerprint header
//! present (`--junkie-hwid-headers`), else none: the SDK sends none, so then no HWID is checked
//! or bound (`RequestFacts::hwid_optional`).

use std::net::IpAddr;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use keyward_shared::verdict::keyless::Keyless;
use keyward_shared::verdict::{Code, RequestFacts};
use serde::Serialize;
use serde_json::Value;

use super::{field, identifier, json_body, plausible_name};
use crate::body::RequestBody;
use crate::error::{json_response, ApiError};
use crate::keyless::run_keyless;
use crate::validate::run_rules;
use crate::State;

const MAX_KEY_LEN: usize = keyward_shared::keygen::MAX_KEY_LEN;
const MAX_HWID_LEN: usize = 256;

#[derive(Serialize)]
struct Answer<'a> {
    valid: bool,
    message: &'a str,
    is_premium: bool,
    expires_at: Option<i64>,
    /// Only on a refused request (bad body, unavailable): what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn answer(status: StatusCode, a: &Answer<'_>) -> Response<Full<Bytes>> {
    json_response(status, serde_json::to_vec(a).unwrap_or_default())
}

fn verdict(
    valid: bool,
    message: &str,
    premium: bool,
    expires_at: Option<DateTime<Utc>>,
) -> Response<Full<Bytes>> {
    answer(
        StatusCode::OK,
        &Answer {
            valid,
            message,
            is_premium: valid && premium,
            expires_at: expires_at.filter(|_| valid).map(|t| t.timestamp()),
            error: None,
        },
    )
}

fn invalid(message: &str) -> Response<Full<Bytes>> {
    verdict(false, message, false, None)
}

fn refused(status: StatusCode, message: &str, error: &str) -> Response<Full<Bytes>> {
    answer(
        status,
        &Answer {
            valid: false,
            message,
            is_premium: false,
            expires_at: None,
            error: Some(error),
        },
    )
}

pub fn rate_limited() -> Response<Full<Bytes>> {
    refused(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITTED",
        "too many requests from this address; retry later",
    )
}

/// Junkie's code for a verdict (see the report's table).
pub fn message(code: Code) -> &'static str {
    match code {
        Code::Valid => "KEY_VALID",
        Code::NotFound | Code::Banned | Code::Revoked | Code::Disabled | Code::AppPaused => {
            "KEY_INVALID"
        }
        Code::Expired => "KEY_EXPIRED",
        // A device limit, whether counted in HWIDs or addresses.
        Code::HwidMismatch | Code::TooManyHwids | Code::HwidRequired | Code::IpLimit => {
            "KEY_HWID_MISMATCH"
        }
        Code::AlreadyUsed => "KEY_ALREADY_USED",
        Code::Blacklisted => "HWID_BANNED",
    }
}

pub async fn verify_open(
    state: &State,
    ip: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
) -> Response<Full<Bytes>> {
    let body = match json_body(state, body).await {
        Ok(b) => b,
        Err(e) => return refused(StatusCode::BAD_REQUEST, "BAD_REQUEST", &e),
    };
    match verify(state, ip, parts, &body).await {
        Ok(resp) => resp,
        Err(e) => {
            state.metrics.error(e.code);
            refused(e.status, "SERVICE_UNAVAILABLE", &e.message)
        }
    }
}

async fn verify(
    state: &State,
    ip: IpAddr,
    parts: &Parts,
    body: &Value,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let hwid = match body.get("hwid") {
        Some(Value::String(h)) if !h.trim().is_empty() => Some(h.trim()),
        _ => fingerprint(state, parts),
    };
    if hwid.is_some_and(|h| h.len() > MAX_HWID_LEN || h.contains('\0')) {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "'hwid' must be at most 256 characters, without NUL",
        ));
    }
    let Some(account_num) = identifier(body) else {
        return Ok(invalid("KEY_INVALID"));
    };
    if state
        .caches
        .key_system
        .account(account_num)
        .await?
        .is_none()
    {
        return Ok(invalid("KEY_INVALID"));
    }
    let Some(service) = field(body, "service").filter(|s| plausible_name(s)) else {
        return Ok(invalid("SERVICE_MISMATCH"));
    };
    let app_id = match state
        .caches
        .key_system
        .account_service(account_num, &service)
        .await?
    {
        Some(id) => id,
        None => return Ok(invalid("SERVICE_MISMATCH")),
    };
    let Some(app) = state.caches.app(app_id).await? else {
        return Ok(invalid("SERVICE_MISMATCH"));
    };
    let facts = RequestFacts {
        hwid,
        ip: Some(ip),
        hwid_optional: true,
    };
    let now = Utc::now();
    if app.app.key_system.keyless_mode {
        return Ok(match run_keyless(state, &app, facts, now).await? {
            Keyless::Valid {
                premium,
                expires_at,
                ..
            } => verdict(true, "KEYLESS", premium, expires_at),
            Keyless::Refused(v) => invalid(message(v.code)),
            Keyless::Disabled => invalid("KEY_INVALID"),
        });
    }
    let key = match body.get("key") {
        Some(Value::String(k)) => k.trim(),
        _ => "",
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.contains('\0') {
        return Ok(invalid("KEY_INVALID"));
    }
    let (v, license) = run_rules(state, &app, key, facts, now).await?;
    state.metrics.verdict(v.code);
    state.validation_counts.verdict(&app.app, v.code, now);
    if let Some(l) = &license {
        state.usage.record(l.id, now);
    }
    Ok(match license.filter(|_| v.valid) {
        Some(l) => verdict(true, message(v.code), l.premium, l.expires_at()),
        None => invalid(message(v.code)),
    })
}

/// The first configured fingerprint header the request carries.
fn fingerprint<'a>(state: &State, parts: &'a Parts) -> Option<&'a str> {
    state.cfg.junkie_hwid_headers.iter().find_map(|name| {
        parts
            .headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    })
}

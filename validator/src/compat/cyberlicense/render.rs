//! CyberLicense's answers: the valid license in the seed's key order, and the refusals
//! `{"success":false,"valid":false,"error"}`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use keyward_shared::model::{License, LicenseStatus};
use keyward_shared::verdict::cyberlicense::Refusal;
use serde::Serialize;

use crate::error::json_response;
use crate::timestamp::{Fraction, Rfc3339};

/// Why a validation was not answered valid, as CyberLicense words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClError {
    KeyRequired,
    InvalidBody,
    NotFound,
    /// The key names licenses of several products (our choice: refused rather than guessed).
    Ambiguous,
    Refused(Refusal),
    TooLarge,
    TimedOut,
    Unavailable,
}

impl ClError {
    pub fn status(self) -> StatusCode {
        match self {
            ClError::KeyRequired
            | ClError::InvalidBody
            | ClError::NotFound
            | ClError::Ambiguous => StatusCode::BAD_REQUEST,
            ClError::Refused(_) => StatusCode::FORBIDDEN,
            ClError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ClError::TimedOut => StatusCode::REQUEST_TIMEOUT,
            ClError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            ClError::KeyRequired => "License key is required",
            ClError::InvalidBody => "Invalid request body",
            ClError::NotFound => "License not found",
            ClError::Ambiguous => "License key is ambiguous",
            ClError::Refused(r) => refusal(r),
            ClError::TooLarge => "Request body too large",
            ClError::TimedOut => "Request body timed out",
            ClError::Unavailable => "Service unavailable",
        }
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        refusal_body(self.status(), self.message())
    }
}

/// The seed's seven messages.
pub fn refusal(r: Refusal) -> &'static str {
    match r {
        Refusal::Revoked => "License revoked",
        Refusal::Suspended => "License suspended",
        Refusal::NotActive => "License not active",
        Refusal::Expired | Refusal::NoCredits => "License expired",
        Refusal::IpLimit => "IP limit exceeded",
        Refusal::HwidLimit => "HWID limit exceeded",
    }
}

#[derive(Serialize)]
struct Refused<'a> {
    success: bool,
    valid: bool,
    error: &'a str,
}

pub fn refusal_body(status: StatusCode, error: &str) -> Response<Full<Bytes>> {
    let body = Refused {
        success: false,
        valid: false,
        error,
    };
    // Serialising a string and two booleans cannot fail.
    json_response(status, serde_json::to_vec(&body).unwrap_or_default())
}

pub fn too_many_requests() -> Response<Full<Bytes>> {
    refusal_body(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests, please try again later.",
    )
}

/// Another method on the route: CyberLicense's unknown-route answer.
pub fn not_found() -> Response<Full<Bytes>> {
    json_response(
        StatusCode::NOT_FOUND,
        br#"{"success":false,"error":"Not found"}"#.to_vec(),
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseView<'a> {
    key: &'a str,
    active: bool,
    expires_at: Option<Rfc3339>,
    ip_limit: i32,
    hwid_limit: i32,
    used_ips: &'a [std::net::IpAddr],
    used_hwids: Vec<&'a str>,
    license_type: &'static str,
}

#[derive(Serialize)]
struct Valid<'a> {
    success: bool,
    valid: bool,
    license: LicenseView<'a>,
}

pub fn valid(l: &License) -> Response<Full<Bytes>> {
    let body = Valid {
        success: true,
        valid: true,
        license: LicenseView {
            key: &l.key,
            active: l.status == LicenseStatus::Active,
            expires_at: l.expires_at.map(|t| Rfc3339(t, Fraction::Millis)),
            ip_limit: l.ip_limit,
            hwid_limit: l.hwid_limit,
            used_ips: &l.ips,
            used_hwids: l.hwids.iter().map(|h| h.hwid.as_str()).collect(),
            license_type: l.license_type.as_str(),
        },
    };
    // Strings, numbers and addresses only: serialising cannot fail.
    json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

//! The answers of Panda's validation routes, each with exactly the keys its clients parse (spec
//! §1.5; a strict Jackson model rejects any other key), in the order they are listed there.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::check::{opaque_id, Outcome};
use crate::timestamp::{Fraction, Rfc3339};

fn status(valid: bool) -> &'static str {
    if valid {
        "success"
    } else {
        "failed"
    }
}

/// `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`, or `""` when there is no expiry.
fn panda_time(t: Option<DateTime<Utc>>) -> Option<Rfc3339> {
    t.map(|t| Rfc3339(t, Fraction::Millis))
}

#[derive(Serialize)]
#[serde(untagged)]
enum MaybeTime {
    Time(Rfc3339),
    None(&'static str),
}

fn time_or_empty(t: Option<DateTime<Utc>>) -> MaybeTime {
    panda_time(t).map_or(MaybeTime::None(""), MaybeTime::Time)
}

/// `GET /v2_validation`: the fixed 5 + 5 schema, on failure too.
pub fn legacy(o: &Outcome, service: &str, hwid: Option<&str>) -> Vec<u8> {
    #[derive(Serialize)]
    #[allow(non_snake_case)]
    struct KeyInformation<'a> {
        NoKey_Requirement: bool,
        Hardware_ID: &'a str,
        Premium_Mode: bool,
        Notes: &'a str,
        expiresAt: MaybeTime,
    }
    #[derive(Serialize)]
    #[allow(non_snake_case)]
    struct Legacy<'a> {
        OwnerSecretID: String,
        Registered_ServiceID: &'a str,
        Authentication: &'static str,
        V2_Authentication: &'static str,
        Key_Information: KeyInformation<'a>,
    }
    let hwid = if o.valid && o.hwid_bound {
        hwid.unwrap_or("")
    } else {
        ""
    };
    let body = Legacy {
        OwnerSecretID: o
            .app
            .map(|(app, _)| opaque_id("service", app))
            .unwrap_or_default(),
        Registered_ServiceID: service,
        Authentication: status(o.valid),
        V2_Authentication: status(o.valid),
        Key_Information: KeyInformation {
            NoKey_Requirement: o.keyless,
            Hardware_ID: hwid,
            Premium_Mode: o.valid && o.premium,
            Notes: &o.note,
            expiresAt: time_or_empty(o.expires_at.filter(|_| o.valid)),
        },
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `POST /v2_validation` (V2LoaderLib @ HEAD): `Status`, `Is_Premium`, and our `Note`.
pub fn newest(o: &Outcome) -> Vec<u8> {
    #[derive(Serialize)]
    #[allow(non_snake_case)]
    struct Newest<'a> {
        Status: &'static str,
        Is_Premium: bool,
        Note: &'a str,
    }
    let body = Newest {
        Status: if o.valid { "Authenticate" } else { "Failed" },
        Is_Premium: o.valid && o.premium,
        Note: &o.note,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `POST /api/v1/keys/validate` (V2LoaderLib @ aacdee3): `Expire_Date` (UTC
/// `YYYY-MM-DD HH:MM:SS`) only on success, and only when the key expires.
pub fn v1(o: &Outcome) -> Vec<u8> {
    #[derive(Serialize)]
    #[allow(non_snake_case)]
    struct V1<'a> {
        Authenticated_Status: &'static str,
        Note: &'a str,
        Key_Premium: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        Expire_Date: Option<String>,
    }
    let body = V1 {
        Authenticated_Status: if o.valid { "Success" } else { "Failed" },
        Note: &o.note,
        Key_Premium: o.valid && o.premium,
        Expire_Date: o
            .expires_at
            .filter(|_| o.valid)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `GET /failsafeValidation`: `{dev_id, service, expiresAt, status, isPremium}`. A failure
/// (our choice) keeps those five keys (`status: "failed"`, `dev_id`/`expiresAt` empty when
/// unknown) and adds the reason as `message`, still HTTP 200.
pub fn failsafe(o: &Outcome, service: &str) -> Vec<u8> {
    #[derive(Serialize)]
    #[allow(non_snake_case)]
    struct Failsafe<'a> {
        dev_id: String,
        service: &'a str,
        expiresAt: MaybeTime,
        status: &'static str,
        isPremium: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
    }
    let body = Failsafe {
        dev_id: o
            .app
            .map(|(_, account)| opaque_id("developer", account))
            .unwrap_or_default(),
        service,
        expiresAt: time_or_empty(o.expires_at.filter(|_| o.valid)),
        status: status(o.valid),
        isPremium: o.valid && o.premium,
        message: (!o.valid).then_some(&*o.note),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

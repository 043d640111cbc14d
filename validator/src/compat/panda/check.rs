//! One Panda validation, whatever route asked: the service → its app, then the core's rules for
//! the key (`validate::run_rules`) or for a keyless request (`keyless::run_keyless`), and the
//! verdict translated into Panda's terms (a success flag, a note, premium, expiry, the HWID).

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use keyward_shared::verdict::keyless::Keyless;
use keyward_shared::verdict::{Code, RequestFacts};
use uuid::Uuid;

use crate::cache::AppView;
use crate::error::ApiError;
use crate::keyless::run_keyless;
use crate::validate::run_rules;
use crate::State;

const MAX_KEY_LEN: usize = keyward_shared::keygen::MAX_KEY_LEN;
const MAX_HWID_LEN: usize = 256;
/// What `key` holds for a keyless validation.
pub const KEYLESS: &str = "keyless";

/// What a validation route was sent.
pub struct Request<'a> {
    pub service: &'a str,
    pub key: &'a str,
    pub hwid: Option<&'a str>,
}

/// A validation's answer in Panda's terms.
pub struct Outcome {
    pub valid: bool,
    /// Why it failed, or what passed (`Notes`/`Note`/`message`).
    pub note: Cow<'static, str>,
    pub premium: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// The request's HWID is the one bound to the key (`Hardware_ID`).
    pub hwid_bound: bool,
    /// Passed without a key (`NoKey_Requirement`).
    pub keyless: bool,
    /// The service's app and its account (the opaque ids in the answers).
    pub app: Option<(Uuid, Uuid)>,
}

impl Outcome {
    /// A failure before any service is known (a body that does not parse).
    pub fn refused(note: impl Into<Cow<'static, str>>) -> Outcome {
        Outcome::fail(note, None)
    }

    fn fail(note: impl Into<Cow<'static, str>>, app: Option<&AppView>) -> Outcome {
        Outcome {
            valid: false,
            note: note.into(),
            premium: false,
            expires_at: None,
            hwid_bound: false,
            keyless: false,
            app: app.map(|a| (a.app.id, a.app.account_id)),
        }
    }
}

/// Panda's reason for a refusal (`Key_Information.Notes`); see the report's table.
pub fn note(code: Code, hwid_blacklisted: bool) -> &'static str {
    match code {
        Code::Valid => "Key is valid",
        Code::NotFound => "Key not found",
        Code::Expired => "Key expired",
        Code::HwidMismatch | Code::TooManyHwids => "HWID mismatch",
        Code::AlreadyUsed => "Key already used",
        Code::Banned => "Key banned",
        Code::Revoked => "Key revoked",
        Code::Disabled => "Key disabled",
        Code::Blacklisted if hwid_blacklisted => "HWID blacklisted",
        Code::Blacklisted => "IP blacklisted",
        Code::AppPaused => "Service paused",
        Code::HwidRequired => "HWID required",
        Code::IpLimit => "IP limit reached",
    }
}

/// Whether a service id could name an app (`[A-Za-z0-9_-]{1,64}`, the store's rule): anything
/// else is unknown without a lookup (and without filling the negative cache with junk).
pub fn plausible_service(service: &str) -> bool {
    (1..=64).contains(&service.len())
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Validates; `Err` only when the store cannot answer (a 503, not a verdict).
pub async fn check(state: &State, ip: IpAddr, req: &Request<'_>) -> Result<Outcome, ApiError> {
    if !plausible_service(req.service) {
        return Ok(Outcome::fail("Service not found", None));
    }
    let Some(app_id) = state.caches.key_system.service(req.service).await? else {
        return Ok(Outcome::fail("Service not found", None));
    };
    let Some(app) = state.caches.app(app_id).await? else {
        return Ok(Outcome::fail("Service not found", None));
    };
    let key = req.key.trim();
    if key.is_empty() {
        return Ok(Outcome::fail("Key required", Some(&app)));
    }
    let hwid = req.hwid.map(str::trim).filter(|h| !h.is_empty());
    // PostgreSQL text holds no NUL, and no stored key or HWID is longer.
    if key.len() > MAX_KEY_LEN || key.contains('\0') {
        return Ok(Outcome::fail("Key not found", Some(&app)));
    }
    if hwid.is_some_and(|h| h.len() > MAX_HWID_LEN || h.contains('\0')) {
        return Ok(Outcome::fail("Invalid HWID", Some(&app)));
    }
    let facts = RequestFacts {
        hwid,
        ip: Some(ip),
        hwid_optional: false,
    };
    let now = Utc::now();
    let ids = Some((app.app.id, app.app.account_id));
    if key.eq_ignore_ascii_case(KEYLESS) {
        return Ok(match run_keyless(state, &app, facts, now).await? {
            Keyless::Valid {
                premium,
                expires_at,
                ..
            } => Outcome {
                valid: true,
                note: "Keyless access".into(),
                premium,
                expires_at,
                hwid_bound: false,
                keyless: true,
                app: ids,
            },
            Keyless::Disabled => Outcome::fail("Keyless mode disabled", Some(&app)),
            Keyless::Refused(v) => Outcome::fail(refusal(&app, v.code, hwid), Some(&app)),
        });
    }
    let (verdict, license) = run_rules(state, &app, key, facts, now).await?;
    state.metrics.verdict(verdict.code);
    state.validation_counts.verdict(&app.app, verdict.code, now);
    if let Some(l) = &license {
        state.usage.record(l.id, now);
    }
    let license = license.filter(|_| verdict.valid);
    Ok(match license {
        Some(l) => Outcome {
            valid: true,
            note: note(Code::Valid, false).into(),
            premium: l.premium,
            expires_at: l.expires_at(),
            hwid_bound: hwid.is_some_and(|h| l.has_hwid(h)),
            keyless: false,
            app: ids,
        },
        None => Outcome::fail(refusal(&app, verdict.code, hwid), Some(&app)),
    })
}

fn refusal(app: &AppView, code: Code, hwid: Option<&str>) -> &'static str {
    let hwid_blacklisted = hwid.is_some_and(|h| app.blacklist.blocks_hwid(h));
    note(code, hwid_blacklisted)
}

/// An opaque, stable, non-secret id derived from an internal one (`OwnerSecretID`, `dev_id`):
/// 32 hex digits of a SHA-256 under a label, revealing nothing of the id or any secret.
pub fn opaque_id(label: &str, id: Uuid) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = keyward_shared::secrets::sha256(&format!("keyward:panda:{label}:{id}"));
    // Every validation answer carries one: hex without an allocation per byte.
    let mut out = String::with_capacity(32);
    for b in digest.iter().take(16) {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_ids_are_the_first_half_of_a_labelled_sha256_in_hex() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let digest = keyward_shared::secrets::sha256(&format!("keyward:panda:service:{id}"));
        let expected: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(opaque_id("service", id), expected);
        assert_ne!(opaque_id("developer", id), expected);
    }
}

//! The validation decision: one pure function of (app, license, blacklist, request facts, now).
//!
//! Rules are ordered and the first failing one wins. A license that would be valid but has not
//! yet recorded this client (first use, a new HWID within the limit, a new IP within the limit)
//! yields [`Decision::Activate`]: the caller performs the atomic write
//! ([`crate::store::licenses::activate`]) and decides again on the row it returns.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::blacklist::BlacklistView;
use crate::license_facts::LicenseFacts;
use crate::model::{App, LicenseStatus};

pub mod cyberlicense;
pub mod keygen;
pub mod keyless;

/// Stable verdict codes. Clients branch on these; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    Valid,
    NotFound,
    AppPaused,
    Blacklisted,
    Banned,
    Expired,
    HwidRequired,
    HwidMismatch,
    TooManyHwids,
    IpLimit,
    /// A one-time key whose single use is spent.
    AlreadyUsed,
    /// Refused for good by an admin.
    Revoked,
    /// Switched off by an admin (reversible).
    Disabled,
}

impl Code {
    pub const ALL: [Code; 13] = [
        Code::Valid,
        Code::NotFound,
        Code::AppPaused,
        Code::Blacklisted,
        Code::Banned,
        Code::Expired,
        Code::HwidRequired,
        Code::HwidMismatch,
        Code::TooManyHwids,
        Code::IpLimit,
        Code::AlreadyUsed,
        Code::Revoked,
        Code::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Valid => "VALID",
            Code::NotFound => "NOT_FOUND",
            Code::AppPaused => "APP_PAUSED",
            Code::Blacklisted => "BLACKLISTED",
            Code::Banned => "BANNED",
            Code::Expired => "EXPIRED",
            Code::HwidRequired => "HWID_REQUIRED",
            Code::HwidMismatch => "HWID_MISMATCH",
            Code::TooManyHwids => "TOO_MANY_HWIDS",
            Code::IpLimit => "IP_LIMIT",
            Code::AlreadyUsed => "ALREADY_USED",
            Code::Revoked => "REVOKED",
            Code::Disabled => "DISABLED",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub valid: bool,
    pub code: Code,
    /// Static for the common answers so the hot path does not allocate.
    pub detail: Cow<'static, str>,
}

impl Verdict {
    fn fail(code: Code, detail: impl Into<Cow<'static, str>>) -> Self {
        Verdict {
            valid: false,
            code,
            detail: detail.into(),
        }
    }

    fn valid() -> Self {
        Verdict {
            valid: true,
            code: Code::Valid,
            detail: Cow::Borrowed("license is valid"),
        }
    }
}

/// What the client told us (or the socket did).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    pub hwid: Option<&'a str>,
    pub ip: Option<IpAddr>,
    /// The wire format may carry no HWID at all (Junkie's `verifyOpen`): a request without one
    /// then skips the HWID rules (required, bind, mismatch) instead of failing `HwidRequired`.
    /// A request that sends a HWID is checked and bound as usual.
    pub hwid_optional: bool,
}

/// The atomic write needed before a license can be answered as valid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Activation {
    /// Bind this HWID (the SQL re-checks the limit under a row lock).
    pub bind_hwid: Option<String>,
    /// Record this client IP (the SQL re-checks the limit under a row lock).
    pub record_ip: Option<IpAddr>,
    /// First use: set `used_at` and start expiry-on-first-use.
    pub first_use: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Final(Verdict),
    Activate(Activation),
}

pub fn decide(
    app: &App,
    license: Option<&LicenseFacts>,
    blacklist: &BlacklistView,
    facts: RequestFacts<'_>,
    now: DateTime<Utc>,
) -> Decision {
    decide_with(app, license, blacklist, facts, now, false)
}

/// `decide`, where `consumed_by_us` says this request's own activation was the license's first
/// use (so a one-time key just spent by it is still valid for it).
fn decide_with(
    app: &App,
    license: Option<&LicenseFacts>,
    blacklist: &BlacklistView,
    facts: RequestFacts<'_>,
    now: DateTime<Utc>,
    consumed_by_us: bool,
) -> Decision {
    use Decision::Final;

    if app.paused {
        return Final(Verdict::fail(Code::AppPaused, "application is paused"));
    }
    if let Some(ip) = facts.ip {
        if blacklist.blocks_ip(ip) {
            return Final(Verdict::fail(Code::Blacklisted, "client IP is blacklisted"));
        }
    }
    if let Some(hwid) = facts.hwid {
        if blacklist.blocks_hwid(hwid) {
            return Final(Verdict::fail(Code::Blacklisted, "hwid is blacklisted"));
        }
    }
    let Some(license) = license else {
        return Final(Verdict::fail(Code::NotFound, "license key does not exist"));
    };
    if license.status == LicenseStatus::Banned {
        let detail = match license.ban_reason() {
            Some(reason) if !reason.is_empty() => format!("license is banned: {reason}"),
            _ => "license is banned".into(),
        };
        return Final(Verdict::fail(Code::Banned, detail));
    }
    match license.status {
        LicenseStatus::Revoked => {
            return Final(Verdict::fail(Code::Revoked, "license has been revoked"))
        }
        LicenseStatus::Disabled => {
            return Final(Verdict::fail(Code::Disabled, "license is not active"))
        }
        LicenseStatus::Active | LicenseStatus::Banned => {}
    }
    if let Some(expires_at) = license.expires_at() {
        if expires_at <= now {
            return Final(Verdict::fail(Code::Expired, "license has expired"));
        }
    }

    if license.one_time_use && license.used_at().is_some() && !consumed_by_us {
        return Final(Verdict::fail(
            Code::AlreadyUsed,
            "this one-time key has already been used",
        ));
    }

    let mut activation = Activation {
        first_use: license.used_at().is_none(),
        ..Activation::default()
    };

    let hwid_skipped = facts.hwid.is_none() && facts.hwid_optional;
    if app.hwid_lock && license.hwid_check && !hwid_skipped {
        let Some(hwid) = facts.hwid else {
            return Final(Verdict::fail(
                Code::HwidRequired,
                "this application requires a hwid",
            ));
        };
        if !license.has_hwid(hwid) {
            let bound = license.hwid_count();
            let limit = license.hwid_limit;
            if limit == 0 || bound < limit as usize {
                activation.bind_hwid = Some(hwid.to_string());
            } else if limit == 1 {
                return Final(Verdict::fail(
                    Code::HwidMismatch,
                    "hwid does not match the one bound to this license",
                ));
            } else {
                return Final(Verdict::fail(
                    Code::TooManyHwids,
                    format!("license is already bound to its limit of {limit} hwids"),
                ));
            }
        }
    }

    if license.ip_limit > 0 {
        if let Some(ip) = facts.ip {
            if !license.has_ip(ip) {
                if license.ip_count() < license.ip_limit as usize {
                    activation.record_ip = Some(ip);
                } else {
                    return Final(Verdict::fail(
                        Code::IpLimit,
                        format!(
                            "license has been used from its limit of {} IP addresses",
                            license.ip_limit
                        ),
                    ));
                }
            }
        }
    }

    if activation == Activation::default() {
        Final(Verdict::valid())
    } else {
        Decision::Activate(activation)
    }
}

/// Decides on a license row fresh from the activation write. Any activation still pending means
/// the write was refused by the limit re-check under the row lock (another validator won the race),
/// so the answer is the corresponding limit verdict rather than another write.
pub fn decide_after_activation(
    app: &App,
    license: &LicenseFacts,
    blacklist: &BlacklistView,
    facts: RequestFacts<'_>,
    now: DateTime<Utc>,
    first_use_was_ours: bool,
) -> Verdict {
    match decide_with(
        app,
        Some(license),
        blacklist,
        facts,
        now,
        first_use_was_ours,
    ) {
        Decision::Final(v) => v,
        Decision::Activate(a) if a.bind_hwid.is_some() => {
            if license.hwid_limit == 1 {
                Verdict::fail(
                    Code::HwidMismatch,
                    "hwid does not match the one bound to this license",
                )
            } else {
                Verdict::fail(
                    Code::TooManyHwids,
                    format!(
                        "license is already bound to its limit of {} hwids",
                        license.hwid_limit
                    ),
                )
            }
        }
        Decision::Activate(a) if a.record_ip.is_some() => Verdict::fail(
            Code::IpLimit,
            format!(
                "license has been used from its limit of {} IP addresses",
                license.ip_limit
            ),
        ),
        // Only `first_use` left: the row says unused although we just marked it; answer valid.
        Decision::Activate(_) => Verdict::valid(),
    }
}

#[cfg(test)]
mod tests;

//! `POST /v1/validate`: parse, look up, let the core decide, activate when it asks, serialise.
//! No rule lives here; `keyward_shared::verdict::decide` owns them all.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use keyward_shared::license_facts::LicenseFacts;
use keyward_shared::model::App;
use keyward_shared::store::licenses;
use keyward_shared::verdict::{self, Activation, Decision, RequestFacts, Verdict};
use keyward_shared::write::{Actor, WriteTx};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cache::{AppView, CacheError};
use crate::error::ApiError;
use crate::health::Freshness;
use crate::timestamp::{Fraction, Rfc3339};
use crate::State;

const MAX_KEY_LEN: usize = keyward_shared::keygen::MAX_KEY_LEN;
const MAX_HWID_LEN: usize = 256;
const MAX_NONCE_LEN: usize = 128;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest<'a> {
    #[serde(borrow)]
    app: Cow<'a, str>,
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow, default)]
    hwid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    nonce: Option<Cow<'a, str>>,
}

/// A checked request.
pub struct Validation<'a> {
    pub app: Uuid,
    pub key: &'a str,
    pub hwid: Option<&'a str>,
    pub nonce: Option<&'a str>,
}

#[derive(Serialize)]
struct LicenseInfo<'a> {
    key: &'a str,
    level: i32,
    expires_at: Option<Rfc3339>,
    first_used_at: Option<Rfc3339>,
    hwid_limit: i32,
    hwids_bound: usize,
    ip_limit: i32,
}

#[derive(Serialize)]
struct ValidateResponse<'a> {
    valid: bool,
    code: &'static str,
    detail: &'a str,
    ts: Rfc3339,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license: Option<LicenseInfo<'a>>,
}

fn parse_error(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("invalid request body: {e}"))
}

pub fn parse(body: &[u8]) -> Result<ValidateRequest<'_>, ApiError> {
    serde_json::from_slice(body).map_err(parse_error)
}

impl ValidateRequest<'_> {
    /// Checks the fields; the result borrows from the parsed body.
    pub fn check(&self) -> Result<Validation<'_>, ApiError> {
        let r = self;
        let app = Uuid::parse_str(r.app.trim()).map_err(|_| {
            ApiError::bad_request(
                "'app' must be the app's id (a UUID, as the control-plane shows it)",
            )
        })?;
        let key = r.key.trim();
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(ApiError::bad_request(format!(
                "'key' must be 1 to {MAX_KEY_LEN} characters"
            )));
        }
        // PostgreSQL text cannot hold NUL: no key or HWID has one, and sent along, a lookup or
        // write would fail instead of answering.
        if key.contains('\0') || r.hwid.as_deref().is_some_and(|h| h.contains('\0')) {
            return Err(ApiError::bad_request(
                "'key' and 'hwid' must not contain NUL characters",
            ));
        }
        let hwid = r.hwid.as_deref().map(str::trim).filter(|h| !h.is_empty());
        if hwid.is_some_and(|h| h.len() > MAX_HWID_LEN) {
            return Err(ApiError::bad_request(format!(
                "'hwid' must be at most {MAX_HWID_LEN} characters"
            )));
        }
        let nonce = r.nonce.as_deref();
        if nonce.is_some_and(|n| n.len() > MAX_NONCE_LEN) {
            return Err(ApiError::bad_request(format!(
                "'nonce' must be at most {MAX_NONCE_LEN} characters"
            )));
        }
        Ok(Validation {
            app,
            key,
            hwid,
            nonce,
        })
    }
}

/// Runs one validation and returns the JSON body of the 200 answer.
pub async fn validate(state: &State, v: Validation<'_>, ip: IpAddr) -> Result<Vec<u8>, ApiError> {
    let Some(app) = state.caches.app(v.app).await? else {
        return Err(ApiError::not_found(
            "APP_NOT_FOUND",
            format!("no app with id {}", v.app),
        ));
    };
    let facts = RequestFacts {
        hwid: v.hwid,
        ip: Some(ip),
        hwid_optional: false,
    };
    let now = Utc::now();
    let (verdict, license) = run_rules(state, &app, v.key, facts, now).await?;
    state.metrics.verdict(verdict.code);
    state.validation_counts.verdict(&app.app, verdict.code, now);
    if let Some(l) = &license {
        state.usage.record(l.id, now);
    }
    Ok(render(&verdict, license.as_ref(), v.key, v.nonce, now))
}

/// The core's validation of `key` in `app` from the caches: the rules, and the atomic first-use
/// write when they ask for one. Every facade that validates a key (native, Panda, Junkie) calls
/// this and only translates the verdict.
pub async fn run_rules(
    state: &State,
    app: &AppView,
    key: &str,
    facts: RequestFacts<'_>,
    now: DateTime<Utc>,
) -> Result<(Verdict, Option<LicenseFacts>), ApiError> {
    let license = state.caches.license(app.app.id, key).await?;
    let decision = verdict::decide(&app.app, license.as_ref(), &app.blacklist, facts, now);
    Ok(match decision {
        Decision::Final(verdict) => (verdict, license),
        Decision::Activate(activation) => {
            // `decide` only asks to activate an existing license.
            let Some(current) = license else {
                return Err(ApiError::unavailable("license vanished during validation"));
            };
            match activate(state, &app.app, &current, key, &activation).await? {
                Some((fresh, first_use)) => {
                    let verdict = verdict::decide_after_activation(
                        &app.app,
                        &fresh,
                        &app.blacklist,
                        facts,
                        Utc::now(),
                        first_use,
                    );
                    (verdict, Some(fresh))
                }
                None => (
                    match verdict::decide(&app.app, None, &app.blacklist, facts, now) {
                        Decision::Final(v) => v,
                        Decision::Activate(_) => {
                            return Err(ApiError::unavailable("license vanished during validation"))
                        }
                    },
                    None,
                ),
            }
        }
    })
}

/// The atomic first-use write (limits re-checked under a row lock in SQL), committed with its
/// invalidation so every other validator drops the old row.
async fn activate(
    state: &State,
    app: &App,
    license: &LicenseFacts,
    key: &str,
    activation: &Activation,
) -> Result<Option<(LicenseFacts, bool)>, ApiError> {
    if state.health.freshness() != Freshness::Live {
        return Err(CacheError::Unavailable.into());
    }
    let store_err = |e: keyward_shared::StoreError| ApiError::from(CacheError::from(&e));
    let mut client = keyward_shared::db::checkout(&state.pool)
        .await
        .map_err(store_err)?;
    let actor = Actor {
        origin: Default::default(),
        account_id: app.account_id,
        label: "validator".into(),
    };
    let mut wtx = WriteTx::begin(&mut client, actor)
        .await
        .map_err(store_err)?;
    let fresh = licenses::activate(&mut wtx, license.id, activation)
        .await
        .map_err(store_err)?;
    wtx.commit().await.map_err(store_err)?;
    state.metrics.activations.inc();
    state.caches.forget_license(app.id, key);
    Ok(fresh.map(|a| (a.license.facts(), a.first_use)))
}

fn render(
    verdict: &Verdict,
    license: Option<&LicenseFacts>,
    key: &str,
    nonce: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let license = license.filter(|_| verdict.valid).map(|l| LicenseInfo {
        key,
        level: l.level,
        expires_at: l.expires_at().map(|t| Rfc3339(t, Fraction::Auto)),
        first_used_at: l.used_at().map(|t| Rfc3339(t, Fraction::Auto)),
        hwid_limit: l.hwid_limit,
        hwids_bound: l.hwid_count(),
        ip_limit: l.ip_limit,
    });
    let body = ValidateResponse {
        valid: verdict.valid,
        code: verdict.code.as_str(),
        detail: &verdict.detail,
        ts: Rfc3339(now, Fraction::Millis),
        nonce,
        license,
    };
    // Serialising plain strings and numbers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

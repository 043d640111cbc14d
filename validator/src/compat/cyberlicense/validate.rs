//! One validation: the license by key alone (the details cache, kept current by invalidations),
//! its app and blacklist, the core's decision
//! ([`keyward_shared::verdict::cyberlicense::decide`]), and the conditional write it asks for
//! ([`keyward_shared::store::license_uses::record`], limits and credits re-checked under the
//! row's lock). Every validation of an existing license is counted for the usage statistics.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hyper::header::USER_AGENT;
use hyper::http::request::Parts;
use keyward_shared::model::License;
use keyward_shared::store::license_details::LicenseDetail;
use keyward_shared::store::license_stats::write::{UseEvent, UseStatus};
use keyward_shared::store::license_uses::{self, Recorded};
use keyward_shared::verdict::cyberlicense::{self, Outcome, Refusal, Use};
use keyward_shared::verdict::Code;
use keyward_shared::write::{Actor, Origin, WriteTx};
use keyward_shared::StoreError;

use super::render::ClError;
use super::request::Request;
use crate::cache::CacheError;
use crate::health::Freshness;
use crate::State;

/// The license a valid answer shows: the cached one, or the row fresh from the write.
pub enum Shown {
    Cached(Arc<LicenseDetail>),
    Fresh(Box<License>),
}

impl Shown {
    pub fn license(&self) -> &License {
        match self {
            Shown::Cached(d) => &d.license,
            Shown::Fresh(l) => l,
        }
    }
}

pub async fn validate(
    state: &State,
    client: IpAddr,
    parts: &Parts,
    req: &Request<'_>,
) -> Result<Shown, ClError> {
    let key: &str = &req.key;
    // No stored key is longer or holds a NUL (PostgreSQL text cannot): nothing to look up.
    if key.len() > keyward_shared::keygen::MAX_KEY_LEN || key.contains('\0') {
        return Err(ClError::NotFound);
    }
    let found = state
        .caches
        .details
        .by_key(key)
        .await
        .map_err(unavailable)?;
    let detail = match found.as_slice() {
        [] => return Err(ClError::NotFound),
        [one] => one.clone(),
        _ => return Err(ClError::Ambiguous),
    };
    let license = &detail.license;
    let Some(app) = state
        .caches
        .app(license.app_id)
        .await
        .map_err(unavailable)?
    else {
        return Err(ClError::NotFound);
    };
    let now = Utc::now();
    let hwid = req.hwid.as_deref();
    let outcome = cyberlicense::decide_owned(
        &app.app,
        license,
        detail.owner_banned(),
        &app.blacklist,
        req.ip,
        hwid,
        now,
    );
    let answer = match outcome {
        Outcome::Valid(write) if !write.writes() => Ok(Shown::Cached(detail.clone())),
        // The hot write of consumption licenses; what it does not cover (no credit left, a
        // changed state) goes the full way below for its reason.
        Outcome::Valid(write) if write.spend_only() && req.nonce.is_none() => {
            match spend(state, license).await? {
                true => Ok(Shown::Cached(detail.clone())),
                false => record(state, client, parts, license, &write, None).await,
            }
        }
        Outcome::Valid(write) => {
            let nonce = req.nonce.as_deref();
            record(state, client, parts, license, &write, nonce).await
        }
        Outcome::Refused(Refusal::NoCredits) if req.nonce.is_some() => {
            // A retry of the validation that spent the last credit is answered again.
            let nonce = req.nonce.as_deref().unwrap_or_default();
            match replayed(state, license, nonce).await? {
                true => Ok(Shown::Cached(detail.clone())),
                false => Err(ClError::Refused(Refusal::NoCredits)),
            }
        }
        Outcome::Refused(r) => Err(ClError::Refused(r)),
    };
    count(state, license, client, req, &answer, now);
    answer
}

/// The write a valid answer needs, in one transaction of the license's account; this
/// validator then forgets what changed (the others hear of it through the invalidation).
async fn record(
    state: &State,
    client: IpAddr,
    parts: &Parts,
    license: &License,
    write: &Use,
    nonce: Option<&str>,
) -> Result<Shown, ClError> {
    if state.health.freshness() != Freshness::Live {
        return Err(ClError::Unavailable);
    }
    let mut db = keyward_shared::db::checkout(&state.pool)
        .await
        .map_err(store_unavailable)?;
    let user_agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
    let actor = Actor {
        account_id: license.account_id,
        label: "cyberlicense validate".into(),
        origin: Origin::new(Some(client), user_agent),
    };
    let mut wtx = WriteTx::begin(&mut db, actor)
        .await
        .map_err(store_unavailable)?;
    let used = license_uses::record(&mut wtx, license.id, write, nonce)
        .await
        .map_err(store_unavailable)?;
    wtx.commit().await.map_err(store_unavailable)?;
    let Some(used) = used else {
        state.caches.forget_license(license.app_id, &license.key);
        return Err(ClError::NotFound);
    };
    if used.changed {
        state.metrics.activations.inc();
    }
    if write.spend && used.outcome == Recorded::Written {
        state.metrics.credits_spent.inc();
    }
    // Read the license again next time when it changed, or when the cache was behind the
    // committed row (a refusal, or an IP/HWID/first use already recorded): it would otherwise
    // keep asking for this write. A spend alone keeps the entry (the hot path of consumption).
    let asked = write.append_ip.is_some() || write.append_hwid.is_some() || write.first_use;
    if asked || matches!(used.outcome, Recorded::Refused(_)) {
        state.caches.forget_license(license.app_id, &license.key);
    }
    match used.outcome {
        Recorded::Written | Recorded::Replayed => Ok(Shown::Fresh(Box::new(used.license))),
        Recorded::Refused(r) => Err(ClError::Refused(r)),
    }
}

/// One credit spent in one statement (`license_uses::spend`).
async fn spend(state: &State, license: &License) -> Result<bool, ClError> {
    if state.health.freshness() != Freshness::Live {
        return Err(ClError::Unavailable);
    }
    // On a task of its own: once its statement is sent the credit is spent, so a client that
    // leaves meanwhile (dropping this future) must not leave it uncounted.
    let pool = state.pool.clone();
    let spent = state.metrics.credits_spent.clone();
    let (account, id) = (license.account_id, license.id);
    let write = tokio::spawn(async move {
        let db = keyward_shared::db::checkout(&pool).await?;
        let done = license_uses::spend(&*db, account, id).await?;
        if done {
            spent.inc();
        }
        Ok::<_, StoreError>(done)
    });
    match write.await {
        Ok(done) => done.map_err(store_unavailable),
        Err(_) => Err(ClError::Unavailable),
    }
}

async fn replayed(state: &State, license: &License, nonce: &str) -> Result<bool, ClError> {
    let db = keyward_shared::db::checkout(&state.pool)
        .await
        .map_err(store_unavailable)?;
    license_uses::replayed(&**db, license.id, nonce)
        .await
        .map_err(store_unavailable)
}

/// The validation, for the usage statistics (success, blocked by a limit, any other refusal),
/// the validation counters (per license and per app and minute) and the verdict metrics.
fn count(
    state: &State,
    license: &License,
    client: IpAddr,
    req: &Request<'_>,
    answer: &Result<Shown, ClError>,
    at: DateTime<Utc>,
) {
    let (status, code) = match answer {
        Ok(_) => (UseStatus::Success, Code::Valid),
        Err(ClError::Refused(r)) if r.is_limit() => (UseStatus::Blocked, code_of(*r)),
        Err(ClError::Refused(r)) => (UseStatus::Invalid, code_of(*r)),
        // Not a verdict on the license (the store unreachable, the license gone meanwhile).
        Err(_) => return,
    };
    state.metrics.verdict(code);
    state
        .validation_counts
        .record(license.account_id, license.app_id, at, code.as_str());
    state.usage.record(license.id, at);
    state.license_stats.record(UseEvent {
        license_id: license.id,
        // The address the vendor reports for its user, else the caller's own.
        ip: Some(req.ip.unwrap_or(client).to_string()),
        hwid: req.hwid.as_deref().map(str::to_string),
        status,
        at,
    });
}

/// The native code closest to a refusal, for the verdict metrics.
fn code_of(r: Refusal) -> Code {
    match r {
        Refusal::Revoked => Code::Revoked,
        Refusal::Suspended => Code::Banned,
        Refusal::NotActive => Code::Disabled,
        Refusal::Expired | Refusal::NoCredits => Code::Expired,
        Refusal::IpLimit => Code::IpLimit,
        Refusal::HwidLimit => Code::TooManyHwids,
    }
}

fn unavailable(e: CacheError) -> ClError {
    if let CacheError::Database(msg) = &e {
        tracing::error!(error = %msg, "database error during a CyberLicense validation");
    }
    ClError::Unavailable
}

fn store_unavailable(e: StoreError) -> ClError {
    unavailable(CacheError::from(&e))
}

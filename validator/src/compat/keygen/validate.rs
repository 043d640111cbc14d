//! Keygen's validations: `licenses/actions/validate-key` and `licenses/{id|key}/actions/validate`
//! (POST with scopes, GET "quick" without). Always 200 with `{data, meta:{ts, valid, detail,
//! code[, nonce][, scope]}}`; `data` is null only for an unknown key. The decision is
//! `keyward_shared::verdict::keygen::decide`; nothing here decides. A Keygen validation never
//! activates a machine.

use std::sync::Arc;

use chrono::Utc;
use hyper::StatusCode;
use keyward_shared::keygen_validation as validation;
use keyward_shared::store::license_details::LicenseDetail;
use percent_encoding::percent_decode_str;
use serde_json::Value;
use uuid::Uuid;

use super::{auth, writes, Answer, Caller, State};
use keyward_shared::keygen_doc::KgError;
use keyward_shared::verdict::keygen::{FirstUse, KeygenCode};

/// `POST licenses/actions/validate-key {meta:{key, nonce?, scope?}}`.
pub async fn by_key(state: &State, caller: &Caller, body: &Value) -> Result<Answer, KgError> {
    let meta = validation::meta(body)?;
    let key = validation::key(meta)?;
    let req = validation::request(meta, false)?;
    let license = auth::find(state, caller.account, key).await?;
    if let (Some(bearer), Some(found)) = (&caller.bearer, &license) {
        if bearer.license.id != found.license.id {
            return Err(KgError::forbidden("Access denied"));
        }
    }
    let license = match license {
        Some(d) => Some(writes::first_use(state, d, FirstUse::Validation).await?),
        None => None,
    };
    Ok(answer(state, caller, license, &req).await)
}

/// `GET|POST licenses/{id|key}/actions/validate`; GET is quick (no scope checks).
pub async fn by_id(
    state: &State,
    caller: &Caller,
    segment: &str,
    body: &Value,
    quick: bool,
) -> Result<Answer, KgError> {
    let req = validation::request(validation::meta(body)?, quick)?;
    let license = lookup(state, caller, segment).await?;
    let Some(license) = license else {
        return Err(KgError::not_found(format!(
            "The requested license '{segment}' was not found"
        )));
    };
    let license = writes::first_use(state, license, FirstUse::Validation).await?;
    Ok(answer(state, caller, Some(license), &req).await)
}

/// The license as the store has it now (a write of this validator dropped it from the cache).
pub async fn reload(
    state: &State,
    license: &LicenseDetail,
) -> Result<Option<Arc<LicenseDetail>>, KgError> {
    state
        .caches
        .details
        .by_id(license.license.id)
        .await
        .map_err(|e| super::unavailable(&e))
}

/// A license by id or key (the path segment percent-decoded), the bearer's own only.
pub async fn lookup(
    state: &State,
    caller: &Caller,
    segment: &str,
) -> Result<Option<Arc<LicenseDetail>>, KgError> {
    let decoded = percent_decode_str(segment).decode_utf8_lossy();
    let found = match decoded.parse::<Uuid>() {
        Ok(id) => match state.caches.details.by_id(id).await {
            Ok(Some(d)) => Some(d),
            Ok(None) => auth::find(state, caller.account, &decoded).await?,
            Err(e) => return Err(super::unavailable(&e)),
        },
        Err(_) => auth::find(state, caller.account, &decoded).await?,
    };
    let found = found.filter(|d| caller.account.is_none_or(|a| d.license.account_id == a));
    if let (Some(bearer), Some(d)) = (&caller.bearer, &found) {
        if bearer.license.id != d.license.id {
            return Err(KgError::forbidden("Access denied"));
        }
    }
    Ok(found)
}

async fn answer(
    state: &State,
    caller: &Caller,
    license: Option<Arc<LicenseDetail>>,
    req: &validation::Request<'_>,
) -> Answer {
    let now = Utc::now();
    let account = license
        .as_ref()
        .map_or(Uuid::nil(), |d| d.license.account_id);
    let doc = validation::document(license.as_deref(), &caller.links(account), req, now);
    if let Some(d) = &license {
        state.usage.record(d.license.id, now);
        let valid = doc["meta"]["valid"].as_bool().unwrap_or(false);
        let outcome = outcome(valid, doc["meta"]["code"].as_str());
        state
            .validation_counts
            .record(d.license.account_id, d.license.app_id, now, outcome);
        // Not while the store is away: learning who listens would wait on it per account.
        if state.health.is_connected() {
            state
                .validation_events
                .record(
                    &state.pool,
                    d.license.account_id,
                    d.license.app_id,
                    valid,
                    &doc,
                )
                .await;
        }
    }
    Answer::document(StatusCode::OK, &doc, license.map(|d| d.license.app_id))
}

/// What a Keygen validation counts as per minute: `VALID` when it lets the client in (even
/// with a code such as `EXPIRED` under an allowing expiry strategy), else Keygen's own code.
fn outcome(valid: bool, code: Option<&str>) -> &'static str {
    if valid {
        return KeygenCode::Valid.as_str();
    }
    KeygenCode::ALL
        .iter()
        .map(|c| c.as_str())
        .find(|c| Some(*c) == code)
        // The document's code is always one of them.
        .unwrap_or(KeygenCode::NotFound.as_str())
}

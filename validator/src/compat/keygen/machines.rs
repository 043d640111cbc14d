//! Machines under license authentication: activate (`POST /machines`, within the license's limit
//! in the same locked write as the validators' first-use bindings), read, deactivate, heartbeat
//! ping and reset, and a license's machine list. The bearer reaches only its own license's
//! machines; a machine is named by id or by fingerprint.

use std::sync::Arc;

use chrono::Utc;
use hyper::StatusCode;
use keyward_shared::model::Machine;
use keyward_shared::store::license_details::LicenseDetail;
use keyward_shared::store::{licenses, machines};
use keyward_shared::verdict::keygen::{ping_status, starts_expiry, FirstUse, KeygenMachine};
use keyward_shared::StoreError;
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};
use uuid::Uuid;

use super::writes::write;
use super::{Answer, Caller, State};
use keyward_shared::keygen_doc::{self as doc, KgError};

/// The license bearer, or 401: machines are never anonymous.
fn bearer(caller: &Caller) -> Result<&Arc<LicenseDetail>, KgError> {
    caller.bearer.as_ref().ok_or_else(|| {
        KgError::new(
            StatusCode::UNAUTHORIZED,
            "An authentication token or license key is required",
        )
        .code("TOKEN_MISSING")
    })
}

/// The bearer's machine named by id or fingerprint.
pub(super) fn find<'a>(license: &'a LicenseDetail, segment: &str) -> Result<&'a Machine, KgError> {
    let name = percent_decode_str(segment).decode_utf8_lossy();
    let id = name.parse::<Uuid>().ok();
    license
        .machines
        .iter()
        .find(|m| Some(m.id) == id || m.fingerprint == name)
        .ok_or_else(|| KgError::not_found(format!("The requested machine '{name}' was not found")))
}

fn machine_answer(
    status: StatusCode,
    m: &Machine,
    license: &LicenseDetail,
    caller: &Caller,
) -> Answer {
    let links = caller.links(license.license.account_id);
    let doc = json!({"data": doc::machine(m, license, &links, Utc::now())});
    Answer::document(status, &doc, Some(license.license.app_id))
}

/// `POST /machines {data:{type:"machines", attributes:{fingerprint, …}, relationships:{license}}}`.
pub async fn activate(state: &State, caller: &Caller, body: &Value) -> Result<Answer, KgError> {
    let license = bearer(caller)?;
    let (new, named) = doc::machine_request(body)?;
    if named != Some(license.license.id) {
        // Keygen's convention for a blank or unknown relationship; another license's id is
        // out of this bearer's reach, which is the same answer.
        return Err(doc::unprocessable(
            "must exist",
            "LICENSE_NOT_FOUND",
            "/data/relationships/license",
        ));
    }
    let id = license.license.id;
    let limit = license.license.hwid_limit;
    let starts = starts_expiry(
        &license.policy,
        license.license.expires_at,
        license.license.duration_secs,
        FirstUse::Activation,
    );
    let done = write(state, license, |w| {
        Box::pin(async move {
            let machine = machines::activate(w, id, &new).await?;
            if starts {
                licenses::start_expiry(w, id).await?;
            }
            Ok(machine)
        })
    })
    .await?;
    let machine = match done {
        Ok(m) => m,
        Err(e) => {
            return Err(doc::activation_refused(&e, limit)
                .unwrap_or_else(|| super::unavailable(&crate::cache::CacheError::from(&e))))
        }
    };
    let mut answer = machine_answer(StatusCode::CREATED, &machine, license, caller);
    let links = caller.links(license.license.account_id);
    answer.location = Some(links.machine(machine.id));
    Ok(answer)
}

pub fn show(caller: &Caller, segment: &str) -> Result<Answer, KgError> {
    let license = bearer(caller)?;
    let m = find(license, segment)?;
    Ok(machine_answer(StatusCode::OK, m, license, caller))
}

/// `GET /licenses/{id}/machines`: the bearer's own license only.
pub async fn list(state: &State, caller: &Caller, segment: &str) -> Result<Answer, KgError> {
    let license = bearer(caller)?;
    let Some(found) = super::validate::lookup(state, caller, segment).await? else {
        return Err(KgError::not_found(format!(
            "The requested license '{segment}' was not found"
        )));
    };
    let links = caller.links(license.license.account_id);
    let now = Utc::now();
    let data: Vec<Value> = found
        .machines
        .iter()
        .map(|m| doc::machine(m, &found, &links, now))
        .collect();
    let count = data.len();
    Ok(Answer::document(
        StatusCode::OK,
        &json!({"data": data, "meta": {"count": count}, "links": {"meta": {"count": count}}}),
        Some(found.license.app_id),
    ))
}

pub async fn deactivate(state: &State, caller: &Caller, segment: &str) -> Result<Answer, KgError> {
    let license = bearer(caller)?;
    let id = find(license, segment)?.id;
    match write(state, license, |w| Box::pin(machines::deactivate(w, id))).await? {
        Ok(()) => Ok(Answer::empty(StatusCode::NO_CONTENT)),
        Err(StoreError::NotFound(_)) => Err(KgError::not_found(format!(
            "The requested machine '{segment}' was not found"
        ))),
        Err(e) => Err(super::unavailable(&crate::cache::CacheError::from(&e))),
    }
}

/// `ping` records a heartbeat (reviving a dead machine only within its policy's resurrection
/// window); `reset` clears it.
pub async fn heartbeat(
    state: &State,
    caller: &Caller,
    segment: &str,
    reset: bool,
) -> Result<Answer, KgError> {
    let license = bearer(caller)?;
    let m = find(license, segment)?;
    let now = Utc::now();
    if !reset && ping_status(&KeygenMachine::from_machine(m), &license.policy, now).is_none() {
        return Err(doc::unprocessable(
            "is dead",
            "MACHINE_HEARTBEAT_DEAD",
            "/data",
        ));
    }
    let id = m.id;
    let at = (!reset).then_some(now);
    match write(state, license, |w| Box::pin(machines::heartbeat(w, id, at))).await? {
        Ok(updated) => Ok(machine_answer(StatusCode::OK, &updated, license, caller)),
        Err(StoreError::NotFound(_)) => Err(KgError::not_found(format!(
            "The requested machine '{segment}' was not found"
        ))),
        Err(e) => Err(super::unavailable(&crate::cache::CacheError::from(&e))),
    }
}

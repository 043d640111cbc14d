//! Keygen's validations: `licenses/actions/validate-key` and `licenses/{id|key}/actions/validate`
//! (POST with scopes, GET "quick" without). Always 200 with `{data, meta:{ts, valid, detail,
//! code[, nonce][, scope]}}`; `data` is null only for an unknown key. The decision is
//! `keyward_shared::verdict::keygen::decide`; nothing here decides. A Keygen validation never
//! activates a machine.

use std::sync::Arc;

use chrono::Utc;
use hyper::StatusCode;
use keyward_shared::store::license_details::LicenseDetail;
use keyward_shared::verdict::keygen::{self, KeygenMachine, KeygenSubject, Scope, Scoping};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{auth, Answer, Caller, State};
use keyward_shared::keygen_doc::{self as doc, KgError, Source};

/// The `meta` of a validation request.
struct Request<'a> {
    nonce: Option<&'a Value>,
    scope: Option<(&'a Value, Scope)>,
}

fn meta(body: &Value) -> Result<Option<&Map<String, Value>>, KgError> {
    match body.get("meta") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(KgError::bad_request(
            "meta must be an object",
            Source::Pointer("/meta"),
        )),
    }
}

fn request(meta: Option<&Map<String, Value>>) -> Result<Request<'_>, KgError> {
    let nonce = match meta.and_then(|m| m.get("nonce")) {
        None | Some(Value::Null) => None,
        Some(n) if n.is_i64() => Some(n),
        Some(_) => {
            return Err(KgError::bad_request(
                "type mismatch (received string expected integer)",
                Source::Pointer("/meta/nonce"),
            ))
        }
    };
    let scope = match meta.and_then(|m| m.get("scope")) {
        None | Some(Value::Null) => None,
        Some(raw @ Value::Object(_)) => {
            let parsed = Scope::deserialize(raw).map_err(|e| {
                KgError::bad_request(
                    format!("invalid scope: {e}"),
                    Source::Pointer("/meta/scope"),
                )
            })?;
            Some((raw, parsed))
        }
        Some(_) => {
            return Err(KgError::bad_request(
                "scope must be an object",
                Source::Pointer("/meta/scope"),
            ))
        }
    };
    Ok(Request { nonce, scope })
}

/// `POST licenses/actions/validate-key {meta:{key, nonce?, scope?}}`.
pub async fn by_key(state: &State, caller: &Caller, body: &Value) -> Result<Answer, KgError> {
    let meta = meta(body)?;
    let key = match meta.and_then(|m| m.get("key")) {
        Some(Value::String(k)) if !k.trim().is_empty() => k.as_str(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(
                KgError::bad_request("is missing", Source::Pointer("/meta/key"))
                    .code("KEY_MISSING"),
            )
        }
        Some(_) => {
            return Err(KgError::bad_request(
                "type mismatch (received non-string expected string)",
                Source::Pointer("/meta/key"),
            ))
        }
    };
    let req = request(meta)?;
    let license = auth::find(state, caller.account, key).await?;
    if let (Some(bearer), Some(found)) = (&caller.bearer, &license) {
        if bearer.license.id != found.license.id {
            return Err(KgError::forbidden("Access denied"));
        }
    }
    Ok(answer(state, caller, license, &req, false))
}

/// `GET|POST licenses/{id|key}/actions/validate`; GET is quick (no scope checks).
pub async fn by_id(
    state: &State,
    caller: &Caller,
    segment: &str,
    body: &Value,
    quick: bool,
) -> Result<Answer, KgError> {
    let meta = if quick { None } else { meta(body)? };
    let req = request(meta)?;
    let license = lookup(state, caller, segment).await?;
    let Some(license) = license else {
        return Err(KgError::not_found(format!(
            "The requested license '{segment}' was not found"
        )));
    };
    Ok(answer(state, caller, Some(license), &req, quick))
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

fn answer(
    state: &State,
    caller: &Caller,
    license: Option<Arc<LicenseDetail>>,
    req: &Request<'_>,
    quick: bool,
) -> Answer {
    let now = Utc::now();
    let (verdict, data, app) = match &license {
        None => (keygen::not_found(), Value::Null, None),
        Some(d) => {
            let machines: Vec<KeygenMachine<'_>> =
                d.machines.iter().map(KeygenMachine::from_machine).collect();
            let subject = subject(d, &machines);
            let unscoped = Scope::default();
            let scoping = match (&req.scope, quick) {
                (_, true) => Scoping::Quick,
                (Some((_, scope)), false) => Scoping::Scoped(scope),
                (None, false) => Scoping::Scoped(&unscoped),
            };
            let verdict = keygen::decide(&subject, scoping, now);
            state.usage.record(d.license.id, now);
            let links = caller.links(d.license.account_id);
            (
                verdict,
                doc::license(d, &links, now),
                Some(d.license.app_id),
            )
        }
    };
    let mut meta = Map::new();
    meta.insert("ts".into(), doc::time(now).into());
    meta.insert("valid".into(), verdict.valid.into());
    meta.insert("detail".into(), verdict.detail.into());
    meta.insert("code".into(), verdict.code.as_str().into());
    if let Some(nonce) = req.nonce {
        meta.insert("nonce".into(), nonce.clone());
    }
    if let Some((raw, _)) = &req.scope {
        meta.insert("scope".into(), (*raw).clone());
    }
    Answer::document(StatusCode::OK, &json!({"data": data, "meta": meta}), app)
}

/// What the rules read of a license.
pub fn subject<'a>(d: &'a LicenseDetail, machines: &'a [KeygenMachine<'a>]) -> KeygenSubject<'a> {
    KeygenSubject {
        id: d.license.id,
        product_id: d.license.app_id,
        policy: &d.policy,
        suspended: d.suspended(),
        owner_banned: false,
        expires_at: d.license.expires_at,
        last_check_in_at: d.last_check_in_at,
        created_at: d.license.created_at,
        owner: None,
        users: &[],
        entitlement_codes: &d.entitlements,
        machine_limit: (d.license.hwid_limit > 0).then_some(d.license.hwid_limit),
        machines,
    }
}

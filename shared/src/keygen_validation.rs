//! Keygen's validation request and answer, for both services: `meta:{key?, nonce?, scope?}` in,
//! `{data: <license>|null, meta:{ts, valid, detail, code[, nonce][, scope]}}` out (always 200;
//! `data` is null only for an unknown license). The decision is [`crate::verdict::keygen::decide`].

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::keygen_doc::{self as doc, KgError, Links, Source};
use crate::store::license_details::LicenseDetail;
use crate::verdict::keygen::{self, KeygenMachine, KeygenSubject, KeygenUser, Scope, Scoping};

/// The `meta` of a validation request.
pub struct Request<'a> {
    nonce: Option<&'a Value>,
    scope: Option<(&'a Value, Scope)>,
    /// GET validations are "quick": no scope checks.
    quick: bool,
}

/// `meta` of the body, when there is one.
pub fn meta(body: &Value) -> Result<Option<&Map<String, Value>>, KgError> {
    match body.get("meta") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(KgError::bad_request(
            "meta must be an object",
            Source::Pointer("/meta"),
        )),
    }
}

/// `meta.key` of a validate-key request: required, non-blank.
pub fn key(meta: Option<&Map<String, Value>>) -> Result<&str, KgError> {
    match meta.and_then(|m| m.get("key")) {
        Some(Value::String(k)) if !k.trim().is_empty() => Ok(k.as_str()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(KgError::bad_request(
            "is missing",
            Source::Pointer("/meta/key"),
        )
        .code("KEY_MISSING")),
        Some(_) => Err(KgError::bad_request(
            "type mismatch (received non-string expected string)",
            Source::Pointer("/meta/key"),
        )),
    }
}

/// The nonce and scope of a validation (`quick`: a GET, whose scope is not read).
pub fn request(meta: Option<&Map<String, Value>>, quick: bool) -> Result<Request<'_>, KgError> {
    let meta = if quick { None } else { meta };
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
    Ok(Request {
        nonce,
        scope,
        quick,
    })
}

/// What the rules read of a license.
pub fn subject<'a>(d: &'a LicenseDetail, machines: &'a [KeygenMachine<'a>]) -> KeygenSubject<'a> {
    KeygenSubject {
        id: d.license.id,
        product_id: d.license.app_id,
        policy: &d.policy,
        suspended: d.suspended(),
        owner_banned: d.owner_banned(),
        expires_at: d.license.expires_at,
        last_check_in_at: d.last_check_in_at,
        created_at: d.license.created_at,
        owner: d.owner.as_ref().map(|(id, email, _)| KeygenUser {
            id: *id,
            email: Some(email.as_str()),
        }),
        users: &[],
        entitlement_codes: &d.entitlements,
        machine_limit: (d.license.hwid_limit > 0).then_some(d.license.hwid_limit),
        machines,
    }
}

/// The validation document of `license` (None: unknown) as of `now`.
pub fn document(
    license: Option<&LicenseDetail>,
    links: &Links,
    req: &Request<'_>,
    now: DateTime<Utc>,
) -> Value {
    let (verdict, data) = match license {
        None => (keygen::not_found(), Value::Null),
        Some(d) => {
            let machines: Vec<KeygenMachine<'_>> =
                d.machines.iter().map(KeygenMachine::from_machine).collect();
            let subject = subject(d, &machines);
            let unscoped = Scope::default();
            let scoping = match (&req.scope, req.quick) {
                (_, true) => Scoping::Quick,
                (Some((_, scope)), false) => Scoping::Scoped(scope),
                (None, false) => Scoping::Scoped(&unscoped),
            };
            (
                keygen::decide(&subject, scoping, now),
                doc::license(d, links, now),
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
    json!({"data": data, "meta": meta})
}

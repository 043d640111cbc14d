//! Keygen's JSON:API documents, shared by the validator's client API and the control-plane's
//! admin API: the resources (camelCase attributes, relationships with string ids, `metadata`
//! always an object, timestamps with milliseconds) and the error document. Only translation:
//! every value comes from the core's rows.

use crate::error::StoreError;
use crate::model::{App, Machine};
use crate::policy::{Policy, Scope};
use crate::store::license_details::LicenseDetail;
use crate::store::machines::{MachinePatch, NewMachine};
use crate::verdict::keygen::{heartbeat_status, next_heartbeat_at, KeygenMachine};
use chrono::{DateTime, SecondsFormat, Utc};
use hyper::StatusCode;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// The Keygen facade's base path on both services: clients configured with
/// `http(s)://<host>/keygen` call `/keygen/v1/…`, next to the native `/v1/…`.
pub const PREFIX: &str = "/keygen";

/// A path under the facade's base: `/keygen/v1/{rest…}` or
/// `/keygen/v1/accounts/{account}/{rest…}` (the account's id or public id), a trailing slash
/// ignored.
pub struct KeygenPath<'a> {
    pub account: Option<&'a str>,
    pub rest: Vec<&'a str>,
}

impl<'a> KeygenPath<'a> {
    pub fn parse(path: &'a str) -> Option<KeygenPath<'a>> {
        let under = path.strip_prefix(PREFIX)?.strip_prefix("/v1/")?;
        let mut segments: Vec<&str> = under.split('/').collect();
        if segments.last() == Some(&"") {
            segments.pop();
        }
        if segments.len() >= 2 && segments[0] == "accounts" {
            return Some(KeygenPath {
                account: Some(segments[1]),
                rest: segments[2..].to_vec(),
            });
        }
        Some(KeygenPath {
            account: None,
            rest: segments,
        })
    }
}

impl KeygenPath<'_> {
    /// What the facade's route templates call the path segment at `index` (split on `/`): `id`
    /// after a collection (`/v1/licenses/{id}`), `account` after `accounts`.
    pub fn parameter_name(path: &str, index: usize) -> Option<&'static str> {
        let previous = path.split('/').nth(index.checked_sub(1)?)?;
        match previous {
            "accounts" => Some("account"),
            "tokens" | "products" | "policies" | "entitlements" | "licenses" | "machines"
            | "keys" | "users" | "webhook-endpoints" | "webhook-events" => Some("id"),
            _ => None,
        }
    }

    /// A 400 naming the path parameter whose decoded value holds a NUL (PostgreSQL text cannot
    /// hold one, and no stored value does).
    pub fn nul(path: &str) -> Option<KgError> {
        let index = path
            .split('/')
            .position(|segment| percent_encoding::percent_decode_str(segment).any(|b| b == 0))?;
        let name = Self::parameter_name(path, index).unwrap_or("path");
        Some(KgError::bad_request(
            format!("path parameter '{name}' contains a NUL character (\\u0000), which no value may hold"),
            Source::Parameter("path"),
        ))
    }
}

/// The JSON pointer of the first string (or member name) of `v` that holds a NUL.
pub fn nul_in_json(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(String::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in_json(item).map(|p| format!("/{i}{p}"))),
        Value::Object(members) => members.iter().find_map(|(k, item)| {
            if k.contains('\0') {
                return Some(format!("/{}", k.replace('\0', "\\u0000")));
            }
            nul_in_json(item).map(|p| format!("/{k}{p}"))
        }),
        _ => None,
    }
}

/// Where the resources of one account live: `/keygen/v1/accounts/{account}`.
pub struct Links {
    base: String,
    account: Uuid,
}

impl Links {
    pub fn new(account: Uuid) -> Links {
        Links {
            base: format!("{PREFIX}/v1/accounts/{account}"),
            account,
        }
    }

    pub fn entitlement(&self, id: Uuid) -> String {
        self.of("entitlements", id)
    }

    pub fn machine(&self, id: Uuid) -> String {
        self.of("machines", id)
    }

    pub fn of(&self, kind: &str, id: Uuid) -> String {
        format!("{}/{kind}/{id}", self.base)
    }

    pub fn to_one(&self, kind: &str, id: Option<Uuid>, related: String) -> Value {
        json!({
            "data": id.map(|id| json!({"type": kind, "id": id.to_string()})),
            "links": {"related": related},
        })
    }

    pub fn account(&self) -> Value {
        json!({
            "data": {"type": "accounts", "id": self.account.to_string()},
            "links": {"related": self.base},
        })
    }
}

pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map(time).map_or(Value::Null, Value::String)
}

pub fn license(d: &LicenseDetail, links: &Links, now: DateTime<Utc>) -> Value {
    let l = &d.license;
    let p = &d.policy;
    let self_link = links.of("licenses", l.id);
    let machines_cores: i64 = d
        .machines
        .iter()
        .filter_map(|m| m.cores)
        .map(i64::from)
        .sum();
    json!({
        "id": l.id.to_string(),
        "type": "licenses",
        "attributes": {
            "name": l.note,
            "key": l.key,
            "expiry": opt_time(l.expires_at),
            "status": d.status(now).as_keygen(),
            "uses": l.uses,
            "suspended": d.suspended(),
            "scheme": Value::Null,
            "encrypted": false,
            "strict": p.strict,
            "floating": p.floating,
            "protected": p.protected,
            "version": Value::Null,
            "maxMachines": if l.hwid_limit > 0 { json!(l.hwid_limit) } else { Value::Null },
            "maxProcesses": p.max_processes,
            "maxUsers": p.max_users,
            "maxCores": p.max_cores,
            "maxMemory": p.max_memory,
            "maxDisk": p.max_disk,
            "maxUses": l.max_uses,
            "requireHeartbeat": p.require_heartbeat,
            "requireCheckIn": p.require_check_in,
            "lastValidated": opt_time(l.last_validated_at),
            "lastCheckIn": opt_time(d.last_check_in_at),
            "nextCheckIn": opt_time(d.next_check_in_at()),
            "lastCheckOut": opt_time(d.last_check_out_at),
            "permissions": [],
            "metadata": Value::Object(d.metadata.clone()),
            "created": time(l.created_at),
            "updated": time(d.updated_at),
        },
        "relationships": {
            "account": links.account(),
            "environment": {"data": Value::Null, "links": {"related": Value::Null}},
            "product": links.to_one("products", Some(l.app_id), links.of("products", l.app_id)),
            "policy": links.to_one("policies", Some(p.id), links.of("policies", p.id)),
            "group": {"data": Value::Null, "links": {"related": Value::Null}},
            "owner": links.to_one("users", d.owner.as_ref().map(|o| o.0), format!("{self_link}/owner")),
            "users": {"links": {"related": format!("{self_link}/users")}, "meta": {"count": 0}},
            "machines": {
                "links": {"related": format!("{self_link}/machines")},
                "meta": {"cores": machines_cores, "count": d.machines.len()},
            },
            "tokens": {"links": {"related": format!("{self_link}/tokens")}},
            "entitlements": {"links": {"related": format!("{self_link}/entitlements")}},
        },
        "links": {"self": self_link},
    })
}

pub fn machine(m: &Machine, d: &LicenseDetail, links: &Links, now: DateTime<Utc>) -> Value {
    let p = &d.policy;
    let self_link = links.of("machines", m.id);
    let facts = KeygenMachine::from_machine(m);
    let status = heartbeat_status(&facts, p, now);
    let require_heartbeat = p.require_heartbeat || m.last_heartbeat_at.is_some();
    let next_heartbeat = next_heartbeat_at(&facts, p);
    json!({
        "id": m.id.to_string(),
        "type": "machines",
        "attributes": {
            "fingerprint": m.fingerprint,
            "cores": m.cores,
            "memory": m.memory,
            "disk": m.disk,
            "ip": m.ip.map(|ip| ip.to_string()),
            "hostname": m.hostname,
            "platform": m.platform,
            "name": m.name,
            "requireHeartbeat": require_heartbeat,
            "heartbeatStatus": status.as_str(),
            "heartbeatDuration": p.heartbeat_duration_secs,
            "maxProcesses": p.max_processes,
            "lastCheckOut": opt_time(m.last_check_out_at),
            "lastHeartbeat": opt_time(m.last_heartbeat_at),
            "nextHeartbeat": opt_time(next_heartbeat),
            "metadata": Value::Object(m.metadata.clone()),
            "created": time(m.created_at),
            "updated": time(m.updated_at),
        },
        "relationships": {
            "account": links.account(),
            "environment": {"data": Value::Null, "links": {"related": Value::Null}},
            "product": links.to_one("products", Some(d.license.app_id), links.of("products", d.license.app_id)),
            "group": {"data": Value::Null, "links": {"related": Value::Null}},
            "license": links.to_one("licenses", Some(d.license.id), links.of("licenses", d.license.id)),
            "owner": links.to_one("users", None, format!("{self_link}/owner")),
            "components": {"links": {"related": format!("{self_link}/components")}},
            "processes": {"links": {"related": format!("{self_link}/processes")}},
        },
        "links": {"self": self_link},
    })
}

/// A policy as `included` in license files (Keygen's attribute names, upper-case enumerations).
pub fn policy(p: &Policy, links: &Links) -> Value {
    let upper = |s: &str| s.to_ascii_uppercase();
    json!({
        "id": p.id.to_string(),
        "type": "policies",
        "attributes": {
            "name": p.name,
            "duration": p.duration_secs,
            "strict": p.strict,
            "floating": p.floating,
            "protected": p.protected,
            "maxMachines": p.max_machines,
            "maxCores": p.max_cores,
            "maxMemory": p.max_memory,
            "maxDisk": p.max_disk,
            "maxProcesses": p.max_processes,
            "maxUsers": p.max_users,
            "maxUses": p.max_uses,
            "requireHeartbeat": p.require_heartbeat,
            "heartbeatDuration": p.heartbeat_duration_secs,
            "requireCheckIn": p.require_check_in,
            "checkInInterval": p.check_in_interval.map(|i| i.as_str()),
            "checkInIntervalCount": p.check_in_interval_count,
            "expirationStrategy": upper(p.expiration_strategy.as_str()),
            "expirationBasis": upper(p.expiration_basis.as_str()),
            "authenticationStrategy": upper(p.authentication_strategy.as_str()),
            "overageStrategy": upper(p.overage_strategy.as_str()),
            "machineMatchingStrategy": upper(p.machine_matching_strategy.as_str()),
            "machineUniquenessStrategy": upper(p.machine_uniqueness_strategy.as_str()),
            "heartbeatCullStrategy": upper(p.heartbeat_cull_strategy.as_str()),
            "heartbeatResurrectionStrategy": upper(p.heartbeat_resurrection_strategy.as_str()),
            "heartbeatBasis": upper(p.heartbeat_basis.as_str()),
            "renewalBasis": upper(p.renewal_basis.as_str()),
            "usePool": p.use_pool,
            "requireProductScope": p.required_scopes.contains(&Scope::Product),
            "requirePolicyScope": p.required_scopes.contains(&Scope::Policy),
            "requireMachineScope": p.required_scopes.contains(&Scope::Machine),
            "requireFingerprintScope": p.required_scopes.contains(&Scope::Fingerprint),
            "requireComponentsScope": p.required_scopes.contains(&Scope::Components),
            "requireUserScope": p.required_scopes.contains(&Scope::User),
            "requireChecksumScope": p.required_scopes.contains(&Scope::Checksum),
            "requireVersionScope": p.required_scopes.contains(&Scope::Version),
            "requireEnvironmentScope": p.required_scopes.contains(&Scope::Environment),
            "metadata": Value::Object(p.metadata.clone()),
            "created": time(p.created_at),
            "updated": time(p.updated_at),
        },
        "relationships": {
            "account": links.account(),
            "product": links.to_one("products", Some(p.app_id), links.of("products", p.app_id)),
        },
        "links": {"self": links.of("policies", p.id)},
    })
}

/// The core's app as Keygen's product.
pub fn product(app: &App, links: &Links) -> Value {
    json!({
        "id": app.id.to_string(),
        "type": "products",
        "attributes": {
            "name": app.name,
            "code": app.code,
            "distributionStrategy": "LICENSED",
            "url": app.url,
            "platforms": app.platforms,
            "metadata": Value::Object(app.metadata.clone()),
            "created": time(app.created_at),
            "updated": time(app.updated_at),
        },
        "relationships": {"account": links.account()},
        "links": {"self": links.of("products", app.id)},
    })
}

/// Where an error's cause is: a body member, a query parameter or a header.
#[derive(Debug, Clone)]
pub enum Source {
    Pointer(&'static str),
    Parameter(&'static str),
    Header(&'static str),
}

/// One of Keygen's error documents, with its status and, for 401s, the challenge.
#[derive(Debug, Clone)]
pub struct KgError {
    pub status: StatusCode,
    pub detail: String,
    pub code: Option<&'static str>,
    pub source: Option<Source>,
    pub challenge: Option<&'static str>,
    /// Seconds, for a 429.
    pub retry_after: Option<u64>,
}

impl KgError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> KgError {
        KgError {
            status,
            detail: detail.into(),
            code: None,
            source: None,
            challenge: None,
            retry_after: None,
        }
    }

    pub fn code(mut self, code: &'static str) -> KgError {
        self.code = Some(code);
        self
    }

    pub fn source(mut self, source: Source) -> KgError {
        self.source = Some(source);
        self
    }

    pub fn bad_request(detail: impl Into<String>, source: Source) -> KgError {
        KgError::new(StatusCode::BAD_REQUEST, detail).source(source)
    }

    pub fn not_found(detail: impl Into<String>) -> KgError {
        KgError::new(StatusCode::NOT_FOUND, detail).code("NOT_FOUND")
    }

    pub fn license_invalid() -> KgError {
        KgError {
            challenge: Some("License realm=\"keygen\""),
            ..KgError::new(StatusCode::UNAUTHORIZED, "License key must be valid")
                .code("LICENSE_INVALID")
                .source(Source::Header("Authorization"))
        }
    }

    /// The `WWW-Authenticate` challenge of a 401.
    pub fn challenge(mut self, challenge: &'static str) -> KgError {
        self.challenge = Some(challenge);
        self
    }

    pub fn forbidden(detail: impl Into<String>) -> KgError {
        KgError::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn title(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "Bad request",
            401 => "Unauthorized",
            403 => "Access denied",
            404 => "Not found",
            405 => "Method not allowed",
            409 => "Conflict",
            413 => "Payload too large",
            422 => "Unprocessable resource",
            429 => "Too many requests",
            503 => "Service unavailable",
            s if s >= 500 => "Internal server error",
            _ => "Bad request",
        }
    }

    pub fn document(&self, request_id: Uuid) -> Value {
        let mut error = Map::new();
        error.insert("title".into(), self.title().into());
        error.insert("detail".into(), self.detail.clone().into());
        if let Some(code) = self.code {
            error.insert("code".into(), code.into());
        }
        if let Some(source) = &self.source {
            let (k, v) = match source {
                Source::Pointer(p) => ("pointer", p),
                Source::Parameter(p) => ("parameter", p),
                Source::Header(h) => ("header", h),
            };
            error.insert("source".into(), json!({ k: v }));
        }
        json!({"meta": {"id": request_id.to_string()}, "errors": [error]})
    }
}

/// Keygen's machine attributes onto the core's description (unknown ones are ignored).
pub fn machine_patch(attributes: &Map<String, Value>) -> Result<MachinePatch, KgError> {
    let mut details = Map::new();
    for (from, to) in [
        ("name", "name"),
        ("hostname", "hostname"),
        ("platform", "platform"),
        ("ip", "ip"),
        ("cores", "cores"),
        ("memory", "memory"),
        ("disk", "disk"),
        ("metadata", "metadata"),
    ] {
        if let Some(v) = attributes.get(from) {
            details.insert(to.into(), v.clone());
        }
    }
    serde_json::from_value(Value::Object(details)).map_err(|e| {
        KgError::bad_request(
            format!("invalid attributes: {e}"),
            Source::Pointer("/data/attributes"),
        )
    })
}

/// A `POST /machines` document: the new machine and the id of the license it names (`None`
/// when blank or not an id).
pub fn machine_request(body: &Value) -> Result<(NewMachine, Option<Uuid>), KgError> {
    let data = body.get("data").filter(|d| d.is_object()).ok_or_else(|| {
        KgError::bad_request(
            "data is required and must be an object",
            Source::Pointer("/data"),
        )
    })?;
    if let Some(kind) = data.get("type") {
        if !matches!(kind.as_str(), Some("machines" | "machine")) {
            return Err(KgError::bad_request(
                "type mismatch (expected \"machines\")",
                Source::Pointer("/data/type"),
            ));
        }
    }
    let attributes = match data.get("attributes") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(KgError::bad_request(
                "attributes must be an object",
                Source::Pointer("/data/attributes"),
            ))
        }
    };
    let fingerprint = match attributes.get("fingerprint") {
        Some(Value::String(f)) if !f.trim().is_empty() => f.clone(),
        Some(Value::String(_)) | Some(Value::Null) | None => {
            return Err(unprocessable(
                "must not be blank",
                "FINGERPRINT_BLANK",
                "/data/attributes/fingerprint",
            ))
        }
        Some(_) => {
            return Err(KgError::bad_request(
                "type mismatch (expected string)",
                Source::Pointer("/data/attributes/fingerprint"),
            ))
        }
    };
    let license = data
        .pointer("/relationships/license/data/id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse::<Uuid>().ok());
    let new = NewMachine {
        fingerprint,
        details: machine_patch(&attributes)?,
    };
    Ok((new, license))
}

/// A 422 in Keygen's shape.
pub fn unprocessable(
    detail: impl Into<String>,
    code: &'static str,
    pointer: &'static str,
) -> KgError {
    KgError::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
        .code(code)
        .source(Source::Pointer(pointer))
}

/// An activation the store refused, in Keygen's words (`limit`: the license's machine limit).
/// `None` for infrastructure failures, which each service reports its own way.
pub fn activation_refused(e: &StoreError, limit: i32) -> Option<KgError> {
    match e {
        StoreError::Conflict(_) => Some(unprocessable(
            "has already been taken",
            "FINGERPRINT_TAKEN",
            "/data/attributes/fingerprint",
        )),
        StoreError::LimitReached(_) => Some(unprocessable(
            format!("machine count has exceeded maximum allowed for license ({limit})"),
            "MACHINE_LIMIT_EXCEEDED",
            "/data",
        )),
        StoreError::Invalid(m) => Some(
            KgError::new(StatusCode::UNPROCESSABLE_ENTITY, m.clone())
                .source(Source::Pointer("/data/attributes")),
        ),
        StoreError::NotFound(_) => Some(unprocessable(
            "must exist",
            "LICENSE_NOT_FOUND",
            "/data/relationships/license",
        )),
        _ => None,
    }
}

/// An entitlement resource.
pub fn entitlement(e: &crate::model::Entitlement, links: &Links) -> Value {
    json!({
        "id": e.id.to_string(),
        "type": "entitlements",
        "attributes": {
            "name": e.name,
            "code": e.code,
            "metadata": Value::Object(e.metadata.clone()),
            "created": time(e.created_at),
            "updated": time(e.updated_at),
        },
        "relationships": {"account": links.account()},
        "links": {"self": links.entitlement(e.id)},
    })
}

/// A key of a policy's pool.
pub fn pooled_key(k: &crate::store::key_pool::PooledKey, links: &Links) -> Value {
    json!({
        "id": k.id.to_string(),
        "type": "keys",
        "attributes": {
            "key": k.key,
            "created": time(k.created_at),
            "updated": time(k.updated_at),
        },
        "relationships": {
            "account": links.account(),
            "product": links.to_one("products", Some(k.app_id), links.of("products", k.app_id)),
            "policy": links.to_one("policies", Some(k.policy_id), links.of("policies", k.policy_id)),
        },
        "links": {"self": links.of("keys", k.id)},
    })
}

/// A user of the account.
pub fn user(u: &crate::store::account_users::AccountUser, links: &Links) -> Value {
    json!({
        "id": u.id.to_string(),
        "type": "users",
        "attributes": {
            "fullName": u.full_name(),
            "firstName": u.first_name,
            "lastName": u.last_name,
            "email": u.email,
            "status": if u.banned { "BANNED" } else { "ACTIVE" },
            "role": u.role,
            "permissions": [],
            "metadata": Value::Object(u.metadata.clone()),
            "created": time(u.created_at),
            "updated": time(u.updated_at),
        },
        "relationships": {
            "account": links.account(),
            "licenses": {"links": {"related": format!("{}/licenses", links.of("users", u.id))}},
            "machines": {"links": {"related": format!("{}/machines", links.of("users", u.id))}},
            "tokens": {"links": {"related": format!("{}/tokens", links.of("users", u.id))}},
        },
        "links": {"self": links.of("users", u.id)},
    })
}

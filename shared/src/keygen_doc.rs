//! Keygen's JSON:API documents, shared by the validator's client API and the control-plane's
//! admin API: the resources (camelCase attributes, relationships with string ids, `metadata`
//! always an object, timestamps with milliseconds) and the error document. Only translation:
//! every value comes from the core's rows.

use crate::model::{App, Machine};
use crate::policy::Policy;
use crate::store::license_details::LicenseDetail;
use crate::verdict::keygen::{heartbeat_status, next_heartbeat_at, KeygenMachine};
use chrono::{DateTime, SecondsFormat, Utc};
use hyper::StatusCode;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// The Keygen facade's base path on both services: clients configured with
/// `http(s)://<host>/keygen` call `/keygen/v1/…`, next to the native `/v1/…`.
pub const PREFIX: &str = "/keygen";

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
            "metadata": {},
            "created": time(l.created_at),
            "updated": time(l.created_at),
        },
        "relationships": {
            "account": links.account(),
            "environment": {"data": Value::Null, "links": {"related": Value::Null}},
            "product": links.to_one("products", Some(l.app_id), links.of("products", l.app_id)),
            "policy": links.to_one("policies", Some(p.id), links.of("policies", p.id)),
            "group": {"data": Value::Null, "links": {"related": Value::Null}},
            "owner": links.to_one("users", None, format!("{self_link}/owner")),
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
            "lastCheckOut": Value::Null,
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
            "code": Value::Null,
            "distributionStrategy": "LICENSED",
            "url": Value::Null,
            "platforms": [],
            "metadata": {},
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

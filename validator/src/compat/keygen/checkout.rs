//! License and machine files (`actions/check-out`): the license (or machine) document with
//! `meta:{issued, expiry, ttl}` and what `include` asks for, signed with Ed25519 and optionally
//! encrypted (`keyward_shared::license_file`), verifiable offline with the deployment's public
//! key. POST answers a `license-files`/`machine-files` resource, GET the raw certificate.

use chrono::{Duration, Utc};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use keyward_shared::license_file::{self, FileAlgorithm, FileKind};
use keyward_shared::store::licenses;
use keyward_shared::verdict::keygen::FirstUse;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{Answer, Caller, State};
use crate::cache::CacheError;
use keyward_shared::keygen_doc::{self as doc, KgError, Source};

const DEFAULT_TTL: i64 = 2_629_746;
const MIN_TTL: i64 = 3_600;
const LICENSE_INCLUDES: &[&str] = &[
    "entitlements",
    "environment",
    "product",
    "policy",
    "group",
    "owner",
    "users",
];
const MACHINE_INCLUDES: &[&str] = &[
    "license",
    "license.entitlements",
    "license.product",
    "license.policy",
    "license.owner",
    "license.users",
    "components",
    "environment",
    "group",
    "owner",
];

struct Options {
    algorithm: FileAlgorithm,
    ttl: Option<i64>,
    include: Vec<String>,
}

/// A parameter from the query (both SDKs) or from `meta`.
fn param(
    query: &[(String, String)],
    meta: Option<&Map<String, Value>>,
    name: &str,
) -> Option<Value> {
    if let Some((_, v)) = query.iter().find(|(k, _)| k == name) {
        return Some(Value::String(v.clone()));
    }
    meta.and_then(|m| m.get(name)).cloned()
}

fn options(parts: &Parts, body: &Value, kind: FileKind) -> Result<Options, KgError> {
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let meta = body.get("meta").and_then(Value::as_object);
    let encrypt = match param(&query, meta, "encrypt") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1"),
        Some(_) => false,
    };
    let algorithm = match param(&query, meta, "algorithm") {
        None | Some(Value::Null) if encrypt => FileAlgorithm::Aes256GcmEd25519,
        None | Some(Value::Null) => FileAlgorithm::Base64Ed25519,
        Some(Value::String(s)) => FileAlgorithm::parse(&s).map_err(|_| {
            KgError::bad_request("unsupported algorithm", Source::Parameter("algorithm"))
                .code("CHECKOUT_ALGORITHM_INVALID")
        })?,
        Some(_) => {
            return Err(KgError::bad_request(
                "unsupported algorithm",
                Source::Parameter("algorithm"),
            )
            .code("CHECKOUT_ALGORITHM_INVALID"))
        }
    };
    let ttl_error = || {
        KgError::bad_request(
            "must be greater than or equal to 3600 (1 hour)",
            Source::Parameter("ttl"),
        )
        .code("CHECKOUT_TTL_INVALID")
    };
    let ttl = match param(&query, meta, "ttl") {
        None => Some(DEFAULT_TTL),
        Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() || s == "null" => None,
        Some(Value::String(s)) => Some(s.parse::<i64>().map_err(|_| ttl_error())?),
        Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(ttl_error)?),
        Some(_) => return Err(ttl_error()),
    };
    if ttl.is_some_and(|t| !(MIN_TTL..=i64::from(i32::MAX)).contains(&t)) {
        return Err(ttl_error());
    }
    let allowed = match kind {
        FileKind::License => LICENSE_INCLUDES,
        FileKind::Machine => MACHINE_INCLUDES,
    };
    let include: Vec<String> = match param(&query, meta, "include") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => vec![String::new()],
    };
    if let Some(bad) = include.iter().find(|i| !allowed.contains(&i.as_str())) {
        return Err(KgError::bad_request(
            format!("invalid include {bad:?}; allowed: {}", allowed.join(", ")),
            Source::Parameter("include"),
        )
        .code("CHECKOUT_INCLUDE_INVALID"));
    }
    Ok(Options {
        algorithm,
        ttl,
        include,
    })
}

/// `licenses/{id}/actions/check-out` or `machines/{id}/actions/check-out`.
pub async fn check_out(
    state: &State,
    parts: &Parts,
    caller: &Caller,
    body: &Value,
    kind: FileKind,
    segment: &str,
) -> Result<Answer, KgError> {
    let opts = options(parts, body, kind)?;
    let (license, machine) = match kind {
        FileKind::License => {
            let Some(found) = super::validate::lookup(state, caller, segment).await? else {
                return Err(KgError::not_found(format!(
                    "The requested license '{segment}' was not found"
                )));
            };
            (found, None)
        }
        FileKind::Machine => {
            let license = caller.bearer.clone().ok_or_else(|| {
                KgError::new(
                    StatusCode::UNAUTHORIZED,
                    "An authentication token or license key is required",
                )
                .code("TOKEN_MISSING")
            })?;
            let machine = super::machines::find(&license, segment)?.clone();
            (license, Some(machine))
        }
    };
    // A download may start the license's clock (`FROM_FIRST_DOWNLOAD`, `FROM_FIRST_USE`); the
    // file then carries the expiry it started.
    let license = super::writes::first_use(state, license, FirstUse::Download).await?;
    let now = Utc::now();
    let links = caller.links(license.license.account_id);
    // Its product, for `include`, and its key, which signs the file.
    let app = state
        .caches
        .app(license.license.app_id)
        .await
        .map_err(|e| super::unavailable(&e))?
        .map(|v| v.app);
    let expiry = opts.ttl.map(|t| now + Duration::seconds(t));
    let mut included = Vec::new();
    let wants = |name: &str| opts.include.iter().any(|i| i == name);
    let prefix = if machine.is_some() { "license." } else { "" };
    if machine.is_some() {
        // keygen-rs reads the license of a machine file from `included`.
        included.push(doc::license(&license, &links, now));
    }
    if wants(&format!("{prefix}entitlements")) {
        for (id, code, name) in &license.entitlement_refs {
            included.push(json!({
                "id": id.to_string(), "type": "entitlements",
                "attributes": {"name": name, "code": code, "metadata": {}},
                "relationships": {}, "links": {"self": links.entitlement(*id)},
            }));
        }
    }
    if wants(&format!("{prefix}policy")) {
        included.push(doc::policy(&license.policy, &links));
    }
    if wants(&format!("{prefix}product")) {
        if let Some(app) = &app {
            included.push(doc::product(app, &links));
        }
    }
    let data = match &machine {
        Some(m) => doc::machine(m, &license, &links, now),
        None => doc::license(&license, &links, now),
    };
    let dataset = json!({
        "data": data,
        "included": included,
        "meta": {"issued": doc::time(now), "expiry": expiry.map(doc::time), "ttl": opts.ttl},
    });
    let dataset = serde_json::to_vec(&dataset).unwrap_or_default();
    let mut secret = license.license.key.as_bytes().to_vec();
    if let Some(m) = &machine {
        secret.extend_from_slice(m.fingerprint.as_bytes());
    }
    let signer = state
        .client
        .signers
        .for_app(&state.pool, app.as_deref())
        .await
        .map_err(|e| super::unavailable(&CacheError::from(&e)))?;
    let certificate = license_file::issue(&signer, kind, opts.algorithm, &dataset, &secret)
        .map_err(|e| {
            tracing::error!(error = %e, "could not issue a license file");
            KgError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not issue the file",
            )
        })?;
    // `lastCheckOut`, best effort: a validator that cannot reach the store still hands out files
    // from its cache.
    let (license_id, machine_id) = (license.license.id, machine.as_ref().map(|m| m.id));
    let recorded = super::writes::write(state, &license, |w| {
        Box::pin(licenses::record_check_out(w, license_id, machine_id))
    })
    .await;
    if !matches!(recorded, Ok(Ok(()))) {
        tracing::warn!(license = %license_id, "could not record a check-out");
    }
    let app_id = Some(license.license.app_id);
    if parts.method == Method::GET {
        let mut answer = Answer::raw(StatusCode::OK, certificate.into_bytes(), app_id);
        answer.attachment = Some(format!(
            "attachment; filename=\"{}.lic\"",
            machine.as_ref().map_or(license.license.id, |m| m.id)
        ));
        return Ok(answer);
    }
    let (file_type, id) = match &machine {
        Some(_) => ("machine-files", Uuid::new_v4()),
        None => ("license-files", Uuid::new_v4()),
    };
    let mut relationships = json!({
        "account": {"data": {"type": "accounts", "id": license.license.account_id.to_string()}},
        "environment": {"data": Value::Null},
        "license": {"data": {"type": "licenses", "id": license.license.id.to_string()}},
    });
    if let Some(m) = &machine {
        relationships["machine"] = json!({"data": {"type": "machines", "id": m.id.to_string()}});
    }
    let doc = json!({"data": {
        "id": id.to_string(),
        "type": file_type,
        "attributes": {
            "certificate": certificate,
            "algorithm": opts.algorithm.as_str(),
            "includes": opts.include,
            "ttl": opts.ttl,
            "expiry": expiry.map(doc::time),
            "issued": doc::time(now),
        },
        "relationships": relationships,
    }});
    Ok(Answer::document(StatusCode::OK, &doc, app_id))
}

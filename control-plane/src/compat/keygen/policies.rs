//! Policies: Keygen's attribute names translated to the core's `PolicyPatch` (camelCase to the
//! core's names, upper-case enumerations to its lower-case ones, `require<X>Scope` flags to its
//! list of required scopes). Nothing is decided here: the core checks every value.

use keyward_shared::keygen_doc::{policy as render, KgError};
use keyward_shared::policy::{Policy, PolicyPatch, Scope};
use keyward_shared::store::policies;
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;
use serde_json::{json, Map, Value};

use super::paging::Query;
use super::{body, id_of, not_found, unprocessable, Answer, Ctx, Handled, Kg};
use crate::webhooks::emit;

/// Keygen attribute → the core's field; `true` when its values are enumerations.
const FIELDS: &[(&str, &str, bool)] = &[
    ("name", "name", false),
    ("duration", "duration_secs", false),
    ("strict", "strict", false),
    ("floating", "floating", false),
    ("protected", "protected", false),
    ("maxMachines", "max_machines", false),
    ("maxCores", "max_cores", false),
    ("maxMemory", "max_memory", false),
    ("maxDisk", "max_disk", false),
    ("maxProcesses", "max_processes", false),
    ("maxUsers", "max_users", false),
    ("maxUses", "max_uses", false),
    ("requireHeartbeat", "require_heartbeat", false),
    ("heartbeatDuration", "heartbeat_duration_secs", false),
    ("heartbeatCullStrategy", "heartbeat_cull_strategy", true),
    (
        "heartbeatResurrectionStrategy",
        "heartbeat_resurrection_strategy",
        true,
    ),
    ("heartbeatBasis", "heartbeat_basis", true),
    ("requireCheckIn", "require_check_in", false),
    ("checkInInterval", "check_in_interval", true),
    ("checkInIntervalCount", "check_in_interval_count", false),
    ("expirationStrategy", "expiration_strategy", true),
    ("expirationBasis", "expiration_basis", true),
    ("renewalBasis", "renewal_basis", true),
    ("authenticationStrategy", "authentication_strategy", true),
    ("overageStrategy", "overage_strategy", true),
    (
        "machineUniquenessStrategy",
        "machine_uniqueness_strategy",
        true,
    ),
    ("machineMatchingStrategy", "machine_matching_strategy", true),
    ("usePool", "use_pool", false),
    ("metadata", "metadata", false),
];

/// `require<X>Scope` → the scope it requires.
const SCOPE_FLAGS: &[(&str, Scope)] = &[
    ("requireProductScope", Scope::Product),
    ("requirePolicyScope", Scope::Policy),
    ("requireMachineScope", Scope::Machine),
    ("requireFingerprintScope", Scope::Fingerprint),
    ("requireComponentsScope", Scope::Components),
    ("requireUserScope", Scope::User),
    ("requireChecksumScope", Scope::Checksum),
    ("requireVersionScope", Scope::Version),
    ("requireEnvironmentScope", Scope::Environment),
];

/// Translates Keygen attributes onto a patch; `current` gives the scopes a flag leaves alone.
fn patch(attrs: &Map<String, Value>, current: &[Scope]) -> Result<PolicyPatch, KgError> {
    let mut core = Map::new();
    for (keygen, field, enumerated) in FIELDS {
        if let Some(v) = attrs.get(*keygen) {
            let v = match v {
                Value::String(s) if *enumerated => Value::String(s.to_ascii_lowercase()),
                v => v.clone(),
            };
            core.insert((*field).to_owned(), v);
        }
    }
    let mut scopes = current.to_vec();
    let mut touched = false;
    for (flag, scope) in SCOPE_FLAGS {
        match attrs.get(*flag) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(on)) => {
                touched = true;
                scopes.retain(|s| s != scope);
                if *on {
                    scopes.push(*scope);
                }
            }
            Some(_) => {
                return Err(unprocessable(
                    format!("{flag} must be a boolean"),
                    "/data/attributes",
                ))
            }
        }
    }
    if touched {
        core.insert("required_scopes".into(), json!(scopes));
    }
    serde_json::from_value(Value::Object(core.clone())).map_err(|e| {
        // serde does not name the field of a bad value: find it, and say it in Keygen's words.
        let culprit = FIELDS.iter().find(|(_, field, _)| {
            core.get(*field).is_some_and(|v| {
                serde_json::from_value::<PolicyPatch>(json!({ *field: v })).is_err()
            })
        });
        let detail = match culprit {
            Some((keygen, _, true)) => format!("{keygen}: {}", upper_quoted(&e.to_string())),
            Some((keygen, _, false)) => format!("{keygen}: {e}"),
            None => keygen_words(&e.to_string()),
        };
        unprocessable(detail, "/data/attributes")
    })
}

/// Keygen spells enumeration values in upper case: so do the names quoted in a serde message.
fn upper_quoted(message: &str) -> String {
    message
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                part.to_ascii_uppercase()
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

/// A message of the core's, with its field names said in Keygen's words.
fn keygen_words(detail: &str) -> String {
    let mut fields: Vec<&(&str, &str, bool)> = FIELDS.iter().collect();
    // Longest first, so that no name is replaced inside a longer one.
    fields.sort_by_key(|(_, field, _)| std::cmp::Reverse(field.len()));
    let mut detail = detail.to_owned();
    for (keygen, field, _) in fields {
        detail = detail.replace(field, keygen);
    }
    detail
}

fn missing(e: StoreError, raw: &str) -> KgError {
    match e {
        StoreError::NotFound(_) => not_found("policy", raw),
        StoreError::Invalid(m) => unprocessable(keygen_words(&m), "/data/attributes"),
        e => super::store_error(e),
    }
}

async fn visible(ctx: &Ctx<'_>, raw: &str) -> Result<Policy, KgError> {
    let id = id_of("policy", raw)?;
    let client = ctx.client().await?;
    let p = policies::get(&**client, ctx.account, id)
        .await
        .map_err(|e| missing(e, raw))?;
    if !ctx.bearer.sees(p.app_id) {
        return Err(not_found("policy", raw));
    }
    Ok(p)
}

fn answer(ctx: &Ctx<'_>, p: &Policy) -> Answer {
    Answer::ok(&json!({"data": render(p, &ctx.links)})).signed_by(p.app_id)
}

pub async fn create(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("policies:write")?;
    let r = body::resource(&ctx.json()?, "policies")?;
    let product = r.related(
        "product",
        "PRODUCT_NOT_FOUND",
        "/data/relationships/product",
    )?;
    let Some(app) = product.filter(|a| ctx.bearer.sees(*a)) else {
        return Err(
            unprocessable("must exist", "/data/relationships/product").code("PRODUCT_NOT_FOUND")
        );
    };
    if !r.attributes.contains_key("name") {
        return Err(unprocessable("name is required", "/data/attributes/name").code("NAME_MISSING"));
    }
    let p = patch(&r.attributes, &[])?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let policy = policies::create(&mut w, app, &p)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => {
                unprocessable("must exist", "/data/relationships/product").code("PRODUCT_NOT_FOUND")
            }
            e => missing(e, ""),
        })?;
    emit::document(&mut w, "policy.created", Some(policy.app_id), || {
        render(&policy, &ctx.links)
    })
    .await
    .kg()?;
    w.commit().await.kg()?;
    let doc = json!({"data": render(&policy, &ctx.links)});
    Ok(Answer::created(&doc, ctx.links.of("policies", policy.id)).signed_by(policy.app_id))
}

pub async fn list(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("policies:read")?;
    let q = Query::parse(ctx.query)?;
    let asked = q.id("product")?;
    let client = ctx.client().await?;
    let all = policies::list(&**client, ctx.account, ctx.bearer.product().or(asked))
        .await
        .kg()?;
    let visible: Vec<&Policy> = all
        .iter()
        .filter(|p| ctx.bearer.sees(p.app_id) && asked.is_none_or(|a| a == p.app_id))
        .collect();
    Ok(Answer::ok(
        &q.page_of(ctx.path, &visible, |p| render(p, &ctx.links)),
    ))
}

pub async fn show(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("policies:read")?;
    Ok(answer(ctx, &visible(ctx, raw).await?))
}

pub async fn update(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("policies:write")?;
    let current = visible(ctx, raw).await?;
    let r = body::resource(&ctx.json()?, "policies")?;
    let p = patch(&r.attributes, &current.required_scopes)?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let policy = policies::update(&mut w, current.id, &p)
        .await
        .map_err(|e| missing(e, raw))?;
    emit::document(&mut w, "policy.updated", Some(policy.app_id), || {
        render(&policy, &ctx.links)
    })
    .await
    .kg()?;
    w.commit().await.kg()?;
    Ok(answer(ctx, &policy))
}

pub async fn delete(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("policies:write")?;
    let current = visible(ctx, raw).await?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    emit::document(&mut w, "policy.deleted", Some(current.app_id), || {
        render(&current, &ctx.links)
    })
    .await
    .kg()?;
    policies::delete(&mut w, current.id)
        .await
        .map_err(|e| missing(e, raw))?;
    w.commit().await.kg()?;
    Ok(Answer::no_content().signed_by(current.app_id))
}

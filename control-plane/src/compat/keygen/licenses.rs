//! Licenses: create (from a policy, with a generated or given key), list with Keygen's filters,
//! show by id or key, update, delete/revoke, and the actions `suspend`, `reinstate`, `renew`,
//! `check-in` and the usage counter. Validation is served by the validator, from its caches.

use chrono::{DateTime, Utc};
use keyward_shared::keygen_doc::{self as doc, KgError};
use keyward_shared::keygen_validation as validation;
use keyward_shared::store::license_details::{self, Filter, LicenseDetail};
use keyward_shared::store::licenses::{self, GenerateSpec, LicensePatch, UsageChange};
use keyward_shared::store::webhook_events::{self, PendingEvent};
use keyward_shared::store::{apps, policies, usage};
use keyward_shared::verdict::keygen::{starts_expiry, FirstUse};
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::paging::Query;
use super::{body, not_found, unprocessable, Answer, Ctx, Handled, Kg};
use crate::webhooks::emit;

/// One of the account's licenses the bearer may see, by id or by key.
pub async fn find(ctx: &Ctx<'_>, raw: &str) -> Result<LicenseDetail, KgError> {
    let decoded = percent_decode_str(raw).decode_utf8_lossy();
    let client = ctx.client().await?;
    let found = match Uuid::parse_str(&decoded) {
        Ok(id) => license_details::by_id(&**client, ctx.account, id)
            .await
            .kg()?,
        Err(_) => license_details::by_key(&**client, Some(ctx.account), &decoded)
            .await
            .kg()?
            .into_iter()
            .find(|d| ctx.bearer.reaches(d)),
    };
    found
        .filter(|d| ctx.bearer.reaches(d))
        .ok_or_else(|| not_found("license", raw))
}

async fn reload(ctx: &Ctx<'_>, id: Uuid) -> Result<LicenseDetail, KgError> {
    let client = ctx.client().await?;
    license_details::by_id(&**client, ctx.account, id)
        .await
        .kg()?
        .ok_or_else(|| not_found("license", &id.to_string()))
}

fn answer(ctx: &Ctx<'_>, d: &LicenseDetail) -> Answer {
    Answer::ok(&json!({"data": doc::license(d, &ctx.links, Utc::now())}))
        .signed_by(d.license.app_id)
}

fn string(
    attrs: &Map<String, Value>,
    key: &str,
    pointer: &'static str,
) -> Result<Option<Option<String>>, KgError> {
    match attrs.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(unprocessable(format!("{key} must be a string"), pointer)),
    }
}

/// An optional integer attribute: absent, `null`, or a number in i32.
fn int(
    attrs: &Map<String, Value>,
    key: &str,
    pointer: &'static str,
) -> Result<Option<Option<i32>>, KgError> {
    match attrs.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => v
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .map(|n| Some(Some(n)))
            .ok_or_else(|| unprocessable(format!("{key} must be an integer"), pointer)),
    }
}

fn expiry(attrs: &Map<String, Value>) -> Result<Option<Option<DateTime<Utc>>>, KgError> {
    match string(attrs, "expiry", "/data/attributes/expiry")? {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(s)) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(Some(t.with_timezone(&Utc))))
            .map_err(|_| {
                unprocessable(
                    "expiry must be an ISO-8601 timestamp",
                    "/data/attributes/expiry",
                )
            }),
    }
}

fn metadata(attrs: &Map<String, Value>) -> Result<Option<Map<String, Value>>, KgError> {
    match attrs.get("metadata") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(unprocessable(
            "metadata must be an object",
            "/data/attributes/metadata",
        )),
    }
}

fn suspended(attrs: &Map<String, Value>) -> Result<Option<bool>, KgError> {
    match attrs.get("suspended") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(unprocessable(
            "suspended must be a boolean",
            "/data/attributes/suspended",
        )),
    }
}

/// The `owner` relationship (`user` in older API versions): absent, `null`, or a user's id.
fn owner(r: &body::Resource) -> Result<Option<Option<Uuid>>, KgError> {
    for name in ["owner", "user"] {
        if let Some(rel) = r.relationships.get(name) {
            if rel.get("data").is_some_and(Value::is_null) {
                return Ok(Some(None));
            }
            return Ok(Some(r.related(
                name,
                "OWNER_NOT_FOUND",
                "/data/relationships/owner",
            )?));
        }
    }
    Ok(None)
}

/// Store errors of a license write, with Keygen's pointers where the cause is known.
fn write_error(e: StoreError) -> KgError {
    match e {
        StoreError::Conflict(m) if m.contains("key") => {
            unprocessable("has already been taken", "/data/attributes/key").code("KEY_TAKEN")
        }
        StoreError::Invalid(m) if m.contains("owner_id") => {
            unprocessable("must exist", "/data/relationships/owner").code("OWNER_NOT_FOUND")
        }
        StoreError::Invalid(m) if m.contains("pool is empty") => {
            unprocessable(m, "/data/relationships/policy").code("POLICY_POOL_EMPTY")
        }
        e => super::store_error(e),
    }
}

pub async fn create(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("licenses:write")?;
    let r = body::resource(&ctx.json()?, "licenses")?;
    let Some(policy_id) = r.related("policy", "POLICY_NOT_FOUND", "/data/relationships/policy")?
    else {
        return Err(
            unprocessable("must exist", "/data/relationships/policy").code("POLICY_NOT_FOUND")
        );
    };
    let attrs = &r.attributes;
    let client = ctx.client().await?;
    let policy = match policies::get(&**client, ctx.account, policy_id).await {
        Ok(p) if ctx.bearer.sees(p.app_id) => p,
        Ok(_) | Err(StoreError::NotFound(_)) => {
            return Err(
                unprocessable("must exist", "/data/relationships/policy").code("POLICY_NOT_FOUND")
            )
        }
        Err(e) => return Err(super::store_error(e)),
    };
    drop(client);
    let spec = GenerateSpec {
        count: Some(1),
        policy_id: Some(policy.id),
        note: string(attrs, "name", "/data/attributes/name")?.flatten(),
        key: string(attrs, "key", "/data/attributes/key")?.flatten(),
        expires_at: expiry(attrs)?.flatten(),
        hwid_limit: int(attrs, "maxMachines", "/data/attributes/maxMachines")?.flatten(),
        max_uses: int(attrs, "maxUses", "/data/attributes/maxUses")?.flatten(),
        metadata: metadata(attrs)?,
        owner_id: owner(&r)?.flatten(),
        ..GenerateSpec::default()
    };
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let made = licenses::generate(&mut w, policy.app_id, &spec)
        .await
        .map_err(write_error)?;
    let Some(license) = made.into_iter().next() else {
        return Err(super::store_error(StoreError::Corrupt(
            "no license was made".into(),
        )));
    };
    if suspended(attrs)? == Some(true) {
        licenses::ban(&mut w, license.id, None).await.kg()?;
    }
    emit::license(&mut w, "license.created", license.id)
        .await
        .kg()?;
    w.commit().await.kg()?;
    let d = reload(ctx, license.id).await?;
    let doc = json!({"data": doc::license(&d, &ctx.links, Utc::now())});
    Ok(Answer::created(&doc, ctx.links.of("licenses", d.license.id)).signed_by(d.license.app_id))
}

pub async fn list(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("licenses:read")?;
    let q = Query::parse(ctx.query)?;
    let filter = Filter {
        app: ctx.bearer.product().or(q.id("product")?),
        policy: q.id("policy")?,
        suspended: q.flag("suspended")?,
        machine: q.id("machine")?,
        fingerprint: q.get("fingerprint").map(str::to_owned),
        owner: ctx.bearer.user().or(q.id("owner")?.or(q.id("user")?)),
    };
    if let (Some(own), Some(asked)) = (ctx.bearer.product(), q.id("product")?) {
        if own != asked {
            return Ok(Answer::ok(&q.collection(ctx.path, Vec::new(), 0)));
        }
    }
    let client = ctx.client().await?;
    let (items, total) = license_details::list(&**client, ctx.account, &filter, q.page)
        .await
        .kg()?;
    let now = Utc::now();
    let data = items
        .iter()
        .map(|d| doc::license(d, &ctx.links, now))
        .collect();
    Ok(Answer::ok(&q.collection(ctx.path, data, total)))
}

pub async fn show(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("licenses:read")?;
    let d = find(ctx, raw).await?;
    Ok(answer(ctx, &d))
}

pub async fn update(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("licenses:write")?;
    let d = find(ctx, raw).await?;
    let r = body::resource(&ctx.json()?, "licenses")?;
    let attrs = &r.attributes;
    let policy = r.related("policy", "POLICY_NOT_FOUND", "/data/relationships/policy")?;
    let patch = LicensePatch {
        note: string(attrs, "name", "/data/attributes/name")?.map(Option::unwrap_or_default),
        policy_id: policy,
        hwid_limit: int(attrs, "maxMachines", "/data/attributes/maxMachines")?,
        max_uses: int(attrs, "maxUses", "/data/attributes/maxUses")?,
        expires_at: expiry(attrs)?,
        metadata: metadata(attrs)?,
        owner_id: owner(&r)?,
        ..LicensePatch::default()
    };
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    licenses::update(&mut w, d.license.id, &patch)
        .await
        .map_err(write_error)?;
    match suspended(attrs)? {
        Some(true) => licenses::ban(&mut w, d.license.id, None).await.kg()?,
        Some(false) => licenses::unban(&mut w, d.license.id).await.kg()?,
        None => {}
    }
    emit::license(&mut w, "license.updated", d.license.id)
        .await
        .kg()?;
    w.commit().await.kg()?;
    Ok(answer(ctx, &reload(ctx, d.license.id).await?))
}

/// `DELETE /v1/licenses/{id}` (`license.deleted`) and `DELETE …/actions/revoke`
/// (`license.revoked`): the license is gone (204).
pub async fn delete(ctx: &Ctx<'_>, raw: &str, event: &str) -> Handled {
    ctx.bearer.require("licenses:write")?;
    let d = find(ctx, raw).await?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    // Rendered before it goes.
    emit::license(&mut w, event, d.license.id).await.kg()?;
    licenses::delete(&mut w, d.license.id).await.kg()?;
    w.commit().await.kg()?;
    Ok(Answer::no_content().signed_by(d.license.app_id))
}

/// The amount of a usage action (`meta.increment` / `meta.decrement`, default 1).
fn amount(ctx: &Ctx<'_>, key: &str) -> Result<i32, KgError> {
    let body = ctx.json()?;
    match body::meta(&body, key) {
        None | Some(Value::Null) => Ok(1),
        Some(v) => v
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| {
                KgError::bad_request(
                    format!("{key} must be an integer"),
                    keyward_shared::keygen_doc::Source::Pointer("/meta"),
                )
            }),
    }
}

/// `POST /v1/licenses/{id}/actions/{action}`.
pub async fn action(ctx: &Ctx<'_>, raw: &str, action: &str) -> Handled {
    let change = match action {
        "increment-usage" => Some(UsageChange::Increment(amount(ctx, "increment")?)),
        "decrement-usage" => Some(UsageChange::Decrement(amount(ctx, "decrement")?)),
        "reset-usage" => Some(UsageChange::Reset),
        "suspend" | "reinstate" | "renew" | "check-in" => None,
        _ => return Err(super::not_found_route(ctx.path)),
    };
    ctx.bearer.require("licenses:write")?;
    let d = find(ctx, raw).await?;
    let id = d.license.id;
    let suspended = d.suspended();
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let event = match (action, change) {
        (_, Some(UsageChange::Increment(_))) => "license.usage.incremented",
        (_, Some(UsageChange::Decrement(_))) => "license.usage.decremented",
        (_, Some(UsageChange::Reset)) => "license.usage.reset",
        ("suspend", _) => "license.suspended",
        ("reinstate", _) => "license.reinstated",
        ("renew", _) => "license.renewed",
        _ => "license.checked-in",
    };
    match (action, change) {
        (_, Some(change)) => {
            licenses::change_uses(&mut w, id, change)
                .await
                .map_err(|e| match e {
                    StoreError::LimitReached(m) => {
                        unprocessable(m, "/data/attributes/uses").code("USES_LIMIT_EXCEEDED")
                    }
                    StoreError::Invalid(m) => {
                        unprocessable(m, "/data/attributes/uses").code("USES_INVALID")
                    }
                    e => super::store_error(e),
                })?
        }
        ("suspend", _) if suspended => {
            return Err(
                unprocessable("license is already suspended", "/data/attributes/suspended")
                    .code("LICENSE_SUSPENDED"),
            )
        }
        ("suspend", _) => licenses::ban(&mut w, id, None).await.kg()?,
        ("reinstate", _) if !suspended => {
            return Err(
                unprocessable("license is not suspended", "/data/attributes/suspended")
                    .code("LICENSE_NOT_SUSPENDED"),
            )
        }
        ("reinstate", _) => licenses::unban(&mut w, id).await.kg()?,
        ("renew", _) => licenses::renew(&mut w, id).await.map_err(|e| match e {
            StoreError::Invalid(m) => unprocessable(m, "/data/relationships/policy"),
            e => super::store_error(e),
        })?,
        _ => licenses::check_in(&mut w, id).await.map_err(|e| match e {
            StoreError::Invalid(m) => {
                unprocessable(m, "/data/relationships/policy").code("CHECK_IN_NOT_REQUIRED")
            }
            e => super::store_error(e),
        })?,
    }
    emit::license(&mut w, event, id).await.kg()?;
    w.commit().await.kg()?;
    Ok(answer(ctx, &reload(ctx, id).await?))
}

/// `POST /v1/licenses/actions/validate-key` with a token: the account's license by key (the
/// validator answers the same call for license keys and anonymous clients, from its caches).
pub async fn validate_key(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("licenses:read")?;
    let body = ctx.json()?;
    let meta = validation::meta(&body)?;
    let key = validation::key(meta)?;
    let req = validation::request(meta, false)?;
    let client = ctx.client().await?;
    let found = license_details::by_key(&**client, Some(ctx.account), key)
        .await
        .kg()?
        .into_iter()
        .find(|d| ctx.bearer.reaches(d));
    drop(client);
    validated(ctx, found, &req).await
}

/// `GET|POST /v1/licenses/{id|key}/actions/validate` with a token (GET: quick, no scope).
pub async fn validate(ctx: &Ctx<'_>, raw: &str, quick: bool) -> Handled {
    ctx.bearer.require("licenses:read")?;
    let body = if quick { Value::Null } else { ctx.json()? };
    let req = validation::request(validation::meta(&body)?, quick)?;
    let d = find(ctx, raw).await?;
    validated(ctx, Some(d), &req).await
}

async fn validated(
    ctx: &Ctx<'_>,
    license: Option<LicenseDetail>,
    req: &validation::Request<'_>,
) -> Handled {
    // A first validation may start the license's clock (`FROM_FIRST_VALIDATION`, `…_USE`).
    let license = match license {
        Some(d)
            if starts_expiry(
                &d.policy,
                d.license.expires_at,
                d.license.duration_secs,
                FirstUse::Validation,
            ) =>
        {
            let mut client = ctx.client().await?;
            let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
            licenses::start_expiry(&mut w, d.license.id).await.kg()?;
            w.commit().await.kg()?;
            drop(client);
            Some(reload(ctx, d.license.id).await?)
        }
        other => other,
    };
    let now = Utc::now();
    if let Some(d) = &license {
        // Counted like the validators' validations (`lastValidated`), here in one statement.
        let client = ctx.client().await?;
        usage::record_validations(&**client, &[d.license.id], &[1], &[now])
            .await
            .kg()?;
    }
    let doc = validation::document(license.as_ref(), &ctx.links, req, now);
    if let Some(d) = &license {
        // Its webhook event; a validation changes nothing, so it has no transaction to ride.
        let valid = doc["meta"]["valid"].as_bool().unwrap_or(false);
        let event = PendingEvent {
            event: if valid {
                "license.validation.succeeded"
            } else {
                "license.validation.failed"
            }
            .to_owned(),
            app_id: Some(d.license.app_id),
            payload: doc.clone(),
        };
        let client = ctx.client().await?;
        webhook_events::enqueue(&**client, ctx.account, &[event], false)
            .await
            .kg()?;
    }
    let answer = Answer::ok(&doc);
    Ok(match license {
        Some(d) => answer.signed_by(d.license.app_id),
        None => answer,
    })
}

/// `GET /v1/licenses/{id}/policy`.
pub async fn policy_of(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("policies:read")?;
    let d = find(ctx, raw).await?;
    Ok(
        Answer::ok(&json!({"data": doc::policy(&d.policy, &ctx.links)}))
            .signed_by(d.license.app_id),
    )
}

/// `GET /v1/licenses/{id}/product`.
pub async fn product_of(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("apps:read")?;
    let d = find(ctx, raw).await?;
    let client = ctx.client().await?;
    let app = apps::get(&**client, ctx.account, d.license.app_id)
        .await
        .kg()?;
    Ok(Answer::ok(&json!({"data": doc::product(&app, &ctx.links)})).signed_by(app.id))
}

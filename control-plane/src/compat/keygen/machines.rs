//! Machines: activate within the license's limit (the same locked count as every other
//! activation path), list with Keygen's filters, show by id or fingerprint, update the
//! description, deactivate, and the heartbeat (`ping` only within the policy's resurrection
//! window; `reset`).

use std::collections::HashMap;

use chrono::Utc;
use keyward_shared::keygen_doc::{
    self as doc, activation_refused, machine_patch, machine_request, KgError,
};
use keyward_shared::model::Machine;
use keyward_shared::store::license_details::{self, LicenseDetail};
use keyward_shared::store::licenses;
use keyward_shared::store::machines::{self, Filter};
use keyward_shared::verdict::keygen::{ping_status, starts_expiry, FirstUse, KeygenMachine};
use keyward_shared::write::WriteTx;
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};
use uuid::Uuid;

use super::paging::Query;
use super::{body, not_found, Answer, Ctx, Handled, Kg};
use crate::webhooks::emit;

/// One of the account's machines the bearer may see, by id or fingerprint, with its license.
async fn find(ctx: &Ctx<'_>, raw: &str) -> Result<(Machine, LicenseDetail), KgError> {
    let name = percent_decode_str(raw).decode_utf8_lossy();
    let client = ctx.client().await?;
    let machine = match Uuid::parse_str(&name) {
        Ok(id) => match machines::get(&**client, ctx.account, id).await {
            Ok(m) => Some(m),
            Err(keyward_shared::StoreError::NotFound(_)) => None,
            Err(e) => return Err(super::store_error(e)),
        },
        Err(_) => {
            let filter = Filter {
                app: ctx.bearer.product(),
                fingerprint: Some(name.to_string()),
                owner: ctx.bearer.user(),
                ..Filter::default()
            };
            let one = keyward_shared::store::Offset {
                limit: 1,
                offset: 0,
            };
            machines::list(&**client, ctx.account, &filter, one)
                .await
                .kg()?
                .0
                .into_iter()
                .next()
        }
    };
    let machine = machine
        .filter(|m| ctx.bearer.sees(m.app_id))
        .ok_or_else(|| not_found("machine", &name))?;
    let license = license_details::by_id(&**client, ctx.account, machine.license_id)
        .await
        .kg()?
        .filter(|d| ctx.bearer.reaches(d))
        .ok_or_else(|| not_found("machine", &name))?;
    Ok((machine, license))
}

fn answer(ctx: &Ctx<'_>, m: &Machine, license: &LicenseDetail) -> Answer {
    Answer::ok(&json!({"data": doc::machine(m, license, &ctx.links, Utc::now())}))
        .signed_by(license.license.app_id)
}

pub async fn create(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("licenses:write")?;
    let (new, license) = machine_request(&ctx.json()?)?;
    let refused = |e| activation_refused(&e, 0).unwrap_or_else(|| super::store_error(e));
    let license = match license {
        Some(id) => super::licenses::find(ctx, &id.to_string()).await.ok(),
        None => None,
    };
    let Some(license) = license else {
        return Err(refused(keyward_shared::StoreError::NotFound("license")));
    };
    let limit = license.license.hwid_limit;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let machine = machines::activate(&mut w, license.license.id, &new)
        .await
        .map_err(|e| activation_refused(&e, limit).unwrap_or_else(|| super::store_error(e)))?;
    let l = &license.license;
    if starts_expiry(
        &license.policy,
        l.expires_at,
        l.duration_secs,
        FirstUse::Activation,
    ) {
        licenses::start_expiry(&mut w, l.id).await.kg()?;
    }
    emit::machine(&mut w, "machine.created", &machine)
        .await
        .kg()?;
    w.commit().await.kg()?;
    let (machine, license) = find(ctx, &machine.id.to_string()).await?;
    let doc = json!({"data": doc::machine(&machine, &license, &ctx.links, Utc::now())});
    Ok(Answer::created(&doc, ctx.links.machine(machine.id)).signed_by(license.license.app_id))
}

/// Renders machines, reading each license (policy, heartbeat settings) once.
async fn render_all(ctx: &Ctx<'_>, items: &[Machine]) -> Result<Vec<Value>, KgError> {
    let client = ctx.client().await?;
    let mut licenses: HashMap<Uuid, LicenseDetail> = HashMap::new();
    let now = Utc::now();
    let mut out = Vec::with_capacity(items.len());
    for m in items {
        if let std::collections::hash_map::Entry::Vacant(slot) = licenses.entry(m.license_id) {
            if let Some(d) = license_details::by_id(&**client, ctx.account, m.license_id)
                .await
                .kg()?
            {
                slot.insert(d);
            }
        }
        // A license deleted between the two reads took its machines with it.
        if let Some(d) = licenses.get(&m.license_id) {
            out.push(doc::machine(m, d, &ctx.links, now));
        }
    }
    Ok(out)
}

pub async fn list(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("licenses:read")?;
    let q = Query::parse(ctx.query)?;
    let asked = q.id("product")?;
    if let (Some(own), Some(asked)) = (ctx.bearer.product(), asked) {
        if own != asked {
            return Ok(Answer::ok(&q.collection(ctx.path, Vec::new(), 0)));
        }
    }
    let license = match q.get("license") {
        Some(raw) => match super::licenses::find(ctx, raw).await {
            Ok(d) => Some(d.license.id),
            Err(_) => return Ok(Answer::ok(&q.collection(ctx.path, Vec::new(), 0))),
        },
        None => None,
    };
    let filter = Filter {
        app: ctx.bearer.product().or(asked),
        license,
        fingerprint: q.get("fingerprint").map(str::to_owned),
        owner: ctx.bearer.user(),
    };
    let client = ctx.client().await?;
    let (items, total) = machines::list(&**client, ctx.account, &filter, q.page)
        .await
        .kg()?;
    drop(client);
    let data = render_all(ctx, &items).await?;
    Ok(Answer::ok(&q.collection(ctx.path, data, total)))
}

/// `GET /v1/licenses/{id}/machines`.
pub async fn of_license(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("licenses:read")?;
    let q = Query::parse(ctx.query)?;
    let d = super::licenses::find(ctx, raw).await?;
    let now = Utc::now();
    let page = q.page_of(ctx.path, &d.machines, |m| {
        doc::machine(m, &d, &ctx.links, now)
    });
    Ok(Answer::ok(&page).signed_by(d.license.app_id))
}

pub async fn show(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("licenses:read")?;
    let (m, license) = find(ctx, raw).await?;
    Ok(answer(ctx, &m, &license))
}

pub async fn update(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("licenses:write")?;
    let (m, _) = find(ctx, raw).await?;
    let r = body::resource(&ctx.json()?, "machines")?;
    let patch = machine_patch(&r.attributes)?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let updated = machines::update(&mut w, m.id, &patch).await.kg()?;
    emit::machine(&mut w, "machine.updated", &updated)
        .await
        .kg()?;
    w.commit().await.kg()?;
    drop(client);
    let (m, license) = find(ctx, &m.id.to_string()).await?;
    Ok(answer(ctx, &m, &license))
}

pub async fn delete(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("licenses:write")?;
    let (m, license) = find(ctx, raw).await?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    emit::machine(&mut w, "machine.deleted", &m).await.kg()?;
    machines::deactivate(&mut w, m.id).await.kg()?;
    w.commit().await.kg()?;
    Ok(Answer::no_content().signed_by(license.license.app_id))
}

pub async fn heartbeat(ctx: &Ctx<'_>, raw: &str, reset: bool) -> Handled {
    ctx.bearer.require("licenses:write")?;
    let (m, license) = find(ctx, raw).await?;
    let now = Utc::now();
    if !reset && ping_status(&KeygenMachine::from_machine(&m), &license.policy, now).is_none() {
        return Err(doc::unprocessable(
            "is dead",
            "MACHINE_HEARTBEAT_DEAD",
            "/data",
        ));
    }
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let updated = machines::heartbeat(&mut w, m.id, (!reset).then_some(now))
        .await
        .kg()?;
    let event = if reset {
        "machine.heartbeat.reset"
    } else {
        "machine.heartbeat.ping"
    };
    emit::machine(&mut w, event, &updated).await.kg()?;
    w.commit().await.kg()?;
    Ok(answer(ctx, &updated, &license))
}

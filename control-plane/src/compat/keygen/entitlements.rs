//! Entitlements (account-wide, like Keygen's) and their attachment to policies and licenses:
//! `POST`/`DELETE /v1/{policies|licenses}/{id}/entitlements` with `{data:[{type, id}, …]}`.

use keyward_shared::keygen_doc::{entitlement as render, KgError};
use keyward_shared::model::Entitlement;
use keyward_shared::store::entitlements::{self, EntitlementPatch, Holder};
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;
use serde_json::{json, Map, Value};

use super::paging::Query;
use super::{body, id_of, not_found, unprocessable, Answer, Ctx, Handled, Kg};
use crate::webhooks::emit;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Policy,
    License,
}

fn patch(attrs: &Map<String, Value>) -> Result<EntitlementPatch, KgError> {
    let mut core = Map::new();
    for key in ["name", "code", "metadata"] {
        if let Some(v) = attrs.get(key) {
            core.insert(key.into(), v.clone());
        }
    }
    serde_json::from_value(Value::Object(core))
        .map_err(|e| unprocessable(e.to_string(), "/data/attributes"))
}

fn missing(e: StoreError, raw: &str) -> KgError {
    match e {
        StoreError::NotFound(_) => not_found("entitlement", raw),
        StoreError::Conflict(m) => unprocessable(m, "/data/attributes/code").code("CODE_TAKEN"),
        e => super::store_error(e),
    }
}

fn one(ctx: &Ctx<'_>, e: &Entitlement) -> Answer {
    Answer::ok(&json!({"data": render(e, &ctx.links)}))
}

pub async fn create(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require_admin()?;
    ctx.bearer.require("entitlements:write")?;
    let r = body::resource(&ctx.json()?, "entitlements")?;
    let p = patch(&r.attributes)?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let e = entitlements::create(&mut w, &p)
        .await
        .map_err(|e| missing(e, ""))?;
    emit::document(&mut w, "entitlement.created", None, || {
        render(&e, &ctx.links)
    })
    .await
    .kg()?;
    w.commit().await.kg()?;
    let doc = json!({"data": render(&e, &ctx.links)});
    Ok(Answer::created(&doc, ctx.links.entitlement(e.id)))
}

pub async fn list(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("entitlements:read")?;
    let q = Query::parse(ctx.query)?;
    let client = ctx.client().await?;
    let all = entitlements::list(&**client, ctx.account).await.kg()?;
    Ok(Answer::ok(
        &q.page_of(ctx.path, &all, |e| render(e, &ctx.links)),
    ))
}

pub async fn show(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("entitlements:read")?;
    let id = id_of("entitlement", raw)?;
    let client = ctx.client().await?;
    let e = entitlements::get(&**client, ctx.account, id)
        .await
        .map_err(|e| missing(e, raw))?;
    Ok(one(ctx, &e))
}

pub async fn update(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require_admin()?;
    ctx.bearer.require("entitlements:write")?;
    let id = id_of("entitlement", raw)?;
    let r = body::resource(&ctx.json()?, "entitlements")?;
    let p = patch(&r.attributes)?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let e = entitlements::update(&mut w, id, &p)
        .await
        .map_err(|e| missing(e, raw))?;
    emit::document(&mut w, "entitlement.updated", None, || {
        render(&e, &ctx.links)
    })
    .await
    .kg()?;
    w.commit().await.kg()?;
    Ok(one(ctx, &e))
}

pub async fn delete(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require_admin()?;
    ctx.bearer.require("entitlements:write")?;
    let id = id_of("entitlement", raw)?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let gone = entitlements::get(w.tx(), ctx.account, id)
        .await
        .map_err(|e| missing(e, raw))?;
    emit::document(&mut w, "entitlement.deleted", None, || {
        render(&gone, &ctx.links)
    })
    .await
    .kg()?;
    entitlements::delete(&mut w, id)
        .await
        .map_err(|e| missing(e, raw))?;
    w.commit().await.kg()?;
    Ok(Answer::no_content())
}

/// The policy or license in the path, checked visible to the bearer.
async fn holder(ctx: &Ctx<'_>, kind: Kind, raw: &str) -> Result<(Holder, uuid::Uuid), KgError> {
    match kind {
        Kind::License => {
            let d = super::licenses::find(ctx, raw).await?;
            Ok((Holder::License(d.license.id), d.license.app_id))
        }
        Kind::Policy => {
            let id = id_of("policy", raw)?;
            let client = ctx.client().await?;
            let p = keyward_shared::store::policies::get(&**client, ctx.account, id)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) => not_found("policy", raw),
                    e => super::store_error(e),
                })?;
            if !ctx.bearer.sees(p.app_id) {
                return Err(not_found("policy", raw));
            }
            Ok((Holder::Policy(p.id), p.app_id))
        }
    }
}

pub async fn of_holder(ctx: &Ctx<'_>, kind: Kind, raw: &str) -> Handled {
    ctx.bearer.require("entitlements:read")?;
    let q = Query::parse(ctx.query)?;
    let (h, app) = holder(ctx, kind, raw).await?;
    let client = ctx.client().await?;
    let all = entitlements::attached(&**client, ctx.account, h)
        .await
        .kg()?;
    Ok(Answer::ok(&q.page_of(ctx.path, &all, |e| render(e, &ctx.links))).signed_by(app))
}

pub async fn attach(ctx: &Ctx<'_>, kind: Kind, raw: &str) -> Handled {
    ctx.bearer.require("entitlements:write")?;
    let (h, app) = holder(ctx, kind, raw).await?;
    let ids = body::linkage(&ctx.json()?, "entitlements")?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let attached = entitlements::attach(&mut w, h, &ids)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(what) => {
                unprocessable(format!("{what} must exist"), "/data").code("ENTITLEMENT_NOT_FOUND")
            }
            e => super::store_error(e),
        })?;
    w.commit().await.kg()?;
    let data: Vec<Value> = attached.iter().map(|e| render(e, &ctx.links)).collect();
    Ok(Answer::ok(&json!({"data": data})).signed_by(app))
}

pub async fn detach(ctx: &Ctx<'_>, kind: Kind, raw: &str) -> Handled {
    ctx.bearer.require("entitlements:write")?;
    let (h, app) = holder(ctx, kind, raw).await?;
    let ids = body::linkage(&ctx.json()?, "entitlements")?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    for id in ids {
        entitlements::detach(&mut w, h, id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => {
                    unprocessable("must be attached", "/data").code("ENTITLEMENT_NOT_FOUND")
                }
                e => super::store_error(e),
            })?;
    }
    w.commit().await.kg()?;
    Ok(Answer::no_content().signed_by(app))
}

//! Products: the core's apps. Keygen's `name` is the app's name; its other product attributes
//! (`code`, `url`, `platforms`, `distributionStrategy`) have no core counterpart yet and are
//! answered with Keygen's defaults.

use keyward_shared::keygen_doc::{product, KgError};
use keyward_shared::store::apps::{self, AppPatch};
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;
use serde_json::{json, Value};

use super::paging::Query;
use super::{body, id_of, not_found, unprocessable, Answer, Ctx, Handled, Kg};
use crate::webhooks::emit;

fn patch(attributes: &serde_json::Map<String, Value>) -> Result<AppPatch, KgError> {
    // Keygen's names are the core's, but for the case of none of them.
    let mut core = serde_json::Map::new();
    for key in ["name", "code", "url", "platforms", "metadata"] {
        if let Some(v) = attributes.get(key) {
            core.insert(key.into(), v.clone());
        }
    }
    serde_json::from_value(Value::Object(core))
        .map_err(|e| unprocessable(e.to_string(), "/data/attributes"))
}

fn missing(e: StoreError, raw: &str) -> KgError {
    match e {
        StoreError::NotFound(_) => not_found("product", raw),
        e => super::store_error(e),
    }
}

pub async fn create(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require_admin()?;
    ctx.bearer.require("apps:write")?;
    let r = body::resource(&ctx.json()?, "products")?;
    let p = patch(&r.attributes)?;
    if p.name.is_none() {
        return Err(unprocessable("name is required", "/data/attributes/name").code("NAME_MISSING"));
    }
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let app = apps::create(&mut w, &p).await.kg()?;
    emit::document(&mut w, "product.created", Some(app.id), || {
        product(&app, &ctx.links)
    })
    .await
    .kg()?;
    w.commit().await.kg()?;
    let doc = json!({"data": product(&app, &ctx.links)});
    Ok(Answer::created(&doc, ctx.links.of("products", app.id)).signed_by(app.id))
}

pub async fn list(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("apps:read")?;
    let q = Query::parse(ctx.query)?;
    let client = ctx.client().await?;
    let all = apps::list(&**client, ctx.account).await.kg()?;
    let visible: Vec<_> = all.iter().filter(|a| ctx.bearer.sees(a.id)).collect();
    Ok(Answer::ok(
        &q.page_of(ctx.path, &visible, |a| product(a, &ctx.links)),
    ))
}

pub async fn show(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("apps:read")?;
    let id = id_of("product", raw)?;
    if !ctx.bearer.sees(id) {
        return Err(not_found("product", raw));
    }
    let client = ctx.client().await?;
    let app = apps::get(&**client, ctx.account, id)
        .await
        .map_err(|e| missing(e, raw))?;
    Ok(Answer::ok(&json!({"data": product(&app, &ctx.links)})).signed_by(app.id))
}

pub async fn update(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("apps:write")?;
    let id = id_of("product", raw)?;
    if !ctx.bearer.sees(id) {
        return Err(not_found("product", raw));
    }
    let r = body::resource(&ctx.json()?, "products")?;
    let p = patch(&r.attributes)?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let app = apps::update(&mut w, id, &p)
        .await
        .map_err(|e| missing(e, raw))?;
    emit::document(&mut w, "product.updated", Some(app.id), || {
        product(&app, &ctx.links)
    })
    .await
    .kg()?;
    w.commit().await.kg()?;
    Ok(Answer::ok(&json!({"data": product(&app, &ctx.links)})).signed_by(app.id))
}

pub async fn delete(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require_admin()?;
    ctx.bearer.require("apps:write")?;
    let id = id_of("product", raw)?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let app = apps::get(w.tx(), ctx.account, id)
        .await
        .map_err(|e| missing(e, raw))?;
    emit::document(&mut w, "product.deleted", Some(id), || {
        product(&app, &ctx.links)
    })
    .await
    .kg()?;
    apps::delete(&mut w, id)
        .await
        .map_err(|e| missing(e, raw))?;
    w.commit().await.kg()?;
    Ok(Answer::no_content())
}

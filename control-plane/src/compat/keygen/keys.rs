//! The key pool: `POST`/`GET /v1/keys`, `GET`/`PATCH`/`DELETE /v1/keys/{id}`, and a policy's
//! pool (`GET /v1/policies/{id}/pool`, `DELETE` takes the oldest key out).

use keyward_shared::keygen_doc::{pooled_key as render, KgError};
use keyward_shared::store::key_pool::{self, PooledKey};
use keyward_shared::store::policies;
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;
use serde_json::{json, Value};

use super::paging::Query;
use super::{body, id_of, not_found, unprocessable, Answer, Ctx, Handled, Kg};
use crate::webhooks::emit;

fn key_attribute(r: &body::Resource) -> Result<Option<String>, KgError> {
    match r.attributes.get("key") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(unprocessable(
            "key must be a string",
            "/data/attributes/key",
        )),
    }
}

fn write_error(e: StoreError, raw: &str) -> KgError {
    match e {
        StoreError::NotFound("key") => not_found("key", raw),
        StoreError::Conflict(m) => unprocessable(m, "/data/attributes/key").code("KEY_TAKEN"),
        StoreError::Invalid(m) => unprocessable(m, "/data/attributes/key"),
        e => super::store_error(e),
    }
}

async fn visible(ctx: &Ctx<'_>, raw: &str) -> Result<PooledKey, KgError> {
    let id = id_of("key", raw)?;
    let client = ctx.client().await?;
    let k = key_pool::get(&**client, ctx.account, id)
        .await
        .map_err(|e| write_error(e, raw))?;
    if !ctx.bearer.sees(k.app_id) {
        return Err(not_found("key", raw));
    }
    Ok(k)
}

/// One of the account's policies the bearer may see.
async fn policy(ctx: &Ctx<'_>, raw: &str) -> Result<keyward_shared::policy::Policy, KgError> {
    let id = id_of("policy", raw)?;
    let client = ctx.client().await?;
    match policies::get(&**client, ctx.account, id).await {
        Ok(p) if ctx.bearer.sees(p.app_id) => Ok(p),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(not_found("policy", raw)),
        Err(e) => Err(super::store_error(e)),
    }
}

pub async fn create(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("licenses:write")?;
    let r = body::resource(&ctx.json()?, "keys")?;
    let Some(key) = key_attribute(&r)? else {
        return Err(unprocessable("key is required", "/data/attributes/key").code("KEY_MISSING"));
    };
    let policy_id = r.related("policy", "POLICY_NOT_FOUND", "/data/relationships/policy")?;
    let policy = match policy_id {
        Some(id) => policy(ctx, &id.to_string()).await.ok(),
        None => None,
    };
    let Some(policy) = policy else {
        return Err(
            unprocessable("must exist", "/data/relationships/policy").code("POLICY_NOT_FOUND")
        );
    };
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let k = key_pool::add(&mut w, policy.id, &key)
        .await
        .map_err(|e| write_error(e, ""))?;
    emit::document(&mut w, "key.created", Some(k.app_id), || {
        render(&k, &ctx.links)
    })
    .await
    .kg()?;
    w.commit().await.kg()?;
    let doc = json!({"data": render(&k, &ctx.links)});
    Ok(Answer::created(&doc, ctx.links.of("keys", k.id)).signed_by(k.app_id))
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
    let client = ctx.client().await?;
    let (items, total) = key_pool::list(
        &**client,
        ctx.account,
        ctx.bearer.product().or(asked),
        q.id("policy")?,
        q.page,
    )
    .await
    .kg()?;
    let data = items.iter().map(|k| render(k, &ctx.links)).collect();
    Ok(Answer::ok(&q.collection(ctx.path, data, total)))
}

pub async fn show(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("licenses:read")?;
    let k = visible(ctx, raw).await?;
    Ok(Answer::ok(&json!({"data": render(&k, &ctx.links)})).signed_by(k.app_id))
}

pub async fn update(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("licenses:write")?;
    let current = visible(ctx, raw).await?;
    let r = body::resource(&ctx.json()?, "keys")?;
    let Some(key) = key_attribute(&r)? else {
        return Ok(Answer::ok(&json!({"data": render(&current, &ctx.links)})));
    };
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let k = key_pool::update(&mut w, current.id, &key)
        .await
        .map_err(|e| write_error(e, raw))?;
    emit::document(&mut w, "key.updated", Some(k.app_id), || {
        render(&k, &ctx.links)
    })
    .await
    .kg()?;
    w.commit().await.kg()?;
    Ok(Answer::ok(&json!({"data": render(&k, &ctx.links)})).signed_by(k.app_id))
}

pub async fn delete(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("licenses:write")?;
    let k = visible(ctx, raw).await?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    emit::document(&mut w, "key.deleted", Some(k.app_id), || {
        render(&k, &ctx.links)
    })
    .await
    .kg()?;
    key_pool::delete(&mut w, k.id)
        .await
        .map_err(|e| write_error(e, raw))?;
    w.commit().await.kg()?;
    Ok(Answer::no_content().signed_by(k.app_id))
}

/// `GET /v1/policies/{id}/pool`.
pub async fn pool(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("licenses:read")?;
    let p = policy(ctx, raw).await?;
    let q = Query::parse(ctx.query)?;
    let client = ctx.client().await?;
    let (items, total) = key_pool::list(&**client, ctx.account, None, Some(p.id), q.page)
        .await
        .kg()?;
    let data = items.iter().map(|k| render(k, &ctx.links)).collect();
    Ok(Answer::ok(&q.collection(ctx.path, data, total)).signed_by(p.app_id))
}

/// `DELETE /v1/policies/{id}/pool`: takes the oldest key out of the pool and answers it.
pub async fn pop(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("licenses:write")?;
    let p = policy(ctx, raw).await?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let Some(k) = key_pool::take(&mut w, p.id).await.kg()? else {
        return Err(unprocessable("pool is empty", "/data/relationships/pool").code("POOL_EMPTY"));
    };
    emit::document(&mut w, "policy.pool.popped", Some(k.app_id), || {
        render(&k, &ctx.links)
    })
    .await
    .kg()?;
    w.commit().await.kg()?;
    Ok(Answer::ok(&json!({"data": render(&k, &ctx.links)})).signed_by(k.app_id))
}

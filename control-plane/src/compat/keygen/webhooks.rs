//! Webhook endpoints and their events in Keygen's shapes, over the same outbox as the native
//! `/v1/webhook-endpoints` and `/v1/webhook-events`: `POST`/`GET /v1/webhook-endpoints`,
//! `GET`/`PATCH`/`DELETE /v1/webhook-endpoints/{id}`, `GET /v1/webhook-events` (`?events[]=`),
//! `GET`/`DELETE /v1/webhook-events/{id}`, `POST /v1/webhook-events/{id}/actions/retry`.

use std::collections::HashMap;

use keyward_shared::keygen_doc::{time, KgError, Links};
use keyward_shared::store::webhook_endpoints::{self, EndpointPatch, WebhookEndpoint};
use keyward_shared::store::webhook_events::{self, WebhookEvent};
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::paging::Query;
use super::{body, id_of, not_found, unprocessable, Answer, Ctx, Handled, Kg};
use crate::webhooks::document;

fn render_endpoint(e: &WebhookEndpoint, links: &Links) -> Value {
    json!({
        "id": e.id.to_string(),
        "type": "webhook-endpoints",
        "attributes": {
            "url": e.url,
            "subscriptions": e.subscriptions,
            "signatureAlgorithm": e.signature_algorithm,
            "apiVersion": e.api_version,
            "enabled": e.enabled,
            "created": time(e.created_at),
            "updated": time(e.updated_at),
        },
        "relationships": {
            "account": links.account(),
            "product": links.to_one("products", e.app_id, e.app_id.map_or_else(String::new, |a| links.of("products", a))),
        },
        "links": {"self": links.of("webhook-endpoints", e.id)},
    })
}

fn render_event(e: &WebhookEvent, endpoint: Option<&WebhookEndpoint>) -> Value {
    let (url, version) = endpoint.map_or(("", webhook_endpoints::DEFAULT_API_VERSION), |ep| {
        (ep.url.as_str(), ep.api_version.as_str())
    });
    document::resource(e, url, version, e.status, e.updated_at)
}

/// Keygen's endpoint attributes onto the core's patch (the product from the relationship).
fn patch(r: &body::Resource) -> Result<EndpointPatch, KgError> {
    let mut core = Map::new();
    for (from, to) in [
        ("url", "url"),
        ("subscriptions", "subscriptions"),
        ("signatureAlgorithm", "signature_algorithm"),
        ("apiVersion", "api_version"),
        ("enabled", "enabled"),
    ] {
        if let Some(v) = r.attributes.get(from) {
            let v = match (from, v) {
                // Keygen names the algorithm in lower case already; accept either.
                ("signatureAlgorithm", Value::String(s)) => Value::String(s.to_ascii_lowercase()),
                (_, v) => v.clone(),
            };
            core.insert(to.into(), v);
        }
    }
    if r.relationships.contains_key("product") {
        let app = r.related(
            "product",
            "PRODUCT_NOT_FOUND",
            "/data/relationships/product",
        )?;
        core.insert("app_id".into(), json!(app));
    }
    serde_json::from_value(Value::Object(core))
        .map_err(|e| unprocessable(e.to_string(), "/data/attributes"))
}

fn write_error(e: StoreError, raw: &str) -> KgError {
    match e {
        StoreError::NotFound("webhook endpoint") => not_found("webhook endpoint", raw),
        StoreError::NotFound("webhook event") => not_found("webhook event", raw),
        StoreError::NotFound(_) => {
            unprocessable("must exist", "/data/relationships/product").code("PRODUCT_NOT_FOUND")
        }
        StoreError::Invalid(m) => unprocessable(m, "/data/attributes"),
        e => super::store_error(e),
    }
}

async fn endpoint(ctx: &Ctx<'_>, raw: &str) -> Result<WebhookEndpoint, KgError> {
    let id = id_of("webhook endpoint", raw)?;
    let client = ctx.client().await?;
    let e = webhook_endpoints::get(&**client, ctx.account, id)
        .await
        .map_err(|e| write_error(e, raw))?;
    match (ctx.bearer.product(), e.app_id) {
        (Some(own), Some(app)) if own == app => Ok(e),
        (Some(_), _) => Err(not_found("webhook endpoint", raw)),
        (None, _) => Ok(e),
    }
}

pub async fn create_endpoint(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("webhooks:write")?;
    let r = body::resource(&ctx.json()?, "webhook-endpoints")?;
    let mut p = patch(&r)?;
    if let Some(own) = ctx.bearer.product() {
        // A product token's endpoints hear of its product only.
        match p.app_id {
            Some(Some(app)) if app != own => {
                return Err(unprocessable("must exist", "/data/relationships/product")
                    .code("PRODUCT_NOT_FOUND"))
            }
            _ => p.app_id = Some(Some(own)),
        }
    }
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let e = webhook_endpoints::create(&mut w, &p, ctx.state.webhook_urls())
        .await
        .map_err(|e| write_error(e, ""))?;
    w.commit().await.kg()?;
    let doc = json!({"data": render_endpoint(&e, &ctx.links)});
    Ok(Answer::created(
        &doc,
        ctx.links.of("webhook-endpoints", e.id),
    ))
}

pub async fn list_endpoints(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("webhooks:read")?;
    let q = Query::parse(ctx.query)?;
    let client = ctx.client().await?;
    let all = webhook_endpoints::list(
        &**client,
        ctx.account,
        ctx.bearer.product().or(q.id("product")?),
    )
    .await
    .kg()?;
    Ok(Answer::ok(&q.page_of(ctx.path, &all, |e| {
        render_endpoint(e, &ctx.links)
    })))
}

pub async fn show_endpoint(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("webhooks:read")?;
    let e = endpoint(ctx, raw).await?;
    Ok(Answer::ok(
        &json!({"data": render_endpoint(&e, &ctx.links)}),
    ))
}

pub async fn update_endpoint(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("webhooks:write")?;
    let current = endpoint(ctx, raw).await?;
    let r = body::resource(&ctx.json()?, "webhook-endpoints")?;
    let p = patch(&r)?;
    if ctx.bearer.product().is_some() && p.app_id.is_some() {
        return Err(super::auth::access_denied());
    }
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let e = webhook_endpoints::update(&mut w, current.id, &p, ctx.state.webhook_urls())
        .await
        .map_err(|e| write_error(e, raw))?;
    w.commit().await.kg()?;
    Ok(Answer::ok(
        &json!({"data": render_endpoint(&e, &ctx.links)}),
    ))
}

pub async fn delete_endpoint(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("webhooks:write")?;
    let current = endpoint(ctx, raw).await?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    webhook_endpoints::delete(&mut w, current.id)
        .await
        .map_err(|e| write_error(e, raw))?;
    w.commit().await.kg()?;
    Ok(Answer::no_content())
}

/// Events are the account's: admins only (a product token's scope is its resources).
pub async fn list_events(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require_admin()?;
    ctx.bearer.require("webhooks:read")?;
    let q = Query::parse(ctx.query)?;
    let event = q.get("events[]").or(q.get("event"));
    if event.is_some_and(|e| !webhook_endpoints::is_known_event(e)) {
        return Ok(Answer::ok(&q.collection(ctx.path, Vec::new(), 0)));
    }
    let client = ctx.client().await?;
    let (items, total) = webhook_events::list_page(&**client, ctx.account, event, q.page)
        .await
        .kg()?;
    let endpoints: HashMap<Uuid, WebhookEndpoint> =
        webhook_endpoints::list(&**client, ctx.account, None)
            .await
            .kg()?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
    let data = items
        .iter()
        .map(|e| render_event(e, endpoints.get(&e.endpoint_id)))
        .collect();
    Ok(Answer::ok(&q.collection(ctx.path, data, total)))
}

async fn event(
    ctx: &Ctx<'_>,
    raw: &str,
) -> Result<(WebhookEvent, Option<WebhookEndpoint>), KgError> {
    ctx.bearer.require_admin()?;
    let id = id_of("webhook event", raw)?;
    let client = ctx.client().await?;
    let e = webhook_events::get(&**client, ctx.account, id)
        .await
        .map_err(|e| write_error(e, raw))?;
    let endpoint = webhook_endpoints::get(&**client, ctx.account, e.endpoint_id)
        .await
        .ok();
    Ok((e, endpoint))
}

pub async fn show_event(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("webhooks:read")?;
    let (e, endpoint) = event(ctx, raw).await?;
    Ok(Answer::ok(
        &json!({"data": render_event(&e, endpoint.as_ref())}),
    ))
}

pub async fn delete_event(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("webhooks:write")?;
    let (e, _) = event(ctx, raw).await?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    webhook_events::delete(&mut w, e.id)
        .await
        .map_err(|e| write_error(e, raw))?;
    w.commit().await.kg()?;
    Ok(Answer::no_content())
}

/// `POST /v1/webhook-events/{id}/actions/retry`: queued again now (409 while being delivered).
pub async fn retry_event(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("webhooks:write")?;
    let (e, endpoint) = event(ctx, raw).await?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let retried = webhook_events::retry(&mut w, e.id)
        .await
        .map_err(|e| write_error(e, raw))?;
    w.commit().await.kg()?;
    Ok(Answer::ok(
        &json!({"data": render_event(&retried, endpoint.as_ref())}),
    ))
}

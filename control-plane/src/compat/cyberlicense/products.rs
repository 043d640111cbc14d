//! `GET /api/products` and `GET /api/products/:id`: the account's apps as CyberLicense's
//! products (`isActive` = not paused), with their license counts on request.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use keyward_shared::model::App;
use keyward_shared::store::apps::{self, LicenseCounts};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{ok, timestamp, ClAdmin, ClError, ClQuery, ClResult};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/products", get(list))
        .route("/api/products/{id}", get(one))
}

/// A Product in the seed's key order (the counts between `licensePrefix` and `createdAt`).
fn product(app: &App, counts: Option<LicenseCounts>) -> Value {
    let mut p = Map::new();
    p.insert("_id".into(), json!(app.id.to_string()));
    p.insert("name".into(), json!(app.name));
    p.insert("description".into(), json!(app.description));
    p.insert("isActive".into(), json!(!app.paused));
    p.insert("licensePrefix".into(), json!(app.license_prefix));
    if let Some(c) = counts {
        p.insert("licenseCount".into(), json!(c.total));
        p.insert("activeLicenseCount".into(), json!(c.active));
    }
    p.insert("createdAt".into(), json!(timestamp(app.created_at)));
    p.insert("updatedAt".into(), json!(timestamp(app.updated_at)));
    Value::Object(p)
}

async fn list(
    State(state): State<AppState>,
    ClAdmin(auth): ClAdmin,
    q: ClQuery,
) -> ClResult<Response> {
    let counts = q.bool("includeCounts")?.unwrap_or(false);
    let active_only = q.bool("activeOnly")?.unwrap_or(false);
    let client = state.client().await?;
    let found = apps::products(&**client, auth.account_id(), active_only, counts).await?;
    let products: Vec<Value> = found.iter().map(|(a, c)| product(a, *c)).collect();
    let count = products.len();
    Ok(ok(
        json!({"success": true, "products": products, "count": count}),
    ))
}

async fn one(
    State(state): State<AppState>,
    ClAdmin(auth): ClAdmin,
    id: Result<Path<String>, PathRejection>,
    q: ClQuery,
) -> ClResult<Response> {
    let counts = q.bool("includeCounts")?.unwrap_or(false);
    // An id that is not one of ours names no product.
    let id = id
        .ok()
        .and_then(|Path(id)| Uuid::parse_str(id.trim()).ok())
        .ok_or_else(|| ClError::not_found("Product not found"))?;
    let client = state.client().await?;
    let (app, c) = apps::product(&**client, auth.account_id(), id, counts).await?;
    Ok(ok(json!({"success": true, "product": product(&app, c)})))
}

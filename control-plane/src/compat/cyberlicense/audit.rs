//! `GET /api/audit` and `GET /api/audit/:id`: the core's audit log in CyberLicense's AuditLog
//! shape, its actions and target types classified onto the seed's enumerations by the store.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use keyward_shared::store::audit::{self, Classified, ClassifiedFilter};
use keyward_shared::StoreError;
use serde_json::{json, Value};

use super::{ok, timestamp, ClAdmin, ClError, ClQuery, ClResult};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/audit", get(list))
        .route("/api/audit/{id}", get(one))
}

/// An AuditLog. `changes` are the entry's own `before`/`after` where it recorded them; else the
/// entry's details are what the change made (`before` empty), as for a creation.
fn audit_log(c: &Classified) -> Value {
    let e = &c.entry;
    let (before, after) = match &e.details {
        Value::Object(d) if d.contains_key("before") || d.contains_key("after") => (
            d.get("before").cloned().unwrap_or_else(|| json!({})),
            d.get("after").cloned().unwrap_or_else(|| json!({})),
        ),
        other => (json!({}), other.clone()),
    };
    json!({
        "_id": e.id.to_string(),
        "userId": e.actor,
        "action": c.action,
        "resourceType": c.resource,
        "resourceId": e.target_id,
        "changes": {"before": before, "after": after},
        "ip": e.ip.map(|ip| ip.to_string()),
        "userAgent": e.user_agent,
        "success": e.success,
        "createdAt": timestamp(e.created_at),
    })
}

/// A value of one of the seed's enumerations, or 400 naming the parameter.
fn one_of(q: &ClQuery, name: &str, allowed: &[&str]) -> ClResult<Option<String>> {
    match q.get(name) {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
        Some(_) => Err(ClError::bad_param(name)),
    }
}

/// Any integer (the store clamps a limit), or 400 naming the parameter.
fn integer(q: &ClQuery, name: &str) -> ClResult<Option<i64>> {
    q.get(name)
        .map(|v| v.parse::<i64>().map_err(|_| ClError::bad_param(name)))
        .transpose()
}

async fn list(
    State(state): State<AppState>,
    ClAdmin(auth): ClAdmin,
    q: ClQuery,
) -> ClResult<Response> {
    let filter = ClassifiedFilter {
        actor: q.get("userId").map(str::to_string),
        resource: one_of(&q, "resourceType", &audit::RESOURCE_CLASSES)?,
        target_id: q.get("resourceId").map(str::to_string),
        action: one_of(&q, "action", &audit::ACTION_CLASSES)?,
        since: q.date("startDate")?,
        until: q.date("endDate")?,
        success: q.bool("success")?,
        limit: integer(&q, "limit")?,
        // At least 0 (a negative one is a 400, as a Mongo skip would be).
        skip: q.int("skip")?,
    };
    let client = state.client().await?;
    let (entries, total) = audit::classified(&**client, auth.account_id(), &filter).await?;
    let logs: Vec<Value> = entries.iter().map(audit_log).collect();
    let count = logs.len();
    Ok(ok(
        json!({"success": true, "auditLogs": logs, "count": count, "total": total}),
    ))
}

async fn one(
    State(state): State<AppState>,
    ClAdmin(auth): ClAdmin,
    id: Result<Path<String>, PathRejection>,
) -> ClResult<Response> {
    let not_found = || ClError::not_found("Audit log not found");
    let id = id
        .ok()
        .and_then(|Path(id)| id.trim().parse::<i64>().ok())
        .ok_or_else(not_found)?;
    let client = state.client().await?;
    let entry = audit::classified_by_id(&**client, auth.account_id(), id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => not_found(),
            e => e.into(),
        })?;
    Ok(ok(json!({"success": true, "auditLog": audit_log(&entry)})))
}

//! CyberLicense's customer API (`/api/customer/licenses…`): a customer's own licenses, their
//! usage statistics and credits. The bearer is a customer token ([`ClCustomer`]); a license the
//! customer does not own, or a malformed id, is 404 "License not found" like an unknown one, so
//! another's license is not revealed. Statistics come from `store::license_stats::read` (its
//! module comment defines active, expired and suspended, and the windows).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use keyward_shared::model::{License, LicenseStatus, LicenseType};
use keyward_shared::store::account_users::{self, OwnedProduct};
use keyward_shared::store::license_stats::read::{self, Counts, Window};
use keyward_shared::verdict::cyberlicense::credits;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{ok, opt_timestamp, timestamp, ClCustomer, ClError, ClQuery, ClResult};
use crate::AppState;

/// `usage.requests` lists at most this many, newest first.
const REQUESTS_SHOWN: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/customer/licenses", get(list))
        // A literal segment: axum matches it before the `{licenseId}` capture.
        .route("/api/customer/licenses/stats", get(stats))
        .route("/api/customer/licenses/{licenseId}", get(detail))
        .route("/api/customer/licenses/{licenseId}/usage", get(usage))
        .route(
            "/api/customer/licenses/{licenseId}/credits",
            get(credits_of),
        )
}

fn not_found() -> ClError {
    ClError::not_found("License not found")
}

/// The license the path names, if the customer owns it.
async fn owned(
    state: &AppState,
    who: &ClCustomer,
    id: Result<Path<String>, PathRejection>,
) -> ClResult<(License, OwnedProduct)> {
    let id = id
        .ok()
        .and_then(|Path(id)| Uuid::parse_str(id.trim()).ok())
        .ok_or_else(not_found)?;
    let client = state.client().await?;
    account_users::owned_licenses(&**client, who.account_id, who.user_id, Some(id))
        .await?
        .pop()
        .ok_or_else(not_found)
}

/// CustomerLicense: `_id, key, product{_id,name}, active, expiresAt, licenseType, ipLimit,
/// hwidLimit, usedIps[], usedHwids[]` (limits 0: unlimited).
fn customer_license(l: &License, p: &OwnedProduct) -> Map<String, Value> {
    let v = json!({
        "_id": l.id.to_string(),
        "key": l.key,
        "product": {"_id": p.id.to_string(), "name": p.name},
        "active": l.status == LicenseStatus::Active,
        "expiresAt": opt_timestamp(l.expires_at),
        "licenseType": l.license_type.as_str(),
        "ipLimit": l.ip_limit,
        "hwidLimit": l.hwid_limit,
        "usedIps": l.ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
        "usedHwids": l.hwids.iter().map(|h| h.hwid.as_str()).collect::<Vec<_>>(),
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn counts(c: &Counts) -> Value {
    json!({"success": c.success, "blocked": c.blocked, "invalid": c.invalid})
}

/// `GET /api/customer/licenses`.
async fn list(State(state): State<AppState>, who: ClCustomer) -> ClResult<Response> {
    let client = state.client().await?;
    let licenses = account_users::owned_licenses(&**client, who.account_id, who.user_id, None)
        .await?
        .iter()
        .map(|(l, p)| Value::Object(customer_license(l, p)))
        .collect::<Vec<_>>();
    Ok(ok(json!({"success": true, "licenses": licenses})))
}

/// `GET /api/customer/licenses/stats`.
async fn stats(State(state): State<AppState>, who: ClCustomer) -> ClResult<Response> {
    let client = state.client().await?;
    let s = read::customer_stats(&**client, who.account_id, who.user_id, Utc::now()).await?;
    let by_type: Map<String, Value> = s
        .by_type
        .iter()
        .map(|(t, n)| (t.as_str().to_string(), json!(n)))
        .collect();
    Ok(ok(json!({"success": true, "stats": {
        "totalLicenses": s.total,
        "activeLicenses": s.active,
        "expiredLicenses": s.expired,
        "suspendedLicenses": s.suspended,
        "totalRequests": s.total_requests,
        "successfulRequests": s.successful_requests,
        "byType": by_type,
    }})))
}

/// `GET /api/customer/licenses/{licenseId}`: the license, its product with its description,
/// and `usageStats`.
async fn detail(
    State(state): State<AppState>,
    who: ClCustomer,
    id: Result<Path<String>, PathRejection>,
) -> ClResult<Response> {
    let (l, p) = owned(&state, &who, id).await?;
    let client = state.client().await?;
    // Distinct IPs and HWIDs over the statistics' retention (30 days by default).
    let window = state.usage_retention();
    let t = read::license_totals(&**client, l.id, Utc::now(), window).await?;
    let mut license = customer_license(&l, &p);
    license.insert(
        "product".into(),
        json!({"_id": p.id.to_string(), "name": p.name, "description": p.description}),
    );
    license.insert(
        "usageStats".into(),
        json!({
            "totalRequests": t.counts.total(),
            "successfulRequests": t.counts.success,
            "blockedRequests": t.counts.blocked,
            "lastUsed": opt_timestamp(t.last_used),
            "uniqueIPs": t.unique_ips,
            "uniqueHWIDs": t.unique_hwids,
        }),
    );
    Ok(ok(json!({"success": true, "license": license})))
}

/// The usage window: `startDate` and `endDate` (ISO 8601), both included; a bare end date
/// includes that whole day.
fn window(q: &ClQuery) -> ClResult<Window> {
    let from = q.date("startDate")?;
    let mut to = q.date("endDate")?;
    if q.get("endDate").is_some_and(|v| !v.contains('T')) {
        to = to.map(end_of_day);
    }
    Ok(Window { from, to })
}

/// The last instant of a UTC day that starts at `midnight`.
fn end_of_day(midnight: DateTime<Utc>) -> DateTime<Utc> {
    midnight + Duration::days(1) - Duration::microseconds(1)
}

/// `GET /api/customer/licenses/{licenseId}/usage?startDate&endDate`.
async fn usage(
    State(state): State<AppState>,
    who: ClCustomer,
    q: ClQuery,
    id: Result<Path<String>, PathRejection>,
) -> ClResult<Response> {
    let w = window(&q)?;
    let (l, _) = owned(&state, &who, id).await?;
    let client = state.client().await?;
    let u = read::usage(&**client, l.id, w, REQUESTS_SHOWN).await?;
    let daily: Map<String, Value> = u
        .daily
        .iter()
        .map(|(day, c)| (day.format("%Y-%m-%d").to_string(), counts(c)))
        .collect();
    let requests: Vec<Value> = u
        .requests
        .iter()
        .map(|r| {
            json!({
                "_id": r.id.to_string(),
                "ipAddress": r.ip,
                "hwid": r.hwid,
                "status": r.status.as_str(),
                "createdAt": timestamp(r.at),
            })
        })
        .collect();
    Ok(ok(json!({"success": true, "usage": {
        "total": u.counts.total(),
        "byStatus": counts(&u.counts),
        "dailyStats": daily,
        "requests": requests,
    }})))
}

/// `GET /api/customer/licenses/{licenseId}/credits`.
async fn credits_of(
    State(state): State<AppState>,
    who: ClCustomer,
    id: Result<Path<String>, PathRejection>,
) -> ClResult<Response> {
    let (l, _) = owned(&state, &who, id).await?;
    if l.license_type != LicenseType::Consumption {
        return Err(ClError::bad_request(
            "License is not a consumption-based license",
        ));
    }
    let c = credits(&l);
    Ok(ok(json!({"success": true, "credits": {
        "total": c.total, "used": c.used, "remaining": c.remaining,
    }})))
}

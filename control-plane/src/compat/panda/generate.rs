//! `GET /api/generate-key/get`, `POST /api/generate-key/post`: a batch of keys for the caller's
//! service, fixed-date or days keys (§1.4: the `expire` date holds until the first validation,
//! which restarts the expiry at now + `daysKey` days).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward_shared::store::licenses::{self, GenerateSpec};
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;
use serde::Serialize;
use uuid::Uuid;

use super::render::GeneratedItem;
use super::{Call, PandaError, PandaResult};
use crate::webhooks::emit;

/// Keys go into URLs unencoded: letters and digits only (24 of `A-Z0-9`, ≈ 124 bits).
const MASK: &str = "XXXXXXXXXXXXXXXXXXXXXXXX";
/// Panda binds one HWID per key.
const HWID_LIMIT: i32 = 1;
const MAX_COUNT: i64 = 100;
pub const MAX_DAYS: i64 = 999_999;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Generated {
    message: &'static str,
    generated_keys: Vec<GeneratedItem>,
}

pub async fn generate(call: Call) -> PandaResult<Response> {
    let Call {
        caller,
        params: p,
        mut client,
    } = call;
    let expire = p
        .date("expire")?
        .ok_or_else(|| PandaError::bad_request("expire is required (a date as YYYY-MM-DD)"))?;
    let count = p
        .int("count", 1..=MAX_COUNT)?
        .ok_or_else(|| PandaError::bad_request("count must be between 1 and 100"))?;
    let premium = p
        .bool("isPremium")?
        .ok_or_else(|| PandaError::bad_request("isPremium is required (true or false)"))?;
    let note = p.text("note")?;
    let by_days = p.bool("expiresByDaysKey")?.unwrap_or(false);
    // Read (and checked) even when unused, so a malformed one is reported.
    let days = p.int("daysKey", 1..=MAX_DAYS)?;
    let days = match (by_days, days) {
        (true, None) => {
            return Err(PandaError::bad_request(
                "daysKey is required when expiresByDaysKey is true (1 to 999999)",
            ))
        }
        (true, d) => d,
        (false, _) => None,
    };
    let mut spec = GenerateSpec {
        count: Some(count),
        mask: Some(MASK.into()),
        note,
        premium,
        hwid_limit: Some(HWID_LIMIT),
        ..GenerateSpec::default()
    };
    match days {
        Some(d) => {
            spec.expiry_on_first_use = true;
            spec.duration_days = Some(d);
            spec.expires_at_until_first_use = Some(expire);
        }
        None => spec.expires_at = Some(expire),
    }
    let mut w = WriteTx::begin(&mut client, caller.actor()).await?;
    let keys = licenses::generate(&mut w, caller.app_id, &spec)
        .await
        .map_err(in_panda_terms)?;
    let ids: Vec<Uuid> = keys.iter().map(|l| l.id).collect();
    emit::licenses(&mut w, "license.created", &ids).await?;
    w.commit().await?;
    let body = Generated {
        message: "Keys generated successfully ✅",
        generated_keys: keys.iter().map(|l| GeneratedItem::new(l, days)).collect(),
    };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// The core's refusals named by Panda's parameters (`expire`, `daysKey`).
fn in_panda_terms(e: StoreError) -> PandaError {
    match e {
        StoreError::Invalid(m) if m.contains("expires_at") => {
            PandaError::bad_request("expire must be a date in the future")
        }
        StoreError::Invalid(m) if m.contains("duration") => {
            PandaError::bad_request(format!("daysKey is refused: {m}"))
        }
        other => other.into(),
    }
}

//! Keyless entries of the caller's service (HWIDs that validate without a key): add, fetch by
//! HWID, delete.

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, Utc};
use keyward_shared::store::{apps, keyless};
use keyward_shared::write::WriteTx;
use serde::Serialize;

use super::render::Keyless;
use super::{message, ok, Call, PandaResult};

const HWID: &str = "the keyless entry's HWID";

/// `POST /api/keyless/add {hwid, expire?, isPremium?}` — made or replaced; without `expire` it
/// lasts the service's keyless lifetime from now.
pub async fn add(call: Call) -> PandaResult<Response> {
    let Call {
        caller,
        params,
        mut client,
    } = call;
    let hwid = params.required_text("hwid", HWID)?;
    let expire = params.date("expire")?;
    let premium = params.bool("isPremium")?.unwrap_or(false);
    let expires_at = match expire {
        Some(at) => at,
        None => {
            let app = apps::get(&**client, caller.account_id, caller.app_id).await?;
            Utc::now() + Duration::seconds(app.key_system.keyless_ttl_secs.into())
        }
    };
    let mut w = WriteTx::begin(&mut client, caller.actor()).await?;
    keyless::put(&mut w, caller.app_id, &hwid, expires_at, premium).await?;
    w.commit().await?;
    Ok(message(
        StatusCode::OK,
        "Keyless entry added successfully ✅",
    ))
}

#[derive(Serialize)]
struct Fetched {
    keyless: Keyless,
}

/// `GET /api/keyless/fetch?fetch=<hwid>`.
pub async fn fetch(call: Call) -> PandaResult<Response> {
    let hwid = call.params.required_text("fetch", HWID)?;
    let c = &call.caller;
    let entry = keyless::get(&**call.client, c.account_id, c.app_id, &hwid).await?;
    Ok(ok(Fetched {
        keyless: Keyless::new(&entry),
    }))
}

/// `POST /api/keyless/delete {hwid}`.
pub async fn delete(call: Call) -> PandaResult<Response> {
    let Call {
        caller,
        params,
        mut client,
    } = call;
    let hwid = params.required_text("hwid", HWID)?;
    let mut w = WriteTx::begin(&mut client, caller.actor()).await?;
    keyless::delete(&mut w, caller.app_id, &hwid).await?;
    w.commit().await?;
    Ok(message(
        StatusCode::OK,
        "Keyless entry deleted successfully ✅",
    ))
}

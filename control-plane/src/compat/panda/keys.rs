//! One key of the caller's service, named by its value: fetch (redeemed or not), delete, expand
//! its expiration, reset its HWID. A key is redeemed once its first validation happened
//! (`used_at`): `key/*` routes take any key (`key/fetch` only redeemed ones), `generated-key/*`
//! only unredeemed ones.

use axum::http::StatusCode;
use axum::response::Response;
use keyward_shared::model::License;
use keyward_shared::store::key_system::{self, HwidReset, KeyRef};
use keyward_shared::store::licenses::{self, Extension};
use keyward_shared::write::WriteTx;
use serde::Serialize;
use tokio_postgres::GenericClient;

use super::generate::MAX_DAYS;
use super::render::{self, GeneratedKey, RedeemedKey};
use super::{message, ok, Call, Caller, PandaError, PandaResult};
use crate::webhooks::emit;

/// Which keys a route addresses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Any,
    Unredeemed,
}

/// The caller's key with this exact value.
pub async fn key_of<C: GenericClient + Sync>(
    c: &C,
    caller: &Caller,
    value: &str,
    which: Which,
) -> PandaResult<License> {
    let key = key_system::find(
        c,
        caller.account_id,
        Some(caller.app_id),
        KeyRef::Value(value),
    )
    .await?;
    if which == Which::Unredeemed && key.used_at.is_some() {
        return Err(PandaError::new(
            StatusCode::NOT_FOUND,
            "Key not found among generated keys: it has been redeemed (use the /api/key/ routes)",
        ));
    }
    Ok(key)
}

const KEY_VALUE: &str = "the key's value";

#[derive(Serialize)]
struct Fetched {
    key: RedeemedKey,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FetchedGenerated {
    generated_key: GeneratedKey,
}

/// `GET /api/key/fetch?fetch=` — the most recent redeemed key whose value, note or HWID it is.
pub async fn fetch(call: Call) -> PandaResult<Response> {
    let l = search(&call, true).await?;
    Ok(ok(Fetched {
        key: RedeemedKey::new(&l),
    }))
}

/// `GET /api/generated-key/fetch?fetch=` — the same among unredeemed keys.
pub async fn fetch_generated(call: Call) -> PandaResult<Response> {
    let l = search(&call, false).await?;
    Ok(ok(FetchedGenerated {
        generated_key: GeneratedKey::new(&l),
    }))
}

async fn search(call: &Call, redeemed: bool) -> PandaResult<License> {
    let term = call
        .params
        .required_text("fetch", "a key's value, note or HWID")?;
    let c = &call.caller;
    Ok(key_system::search_one(&**call.client, c.account_id, c.app_id, &term, redeemed).await?)
}

/// `POST /api/key/delete` — any key of the service.
pub async fn delete(call: Call) -> PandaResult<Response> {
    delete_key(call, Which::Any, "Key deleted successfully ✅").await
}

/// `POST /api/generated-key/delete` — an unredeemed key.
pub async fn delete_generated(call: Call) -> PandaResult<Response> {
    delete_key(
        call,
        Which::Unredeemed,
        "Generated key deleted successfully ✅",
    )
    .await
}

async fn delete_key(call: Call, which: Which, done: &str) -> PandaResult<Response> {
    let Call {
        caller,
        params,
        mut client,
    } = call;
    let value = params.required_text("keyValue", KEY_VALUE)?;
    let key = key_of(&**client, &caller, &value, which).await?;
    let mut w = WriteTx::begin(&mut client, caller.actor()).await?;
    // Rendered before it goes, in the same transaction.
    emit::license(&mut w, "license.deleted", key.id).await?;
    licenses::delete(&mut w, key.id).await?;
    w.commit().await?;
    Ok(message(StatusCode::OK, done))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Expanded {
    success: bool,
    message: &'static str,
    new_expiration_date: String,
}

/// `POST /api/key/expand-expiration` — `days` more (from now for an expired key: the core's
/// rule); the answer shows the new expiry.
pub async fn expand_expiration(call: Call) -> PandaResult<Response> {
    let Call {
        caller,
        params,
        mut client,
    } = call;
    let value = params.required_text("keyValue", KEY_VALUE)?;
    let days = params
        .int("days", 1..=MAX_DAYS)?
        .ok_or_else(|| PandaError::bad_request("days is required (1 to 999999)"))?;
    let key = key_of(&**client, &caller, &value, Which::Any).await?;
    let mut w = WriteTx::begin(&mut client, caller.actor()).await?;
    let ext = Extension {
        days: Some(days),
        seconds: None,
    };
    licenses::extend(&mut w, key.id, &ext)
        .await
        .map_err(|e| match e {
            keyward_shared::StoreError::Invalid(m) => {
                PandaError::bad_request(format!("days is refused: {m}"))
            }
            other => other.into(),
        })?;
    emit::license(&mut w, "license.renewed", key.id).await?;
    let now = licenses::get(w.tx(), caller.account_id, key.id).await?;
    w.commit().await?;
    Ok(ok(Expanded {
        success: true,
        message: "Key expiration extended successfully.",
        new_expiration_date: render::expires_at(&now),
    }))
}

/// `POST /api/reset-hwid` — clears the key's HWID (the next validation binds again), within the
/// service's cooldown unless `force=true`.
pub async fn reset_hwid(call: Call) -> PandaResult<Response> {
    let Call {
        caller,
        params,
        mut client,
    } = call;
    let value = params.required_text("keyValue", KEY_VALUE)?;
    let force = params.bool("force")?.unwrap_or(false);
    let key = key_of(&**client, &caller, &value, Which::Any).await?;
    let mut w = WriteTx::begin(&mut client, caller.actor()).await?;
    match key_system::reset_hwids(&mut w, key.id, !force).await? {
        HwidReset::Done => {
            emit::license(&mut w, "license.updated", key.id).await?;
            w.commit().await?;
            Ok(message(StatusCode::OK, "HWID reset successfully ✅"))
        }
        HwidReset::TooSoon { retry_after_secs } => Err(PandaError::too_many(
            format!(
                "HWID was reset recently: the next reset is allowed in {retry_after_secs} seconds \
                 (or send force=true)"
            ),
            u64::try_from(retry_after_secs).unwrap_or(1),
        )),
    }
}

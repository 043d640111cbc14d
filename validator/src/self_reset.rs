//! Self-service HWID resets (Luarmor-style): an end user who holds a key clears its bound HWIDs
//! so that the next validation binds the machine it comes from. Allowed only by apps that turn
//! `self_hwid_reset` on, and never more often than the app's `hwid_reset_cooldown_secs` (the
//! check runs under the license row's lock in `store::key_system::reset_hwids`). Served natively
//! (`POST /v1/reset-hwid`) and by Panda's legacy `/serviceapi/edit/hwid/`.

use keyward_shared::store::key_system::{self, HwidReset};
use keyward_shared::write::{Actor, WriteTx};

use crate::cache::{AppView, CacheError};
use crate::error::ApiError;
use crate::health::Freshness;
use crate::State;

/// What a self-service reset did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfReset {
    Done,
    /// The app does not let end users reset their HWIDs.
    Disabled,
    /// No such key in the app.
    UnknownKey,
    /// The app's cooldown since the key's last reset has not passed.
    TooSoon {
        retry_after_secs: i64,
    },
}

/// Resets the HWIDs of `key` in `app` for its holder, then forgets the license here (the other
/// validators hear of it through the reset's invalidation).
pub async fn reset(state: &State, app: &AppView, key: &str) -> Result<SelfReset, ApiError> {
    if !app.app.key_system.self_hwid_reset {
        return Ok(SelfReset::Disabled);
    }
    let Some(license) = state.caches.license(app.app.id, key).await? else {
        return Ok(SelfReset::UnknownKey);
    };
    if state.health.freshness() != Freshness::Live {
        return Err(CacheError::Unavailable.into());
    }
    let store_err = |e: keyward_shared::StoreError| ApiError::from(CacheError::from(&e));
    let mut client = keyward_shared::db::checkout(&state.pool)
        .await
        .map_err(store_err)?;
    let actor = Actor {
        origin: Default::default(),
        account_id: app.app.account_id,
        label: "end-user".into(),
    };
    let mut wtx = WriteTx::begin(&mut client, actor)
        .await
        .map_err(store_err)?;
    match key_system::reset_hwids(&mut wtx, license.id, true).await {
        Ok(HwidReset::Done) => {}
        // Dropping the transaction rolls it back: nothing was written.
        Ok(HwidReset::TooSoon { retry_after_secs }) => {
            return Ok(SelfReset::TooSoon { retry_after_secs })
        }
        Err(keyward_shared::StoreError::NotFound(_)) => return Ok(SelfReset::UnknownKey),
        Err(e) => return Err(store_err(e)),
    }
    wtx.commit().await.map_err(store_err)?;
    state.caches.forget_license(app.app.id, key);
    Ok(SelfReset::Done)
}

/// When the next reset is allowed, for the refusal's message.
pub fn next_allowed(retry_after_secs: i64) -> String {
    let at = chrono::Utc::now() + chrono::Duration::seconds(retry_after_secs);
    format!(
        "HWIDs of this key were reset recently; the next reset is allowed in {retry_after_secs} s (at {})",
        at.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeRequest {
    app: String,
    key: String,
}

/// `POST /v1/reset-hwid {"app": "<app id>", "key": "…"}`: 200 `{success, message}`, or the
/// native error shape (403 disabled, 404 unknown app or key, 429 with `Retry-After`).
pub async fn native(state: &State, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let req: NativeRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    let id = uuid::Uuid::parse_str(req.app.trim()).map_err(|_| {
        ApiError::bad_request("'app' must be the app's id (a UUID, as the control-plane shows it)")
    })?;
    let key = req.key.trim();
    if key.is_empty() || key.len() > keyward_shared::keygen::MAX_KEY_LEN || key.contains('\0') {
        return Err(ApiError::bad_request(format!(
            "'key' must be 1 to {} characters, without NUL",
            keyward_shared::keygen::MAX_KEY_LEN
        )));
    }
    let Some(app) = state.caches.app(id).await? else {
        return Err(ApiError::not_found(
            "APP_NOT_FOUND",
            format!("no app with id {id}"),
        ));
    };
    let refusal = |status, code, message: String| ApiError {
        status,
        code,
        message,
        retry_after: None,
    };
    match reset(state, &app, key).await? {
        SelfReset::Done => Ok(br#"{"success":true,"message":"HWIDs reset: the next validation binds the machine it comes from"}"#.to_vec()),
        SelfReset::Disabled => Err(refusal(
            hyper::StatusCode::FORBIDDEN,
            "SELF_RESET_DISABLED",
            "this app does not let end users reset their HWIDs".into(),
        )),
        SelfReset::UnknownKey => Err(ApiError::not_found(
            "KEY_NOT_FOUND",
            "no such key in this app",
        )),
        SelfReset::TooSoon { retry_after_secs } => Err(ApiError {
            retry_after: Some(std::time::Duration::from_secs(
                retry_after_secs.max(1).unsigned_abs(),
            )),
            ..refusal(
                hyper::StatusCode::TOO_MANY_REQUESTS,
                "RESET_TOO_SOON",
                next_allowed(retry_after_secs),
            )
        }),
    }
}

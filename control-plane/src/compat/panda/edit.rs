//! `POST /api/key/edit` (any key) and `POST /api/generated-key/edit` (unredeemed keys):
//! `{keyValue, expiresByDaysKey?, daysKey?, note?, isPremium?, noHwidValidation?}` →
//! `key_system::update_traits`.

use axum::http::StatusCode;
use axum::response::Response;
use chrono::Duration;
use keyward_shared::model::License;
use keyward_shared::store::key_system::{self, Expiry, TraitsPatch};
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;

use super::generate::MAX_DAYS;
use super::keys::{key_of, Which};
use super::{message, Call, PandaError, PandaResult, Params};
use crate::webhooks::emit;

pub async fn edit(call: Call) -> PandaResult<Response> {
    edit_key(call, Which::Any, "Key updated successfully ✅").await
}

pub async fn edit_generated(call: Call) -> PandaResult<Response> {
    edit_key(
        call,
        Which::Unredeemed,
        "Generated key updated successfully ✅",
    )
    .await
}

/// What the request asks to change; the expiry is resolved against the key once it is read.
struct Edit {
    patch: TraitsPatch,
    /// `Some(Some(days))`: make it a days key; `Some(None)`: make its current date final.
    days: Option<Option<i64>>,
}

fn read(p: &Params) -> PandaResult<Edit> {
    let note = p.text("note")?;
    let premium = p.bool("isPremium")?;
    let no_hwid = p.bool("noHwidValidation")?;
    let by_days = p.bool("expiresByDaysKey")?;
    let days = p.int("daysKey", 1..=MAX_DAYS)?;
    let days = match (by_days, days) {
        (Some(true), None) => {
            return Err(PandaError::bad_request(
                "daysKey is required when expiresByDaysKey is true (1 to 999999)",
            ))
        }
        (Some(true), d) => Some(d),
        (Some(false), None) => Some(None),
        (Some(false), Some(_)) | (None, Some(_)) => {
            return Err(PandaError::bad_request(
                "daysKey needs expiresByDaysKey=true",
            ))
        }
        (None, None) => None,
    };
    let patch = TraitsPatch {
        // An empty note clears it (`text` reads "" as absent, so look again).
        note: match note {
            Some(n) => Some(Some(n)),
            None if p.is_empty_text("note") => Some(None),
            None => None,
        },
        premium,
        hwid_check: no_hwid.map(|off| !off),
        ..TraitsPatch::default()
    };
    if patch.note.is_none() && premium.is_none() && no_hwid.is_none() && days.is_none() {
        return Err(PandaError::bad_request(
            "nothing to edit: send note, isPremium, noHwidValidation or expiresByDaysKey with daysKey",
        ));
    }
    Ok(Edit { patch, days })
}

/// The new expiry of `key`: a days key counts from its first use (from then on, for a redeemed
/// key); otherwise its current date becomes final.
fn expiry(key: &License, days: Option<i64>) -> PandaResult<Expiry> {
    Ok(match days {
        Some(d) => {
            let secs = d * 86_400;
            match key.used_at {
                Some(used) => Expiry {
                    expires_at: used.checked_add_signed(Duration::seconds(secs)),
                    duration_secs: Some(secs),
                    restart_on_first_use: false,
                },
                None => Expiry {
                    expires_at: key.expires_at,
                    duration_secs: Some(secs),
                    restart_on_first_use: key.expires_at.is_some(),
                },
            }
        }
        None => {
            let Some(at) = key.expires_at else {
                return Err(PandaError::bad_request(
                    "the key has no expiry date to keep: send expiresByDaysKey=true with daysKey",
                ));
            };
            Expiry {
                expires_at: Some(at),
                duration_secs: None,
                restart_on_first_use: false,
            }
        }
    })
}

async fn edit_key(call: Call, which: Which, done: &str) -> PandaResult<Response> {
    let Call {
        caller,
        params,
        mut client,
    } = call;
    let value = params.required_text("keyValue", "the key's value")?;
    let Edit { mut patch, days } = read(&params)?;
    let key = key_of(&**client, &caller, &value, which).await?;
    if let Some(days) = days {
        patch.expiry = Some(expiry(&key, days)?);
    }
    let mut w = WriteTx::begin(&mut client, caller.actor()).await?;
    key_system::update_traits(&mut w, key.id, &patch)
        .await
        .map_err(|e| match e {
            StoreError::Invalid(m) if m.contains("validity") => {
                PandaError::bad_request(format!("daysKey is refused: {m}"))
            }
            other => other.into(),
        })?;
    emit::license(&mut w, "license.updated", key.id).await?;
    w.commit().await?;
    Ok(message(StatusCode::OK, done))
}

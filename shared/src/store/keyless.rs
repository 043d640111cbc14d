//! Keyless entries: HWIDs an app lets validate without a key until an expiry. A keyless
//! validation on an app in keyless mode makes or refreshes its HWID's entry; an admin may add
//! entries (also for apps not in keyless mode: a HWID allow-list) and delete them.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::write::WriteTx;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeylessEntry {
    pub id: Uuid,
    pub app_id: Uuid,
    pub hwid: String,
    pub premium: bool,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, app_id, hwid, premium, expires_at, created_at";

fn from_row(r: &Row) -> KeylessEntry {
    KeylessEntry {
        id: r.get("id"),
        app_id: r.get("app_id"),
        hwid: r.get("hwid"),
        premium: r.get("premium"),
        expires_at: r.get("expires_at"),
        created_at: r.get("created_at"),
    }
}

fn check_hwid(hwid: &str) -> StoreResult<()> {
    if hwid.is_empty() || hwid.len() > 256 {
        return Err(StoreError::Invalid(
            "hwid must be 1 to 256 characters".into(),
        ));
    }
    Ok(())
}

/// Adds (or replaces) an admin's entry for one of the caller's apps.
pub async fn put(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    hwid: &str,
    expires_at: DateTime<Utc>,
    premium: bool,
) -> StoreResult<KeylessEntry> {
    check_hwid(hwid)?;
    super::apps::owned(wtx, app_id).await?;
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO keyless_entries (account_id, app_id, hwid, premium, expires_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (app_id, hwid) DO UPDATE SET premium = EXCLUDED.premium, expires_at = EXCLUDED.expires_at
                 RETURNING {COLUMNS}"
            ),
            &[&wtx.account_id(), &app_id, &hwid, &premium, &expires_at],
        )
        .await?;
    wtx.invalidate(Invalidation::Keyless {
        app: app_id,
        hwid: hwid.to_string(),
    });
    wtx.audit(
        "keyless.put",
        "app",
        Some(app_id.to_string()),
        json!({"hwid": hwid, "premium": premium, "expires_at": expires_at}),
    );
    Ok(from_row(&row))
}

pub async fn delete(wtx: &mut WriteTx<'_>, app_id: Uuid, hwid: &str) -> StoreResult<()> {
    wtx.tx()
        .query_opt(
            "DELETE FROM keyless_entries WHERE app_id = $1 AND account_id = $2 AND hwid = $3 RETURNING id",
            &[&app_id, &wtx.account_id(), &hwid],
        )
        .await?
        .ok_or(StoreError::NotFound("keyless entry"))?;
    wtx.invalidate(Invalidation::Keyless {
        app: app_id,
        hwid: hwid.to_string(),
    });
    wtx.audit(
        "keyless.delete",
        "app",
        Some(app_id.to_string()),
        json!({"hwid": hwid}),
    );
    Ok(())
}

/// One of the caller's entries by HWID.
pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    hwid: &str,
) -> StoreResult<KeylessEntry> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM keyless_entries WHERE app_id = $1 AND account_id = $2 AND hwid = $3"),
        &[&app_id, &account_id, &hwid],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("keyless entry"))
}

pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
) -> StoreResult<Vec<KeylessEntry>> {
    Ok(c
        .query(
            &format!("SELECT {COLUMNS} FROM keyless_entries WHERE app_id = $1 AND account_id = $2 ORDER BY created_at DESC LIMIT 1000"),
            &[&app_id, &account_id],
        )
        .await?
        .iter()
        .map(from_row)
        .collect())
}

/// The validator's unscoped read of an app's entry for a HWID.
pub async fn find<C: GenericClient + Sync>(
    c: &C,
    app_id: Uuid,
    hwid: &str,
) -> StoreResult<Option<KeylessEntry>> {
    Ok(c.query_opt(
        &format!("SELECT {COLUMNS} FROM keyless_entries WHERE app_id = $1 AND hwid = $2"),
        &[&app_id, &hwid],
    )
    .await?
    .map(|r| from_row(&r)))
}

/// A keyless validation's entry: made, or its expiry pushed to now + the app's TTL (never
/// shortened, and an admin's premium flag kept).
pub async fn refresh(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    hwid: &str,
    ttl_secs: i32,
) -> StoreResult<KeylessEntry> {
    check_hwid(hwid)?;
    let expires_at = Utc::now() + Duration::seconds(ttl_secs.into());
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO keyless_entries (account_id, app_id, hwid, expires_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (app_id, hwid) DO UPDATE SET expires_at = greatest(keyless_entries.expires_at, EXCLUDED.expires_at)
                 RETURNING {COLUMNS}"
            ),
            &[&wtx.account_id(), &app_id, &hwid, &expires_at],
        )
        .await?;
    wtx.invalidate(Invalidation::Keyless {
        app: app_id,
        hwid: hwid.to_string(),
    });
    Ok(from_row(&row))
}

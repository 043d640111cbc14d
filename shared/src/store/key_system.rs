//! Licenses as the Roblox key systems address them (Panda Auth, Junkie): by integer id or key
//! value, filtered by Discord user, HWID, provider and state with a total, their key-system
//! traits edited, their HWIDs replaced or reset under the app's cooldown. The rules stay the
//! core's: these are the same rows the native API and the validators read.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::licenses::{from_row, mutate_one, SELECT};
use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::model::License;
use crate::write::WriteTx;

/// How a key-system API names a key: a number is its integer id, anything else its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRef<'a> {
    Num(i64),
    Value(&'a str),
}

impl<'a> KeyRef<'a> {
    pub fn parse(s: &'a str) -> KeyRef<'a> {
        match s.parse::<i64>() {
            Ok(n) if n > 0 && !s.starts_with('+') => KeyRef::Num(n),
            _ => KeyRef::Value(s),
        }
    }
}

/// One of the account's keys (optionally within one app) by integer id or value. A value names
/// the most recent key with it when several apps share it.
pub async fn find<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Option<Uuid>,
    key: KeyRef<'_>,
) -> StoreResult<License> {
    let (num, value) = match key {
        KeyRef::Num(n) => (Some(n), None),
        KeyRef::Value(v) => (None, Some(v)),
    };
    c.query_opt(
        &format!(
            "{SELECT} WHERE l.account_id = $1 AND ($2::uuid IS NULL OR l.app_id = $2)
               AND (l.num_id = $3 OR l.key = $4)
             ORDER BY l.created_at DESC, l.id DESC LIMIT 1"
        ),
        &[&account_id, &app_id, &num, &value],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("key"))
}

/// A key's state as the key systems filter it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Not invalidated, not expired, not a spent one-time key.
    Active,
    Expired,
    /// Banned (Junkie's `is_invalidated`).
    Invalidated,
    Used,
    Unused,
}

impl KeyStatus {
    pub const NAMES: [&'static str; 5] = ["active", "expired", "invalidated", "used", "unused"];

    pub fn parse(s: &str) -> Option<KeyStatus> {
        Some(match s {
            "active" => KeyStatus::Active,
            "expired" => KeyStatus::Expired,
            "invalidated" => KeyStatus::Invalidated,
            "used" => KeyStatus::Used,
            "unused" => KeyStatus::Unused,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// Filters of a key list; every one optional, all of them must hold.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub app_id: Option<Uuid>,
    pub provider_id: Option<i64>,
    pub discord_id: Option<String>,
    /// Substring of the key value.
    pub key: Option<String>,
    /// Substring of a bound HWID.
    pub hwid: Option<String>,
    pub status: Option<KeyStatus>,
    pub expires_before: Option<DateTime<Utc>>,
    pub expires_after: Option<DateTime<Utc>>,
    /// From 1.
    pub page: i64,
    /// 1 to 100.
    pub limit: i64,
}

/// A page of the account's keys, newest first, and how many match in all.
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    f: &KeyFilter,
) -> StoreResult<(Vec<License>, i64)> {
    const FILTER: &str = "l.account_id = $1
        AND ($2::uuid IS NULL OR l.app_id = $2)
        AND ($3::bigint IS NULL OR l.provider_id = $3)
        AND ($4::text IS NULL OR l.discord_id = $4)
        AND ($5::text IS NULL OR l.key ILIKE $5)
        AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM machines h WHERE h.license_id = l.id AND h.fingerprint ILIKE $6))
        AND ($7::text IS NULL
             OR ($7 = 'invalidated' AND l.status = 'banned')
             OR ($7 = 'expired' AND l.expires_at <= now())
             OR ($7 = 'used' AND l.used_at IS NOT NULL)
             OR ($7 = 'unused' AND l.used_at IS NULL)
             OR ($7 = 'active' AND l.status = 'active' AND (l.expires_at IS NULL OR l.expires_at > now())
                 AND NOT (l.used_at IS NOT NULL AND coalesce(l.one_time_use, false))))
        AND ($8::timestamptz IS NULL OR l.expires_at < $8)
        AND ($9::timestamptz IS NULL OR l.expires_at > $9)";
    let key = f.key.as_deref().map(super::contains_pattern);
    let hwid = f.hwid.as_deref().map(super::contains_pattern);
    let status = f.status.map(KeyStatus::as_str);
    let limit = f.limit.clamp(1, 100);
    let offset = (f.page.max(1) - 1).saturating_mul(limit);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
        &account_id,
        &f.app_id,
        &f.provider_id,
        &f.discord_id,
        &key,
        &hwid,
        &status,
        &f.expires_before,
        &f.expires_after,
    ];
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM licenses l WHERE {FILTER}"),
            &params,
        )
        .await?
        .get(0);
    let mut with_page: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.to_vec();
    with_page.push(&limit);
    with_page.push(&offset);
    let items = c
        .query(
            &format!(
                "{SELECT} WHERE {FILTER} ORDER BY l.created_at DESC, l.num_id DESC LIMIT $10 OFFSET $11"
            ),
            &with_page,
        )
        .await?
        .iter()
        .map(from_row)
        .collect();
    Ok((items, total))
}

/// The most recent key of an app whose value, note or a bound HWID equals `term`, among the
/// redeemed (first used) or the unredeemed ones (Panda's `key/fetch` and `generated-key/fetch`).
pub async fn search_one<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    term: &str,
    redeemed: bool,
) -> StoreResult<License> {
    c.query_opt(
        &format!(
            "{SELECT} WHERE l.account_id = $1 AND l.app_id = $2 AND (l.used_at IS NOT NULL) = $4
               AND (l.key = $3 OR l.note = $3
                    OR EXISTS (SELECT 1 FROM machines h WHERE h.license_id = l.id AND h.fingerprint = $3))
             ORDER BY l.created_at DESC, l.id DESC LIMIT 1"
        ),
        &[&account_id, &app_id, &term, &redeemed],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("key"))
}

/// When a key expires, written as a whole: a fixed time, a validity counted from the first use,
/// or both (a days key: `expires_at` holds until the first use restarts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expiry {
    pub expires_at: Option<DateTime<Utc>>,
    pub duration_secs: Option<i64>,
    pub restart_on_first_use: bool,
}

impl Expiry {
    /// A validity (`None`: forever) given to an existing key: counted from its creation, or
    /// from its first use (not started until then; from the recorded first use once it has).
    pub fn validity(key: &License, secs: Option<i64>, from_first_use: bool) -> StoreResult<Expiry> {
        let Some(secs) = secs else {
            return Ok(Expiry::default());
        };
        if !(60..=MAX_EXPIRY_SECS).contains(&secs) {
            return Err(StoreError::Invalid(
                "validity must be between 1 minute and 999999 days".into(),
            ));
        }
        let after = |t: DateTime<Utc>| t + chrono::Duration::seconds(secs);
        Ok(if from_first_use {
            Expiry {
                expires_at: key.used_at.map(after),
                duration_secs: Some(secs),
                restart_on_first_use: false,
            }
        } else {
            Expiry {
                expires_at: Some(after(key.created_at)),
                ..Expiry::default()
            }
        })
    }
}

/// Whether a key's validity counts from its first use: it carries a duration (a fixed-time key
/// carries only `expires_at`).
pub fn expires_on_first_use(key: &License) -> bool {
    key.duration_secs.is_some()
}

/// The validity a key was given, in seconds (`None`: forever): its duration when it counts from
/// the first use, else the span from its creation to its expiry (to the nearest minute, as the
/// expiry was computed a moment before the row's creation time).
pub fn validity_secs(key: &License) -> Option<i64> {
    if let Some(d) = key.duration_secs {
        return Some(d);
    }
    let span = (key.expires_at? - key.created_at).num_seconds();
    let minutes = (span + 30).div_euclid(60);
    (minutes > 0).then_some(minutes * 60)
}

/// Key-system edits of one key; absent fields keep their value.
#[derive(Debug, Clone, Default)]
pub struct TraitsPatch {
    /// The key's name or note; `Some(None)` clears it.
    pub note: Option<Option<String>>,
    pub premium: Option<bool>,
    pub hwid_check: Option<bool>,
    pub one_time_use: Option<bool>,
    pub discord_id: Option<Option<String>>,
    pub provider_id: Option<Option<i64>>,
    /// Maximum HWIDs; `Some(0)` unlimited, `Some(None)` back to the policy's.
    pub hwid_limit: Option<Option<i32>>,
    /// Banned (refused everywhere) or active again.
    pub invalidated: Option<bool>,
    pub expiry: Option<Expiry>,
}

const MAX_EXPIRY_SECS: i64 = 999_999 * 86_400;

/// Checks a Discord user id (a snowflake: 17 to 19 digits).
pub fn check_discord_id(id: &str) -> StoreResult<()> {
    if (17..=19).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "discord_id must be a Discord user id of 17 to 19 digits".into(),
        ))
    }
}

pub async fn update_traits(wtx: &mut WriteTx<'_>, id: Uuid, p: &TraitsPatch) -> StoreResult<()> {
    let invalid = |m: &str| Err(StoreError::Invalid(m.into()));
    if let Some(Some(note)) = &p.note {
        if note.chars().count() > 1000 {
            return invalid("the key's name or note must be at most 1000 characters");
        }
    }
    if let Some(Some(d)) = &p.discord_id {
        check_discord_id(d)?;
    }
    if let Some(Some(l)) = p.hwid_limit {
        if !(0..=10_000).contains(&l) {
            return invalid("hwid_limit must be between 0 and 10000");
        }
    }
    if let Some(e) = p.expiry {
        if e.duration_secs
            .is_some_and(|d| !(60..=MAX_EXPIRY_SECS).contains(&d))
        {
            return invalid("validity must be between 1 minute and 999999 days");
        }
        if e.restart_on_first_use && e.duration_secs.is_none() {
            return invalid("an expiry restarted on first use needs a validity");
        }
    }
    if let Some(Some(provider)) = p.provider_id {
        super::key_providers::get(wtx.tx(), wtx.account_id(), provider).await?;
    }
    let expiry = p.expiry.unwrap_or_default();
    mutate_one(
        wtx,
        id,
        "UPDATE licenses SET
                note = CASE WHEN $3 THEN $4 ELSE note END,
                premium = coalesce($5, premium),
                hwid_check = coalesce($6, hwid_check),
                one_time_use = coalesce($7, one_time_use),
                discord_id = CASE WHEN $8 THEN $9 ELSE discord_id END,
                provider_id = CASE WHEN $10 THEN $11 ELSE provider_id END,
                hwid_limit = CASE WHEN $12 THEN $13 ELSE hwid_limit END,
                -- A revocation is permanent: no key-system edit brings the key back.
                status = CASE WHEN $14::boolean IS NULL OR status = 'revoked' THEN status
                              WHEN $14 THEN 'banned'::license_status ELSE 'active'::license_status END,
                ban_reason = CASE WHEN $14::boolean IS NULL OR status = 'revoked' THEN ban_reason
                                  WHEN $14 THEN 'invalidated' ELSE NULL END,
                expires_at = CASE WHEN $15 THEN $16 ELSE expires_at END,
                duration_secs = CASE WHEN $15 THEN $17 ELSE duration_secs END,
                restart_expiry_on_first_use = CASE WHEN $15 THEN $18 ELSE restart_expiry_on_first_use END
          WHERE id = $1 AND account_id = $2 RETURNING app_id, key",
        &[
            &p.note.is_some(),
            &p.note.clone().flatten(),
            &p.premium,
            &p.hwid_check,
            &p.one_time_use,
            &p.discord_id.is_some(),
            &p.discord_id.clone().flatten(),
            &p.provider_id.is_some(),
            &p.provider_id.flatten(),
            &p.hwid_limit.is_some(),
            &p.hwid_limit.flatten(),
            &p.invalidated,
            &p.expiry.is_some(),
            &expiry.expires_at,
            &expiry.duration_secs,
            &expiry.restart_on_first_use,
        ],
        "license.update_traits",
        json!({"note": p.note, "premium": p.premium, "hwid_check": p.hwid_check,
               "one_time_use": p.one_time_use, "discord_id": p.discord_id,
               "provider_id": p.provider_id, "hwid_limit": p.hwid_limit,
               "invalidated": p.invalidated,
               "expiry": p.expiry.map(|e| json!({"expires_at": e.expires_at,
                   "duration_secs": e.duration_secs, "restart_on_first_use": e.restart_on_first_use}))}),
    )
    .await
}

/// Who bound a HWID, in the key systems' words.
pub const BOUND_BY: [&str; 4] = ["api", "verify", "manual", "admin"];

/// Replaces every HWID bound to a key (`hwids[]` of Junkie's update; empty clears them).
pub async fn replace_hwids(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    hwids: &[String],
    bound_by: &str,
) -> StoreResult<()> {
    if hwids.len() > 100 {
        return Err(StoreError::Invalid("at most 100 hwids".into()));
    }
    if hwids.iter().any(|h| h.is_empty() || h.len() > 256) {
        return Err(StoreError::Invalid(
            "each hwid must be 1 to 256 characters".into(),
        ));
    }
    mutate_one(
        wtx,
        id,
        "WITH l AS (SELECT id, app_id, key FROM licenses WHERE id = $1 AND account_id = $2 FOR UPDATE),
              d AS (DELETE FROM machines h USING l WHERE h.license_id = l.id),
              i AS (INSERT INTO machines (license_id, fingerprint, bound_by)
                    SELECT l.id, h, $4 FROM l, unnest($3::text[]) AS h ON CONFLICT DO NOTHING)
         SELECT app_id, key FROM l",
        &[&hwids, &bound_by],
        "license.replace_hwids",
        json!({"hwids": hwids}),
    )
    .await
}

/// What a HWID reset did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwidReset {
    Done,
    /// The app's cooldown since the key's last reset has not passed.
    TooSoon {
        retry_after_secs: i64,
    },
}

/// Clears a key's HWIDs (the next validation binds again) and records when. With `cooldown`,
/// refuses while the app's `hwid_reset_cooldown_secs` since the last reset has not passed; the
/// check and the reset run under the row's lock, so two racing resets cannot both pass.
pub async fn reset_hwids(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    cooldown: bool,
) -> StoreResult<HwidReset> {
    let row = wtx
        .tx()
        .query_opt(
            "SELECT l.app_id, l.key,
                    CASE WHEN l.hwid_reset_at IS NULL OR a.hwid_reset_cooldown_secs = 0 THEN 0
                         ELSE ceil(extract(epoch FROM l.hwid_reset_at
                                   + make_interval(secs => a.hwid_reset_cooldown_secs) - now()))::bigint END AS wait
               FROM licenses l JOIN apps a ON a.id = l.app_id
              WHERE l.id = $1 AND l.account_id = $2 FOR UPDATE OF l",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("key"))?;
    let wait: i64 = row.get("wait");
    if cooldown && wait > 0 {
        return Ok(HwidReset::TooSoon {
            retry_after_secs: wait,
        });
    }
    wtx.tx()
        .execute("DELETE FROM machines WHERE license_id = $1", &[&id])
        .await?;
    wtx.tx()
        .execute(
            "UPDATE licenses SET hwid_reset_at = now() WHERE id = $1",
            &[&id],
        )
        .await?;
    let key: String = row.get("key");
    wtx.invalidate(Invalidation::License {
        app: row.get("app_id"),
        key: key.clone(),
    });
    wtx.audit(
        "license.reset_hwids",
        "license",
        Some(id.to_string()),
        json!({"key": key, "cooldown": cooldown}),
    );
    Ok(HwidReset::Done)
}

/// Deletes the account's keys named by integer id or value; how many went.
pub async fn delete_many(
    wtx: &mut WriteTx<'_>,
    nums: &[i64],
    values: &[String],
) -> StoreResult<u64> {
    if nums.len() + values.len() > 1000 {
        return Err(StoreError::Invalid(
            "at most 1000 keys per bulk delete".into(),
        ));
    }
    let rows = wtx
        .tx()
        .query(
            "DELETE FROM licenses WHERE account_id = $1 AND (num_id = ANY($2) OR key = ANY($3))
             RETURNING id, app_id, key",
            &[&wtx.account_id(), &nums, &values],
        )
        .await?;
    for r in &rows {
        wtx.invalidate(Invalidation::License {
            app: r.get("app_id"),
            key: r.get("key"),
        });
    }
    wtx.audit(
        "license.delete_many",
        "account",
        Some(wtx.account_id().to_string()),
        json!({"deleted": rows.len(), "keys": rows.iter().map(|r| r.get::<_, String>("key")).collect::<Vec<_>>()}),
    );
    Ok(rows.len() as u64)
}

//! Reads of the statistics for the customer API: a license's totals and distinct IPs/HWIDs
//! (`usageStats`), its usage in a time window (`usage`), and a customer's summary (`stats`).
//!
//! Definitions (CyberLicense leaves them open; these are ours):
//! - a license's totals count every validation the tables hold (the janitor drops what is past
//!   the retention), its distinct IPs and HWIDs those seen within the `window` given;
//! - a usage window counts whole UTC days (the daily rows are per day): every day from the
//!   start's date to the end's date, both included; its request list is exact to the instant;
//! - a customer's `active` licenses are active (not banned, revoked or disabled) and not
//!   expired, `expired` ones have `expires_at <= now` whatever their state, `suspended` ones are
//!   banned. Revoked and disabled licenses count in the total (and as expired when they are).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::error::StoreResult;
use crate::model::LicenseType;

use super::write::UseStatus;

/// Validations of one license, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub success: i64,
    pub blocked: i64,
    pub invalid: i64,
}

impl Counts {
    pub fn total(&self) -> i64 {
        self.success + self.blocked + self.invalid
    }
}

/// A license's `usageStats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LicenseTotals {
    pub counts: Counts,
    pub last_used: Option<DateTime<Utc>>,
    pub unique_ips: i64,
    pub unique_hwids: i64,
}

/// A license's totals; distinct IPs and HWIDs are those seen after `now - window`.
pub async fn license_totals<C: GenericClient + Sync>(
    c: &C,
    license_id: Uuid,
    now: DateTime<Utc>,
    window: Duration,
) -> StoreResult<LicenseTotals> {
    let r = c
        .query_one(
            "SELECT coalesce(sum(success), 0)::bigint, coalesce(sum(blocked), 0)::bigint,
                    coalesce(sum(invalid), 0)::bigint, max(last_used_at),
                    (SELECT count(*) FROM license_seen
                      WHERE license_id = $1 AND kind = 'ip' AND last_seen_at > $2),
                    (SELECT count(*) FROM license_seen
                      WHERE license_id = $1 AND kind = 'hwid' AND last_seen_at > $2)
               FROM license_daily_usage WHERE license_id = $1",
            &[&license_id, &(now - window)],
        )
        .await?;
    Ok(LicenseTotals {
        counts: Counts {
            success: r.try_get(0)?,
            blocked: r.try_get(1)?,
            invalid: r.try_get(2)?,
        },
        last_used: r.try_get(3)?,
        unique_ips: r.try_get(4)?,
        unique_hwids: r.try_get(5)?,
    })
}

/// One logged validation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEntry {
    pub id: i64,
    pub ip: Option<String>,
    pub hwid: Option<String>,
    pub status: UseStatus,
    pub at: DateTime<Utc>,
}

/// A license's usage in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub counts: Counts,
    /// Per UTC day, oldest first; only days with a validation.
    pub daily: Vec<(NaiveDate, Counts)>,
    /// The newest requests in the window, newest first, at most `limit`.
    pub requests: Vec<RequestEntry>,
}

/// The time window of a usage read; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub from: Option<DateTime<Utc>>,
    /// Included.
    pub to: Option<DateTime<Utc>>,
}

fn status(text: &str) -> UseStatus {
    match text {
        "success" => UseStatus::Success,
        "blocked" => UseStatus::Blocked,
        // The column's CHECK admits only the three names.
        _ => UseStatus::Invalid,
    }
}

/// A license's usage in `window`: counts by whole UTC days, and its newest `limit` requests.
pub async fn usage<C: GenericClient + Sync>(
    c: &C,
    license_id: Uuid,
    window: Window,
    limit: i64,
) -> StoreResult<Usage> {
    let from_day = window.from.map(|t| t.date_naive());
    let to_day = window.to.map(|t| t.date_naive());
    let days = c
        .query(
            "SELECT day, success, blocked, invalid FROM license_daily_usage
              WHERE license_id = $1 AND ($2::date IS NULL OR day >= $2)
                AND ($3::date IS NULL OR day <= $3)
              ORDER BY day",
            &[&license_id, &from_day, &to_day],
        )
        .await?;
    let mut usage = Usage::default();
    for r in &days {
        let counts = Counts {
            success: r.try_get(1)?,
            blocked: r.try_get(2)?,
            invalid: r.try_get(3)?,
        };
        usage.counts.success += counts.success;
        usage.counts.blocked += counts.blocked;
        usage.counts.invalid += counts.invalid;
        usage.daily.push((r.try_get(0)?, counts));
    }
    let rows = c
        .query(
            "SELECT id, ip, hwid, status, created_at FROM license_requests
              WHERE license_id = $1 AND ($2::timestamptz IS NULL OR created_at >= $2)
                AND ($3::timestamptz IS NULL OR created_at <= $3)
              ORDER BY created_at DESC, id DESC LIMIT $4",
            &[&license_id, &window.from, &window.to, &limit.max(0)],
        )
        .await?;
    for r in &rows {
        usage.requests.push(RequestEntry {
            id: r.try_get(0)?,
            ip: r.try_get(1)?,
            hwid: r.try_get(2)?,
            status: status(r.try_get(3)?),
            at: r.try_get(4)?,
        });
    }
    Ok(usage)
}

/// A customer's summary over the licenses they own (see the module's definitions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerStats {
    pub total: i64,
    pub active: i64,
    pub expired: i64,
    pub suspended: i64,
    pub total_requests: i64,
    pub successful_requests: i64,
    /// Every type, in [`LicenseType::ALL`]'s order, with its count (0 included).
    pub by_type: Vec<(LicenseType, i64)>,
}

pub async fn customer_stats<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    owner: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<CustomerStats> {
    let r = c
        .query_one(
            "WITH owned AS (
                 SELECT id, status::text AS status, expires_at, license_type FROM licenses
                  WHERE account_id = $1 AND owner_id = $2)
             SELECT count(*),
                    count(*) FILTER (WHERE status = 'active'
                                       AND (expires_at IS NULL OR expires_at > $3)),
                    count(*) FILTER (WHERE expires_at <= $3),
                    count(*) FILTER (WHERE status = 'banned'),
                    (SELECT coalesce(sum(d.success + d.blocked + d.invalid), 0)::bigint
                       FROM license_daily_usage d WHERE d.license_id IN (SELECT id FROM owned)),
                    (SELECT coalesce(sum(d.success), 0)::bigint
                       FROM license_daily_usage d WHERE d.license_id IN (SELECT id FROM owned)),
                    array_agg(license_type) FILTER (WHERE license_type IS NOT NULL)
               FROM owned",
            &[&account_id, &owner, &now],
        )
        .await?;
    let types: Option<Vec<String>> = r.try_get(6)?;
    let types = types.unwrap_or_default();
    let by_type = LicenseType::ALL
        .into_iter()
        .map(|t| (t, types.iter().filter(|s| *s == t.as_str()).count() as i64))
        .collect();
    Ok(CustomerStats {
        total: r.try_get(0)?,
        active: r.try_get(1)?,
        expired: r.try_get(2)?,
        suspended: r.try_get(3)?,
        total_requests: r.try_get(4)?,
        successful_requests: r.try_get(5)?,
        by_type,
    })
}

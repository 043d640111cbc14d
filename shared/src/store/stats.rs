//! The Overview's counts of an account (or one of its apps): apps, licenses by state, end users,
//! online sessions, machines and recent validations, in one statement. Each count is one pass
//! over the account's rows (`count(*) FILTER`), so 100 000 licenses cost one index scan.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::store::validation_buckets::minute_of;

/// How far ahead "expiring soon" looks.
pub const EXPIRING_WITHIN_DAYS: i64 = 7;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LicenseCounts {
    pub total: i64,
    /// Never used (no first validation yet).
    pub unused: i64,
    pub used: i64,
    /// Active and not expired: what a validation would let in, limits aside.
    pub active: i64,
    pub banned: i64,
    /// Active but past their expiry.
    pub expired: i64,
    pub revoked: i64,
    pub disabled: i64,
    /// Active and expiring within [`EXPIRING_WITHIN_DAYS`] days.
    pub expiring_soon: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationCounts {
    /// The last 60 minutes (the current one included), as the per-minute buckets hold them.
    pub last_hour: i64,
    /// The last 1440 minutes.
    pub last_24h: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overview {
    pub apps: i64,
    pub licenses: LicenseCounts,
    /// End users of the apps (KeyAuth's users; not the account's own users).
    pub end_users: i64,
    /// Logged-in client sessions that have not expired.
    pub online_sessions: i64,
    /// Machines (bound HWIDs) activated on the licenses.
    pub machines: i64,
    pub validations: ValidationCounts,
}

/// The counts of `account_id`, or of one of its apps; an app of another account is not found.
pub async fn overview<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> StoreResult<Overview> {
    let soon = now + Duration::days(EXPIRING_WITHIN_DAYS);
    let minute = minute_of(now);
    let hour_from = minute - Duration::minutes(59);
    let day_from = minute - Duration::minutes(24 * 60 - 1);
    let r = c
        .query_one(
            "WITH scope AS (
                 SELECT id FROM apps WHERE account_id = $1 AND ($2::uuid IS NULL OR id = $2)
             ), lic AS (
                 SELECT count(*) AS total,
                        count(*) FILTER (WHERE used_at IS NULL) AS unused,
                        count(*) FILTER (WHERE used_at IS NOT NULL) AS used,
                        count(*) FILTER (WHERE status = 'active'
                                           AND (expires_at IS NULL OR expires_at > $3)) AS active,
                        count(*) FILTER (WHERE status = 'banned') AS banned,
                        count(*) FILTER (WHERE status = 'active' AND expires_at <= $3) AS expired,
                        count(*) FILTER (WHERE status = 'revoked') AS revoked,
                        count(*) FILTER (WHERE status = 'disabled') AS disabled,
                        count(*) FILTER (WHERE status = 'active'
                                           AND expires_at > $3 AND expires_at <= $4) AS soon
                   FROM licenses
                  WHERE account_id = $1 AND ($2::uuid IS NULL OR app_id = $2)
             ), val AS (
                 SELECT coalesce(sum(n) FILTER (WHERE minute >= $6), 0)::bigint AS hour,
                        coalesce(sum(n), 0)::bigint AS day
                   FROM validation_buckets
                  WHERE account_id = $1 AND ($2::uuid IS NULL OR app_id = $2)
                    AND minute >= $5 AND minute <= $7
             )
             SELECT (SELECT count(*) FROM scope) AS apps, lic.*, val.*,
                    (SELECT count(*) FROM app_users
                      WHERE account_id = $1 AND app_id IN (SELECT id FROM scope)) AS end_users,
                    (SELECT count(*) FROM sessions
                      WHERE app_id IN (SELECT id FROM scope)
                        AND validated AND expires_at > $3) AS online_sessions,
                    (SELECT count(*) FROM machines m JOIN licenses l ON l.id = m.license_id
                      WHERE l.account_id = $1 AND ($2::uuid IS NULL OR l.app_id = $2)) AS machines
               FROM lic, val",
            &[
                &account_id,
                &app_id,
                &now,
                &soon,
                &day_from,
                &hour_from,
                &minute,
            ],
        )
        .await?;
    let apps: i64 = r.try_get("apps")?;
    if app_id.is_some() && apps == 0 {
        return Err(StoreError::NotFound("app"));
    }
    Ok(Overview {
        apps,
        licenses: LicenseCounts {
            total: r.try_get("total")?,
            unused: r.try_get("unused")?,
            used: r.try_get("used")?,
            active: r.try_get("active")?,
            banned: r.try_get("banned")?,
            expired: r.try_get("expired")?,
            revoked: r.try_get("revoked")?,
            disabled: r.try_get("disabled")?,
            expiring_soon: r.try_get("soon")?,
        },
        end_users: r.try_get("end_users")?,
        online_sessions: r.try_get("online_sessions")?,
        machines: r.try_get("machines")?,
        validations: ValidationCounts {
            last_hour: r.try_get("hour")?,
            last_24h: r.try_get("day")?,
        },
    })
}

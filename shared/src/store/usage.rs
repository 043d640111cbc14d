//! Write-behind usage counters: validators batch `validation_count`/`last_validated_at` and flush
//! them periodically into `license_usage` (one row per license, made with it; see migration
//! 0005). These columns never influence a verdict, so no invalidation is needed. A license deleted
//! meanwhile simply matches no row.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::StoreResult;

/// Adds validations to the counters of `ids`. Prepared once per pooled connection: a busy
/// validator sends one of these per 100 licenses, and planning it was ≈ 0.1–0.4 ms against
/// 1.2 ms of execution (`EXPLAIN ANALYZE`, 1 M licenses), with a round trip of its own.
pub async fn record_validations<C: crate::db::Hot>(
    c: &C,
    ids: &[Uuid],
    counts: &[i64],
    last_at: &[DateTime<Utc>],
) -> StoreResult<u64> {
    const SQL: &str = "UPDATE license_usage l
            SET validation_count = l.validation_count + u.n,
                last_validated_at = greatest(l.last_validated_at, u.t)
           FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS u(id, n, t)
          WHERE l.license_id = u.id";
    if ids.is_empty() {
        return Ok(0);
    }
    let stmt = c.statement(SQL).await?;
    Ok(c.client()
        .execute(&stmt, &[&ids, &counts, &last_at])
        .await?)
}

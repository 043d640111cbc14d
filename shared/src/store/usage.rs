//! Write-behind usage counters: validators batch `validation_count`/`last_validated_at` and flush
//! them periodically into `license_usage` (one row per license, made with it; see migration
//! 0005). These columns never influence a verdict, so no invalidation is needed. A license deleted
//! meanwhile simply matches no row.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::error::StoreResult;

pub async fn record_validations<C: GenericClient + Sync>(
    c: &C,
    ids: &[Uuid],
    counts: &[i64],
    last_at: &[DateTime<Utc>],
) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(c.execute(
        "UPDATE license_usage l
            SET validation_count = l.validation_count + u.n,
                last_validated_at = greatest(l.last_validated_at, u.t)
           FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS u(id, n, t)
          WHERE l.license_id = u.id",
        &[&ids, &counts, &last_at],
    )
    .await?)
}

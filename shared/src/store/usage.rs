//! Write-behind usage counters: validators batch `validation_count`/`last_validated_at` and flush
//! them periodically into `license_usage` (one row per license, made with it; see migration
//! 0005). These columns never influence a verdict, so no invalidation is needed. A license deleted
//! meanwhile simply matches no row.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
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

/// Adds executions to apps' counters (Panda's execution count, written behind by validators).
pub async fn record_executions<C: GenericClient + Sync>(
    c: &C,
    apps: &[Uuid],
    counts: &[i64],
) -> StoreResult<u64> {
    if apps.is_empty() {
        return Ok(0);
    }
    Ok(c
        .execute(
            "INSERT INTO app_usage (app_id, execution_count)
             SELECT u.app_id, u.n FROM unnest($1::uuid[], $2::bigint[]) AS u(app_id, n)
              WHERE EXISTS (SELECT 1 FROM apps a WHERE a.id = u.app_id)
             ON CONFLICT (app_id) DO UPDATE SET execution_count = app_usage.execution_count + EXCLUDED.execution_count",
            &[&apps, &counts],
        )
        .await?)
}

/// One of the caller's apps' execution count.
pub async fn execution_count<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
) -> StoreResult<i64> {
    c.query_opt(
        "SELECT coalesce(u.execution_count, 0) FROM apps a LEFT JOIN app_usage u ON u.app_id = a.id
          WHERE a.id = $1 AND a.account_id = $2",
        &[&app_id, &account_id],
    )
    .await?
    .map(|r| r.get(0))
    .ok_or(crate::error::StoreError::NotFound("app"))
}

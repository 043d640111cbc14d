use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::error::StoreResult;
use crate::model::AuditEntry;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Exact action (`license.ban`) or a prefix ending in `.` (`license.`).
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub actor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keyset cursor: entries with a smaller id (older).
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    f: &AuditFilter,
) -> StoreResult<Vec<AuditEntry>> {
    let limit = super::page_size(f.limit, 50, 500);
    let action_pattern = f.action.as_ref().map(|a| {
        let escaped = a
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        if a.ends_with('.') {
            format!("{escaped}%")
        } else {
            escaped
        }
    });
    let rows = c
        .query(
            "SELECT id, actor, action, target_type, target_id, details, created_at FROM audit_log
             WHERE account_id = $1
               AND ($2::text IS NULL OR action LIKE $2)
               AND ($3::text IS NULL OR target_type = $3)
               AND ($4::text IS NULL OR target_id = $4)
               AND ($5::text IS NULL OR actor = $5)
               AND ($6::timestamptz IS NULL OR created_at >= $6)
               AND ($7::timestamptz IS NULL OR created_at < $7)
               AND ($8::bigint IS NULL OR id < $8)
             ORDER BY id DESC LIMIT $9",
            &[
                &account_id,
                &action_pattern,
                &f.target_type,
                &f.target_id,
                &f.actor,
                &f.since,
                &f.until,
                &f.before,
                &limit,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AuditEntry {
            id: r.get("id"),
            actor: r.get("actor"),
            action: r.get("action"),
            target_type: r.get("target_type"),
            target_id: r.get("target_id"),
            details: r.get("details"),
            created_at: r.get("created_at"),
        })
        .collect())
}

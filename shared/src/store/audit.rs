//! The audit log: one row per audited change, written by [`crate::write::WriteTx::commit`] (and
//! logins, refused ones included, by [`record_login`]). Read natively by action, target, actor and
//! time, and classified onto CyberLicense's action and resource enumerations ([`classified`]).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::model::AuditEntry;
use crate::write::WriteTx;

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

const COLUMNS: &str = "a.id, a.actor, a.action, a.target_type, a.target_id, a.details, a.ip,
    a.user_agent, a.success, a.created_at";

fn from_row(r: &Row) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        id: r.try_get("id")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target_type: r.try_get("target_type")?,
        target_id: r.try_get("target_id")?,
        details: r.try_get("details")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
        success: r.try_get("success")?,
        created_at: r.try_get("created_at")?,
    })
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
            &format!(
                "SELECT {COLUMNS} FROM audit_log a
                 WHERE a.account_id = $1
                   AND ($2::text IS NULL OR a.action LIKE $2)
                   AND ($3::text IS NULL OR a.target_type = $3)
                   AND ($4::text IS NULL OR a.target_id = $4)
                   AND ($5::text IS NULL OR a.actor = $5)
                   AND ($6::timestamptz IS NULL OR a.created_at >= $6)
                   AND ($7::timestamptz IS NULL OR a.created_at < $7)
                   AND ($8::bigint IS NULL OR a.id < $8)
                 ORDER BY a.id DESC LIMIT $9"
            ),
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
    rows.iter().map(from_row).collect()
}

/// Records a password login to the actor's account as `account.login`, refused ones too
/// (`success` false), with the request's origin. In the caller's transaction, like every
/// audit row; a login changes nothing a validator reads.
pub async fn record_login(wtx: &mut WriteTx<'_>, success: bool, details: Value) -> StoreResult<()> {
    let actor = wtx.actor().clone();
    wtx.tx()
        .execute(
            "INSERT INTO audit_log (account_id, actor, action, target_type, target_id, details,
                                    ip, user_agent, success)
             VALUES ($1, $2, 'account.login', 'account', $7, $3, $4, $5, $6)",
            &[
                &actor.account_id,
                &actor.label,
                &details,
                &actor.origin.ip,
                &actor.origin.user_agent,
                &success,
                &actor.account_id.to_string(),
            ],
        )
        .await?;
    Ok(())
}

/// CyberLicense's audit actions, which [`classified`] maps every stored action onto.
pub const ACTION_CLASSES: [&str; 11] = [
    "create", "update", "delete", "view", "login", "logout", "export", "import", "revoke",
    "activate", "suspend",
];

/// CyberLicense's audit resource types, which [`classified`] maps every target type onto.
pub const RESOURCE_CLASSES: [&str; 7] = [
    "license",
    "customer",
    "product",
    "admin",
    "transaction",
    "notification",
    "system",
];

/// The entries with their verb: the last dot-separated part of the action (`license.rotate`
/// → `rotate`, `license.entitlements.attach` → `attach`).
const FROM: &str =
    "audit_log a CROSS JOIN LATERAL (SELECT substring(a.action from '[^.]*$') AS verb) v";

/// An entry's action class, by its verb (first match wins; anything else changed something).
const ACTION_CLASS: &str = "(CASE
    WHEN v.verb IN ('create', 'generate', 'add', 'seed') THEN 'create'
    WHEN v.verb LIKE 'delete%' OR v.verb LIKE 'remove%' OR v.verb = 'deactivate' THEN 'delete'
    WHEN v.verb IN ('ban', 'suspend', 'disable') THEN 'suspend'
    WHEN v.verb IN ('unban', 'enable', 'activate', 'reinstate') THEN 'activate'
    WHEN v.verb = 'revoke' THEN 'revoke'
    WHEN v.verb LIKE 'export%' THEN 'export'
    WHEN v.verb LIKE 'import%' THEN 'import'
    WHEN v.verb = 'login' THEN 'login'
    WHEN v.verb = 'logout' THEN 'logout'
    WHEN v.verb IN ('view', 'read') THEN 'view'
    ELSE 'update' END)";

/// An entry's resource class, by its target type.
const RESOURCE_CLASS: &str = "(CASE
    WHEN a.target_type IN ('license', 'licenses', 'machine', 'key') THEN 'license'
    WHEN a.target_type = 'app' THEN 'product'
    WHEN a.target_type IN ('user', 'account_user', 'customer') THEN 'customer'
    WHEN a.target_type IN ('account', 'admin', 'api_key', 'token', 'signing_key', 'seller_key',
                           'service_key') THEN 'admin'
    WHEN a.target_type = 'transaction' THEN 'transaction'
    WHEN a.target_type LIKE 'webhook%' THEN 'notification'
    ELSE 'system' END)";

/// What [`classified`] selects. Every field is an exact match; `None` matches anything.
#[derive(Debug, Default, Clone)]
pub struct ClassifiedFilter {
    /// The actor's label (`admin:alice`, `api_key:kw_AbCd`).
    pub actor: Option<String>,
    /// One of [`RESOURCE_CLASSES`].
    pub resource: Option<String>,
    pub target_id: Option<String>,
    /// One of [`ACTION_CLASSES`].
    pub action: Option<String>,
    /// Inclusive bounds of `created_at`.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub success: Option<bool>,
    /// Rows per page: [`DEFAULT_LIMIT`] when absent, clamped to 1..=[`MAX_LIMIT`].
    pub limit: Option<i64>,
    /// Rows skipped (newest first); negative counts as 0.
    pub skip: Option<i64>,
}

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// An entry with its CyberLicense action and resource classes.
#[derive(Debug, Clone)]
pub struct Classified {
    pub entry: AuditEntry,
    pub action: String,
    pub resource: String,
}

fn classified_row(r: &Row) -> StoreResult<Classified> {
    Ok(Classified {
        entry: from_row(r)?,
        action: r.try_get("action_class")?,
        resource: r.try_get("resource_class")?,
    })
}

/// A page of the account's entries, newest first, with the classes, and how many match in all.
/// The classes are computed in SQL, so the filters, the count and the page stay there.
pub async fn classified<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    f: &ClassifiedFilter,
) -> StoreResult<(Vec<Classified>, i64)> {
    let limit = f.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let skip = f.skip.unwrap_or(0).max(0);
    let filter = format!(
        "a.account_id = $1
           AND ($2::text IS NULL OR a.actor = $2)
           AND ($3::text IS NULL OR {RESOURCE_CLASS} = $3)
           AND ($4::text IS NULL OR a.target_id = $4)
           AND ($5::text IS NULL OR {ACTION_CLASS} = $5)
           AND ($6::timestamptz IS NULL OR a.created_at >= $6)
           AND ($7::timestamptz IS NULL OR a.created_at <= $7)
           AND ($8::bool IS NULL OR a.success = $8)"
    );
    // One statement: the total and the page see the same snapshot. The page's row is all NULL
    // when it is empty.
    let rows = c
        .query(
            &format!(
                "SELECT t.total, p.* FROM (SELECT count(*) AS total FROM {FROM} WHERE {filter}) t
                 LEFT JOIN LATERAL (
                     SELECT {COLUMNS}, {ACTION_CLASS} AS action_class,
                            {RESOURCE_CLASS} AS resource_class
                       FROM {FROM} WHERE {filter}
                      ORDER BY a.id DESC LIMIT $9 OFFSET $10) p ON true"
            ),
            &[
                &account_id,
                &f.actor,
                &f.resource,
                &f.target_id,
                &f.action,
                &f.since,
                &f.until,
                &f.success,
                &limit,
                &skip,
            ],
        )
        .await?;
    let mut total = 0;
    let mut page = Vec::with_capacity(rows.len());
    for r in &rows {
        total = r.try_get("total")?;
        if r.try_get::<_, Option<i64>>("id")?.is_some() {
            page.push(classified_row(r)?);
        }
    }
    Ok((page, total))
}

/// One of the account's entries with its classes.
pub async fn classified_by_id<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: i64,
) -> StoreResult<Classified> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {COLUMNS}, {ACTION_CLASS} AS action_class, {RESOURCE_CLASS} AS resource_class
                   FROM {FROM} WHERE a.account_id = $1 AND a.id = $2"
            ),
            &[&account_id, &id],
        )
        .await?
        .ok_or(StoreError::NotFound("audit entry"))?;
    classified_row(&row)
}

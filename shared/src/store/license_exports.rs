//! Licenses as an export lists them (CyberLicense's CSV and PDF): each with its product's name and
//! its customer's e-mail, newest first, read in one statement.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::StoreResult;
use crate::model::{LicenseStatus, LicenseType};

/// Rows an export returns at most: an export is one answer built in memory (a PDF needs its page
/// count before its first page), so it is bounded; [`Export::truncated`] says when more matched.
pub const MAX_ROWS: usize = 100_000;

/// Which licenses an export lists; all filters combine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportFilter {
    pub app_id: Option<Uuid>,
    /// The customer (an account user) owning them.
    pub owner_id: Option<Uuid>,
    /// `true`: status active; `false`: banned, revoked or disabled. Expiry is not a status.
    pub active: Option<bool>,
    pub license_type: Option<LicenseType>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    pub id: Uuid,
    pub key: String,
    pub app_id: Uuid,
    /// The product's (app's) name.
    pub product: String,
    pub owner_id: Option<Uuid>,
    /// The customer's e-mail.
    pub customer: Option<String>,
    pub status: LicenseStatus,
    pub license_type: LicenseType,
    pub expires_at: Option<DateTime<Utc>>,
    /// Effective limits (the license's overrides, else its policy's); 0: unlimited.
    pub ip_limit: i32,
    pub hwid_limit: i32,
    /// Seen client IPs and bound HWIDs, oldest first.
    pub ips: Vec<IpAddr>,
    pub hwids: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl ExportRow {
    /// CyberLicense's `active`: the status alone.
    pub fn active(&self) -> bool {
        self.status == LicenseStatus::Active
    }
}

pub struct Export {
    pub rows: Vec<ExportRow>,
    /// More than [`MAX_ROWS`] licenses matched; `rows` holds the newest.
    pub truncated: bool,
}

fn from_row(r: &Row) -> StoreResult<ExportRow> {
    Ok(ExportRow {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        app_id: r.try_get("app_id")?,
        product: r.try_get("product")?,
        owner_id: r.try_get("owner_id")?,
        customer: r.try_get("customer")?,
        status: r.try_get("status")?,
        // The column's CHECK admits only the four names.
        license_type: LicenseType::parse(r.try_get("license_type")?).unwrap_or_default(),
        expires_at: r.try_get("expires_at")?,
        ip_limit: r.try_get("ip_limit")?,
        hwid_limit: r.try_get("hwid_limit")?,
        ips: r.try_get("ips")?,
        hwids: r.try_get("hwids")?,
        created_at: r.try_get("created_at")?,
    })
}

/// The account's licenses matching `f`, newest first, at most [`MAX_ROWS`].
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    f: &ExportFilter,
) -> StoreResult<Export> {
    const SQL: &str = concat!(
        "SELECT l.id, l.key, l.app_id, a.name AS product, l.owner_id, u.email AS customer,
       l.status, l.license_type, l.expires_at, l.created_at, ",
        limits!(),
        ",
       ARRAY(SELECT i.ip FROM license_ips i WHERE i.license_id = l.id ORDER BY i.first_seen, i.ip) AS ips,
       ARRAY(SELECT h.fingerprint FROM machines h WHERE h.license_id = l.id ORDER BY h.bound_at, h.fingerprint) AS hwids
  FROM licenses l
  JOIN policies p ON p.id = l.policy_id
  JOIN apps a ON a.id = l.app_id
  LEFT JOIN app_users u ON u.id = l.owner_id
 WHERE l.account_id = $1
   AND ($2::uuid IS NULL OR l.app_id = $2)
   AND ($3::uuid IS NULL OR l.owner_id = $3)
   AND ($4::bool IS NULL OR (l.status = 'active') = $4)
   AND ($5::text IS NULL OR l.license_type = $5)
 ORDER BY l.created_at DESC, l.id DESC
 LIMIT $6"
    );
    let rows = c
        .query(
            SQL,
            &[
                &account_id,
                &f.app_id,
                &f.owner_id,
                &f.active,
                &f.license_type.map(LicenseType::as_str),
                &(MAX_ROWS as i64 + 1),
            ],
        )
        .await?;
    let truncated = rows.len() > MAX_ROWS;
    let rows = rows
        .iter()
        .take(MAX_ROWS)
        .map(from_row)
        .collect::<StoreResult<_>>()?;
    Ok(Export { rows, truncated })
}

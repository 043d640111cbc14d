//! A license with everything Keygen-style validation and rendering read: its policy, its machines
//! (with their heartbeats) and the codes of its entitlements (its own and its policy's). What the
//! validator caches for the Keygen facade; misses are rare, so a few statements per license.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::error::StoreResult;
use crate::model::{License, Machine};
use crate::policy::Policy;

#[derive(Debug, Clone)]
pub struct LicenseDetail {
    pub license: License,
    pub policy: Arc<Policy>,
    pub machines: Vec<Machine>,
    /// Codes of the license's entitlements and its policy's, sorted, without repeats.
    pub entitlements: Vec<String>,
    /// The same entitlements with their ids and names, for rendering: (id, code, name).
    pub entitlement_refs: Vec<(Uuid, String, String)>,
    pub last_check_in_at: Option<DateTime<Utc>>,
    pub last_check_out_at: Option<DateTime<Utc>>,
    /// The vendor's data about the license.
    pub metadata: Map<String, Value>,
    /// The last change of the license row (its creation when never changed).
    pub updated_at: DateTime<Utc>,
    /// The user who owns it: (id, e-mail, banned). A banned owner bans the license.
    pub owner: Option<(Uuid, String, bool)>,
}

/// Every license with this key, in every account or in `account` only (keys are unique per app,
/// so several apps may share one), oldest first.
pub async fn by_key<C: GenericClient + Sync>(
    c: &C,
    account: Option<Uuid>,
    key: &str,
) -> StoreResult<Vec<LicenseDetail>> {
    let rows = c
        .query(
            &format!(
                "{} WHERE l.key = $1 AND ($2::uuid IS NULL OR l.account_id = $2)
                 ORDER BY l.created_at, l.id LIMIT 16",
                super::licenses::SELECT
            ),
            &[&key, &account],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(complete(c, super::licenses::from_row(row)).await?);
    }
    Ok(out)
}

/// The key of the license with this id.
pub async fn key_of<C: GenericClient + Sync>(c: &C, id: Uuid) -> StoreResult<Option<String>> {
    let row = c
        .query_opt("SELECT key FROM licenses WHERE id = $1", &[&id])
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

/// The license with this id in `account`.
pub async fn by_id<C: GenericClient + Sync>(
    c: &C,
    account: Uuid,
    id: Uuid,
) -> StoreResult<Option<LicenseDetail>> {
    let row = c
        .query_opt(
            &format!(
                "{} WHERE l.id = $1 AND l.account_id = $2",
                super::licenses::SELECT
            ),
            &[&id, &account],
        )
        .await?;
    match row {
        Some(row) => Ok(Some(complete(c, super::licenses::from_row(&row)).await?)),
        None => Ok(None),
    }
}

/// Which of an account's licenses a list shows.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub app: Option<Uuid>,
    pub policy: Option<Uuid>,
    pub suspended: Option<bool>,
    /// Licenses with this machine (by id).
    pub machine: Option<Uuid>,
    /// Licenses with a machine of this fingerprint.
    pub fingerprint: Option<String>,
    /// Licenses this user owns.
    pub owner: Option<Uuid>,
}

/// A page of the account's licenses, newest first, with the total that match.
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account: Uuid,
    f: &Filter,
    page: super::Offset,
) -> StoreResult<(Vec<LicenseDetail>, i64)> {
    let filter = "l.account_id = $1
        AND ($2::uuid IS NULL OR l.app_id = $2)
        AND ($3::uuid IS NULL OR l.policy_id = $3)
        AND ($4::bool IS NULL OR (l.status = 'banned') = $4)
        AND ($5::uuid IS NULL OR EXISTS (SELECT 1 FROM machines m WHERE m.license_id = l.id AND m.id = $5))
        AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM machines m WHERE m.license_id = l.id AND m.fingerprint = $6))
        AND ($7::uuid IS NULL OR l.owner_id = $7)";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &account,
        &f.app,
        &f.policy,
        &f.suspended,
        &f.machine,
        &f.fingerprint,
        &f.owner,
    ];
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM licenses l WHERE {filter}"),
            &params,
        )
        .await?
        .try_get(0)?;
    let mut all = params.to_vec();
    all.push(&page.limit);
    all.push(&page.offset);
    let rows = c
        .query(
            &format!(
                "{} WHERE {filter} ORDER BY l.created_at DESC, l.id DESC LIMIT $8 OFFSET $9",
                super::licenses::SELECT
            ),
            &all,
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(complete(c, super::licenses::from_row(row)).await?);
    }
    Ok((out, total))
}

async fn complete<C: GenericClient + Sync>(c: &C, license: License) -> StoreResult<LicenseDetail> {
    let policy = c
        .query_one(
            &format!(
                "SELECT {},
                        x.*
                   FROM policies, (SELECT l.last_check_in_at, l.last_check_out_at, l.metadata AS license_metadata,
                                          coalesce(l.updated_at, l.created_at) AS license_updated_at,
                                          u.id AS owner_id, u.email AS owner_email, u.banned AS owner_banned
                                     FROM licenses l LEFT JOIN app_users u ON u.id = l.owner_id
                                    WHERE l.id = $2) x
                  WHERE policies.id = $1",
                super::policies::columns()
            ),
            &[&license.policy_id, &license.id],
        )
        .await?;
    let last_check_in_at = policy.try_get("last_check_in_at")?;
    let last_check_out_at = policy.try_get("last_check_out_at")?;
    let metadata = match policy.try_get::<_, Value>("license_metadata")? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let updated_at = policy.try_get("license_updated_at")?;
    let owner = match policy.try_get::<_, Option<Uuid>>("owner_id")? {
        Some(id) => Some((
            id,
            policy
                .try_get::<_, Option<String>>("owner_email")?
                .unwrap_or_default(),
            policy
                .try_get::<_, Option<bool>>("owner_banned")?
                .unwrap_or(false),
        )),
        None => None,
    };
    let policy = Arc::new(super::policies::from_row(&policy)?);
    let machines = c
        .query(
            &format!(
                "SELECT {} FROM machines m JOIN licenses l ON l.id = m.license_id
                  WHERE m.license_id = $1 ORDER BY m.bound_at, m.fingerprint",
                super::machines::COLUMNS
            ),
            &[&license.id],
        )
        .await?
        .iter()
        .map(super::machines::from_row)
        .collect::<StoreResult<Vec<Machine>>>()?;
    let entitlement_refs = c
        .query(
            "SELECT e.id, e.code, e.name FROM entitlements e
              WHERE e.id IN (SELECT entitlement_id FROM license_entitlements WHERE license_id = $1
                             UNION SELECT entitlement_id FROM policy_entitlements WHERE policy_id = $2)
              ORDER BY e.code",
            &[&license.id, &license.policy_id],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<StoreResult<Vec<(Uuid, String, String)>>>()?;
    let entitlements = entitlement_refs.iter().map(|e| e.1.clone()).collect();
    Ok(LicenseDetail {
        license,
        policy,
        machines,
        entitlements,
        entitlement_refs,
        last_check_in_at,
        last_check_out_at,
        metadata,
        updated_at,
        owner,
    })
}

/// What a license shows as its state (Keygen's `status`): the first that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayStatus {
    /// Its owner is banned.
    Banned,
    Suspended,
    Expired,
    /// Expires within three days.
    Expiring,
    /// Not created, validated, checked in or out within ninety days.
    Inactive,
    Active,
}

impl DisplayStatus {
    pub fn as_keygen(self) -> &'static str {
        match self {
            DisplayStatus::Banned => "BANNED",
            DisplayStatus::Suspended => "SUSPENDED",
            DisplayStatus::Expired => "EXPIRED",
            DisplayStatus::Expiring => "EXPIRING",
            DisplayStatus::Inactive => "INACTIVE",
            DisplayStatus::Active => "ACTIVE",
        }
    }
}

impl LicenseDetail {
    /// Suspended is the core's (reversible) ban; Keygen has no other refused state, so a
    /// revoked or disabled license shows as suspended too.
    pub fn suspended(&self) -> bool {
        self.license.status != crate::model::LicenseStatus::Active
    }

    /// When the next check-in is due, for a policy that requires them (counted from the last
    /// one, or from creation before the first).
    pub fn next_check_in_at(&self) -> Option<DateTime<Utc>> {
        use crate::policy::CheckInInterval;
        let p = &self.policy;
        if !p.require_check_in {
            return None;
        }
        let count = u32::try_from(p.check_in_interval_count?).ok()?;
        let last = self.last_check_in_at.unwrap_or(self.license.created_at);
        match p.check_in_interval? {
            CheckInInterval::Day => {
                last.checked_add_signed(chrono::Duration::try_days(count.into())?)
            }
            CheckInInterval::Week => {
                last.checked_add_signed(chrono::Duration::try_weeks(count.into())?)
            }
            CheckInInterval::Month => last.checked_add_months(chrono::Months::new(count)),
            CheckInInterval::Year => {
                last.checked_add_months(chrono::Months::new(count.checked_mul(12)?))
            }
        }
    }

    /// Its owner is banned.
    pub fn owner_banned(&self) -> bool {
        self.owner.as_ref().is_some_and(|o| o.2)
    }

    pub fn status(&self, now: DateTime<Utc>) -> DisplayStatus {
        let l = &self.license;
        if self.owner_banned() {
            return DisplayStatus::Banned;
        }
        if self.suspended() {
            return DisplayStatus::Suspended;
        }
        if let Some(expiry) = l.expires_at {
            if expiry <= now {
                return DisplayStatus::Expired;
            }
            if expiry - now <= chrono::Duration::days(3) {
                return DisplayStatus::Expiring;
            }
        }
        let recent = now - chrono::Duration::days(90);
        let last_activity = [
            Some(l.created_at),
            l.last_validated_at,
            self.last_check_in_at,
            self.last_check_out_at,
        ];
        if last_activity.iter().flatten().all(|t| *t < recent) {
            return DisplayStatus::Inactive;
        }
        DisplayStatus::Active
    }
}

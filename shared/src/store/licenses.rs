use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::keygen::{Mask, DEFAULT_MASK};
use crate::license_facts::LicenseFacts;
use crate::model::{
    check_metadata, present, BoundHwid, KeyTraits, License, LicenseStatus, LicenseType,
};
use crate::verdict::Activation;
use crate::write::WriteTx;

pub const MAX_BATCH: i64 = 500;

/// Columns of a full license, with its HWIDs and IPs as arrays (one round trip, no N+1).
pub(super) const SELECT: &str = concat!(
    "SELECT l.id, l.account_id, l.app_id, l.policy_id, l.key, l.status, l.level, l.note, l.created_at,
       l.used_at, l.expires_at, l.duration_secs, l.ban_reason, ",
    limits!(),
    ", u.last_validated_at, coalesce(u.validation_count, 0) AS validation_count,
       coalesce(l.max_uses, p.max_uses) AS max_uses, l.uses, l.used_by,
       l.num_id, l.premium, l.hwid_check, coalesce(l.one_time_use, p.one_time_use) AS one_time_use,
       l.restart_expiry_on_first_use, l.discord_id, l.provider_id, l.hwid_reset_at,
       l.license_type, l.owner_id,
       ARRAY(SELECT h.fingerprint FROM machines h WHERE h.license_id = l.id ORDER BY h.bound_at, h.fingerprint) AS hwids,
       ARRAY(SELECT h.bound_at FROM machines h WHERE h.license_id = l.id ORDER BY h.bound_at, h.fingerprint) AS hwid_bound_at,
       ARRAY(SELECT h.bound_by FROM machines h WHERE h.license_id = l.id ORDER BY h.bound_at, h.fingerprint) AS hwid_bound_by,
       ARRAY(SELECT i.ip FROM license_ips i WHERE i.license_id = l.id ORDER BY i.first_seen, i.ip) AS ips
  FROM licenses l JOIN policies p ON p.id = l.policy_id
  LEFT JOIN license_usage u ON u.license_id = l.id"
);

pub(super) fn from_row(r: &Row) -> License {
    let hwids: Vec<String> = r.get("hwids");
    let bound_at: Vec<DateTime<Utc>> = r.get("hwid_bound_at");
    let bound_by: Vec<String> = r.get("hwid_bound_by");
    License {
        id: r.get("id"),
        account_id: r.get("account_id"),
        app_id: r.get("app_id"),
        policy_id: r.get("policy_id"),
        key: r.get("key"),
        status: r.get("status"),
        level: r.get("level"),
        note: r.get("note"),
        created_at: r.get("created_at"),
        used_at: r.get("used_at"),
        expires_at: r.get("expires_at"),
        duration_secs: r.get("duration_secs"),
        hwid_limit: r.get("hwid_limit"),
        ip_limit: r.get("ip_limit"),
        ban_reason: r.get("ban_reason"),
        hwids: hwids
            .into_iter()
            .zip(bound_at)
            .zip(bound_by)
            .map(|((hwid, bound_at), bound_by)| BoundHwid {
                hwid,
                bound_at,
                bound_by,
            })
            .collect(),
        ips: r.get("ips"),
        last_validated_at: r.get("last_validated_at"),
        validation_count: r.get("validation_count"),
        max_uses: r.get("max_uses"),
        uses: r.get("uses"),
        used_by: r.get("used_by"),
        traits: KeyTraits {
            num_id: r.get("num_id"),
            premium: r.get("premium"),
            hwid_check: r.get("hwid_check"),
            one_time_use: r.get("one_time_use"),
            restart_expiry_on_first_use: r.get("restart_expiry_on_first_use"),
            discord_id: r.get("discord_id"),
            provider_id: r.get("provider_id"),
            hwid_reset_at: r.get("hwid_reset_at"),
        },
        license_type: license_type(r.get("license_type")),
        owner_id: r.get("owner_id"),
    }
}

/// The column's text; its CHECK admits only the four names.
pub(super) fn license_type(text: &str) -> LicenseType {
    LicenseType::parse(text).unwrap_or_default()
}

/// What validators cache of licenses, looked up by app and key, several at once: answer `i` is
/// for `lookups[i]` (`None`: no such key). Only the columns the rules read, and the bound HWIDs
/// and IPs in their primary-key order. A cache miss is the validator's hot query, and one
/// statement for a batch of misses costs PostgreSQL little more than one for a single miss. No
/// tenant scope (validators address by app id; the tenant is the app's).
pub async fn facts_by_keys<C: crate::db::Hot>(
    c: &C,
    lookups: &[(Uuid, &str)],
) -> StoreResult<Vec<Option<LicenseFacts>>> {
    const SQL: &str = concat!(
        "SELECT q.i, l.id, l.status, l.level, ",
        limits!(),
        ", coalesce(l.max_uses, p.max_uses, 2147483647) AS max_uses,
       l.uses, l.used_at, l.expires_at, l.duration_secs, l.ban_reason,
       l.premium, l.hwid_check, coalesce(l.one_time_use, p.one_time_use) AS one_time_use,
       ARRAY(SELECT h.fingerprint FROM machines h WHERE h.license_id = l.id ORDER BY h.fingerprint) AS hwids,
       ARRAY(SELECT i.ip FROM license_ips i WHERE i.license_id = l.id ORDER BY i.ip) AS ips
  FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS q(app_id, key, i)
  JOIN licenses l ON l.app_id = q.app_id AND l.key = q.key
  JOIN policies p ON p.id = l.policy_id"
    );
    let mut answers = vec![None; lookups.len()];
    if lookups.is_empty() {
        return Ok(answers);
    }
    let apps: Vec<Uuid> = lookups.iter().map(|l| l.0).collect();
    let keys: Vec<&str> = lookups.iter().map(|l| l.1).collect();
    let stmt = c.statement(SQL).await?;
    for r in c.client().query(&stmt, &[&apps, &keys]).await? {
        // Ordinality counts from 1.
        let i: i64 = r.try_get("i")?;
        let Some(answer) = usize::try_from(i - 1).ok().and_then(|i| answers.get_mut(i)) else {
            continue;
        };
        let hwids: Vec<String> = r.try_get("hwids")?;
        let ips: Vec<IpAddr> = r.try_get("ips")?;
        let mut facts = LicenseFacts::with(
            r.try_get("used_at")?,
            r.try_get("expires_at")?,
            r.try_get("duration_secs")?,
            hwids.iter().map(String::as_str),
            r.try_get("ban_reason")?,
            ips,
        );
        facts.id = r.try_get("id")?;
        facts.status = r.try_get("status")?;
        facts.level = r.try_get("level")?;
        facts.hwid_limit = r.try_get("hwid_limit")?;
        facts.ip_limit = r.try_get("ip_limit")?;
        facts.max_uses = r.try_get("max_uses")?;
        facts.uses = r.try_get("uses")?;
        facts.premium = r.try_get("premium")?;
        facts.hwid_check = r.try_get("hwid_check")?;
        facts.one_time_use = r.try_get("one_time_use")?;
        *answer = Some(facts);
    }
    Ok(answers)
}

pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: Uuid,
) -> StoreResult<License> {
    c.query_opt(
        &format!("{SELECT} WHERE l.id = $1 AND l.account_id = $2"),
        &[&id, &account_id],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("license"))
}

/// The vendor's data about one of the caller's licenses (`GET /v1/licenses/{id}` shows it
/// beside the license; lists leave it out).
pub async fn metadata<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: Uuid,
) -> StoreResult<Map<String, Value>> {
    let row = c
        .query_opt(
            "SELECT metadata FROM licenses WHERE id = $1 AND account_id = $2",
            &[&id, &account_id],
        )
        .await?
        .ok_or(StoreError::NotFound("license"))?;
    Ok(match row.try_get::<_, Value>(0)? {
        Value::Object(m) => m,
        _ => Map::new(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    /// Not banned, revoked or disabled, and not expired.
    Active,
    Banned,
    Revoked,
    Disabled,
    Expired,
    /// Never validated.
    Unused,
    Used,
}

/// Licenses by their expiry date, whatever their status (`status=expired` is the active ones
/// past it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpiryFilter {
    /// Past their expiry date.
    Expired,
    /// Expiring within `within_days` (default 7) from now, not yet expired.
    Expiring,
    /// Not past an expiry date: none yet (a validity that starts at first use) or a future one.
    Unexpired,
    /// Never expiring: no expiry date and no validity waiting for a first use.
    Never,
}

/// How far ahead `expiry=expiring` looks by default, like the Overview's "expiring soon".
pub const EXPIRING_WITHIN_DAYS: i64 = 7;
/// The furthest `within_days` may look (ten years).
const MAX_WITHIN_DAYS: i64 = 3650;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub app_id: Option<Uuid>,
    /// Substring of the key, note or a bound HWID (case-insensitive).
    pub search: Option<String>,
    pub status: Option<StatusFilter>,
    pub license_type: Option<LicenseType>,
    pub expiry: Option<ExpiryFilter>,
    /// With `expiry=expiring`: how many days ahead (1 to 3650, default 7).
    pub within_days: Option<i64>,
    pub level: Option<i32>,
    pub limit: Option<i64>,
    /// Keyset cursor returned as `next_cursor` by the previous page.
    pub cursor: Option<String>,
}

/// The filters of [`ListQuery`] alone: what `count` takes.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountQuery {
    pub app_id: Option<Uuid>,
    pub search: Option<String>,
    pub status: Option<StatusFilter>,
    pub license_type: Option<LicenseType>,
    pub expiry: Option<ExpiryFilter>,
    pub within_days: Option<i64>,
    pub level: Option<i32>,
}

impl From<&ListQuery> for CountQuery {
    fn from(q: &ListQuery) -> Self {
        CountQuery {
            app_id: q.app_id,
            search: q.search.clone(),
            status: q.status,
            license_type: q.license_type,
            expiry: q.expiry,
            within_days: q.within_days,
            level: q.level,
        }
    }
}

/// The WHERE clause of a filtered list or count over `licenses l`; its parameters are
/// [`Filter::params`], `$1` to `$8`.
const FILTER: &str = "l.account_id = $1
   AND ($2::uuid IS NULL OR l.app_id = $2)
   AND ($3::text IS NULL OR l.key ILIKE $3 OR l.note ILIKE $3
        OR EXISTS (SELECT 1 FROM machines h WHERE h.license_id = l.id AND h.fingerprint ILIKE $3))
   AND ($4::text IS NULL
        OR ($4 = 'active' AND l.status = 'active' AND (l.expires_at IS NULL OR l.expires_at > now()))
        OR ($4 IN ('banned', 'revoked', 'disabled') AND l.status::text = $4)
        OR ($4 = 'expired' AND l.status = 'active' AND l.expires_at <= now())
        OR ($4 = 'unused' AND l.used_at IS NULL)
        OR ($4 = 'used' AND l.used_at IS NOT NULL))
   AND ($5::text IS NULL OR l.license_type = $5)
   AND ($6::text IS NULL
        OR ($6 = 'expired' AND l.expires_at <= now())
        OR ($6 = 'expiring' AND l.expires_at > now() AND l.expires_at <= now() + make_interval(days => $7::int))
        OR ($6 = 'unexpired' AND (l.expires_at IS NULL OR l.expires_at > now()))
        OR ($6 = 'never' AND l.expires_at IS NULL AND l.duration_secs IS NULL))
   AND ($8::int IS NULL OR l.level = $8)";

/// A [`CountQuery`] checked and turned into the values of [`FILTER`].
struct Filter {
    account_id: Uuid,
    app_id: Option<Uuid>,
    search: Option<String>,
    status: Option<&'static str>,
    license_type: Option<&'static str>,
    expiry: Option<&'static str>,
    within_days: i32,
    level: Option<i32>,
}

impl Filter {
    fn new(account_id: Uuid, q: &CountQuery) -> StoreResult<Filter> {
        let within_days = match (q.expiry, q.within_days) {
            (_, Some(d)) if !(1..=MAX_WITHIN_DAYS).contains(&d) => {
                return Err(StoreError::Invalid(
                    "within_days must be between 1 and 3650".into(),
                ))
            }
            (Some(ExpiryFilter::Expiring), d) => d.unwrap_or(EXPIRING_WITHIN_DAYS),
            (_, Some(_)) => {
                return Err(StoreError::Invalid(
                    "within_days goes with expiry=expiring".into(),
                ))
            }
            (_, None) => EXPIRING_WITHIN_DAYS,
        };
        Ok(Filter {
            account_id,
            app_id: q.app_id,
            search: q
                .search
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(super::contains_pattern),
            status: q.status.map(|s| match s {
                StatusFilter::Active => "active",
                StatusFilter::Banned => "banned",
                StatusFilter::Revoked => "revoked",
                StatusFilter::Disabled => "disabled",
                StatusFilter::Expired => "expired",
                StatusFilter::Unused => "unused",
                StatusFilter::Used => "used",
            }),
            license_type: q.license_type.map(LicenseType::as_str),
            expiry: q.expiry.map(|e| match e {
                ExpiryFilter::Expired => "expired",
                ExpiryFilter::Expiring => "expiring",
                ExpiryFilter::Unexpired => "unexpired",
                ExpiryFilter::Never => "never",
            }),
            // Checked above: at most 3650.
            within_days: within_days as i32,
            level: q.level,
        })
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 8] {
        [
            &self.account_id,
            &self.app_id,
            &self.search,
            &self.status,
            &self.license_type,
            &self.expiry,
            &self.within_days,
            &self.level,
        ]
    }
}

pub struct Page {
    pub items: Vec<License>,
    pub next_cursor: Option<String>,
}

/// A page of the caller's licenses, newest first (the `licenses_account_created` index's
/// order, so a page reads about `limit` index entries when the filters keep most rows).
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    q: &ListQuery,
) -> StoreResult<Page> {
    let limit = super::page_size(q.limit, 50, 500);
    let cursor = q.cursor.as_deref().map(super::decode_cursor).transpose()?;
    let (after_at, after_id) = cursor.unzip();
    let filter = Filter::new(account_id, &CountQuery::from(q))?;
    let mut params = filter.params().to_vec();
    let more = limit + 1;
    params.extend_from_slice(&[&after_at, &after_id, &more]);
    let rows = c
        .query(
            &format!(
                "{SELECT} WHERE {FILTER}
                   AND ($9::timestamptz IS NULL OR (l.created_at, l.id) < ($9, $10::uuid))
                 ORDER BY l.created_at DESC, l.id DESC LIMIT $11"
            ),
            &params,
        )
        .await?;
    let mut items: Vec<License> = rows.iter().map(from_row).collect();
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|l| super::encode_cursor(l.created_at, l.id))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// How many of the caller's licenses match, in all and per app (apps without any are left
/// out): one pass over the matching rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Count {
    pub total: i64,
    pub by_app: std::collections::BTreeMap<Uuid, i64>,
}

pub async fn count<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    q: &CountQuery,
) -> StoreResult<Count> {
    let filter = Filter::new(account_id, q)?;
    let rows = c
        .query(
            &format!("SELECT l.app_id, count(*) FROM licenses l WHERE {FILTER} GROUP BY l.app_id"),
            &filter.params(),
        )
        .await?;
    let mut out = Count {
        total: 0,
        by_app: Default::default(),
    };
    for r in rows {
        let n: i64 = r.try_get(1)?;
        out.total += n;
        out.by_app.insert(r.try_get(0)?, n);
    }
    Ok(out)
}

/// How to generate a batch of licenses.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    /// 1 to 500 (default 1).
    pub count: Option<i64>,
    pub mask: Option<String>,
    pub prefix: Option<String>,
    /// Validity in days or seconds (at most one). Counted from creation, or from first use when
    /// `expiry_on_first_use` is set.
    pub duration_days: Option<i64>,
    pub duration_secs: Option<i64>,
    /// A fixed expiry instead of a duration.
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expiry_on_first_use: bool,
    pub level: Option<i32>,
    pub note: Option<String>,
    /// The policy the licenses follow: one of this app's (default: the app's default policy).
    /// Without a duration or `expires_at`, the policy's duration applies, counted from
    /// creation or, for the other expiration bases, from first use.
    pub policy_id: Option<Uuid>,
    /// Overrides of the policy's limits. HWIDs (machines), 0 for unlimited.
    pub hwid_limit: Option<i32>,
    /// Distinct client IPs, 0 for unlimited.
    pub ip_limit: Option<i32>,
    /// Uses (KeyAuth redemptions, Keygen's usage counter).
    pub max_uses: Option<i32>,
    /// The exact key of a single license (Keygen lets vendors bring their own) instead of one
    /// generated from the mask.
    pub key: Option<String>,
    /// The vendor's data about the license (at most 64 keys, 16 KiB).
    pub metadata: Option<Map<String, Value>>,
    /// The user of the account who owns it (Keygen's `owner`).
    pub owner_id: Option<Uuid>,
    /// Key-system traits (`KeyTraits`).
    #[serde(default)]
    pub premium: bool,
    /// False: no HWID is ever bound or checked.
    pub hwid_check: Option<bool>,
    /// Consumed by its first successful validation (default: the policy's).
    pub one_time_use: Option<bool>,
    pub discord_id: Option<String>,
    /// The checkpoint provider handing it out; its `key_valid_minutes` is the default validity.
    pub provider_id: Option<i64>,
    /// HWIDs bound from the start (`bound_by` api).
    pub hwids: Option<Vec<String>>,
    /// A days key: with `expiry_on_first_use` and a duration, the expiry that holds until the
    /// first use (Panda's `expire` date); the first use then sets now + duration.
    pub expires_at_until_first_use: Option<DateTime<Utc>>,
    /// Never expires, whatever the provider's or the policy's default validity (Junkie's
    /// `validity_minutes` sent as null or 0); no duration or `expires_at` may come with it.
    #[serde(default)]
    pub no_expiry: bool,
    /// The commercial type (default `fixed`): a `trial` needs an expiry, a `consumption`
    /// license `max_uses` (its credits).
    pub license_type: Option<LicenseType>,
}

/// Panda's `daysKey` and `days` go up to 999 999 days (≈ 2 738 years), which sellers use for
/// "lifetime"; the dates stay well inside PostgreSQL's and the wire formats' four-digit years.
const MAX_DURATION_SECS: i64 = 999_999 * 86_400;

struct Resolved {
    count: i64,
    mask: Mask,
    /// Exact keys (given, or taken from the policy's pool) instead of generated ones.
    keys: Option<Vec<String>>,
    metadata: Map<String, Value>,
    expires_at: Option<DateTime<Utc>>,
    duration_secs: Option<i64>,
    level: i32,
    note: Option<String>,
    hwid_limit: Option<i32>,
    ip_limit: Option<i32>,
    max_uses: Option<i32>,
    restart_expiry: bool,
}

fn resolve(spec: &GenerateSpec, now: DateTime<Utc>) -> StoreResult<Resolved> {
    let invalid = |m: &str| Err(StoreError::Invalid(m.to_string()));
    let count = spec.count.unwrap_or(1);
    if !(1..=MAX_BATCH).contains(&count) {
        return invalid("count must be between 1 and 500");
    }
    let mask = Mask::parse(
        spec.mask.as_deref().unwrap_or(DEFAULT_MASK),
        spec.prefix.as_deref(),
    )
    .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let duration = match (spec.duration_days, spec.duration_secs) {
        (Some(_), Some(_)) => return invalid("give duration_days or duration_secs, not both"),
        (Some(d), None) => Some(d.checked_mul(86_400).unwrap_or(i64::MAX)),
        (None, s) => s,
    };
    if let Some(d) = duration {
        if !(1..=MAX_DURATION_SECS).contains(&d) {
            return invalid("duration must be positive and at most 999999 days");
        }
    }
    let (expires_at, duration_secs) = match (duration, spec.expires_at, spec.expiry_on_first_use) {
        (Some(_), Some(_), _) => return invalid("give a duration or expires_at, not both"),
        (None, Some(_), true) => {
            return invalid("expiry_on_first_use needs a duration, not expires_at")
        }
        (Some(_), _, _) | (_, Some(_), _) if spec.no_expiry => {
            return invalid("no_expiry excludes a duration and expires_at")
        }
        // The provider's default validity (or the policy's) becomes the duration, in `generate`.
        (None, None, true) if spec.provider_id.is_some() || spec.no_expiry => (None, None),
        (None, None, true) => {
            return invalid("expiry_on_first_use needs duration_days or duration_secs")
        }
        (None, Some(at), false) if at <= now => return invalid("expires_at must be in the future"),
        (None, at, false) => (at, None),
        (Some(d), None, true) => (None, Some(d)),
        (Some(d), None, false) => (Some(now + Duration::seconds(d)), None),
    };
    let (expires_at, restart_expiry) = match spec.expires_at_until_first_use {
        None => (expires_at, false),
        Some(_) if duration_secs.is_none() => {
            return invalid("expires_at_until_first_use needs expiry_on_first_use and a duration")
        }
        Some(at) if at <= now => {
            return invalid("expires_at_until_first_use must be in the future")
        }
        Some(at) => (Some(at), true),
    };
    if let Some(d) = &spec.discord_id {
        super::key_system::check_discord_id(d)?;
    }
    if let Some(h) = &spec.hwids {
        if h.len() > 100 || h.iter().any(|h| h.is_empty() || h.len() > 256) {
            return invalid("hwids must be at most 100 of 1 to 256 characters");
        }
    }
    let level = spec.level.unwrap_or(1);
    if !(0..=1_000_000).contains(&level) {
        return invalid("level must be between 0 and 1000000");
    }
    let note = spec
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if note.as_deref().is_some_and(|n| n.chars().count() > 1000) {
        return invalid("note must be at most 1000 characters");
    }
    check_limits(spec.hwid_limit, spec.ip_limit, spec.max_uses)?;
    let keys = match spec.key.as_deref() {
        None => None,
        Some(_) if count != 1 => return invalid("a given key makes exactly one license (count 1)"),
        Some(k)
            if k.is_empty()
                || k.len() > crate::keygen::MAX_KEY_LEN
                || !k.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            return invalid("key must be 1 to 128 printable ASCII characters without spaces")
        }
        Some(k) => Some(vec![k.to_string()]),
    };
    let metadata = spec.metadata.clone().unwrap_or_default();
    check_metadata(&metadata).map_err(StoreError::Invalid)?;
    Ok(Resolved {
        count,
        mask,
        keys,
        metadata,
        expires_at,
        duration_secs,
        level,
        note,
        hwid_limit: spec.hwid_limit,
        ip_limit: spec.ip_limit,
        max_uses: spec.max_uses,
        restart_expiry,
    })
}

fn check_limits(
    hwid_limit: Option<i32>,
    ip_limit: Option<i32>,
    max_uses: Option<i32>,
) -> StoreResult<()> {
    let invalid = |m: &str| Err(StoreError::Invalid(m.to_string()));
    if max_uses.is_some_and(|m| !(1..=1_000_000).contains(&m)) {
        return invalid("max_uses must be between 1 and 1000000");
    }
    if hwid_limit.is_some_and(|l| !(0..=10_000).contains(&l))
        || ip_limit.is_some_and(|l| !(0..=10_000).contains(&l))
    {
        return invalid("hwid_limit and ip_limit must be between 0 and 10000");
    }
    Ok(())
}

/// The policy new licenses of `app_id` follow (`id`, or the app's default), locked against
/// deletion until the transaction ends; with its duration and whether that counts from creation.
async fn policy_for(
    wtx: &WriteTx<'_>,
    app_id: Uuid,
    id: Option<Uuid>,
) -> StoreResult<(Uuid, Option<i64>, bool, bool)> {
    let row = wtx
        .tx()
        .query_opt(
            "SELECT id, duration_secs, expiration_basis = 'from_creation' AS from_creation, use_pool
               FROM policies
              WHERE app_id = $1 AND account_id = $2 AND CASE WHEN $3::uuid IS NULL THEN is_default ELSE id = $3 END
              FOR SHARE",
            &[&app_id, &wtx.account_id(), &id],
        )
        .await?
        .ok_or_else(|| StoreError::Invalid("policy_id names no policy of this app".into()))?;
    Ok((
        row.try_get("id")?,
        row.try_get("duration_secs")?,
        row.try_get("from_creation")?,
        row.try_get("use_pool")?,
    ))
}

/// The rules of a license's type: a `trial` must expire (a date, or a validity from its first
/// use), a `consumption` license must have credits: a `max_uses` of its own (a policy's is a
/// use limit, e.g. the default policy's single KeyAuth redemption, not credits sold).
fn check_type(t: LicenseType, expires: bool, max_uses: Option<i32>) -> StoreResult<()> {
    match t {
        LicenseType::Trial if !expires => Err(StoreError::Invalid(
            "a trial license needs an expiry (expires_at or a duration)".into(),
        )),
        LicenseType::Consumption if max_uses.is_none() => Err(StoreError::Invalid(
            "a consumption license needs max_uses (its credits)".into(),
        )),
        _ => Ok(()),
    }
}

/// Refuses an owner who is not a user of the caller's account (locked against deletion until
/// the write commits).
async fn owner_in_account(wtx: &WriteTx<'_>, owner: Uuid) -> StoreResult<()> {
    wtx.tx()
        .query_opt(
            "SELECT 1 FROM app_users WHERE id = $1 AND account_id = $2 AND app_id IS NULL FOR SHARE",
            &[&owner, &wtx.account_id()],
        )
        .await?
        .map(drop)
        .ok_or_else(|| StoreError::Invalid("owner_id names no user of this account".into()))
}

/// Generates `count` licenses for one of the caller's apps. Keys are unique per app; collisions
/// (astronomically rare with ≥ 8 random characters) are regenerated.
pub async fn generate(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    spec: &GenerateSpec,
) -> StoreResult<Vec<License>> {
    let now = Utc::now();
    let mut r = resolve(spec, now)?;
    let owned = wtx
        .tx()
        .query_opt(
            "SELECT 1 FROM apps WHERE id = $1 AND account_id = $2 FOR SHARE",
            &[&app_id, &wtx.account_id()],
        )
        .await?;
    if owned.is_none() {
        return Err(StoreError::NotFound("app"));
    }
    let (policy_id, policy_duration, from_creation, use_pool) =
        policy_for(wtx, app_id, spec.policy_id).await?;
    if let Some(owner) = spec.owner_id {
        owner_in_account(wtx, owner).await?;
    }
    if use_pool && r.keys.is_none() {
        // The pool's oldest keys, each taken once even under concurrent creations.
        let mut pooled = Vec::with_capacity(r.count as usize);
        for _ in 0..r.count {
            match super::key_pool::take(wtx, policy_id).await? {
                Some(k) => pooled.push(k.key),
                None => return Err(StoreError::Invalid("the policy's key pool is empty".into())),
            }
        }
        r.keys = Some(pooled);
    }
    let defaulted = !spec.no_expiry && r.expires_at.is_none() && r.duration_secs.is_none();
    if let Some(provider) = spec.provider_id {
        let p = super::key_providers::get(wtx.tx(), wtx.account_id(), provider).await?;
        if let (true, Some(m)) = (defaulted, p.key_valid_minutes) {
            if spec.expiry_on_first_use {
                r.duration_secs = Some(i64::from(m) * 60);
            } else {
                r.expires_at = Some(now + Duration::minutes(m.into()));
            }
        }
    }
    let defaulted = !spec.no_expiry && r.expires_at.is_none() && r.duration_secs.is_none();
    if let (true, Some(d)) = (defaulted, policy_duration) {
        if from_creation && !spec.expiry_on_first_use {
            r.expires_at = Some(now + Duration::seconds(d));
        } else {
            // Every other basis (first validation, activation, download, use) starts the
            // clock at the license's first use.
            r.duration_secs = Some(d);
        }
    }
    let license_type = spec.license_type.unwrap_or_default();
    check_type(
        license_type,
        r.expires_at.is_some() || r.duration_secs.is_some(),
        r.max_uses,
    )?;
    let mut ids: Vec<Uuid> = Vec::with_capacity(r.count as usize);
    for attempt in 0..5 {
        let missing = r.count as usize - ids.len();
        if missing == 0 {
            break;
        }
        let new_ids: Vec<Uuid> = (0..missing).map(|_| Uuid::new_v4()).collect();
        let keys: Vec<String> = match &r.keys {
            // Exact keys are tried once: one that collides is taken, not regenerated.
            Some(_) if attempt > 0 => {
                return Err(StoreError::Conflict(
                    "the key is already a license of this app".into(),
                ))
            }
            Some(keys) => keys.clone(),
            None => (0..missing).map(|_| r.mask.generate()).collect(),
        };
        let rows = wtx
            .tx()
            .query(
                "INSERT INTO licenses (id, account_id, app_id, key, level, note, expires_at, duration_secs, hwid_limit, ip_limit, max_uses, policy_id, metadata, owner_id,
                                       premium, hwid_check, one_time_use, discord_id, provider_id, restart_expiry_on_first_use, license_type)
                 SELECT u.id, $1, $2, u.key, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15, $16, $17, $18, $19, $20, $21
                   FROM unnest($3::uuid[], $4::text[]) AS u(id, key)
                 ON CONFLICT (app_id, key) DO NOTHING RETURNING id",
                &[
                    &wtx.account_id(), &app_id, &new_ids, &keys, &r.level, &r.note, &r.expires_at,
                    &r.duration_secs, &r.hwid_limit, &r.ip_limit, &r.max_uses, &policy_id,
                    &Value::Object(r.metadata.clone()),
                    &spec.owner_id,
                    &spec.premium, &spec.hwid_check.unwrap_or(true), &spec.one_time_use,
                    &spec.discord_id, &spec.provider_id, &r.restart_expiry, &license_type.as_str(),
                ],
            )
            .await?;
        ids.extend(rows.iter().map(|row| row.get::<_, Uuid>(0)));
    }
    if ids.len() as i64 != r.count {
        return Err(StoreError::Conflict(
            "could not generate unique keys; use a longer mask".into(),
        ));
    }
    if let Some(hwids) = spec.hwids.as_ref().filter(|h| !h.is_empty()) {
        wtx.tx()
            .execute(
                "INSERT INTO machines (license_id, fingerprint, bound_by)
                 SELECT l, h, 'api' FROM unnest($1::uuid[]) AS l, unnest($2::text[]) AS h
                 ON CONFLICT DO NOTHING",
                &[&ids, hwids],
            )
            .await?;
    }
    let licenses: Vec<License> = wtx
        .tx()
        .query(
            &format!("{SELECT} WHERE l.id = ANY($1) ORDER BY l.key"),
            &[&ids],
        )
        .await?
        .iter()
        .map(from_row)
        .collect();
    // Validators may hold negative entries for these keys.
    for l in &licenses {
        wtx.invalidate(Invalidation::License {
            app: app_id,
            key: l.key.clone(),
        });
    }
    wtx.audit(
        "license.generate",
        "app",
        Some(app_id.to_string()),
        json!({"count": r.count, "policy_id": policy_id, "expires_at": r.expires_at,
               "duration_secs": r.duration_secs, "level": r.level, "hwid_limit": r.hwid_limit,
               "ip_limit": r.ip_limit, "max_uses": r.max_uses, "license_type": license_type.as_str(),
               "owner_id": spec.owner_id}),
    );
    Ok(licenses)
}

/// Runs an UPDATE/DELETE on one of the caller's licenses that returns `app_id, key`, then
/// invalidates and audits it.
pub(super) async fn mutate_one(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    sql: &str,
    extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    action: &str,
    details: serde_json::Value,
) -> StoreResult<()> {
    let account = wtx.account_id();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&id, &account];
    params.extend_from_slice(extra);
    let row = wtx
        .tx()
        .query_opt(sql, &params)
        .await?
        .ok_or(StoreError::NotFound("license"))?;
    let app: Uuid = row.get("app_id");
    let key: String = row.get("key");
    wtx.invalidate(Invalidation::License {
        app,
        key: key.clone(),
    });
    wtx.audit(action, "license", Some(id.to_string()), {
        let mut d = details;
        if let Some(obj) = d.as_object_mut() {
            obj.insert("key".into(), json!(key));
        }
        d
    });
    Ok(())
}

/// The columns of a license that admins' writes change, as JSON for the audit's before/after,
/// with the row locked until the write commits; `None` when the caller has no such license.
async fn state(wtx: &WriteTx<'_>, id: Uuid) -> StoreResult<Option<Map<String, Value>>> {
    let row = wtx
        .tx()
        .query_opt(
            "SELECT jsonb_build_object(
                    'key', l.key, 'status', l.status, 'ban_reason', l.ban_reason,
                    'license_type', l.license_type, 'note', l.note, 'level', l.level,
                    'policy_id', l.policy_id, 'owner_id', l.owner_id, 'hwid_limit', l.hwid_limit,
                    'ip_limit', l.ip_limit, 'max_uses', l.max_uses, 'uses', l.uses,
                    'expires_at', l.expires_at, 'duration_secs', l.duration_secs,
                    'metadata', l.metadata,
                    'hwids', ARRAY(SELECT h.fingerprint FROM machines h WHERE h.license_id = l.id
                                    ORDER BY h.bound_at, h.fingerprint),
                    'ips', ARRAY(SELECT host(i.ip) FROM license_ips i WHERE i.license_id = l.id
                                  ORDER BY i.first_seen, i.ip))
               FROM licenses l WHERE l.id = $1 AND l.account_id = $2 FOR UPDATE OF l",
            &[&id, &wtx.account_id()],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(match row.try_get::<_, Value>(0)? {
        Value::Object(m) => m,
        _ => Map::new(),
    }))
}

/// Every field of [`state`], for what a deletion removed.
const ALL_FIELDS: [&str; 17] = [
    "key",
    "status",
    "ban_reason",
    "license_type",
    "note",
    "level",
    "policy_id",
    "owner_id",
    "hwid_limit",
    "ip_limit",
    "max_uses",
    "uses",
    "expires_at",
    "duration_secs",
    "metadata",
    "hwids",
    "ips",
];

/// `fields` of a state, in that order.
fn pick(state: &Map<String, Value>, fields: &[&str]) -> Value {
    Value::Object(
        fields
            .iter()
            .filter_map(|f| state.get(*f).map(|v| (f.to_string(), v.clone())))
            .collect(),
    )
}

/// Runs a write of one of the caller's licenses (`sql` on the row `$1` of the account `$2`,
/// `extra` from `$3` on, returning `app_id, key`), then invalidates it and audits `action` with
/// `{"key", "before", "after"}` over `fields` (after a deletion, `after` is `{}`) and `details`'
/// own fields.
async fn write_audited(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    sql: &str,
    extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    action: &str,
    fields: &[&str],
    details: Value,
) -> StoreResult<()> {
    let before = state(wtx, id)
        .await?
        .ok_or(StoreError::NotFound("license"))?;
    let account = wtx.account_id();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&id, &account];
    params.extend_from_slice(extra);
    let row = wtx
        .tx()
        .query_opt(sql, &params)
        .await?
        .ok_or(StoreError::NotFound("license"))?;
    let app: Uuid = row.try_get("app_id")?;
    let key: String = row.try_get("key")?;
    let after = state(wtx, id).await?.unwrap_or_default();
    wtx.invalidate(Invalidation::License {
        app,
        key: key.clone(),
    });
    let mut d = json!({"key": key, "before": pick(&before, fields), "after": pick(&after, fields)});
    if let (Some(d), Value::Object(more)) = (d.as_object_mut(), details) {
        d.extend(more);
    }
    wtx.audit(action, "license", Some(id.to_string()), d);
    Ok(())
}

/// A change of a license's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transition {
    Ban,
    Unban,
    Revoke,
    Disable,
    Enable,
}

/// Moves a license between active, banned (suspended), disabled and revoked. Revoked is
/// permanent: any later change of state is a conflict. Unban lifts a ban only; enable switches a
/// disabled license back on, not a banned one.
async fn transition(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    t: Transition,
    reason: Option<&str>,
) -> StoreResult<()> {
    use LicenseStatus::{Active, Banned, Disabled, Revoked};
    let current: LicenseStatus = wtx
        .tx()
        .query_opt(
            "SELECT status FROM licenses WHERE id = $1 AND account_id = $2 FOR UPDATE",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("license"))?
        .try_get(0)?;
    let to = match (t, current) {
        (Transition::Revoke, _) => Revoked,
        (_, Revoked) => {
            return Err(StoreError::Conflict(
                "the license is revoked, which is permanent".into(),
            ))
        }
        (Transition::Ban, _) => Banned,
        (Transition::Unban, Banned) => Active,
        (Transition::Unban, other) => other,
        (Transition::Disable, _) => Disabled,
        (Transition::Enable, Banned) => {
            return Err(StoreError::Conflict(
                "the license is banned (suspended); unban it instead".into(),
            ))
        }
        (Transition::Enable, _) => Active,
    };
    let reason = if to == Banned { reason } else { None };
    let (action, fields): (&str, &[&str]) = match t {
        Transition::Ban => ("license.ban", &["status", "ban_reason"]),
        Transition::Unban => ("license.unban", &["status", "ban_reason"]),
        Transition::Revoke => ("license.revoke", &["status"]),
        Transition::Disable => ("license.disable", &["status"]),
        Transition::Enable => ("license.enable", &["status"]),
    };
    write_audited(
        wtx,
        id,
        "UPDATE licenses SET status = $3, ban_reason = $4 WHERE id = $1 AND account_id = $2
         RETURNING app_id, key",
        &[&to, &reason],
        action,
        fields,
        json!({}),
    )
    .await
}

/// Bans (suspends) a license; a revoked one cannot be.
pub async fn ban(wtx: &mut WriteTx<'_>, id: Uuid, reason: Option<&str>) -> StoreResult<()> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(StoreError::Invalid(
            "reason must be at most 500 characters".into(),
        ));
    }
    transition(wtx, id, Transition::Ban, reason).await
}

/// Lifts a ban (a license that is not banned keeps its state; a revoked one is a conflict).
pub async fn unban(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    transition(wtx, id, Transition::Unban, None).await
}

/// Revokes a license for good: its key stays known and is refused (`REVOKED`) from now on.
pub async fn revoke(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    transition(wtx, id, Transition::Revoke, None).await
}

/// Switches a license off until it is enabled again (`DISABLED`).
pub async fn disable(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    transition(wtx, id, Transition::Disable, None).await
}

/// Switches a disabled license back on.
pub async fn enable(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    transition(wtx, id, Transition::Enable, None).await
}

pub async fn delete(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    write_audited(
        wtx,
        id,
        "DELETE FROM licenses WHERE id = $1 AND account_id = $2 RETURNING app_id, key",
        &[],
        "license.delete",
        &ALL_FIELDS,
        json!({}),
    )
    .await
}

pub async fn reset_hwids(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    write_audited(
        wtx,
        id,
        "WITH l AS (SELECT id, app_id, key FROM licenses WHERE id = $1 AND account_id = $2),
              d AS (DELETE FROM machines h USING l WHERE h.license_id = l.id)
         SELECT app_id, key FROM l",
        &[],
        "license.reset_hwids",
        &["hwids"],
        json!({}),
    )
    .await
}

/// Unbinds one HWID (machine) of a license: its slot is free, and the validators forget the
/// license's bindings. `NotFound("HWID")` when the license has no such binding.
pub async fn remove_hwid(wtx: &mut WriteTx<'_>, id: Uuid, hwid: &str) -> StoreResult<()> {
    let bound = wtx
        .tx()
        .query_opt(
            "SELECT EXISTS (SELECT 1 FROM machines m WHERE m.license_id = l.id AND m.fingerprint = $3)
               FROM licenses l WHERE l.id = $1 AND l.account_id = $2",
            &[&id, &wtx.account_id(), &hwid],
        )
        .await?
        .ok_or(StoreError::NotFound("license"))?
        .try_get::<_, bool>(0)?;
    if !bound {
        return Err(StoreError::NotFound("HWID"));
    }
    // The license row is locked (write_audited's state) before the binding goes; a concurrent
    // removal of the same one leaves no row to return: "not found" then too.
    write_audited(
        wtx,
        id,
        "WITH l AS (SELECT id, app_id, key FROM licenses WHERE id = $1 AND account_id = $2),
              d AS (DELETE FROM machines h USING l WHERE h.license_id = l.id AND h.fingerprint = $3
                    RETURNING h.license_id)
         SELECT l.app_id, l.key FROM l JOIN d ON d.license_id = l.id",
        &[&hwid],
        "license.remove_hwid",
        &["hwids"],
        json!({"hwid": hwid}),
    )
    .await
}

/// Empties a license's bound HWIDs (machines) and recorded IPs, so that new devices and
/// addresses may use it within its limits (CyberLicense's "clear").
pub async fn clear_usage(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    write_audited(
        wtx,
        id,
        "WITH l AS (SELECT id, app_id, key FROM licenses WHERE id = $1 AND account_id = $2),
              h AS (DELETE FROM machines m USING l WHERE m.license_id = l.id),
              i AS (DELETE FROM license_ips x USING l WHERE x.license_id = l.id)
         SELECT app_id, key FROM l",
        &[],
        "license.clear",
        &["hwids", "ips"],
        json!({}),
    )
    .await
}

/// How many times a rotation draws a key before giving up on collisions (each is a 1 in 36^12
/// chance with a key of the app).
const ROTATE_ATTEMPTS: usize = 5;

/// Gives a license a new key, `<prefix>-XXXXXX-XXXXXX` with its app's `license_prefix`, and
/// returns `(old, new)`. Limits, bindings, expiry and type are kept. The old key is invalidated
/// in this transaction, so every validator refuses it from the commit on (and the new one, which
/// a validator may hold as unknown).
pub async fn rotate_key(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<(String, String)> {
    let row = wtx
        .tx()
        .query_opt(
            "SELECT l.app_id, l.key, a.license_prefix FROM licenses l JOIN apps a ON a.id = l.app_id
              WHERE l.id = $1 AND l.account_id = $2 FOR UPDATE OF l",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("license"))?;
    let app: Uuid = row.try_get("app_id")?;
    let old: String = row.try_get("key")?;
    let prefix: String = row.try_get("license_prefix")?;
    for _ in 0..ROTATE_ATTEMPTS {
        // The column's CHECK keeps the prefix a valid literal.
        let new = crate::keygen::prefixed_key(&prefix)
            .map_err(|e| StoreError::Corrupt(format!("the app's license_prefix: {e}")))?;
        let n = wtx
            .tx()
            .execute(
                "UPDATE licenses SET key = $3 WHERE id = $1 AND account_id = $2
                   AND NOT EXISTS (SELECT 1 FROM licenses o WHERE o.app_id = $4 AND o.key = $3)",
                &[&id, &wtx.account_id(), &new, &app],
            )
            .await
            .map_err(|e| {
                // A concurrent insert of the same key: astronomically rare; the caller may retry.
                StoreError::from(e).conflict_on_unique("the new key was taken meanwhile; try again")
            })?;
        if n == 0 {
            continue;
        }
        for key in [&old, &new] {
            wtx.invalidate(Invalidation::License {
                app,
                key: key.clone(),
            });
        }
        wtx.audit(
            "license.rotate",
            "license",
            Some(id.to_string()),
            json!({"key": new, "before": {"key": old}, "after": {"key": new}}),
        );
        return Ok((old, new));
    }
    Err(StoreError::Conflict(
        "could not draw an unused key; try again".into(),
    ))
}

/// The caller's licenses with exactly this key, in any of its apps: at most two ids (a key is
/// unique in an app, so two mean it cannot be told apart without naming the app).
pub async fn ids_by_key<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    key: &str,
) -> StoreResult<Vec<Uuid>> {
    Ok(c.query(
        "SELECT id FROM licenses WHERE account_id = $1 AND key = $2 ORDER BY id LIMIT 2",
        &[&account_id, &key],
    )
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<Result<_, _>>()?)
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    pub days: Option<i64>,
    pub seconds: Option<i64>,
}

/// Extends validity. An expired license is extended from now, not from its past expiry; an unused
/// expiry-on-first-use license gets a longer duration. A license that never expires is refused.
pub async fn extend(wtx: &mut WriteTx<'_>, id: Uuid, ext: &Extension) -> StoreResult<()> {
    let secs = match (ext.days, ext.seconds) {
        (Some(d), None) => d.checked_mul(86_400),
        (None, Some(s)) => Some(s),
        _ => {
            return Err(StoreError::Invalid(
                "give exactly one of days or seconds".into(),
            ))
        }
    };
    let secs = secs
        .filter(|s| (1..=MAX_DURATION_SECS).contains(s))
        .ok_or_else(|| {
            StoreError::Invalid("extension must be positive and at most 999999 days".into())
        })?;
    let current = get(wtx.tx(), wtx.account_id(), id).await?;
    if current.expires_at.is_none() && current.duration_secs.is_none() {
        return Err(StoreError::Conflict(
            "license never expires; nothing to extend".into(),
        ));
    }
    write_audited(
        wtx,
        id,
        "UPDATE licenses SET
            expires_at = CASE WHEN expires_at IS NULL THEN NULL
                              ELSE greatest(expires_at, now()) + make_interval(secs => $3) END,
            duration_secs = CASE WHEN expires_at IS NULL THEN duration_secs + $4 ELSE duration_secs END
          WHERE id = $1 AND account_id = $2 RETURNING app_id, key",
        &[&(secs as f64), &secs],
        "license.extend",
        &["expires_at", "duration_secs"],
        json!({"seconds": secs}),
    )
    .await
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicensePatch {
    pub note: Option<String>,
    pub level: Option<i32>,
    /// Moves the license to another policy of its app.
    pub policy_id: Option<Uuid>,
    /// Limit overrides; `null` returns the limit to the policy's.
    #[serde(default, deserialize_with = "present")]
    pub hwid_limit: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub ip_limit: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub max_uses: Option<Option<i32>>,
    /// A new expiry; `null`: the license no longer expires.
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Replaces the vendor's data.
    pub metadata: Option<Map<String, Value>>,
    /// A new owner (a user of the account); `null`: no owner.
    #[serde(default, deserialize_with = "present")]
    pub owner_id: Option<Option<Uuid>>,
    /// A new commercial type; the result must keep its rules (a trial expires, a consumption
    /// license has `max_uses`).
    pub license_type: Option<LicenseType>,
}

impl LicensePatch {
    /// The state fields ([`state`]) the patch may change.
    fn fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        for (given, names) in [
            (self.license_type.is_some(), &["license_type"][..]),
            (self.note.is_some(), &["note"]),
            (self.level.is_some(), &["level"]),
            (self.policy_id.is_some(), &["policy_id"]),
            (self.owner_id.is_some(), &["owner_id"]),
            (self.hwid_limit.is_some(), &["hwid_limit"]),
            (self.ip_limit.is_some(), &["ip_limit"]),
            (self.max_uses.is_some(), &["max_uses"]),
            (self.expires_at.is_some(), &["expires_at", "duration_secs"]),
            (self.metadata.is_some(), &["metadata"]),
        ] {
            if given {
                f.extend_from_slice(names);
            }
        }
        f
    }
}

pub async fn update(wtx: &mut WriteTx<'_>, id: Uuid, p: &LicensePatch) -> StoreResult<()> {
    if p.level.is_some_and(|l| !(0..=1_000_000).contains(&l)) {
        return Err(StoreError::Invalid(
            "level must be between 0 and 1000000".into(),
        ));
    }
    check_limits(
        p.hwid_limit.flatten(),
        p.ip_limit.flatten(),
        p.max_uses.flatten(),
    )?;
    if p.note.as_deref().is_some_and(|n| n.chars().count() > 1000) {
        return Err(StoreError::Invalid(
            "note must be at most 1000 characters".into(),
        ));
    }
    if let Some(meta) = &p.metadata {
        check_metadata(meta).map_err(StoreError::Invalid)?;
    }
    if let Some(Some(owner)) = p.owner_id {
        owner_in_account(wtx, owner).await?;
    }
    if let Some(policy) = p.policy_id {
        // Locked so that it cannot be deleted before the move commits.
        let same_app = wtx
            .tx()
            .query_opt(
                "SELECT 1 FROM policies p JOIN licenses l ON l.app_id = p.app_id
                  WHERE p.id = $1 AND l.id = $2 AND l.account_id = $3 FOR SHARE OF p",
                &[&policy, &id, &wtx.account_id()],
            )
            .await?;
        if same_app.is_none() {
            get(wtx.tx(), wtx.account_id(), id).await?;
            return Err(StoreError::Invalid(
                "policy_id names no policy of the license's app".into(),
            ));
        }
    }
    write_audited(
        wtx,
        id,
        "UPDATE licenses SET note = coalesce($3, note), level = coalesce($4, level),
                policy_id = coalesce($5, policy_id),
                hwid_limit = CASE WHEN $6 THEN $7 ELSE hwid_limit END,
                ip_limit = CASE WHEN $8 THEN $9 ELSE ip_limit END,
                max_uses = CASE WHEN $10 THEN $11 ELSE max_uses END,
                expires_at = CASE WHEN $12 THEN $13 ELSE expires_at END,
                duration_secs = CASE WHEN $12 THEN NULL ELSE duration_secs END,
                metadata = coalesce($14, metadata),
                owner_id = CASE WHEN $15 THEN $16 ELSE owner_id END,
                license_type = coalesce($17, license_type)
          WHERE id = $1 AND account_id = $2 RETURNING app_id, key",
        &[
            &p.note,
            &p.level,
            &p.policy_id,
            &p.hwid_limit.is_some(),
            &p.hwid_limit.flatten(),
            &p.ip_limit.is_some(),
            &p.ip_limit.flatten(),
            &p.max_uses.is_some(),
            &p.max_uses.flatten(),
            &p.expires_at.is_some(),
            &p.expires_at.flatten(),
            &p.metadata.clone().map(Value::Object),
            &p.owner_id.is_some(),
            &p.owner_id.flatten(),
            &p.license_type.map(LicenseType::as_str),
        ],
        "license.update",
        &p.fields(),
        json!({}),
    )
    .await?;
    if p.license_type.is_some() || p.expires_at.is_some() || p.max_uses.is_some() {
        // Checked on the result, in the transaction: an error rolls the patch back.
        let r = wtx
            .tx()
            .query_one(
                "SELECT license_type, expires_at IS NOT NULL OR duration_secs IS NOT NULL, max_uses
                   FROM licenses WHERE id = $1",
                &[&id],
            )
            .await?;
        check_type(license_type(r.try_get(0)?), r.try_get(1)?, r.try_get(2)?)?;
    }
    Ok(())
}

/// First-use write, atomic across validators: the license row is locked, then the HWID/IP limits
/// are re-checked against the committed rows before inserting. Concurrent activations on any
/// number of validators therefore never exceed a limit. Returns the fresh license (None when it
/// was deleted meanwhile).
/// A license row fresh from [`activate`], and whether this activation was its first use (the
/// one that consumes a one-time key).
#[derive(Debug)]
pub struct Activated {
    pub license: License,
    pub first_use: bool,
}

pub async fn activate(
    wtx: &mut WriteTx<'_>,
    license_id: Uuid,
    act: &Activation,
) -> StoreResult<Option<Activated>> {
    // Statement 1 takes the lock; statement 2 runs on a new snapshot that sees every binding
    // committed before we got it (READ COMMITTED).
    let Some(locked) = wtx
        .tx()
        .query_opt(
            concat!(
                "SELECT l.app_id, l.key, l.status, ",
                limits!(),
                " FROM licenses l JOIN policies p ON p.id = l.policy_id WHERE l.id = $1 FOR UPDATE OF l"
            ),
            &[&license_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let app: Uuid = locked.get("app_id");
    let key: String = locked.get("key");
    let status: LicenseStatus = locked.get("status");
    let mut changed = Vec::new();
    let mut first_use = false;
    if status == LicenseStatus::Active {
        if let Some(hwid) = &act.bind_hwid {
            let n = wtx
                .tx()
                .execute(
                    "INSERT INTO machines (license_id, fingerprint, bound_by)
                     SELECT $1, $2, 'validate'
                      WHERE $3::bigint = 0 OR (SELECT count(*) FROM machines WHERE license_id = $1) < $3::bigint
                     ON CONFLICT DO NOTHING",
                    &[&license_id, hwid, &(locked.get::<_, i32>("hwid_limit") as i64)],
                )
                .await?;
            if n > 0 {
                changed.push(json!({"hwid_bound": hwid}));
            }
        }
        if let Some(ip) = act.record_ip {
            let n = wtx
                .tx()
                .execute(
                    "INSERT INTO license_ips (license_id, ip)
                     SELECT $1, $2
                      WHERE $3::bigint = 0 OR (SELECT count(*) FROM license_ips WHERE license_id = $1) < $3::bigint
                     ON CONFLICT DO NOTHING",
                    &[&license_id, &ip, &(locked.get::<_, i32>("ip_limit") as i64)],
                )
                .await?;
            if n > 0 {
                changed.push(json!({"ip_recorded": ip.to_string()}));
            }
        }
        let n = wtx
            .tx()
            .execute(
                "UPDATE licenses SET used_at = now(),
                        expires_at = CASE WHEN duration_secs IS NOT NULL
                                           AND (expires_at IS NULL OR restart_expiry_on_first_use)
                                          THEN now() + make_interval(secs => duration_secs) ELSE expires_at END
                  WHERE id = $1 AND used_at IS NULL",
                &[&license_id],
            )
            .await?;
        if n > 0 {
            first_use = true;
            changed.push(json!({"first_use": true}));
        }
    }
    if !changed.is_empty() {
        wtx.invalidate(Invalidation::License { app, key });
        wtx.audit(
            "license.activate",
            "license",
            Some(license_id.to_string()),
            json!({"changes": changed}),
        );
    }
    let fresh = wtx
        .tx()
        .query_opt(&format!("{SELECT} WHERE l.id = $1"), &[&license_id])
        .await?
        .map(|r| Activated {
            license: from_row(&r),
            first_use,
        });
    Ok(fresh)
}

/// KeyAuth's view of a key's state, for the dashboard filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Not banned and never redeemed.
    Active,
    /// Redeemed or validated at least once.
    Used,
    Banned,
}

/// Page-number listing of one app's licenses with search over key, note and `used_by`.
pub async fn list_paged<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    search: Option<&str>,
    state: Option<KeyState>,
    page: super::Offset,
) -> StoreResult<(Vec<License>, i64)> {
    let pattern = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(super::contains_pattern);
    let state = state.map(|s| match s {
        KeyState::Active => "active",
        KeyState::Used => "used",
        KeyState::Banned => "banned",
    });
    let filter = "l.app_id = $1 AND l.account_id = $2
        AND ($3::text IS NULL OR l.key ILIKE $3 OR l.note ILIKE $3 OR l.used_by ILIKE $3)
        AND ($4::text IS NULL
             OR ($4 = 'banned' AND l.status = 'banned')
             OR ($4 = 'used' AND l.status = 'active' AND (l.used_at IS NOT NULL OR l.uses > 0))
             OR ($4 = 'active' AND l.status = 'active' AND l.used_at IS NULL AND l.uses = 0))";
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM licenses l WHERE {filter}"),
            &[&app_id, &account_id, &pattern, &state],
        )
        .await?
        .get(0);
    let items = c
        .query(
            &format!(
                "{SELECT} WHERE {filter} ORDER BY l.created_at DESC, l.id DESC LIMIT $5 OFFSET $6"
            ),
            &[
                &app_id,
                &account_id,
                &pattern,
                &state,
                &page.limit,
                &page.offset,
            ],
        )
        .await?
        .iter()
        .map(from_row)
        .collect();
    Ok((items, total))
}

/// One of the caller's licenses by key (the seller API addresses keys so).
pub async fn get_by_key<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    key: &str,
) -> StoreResult<License> {
    c.query_opt(
        &format!("{SELECT} WHERE l.app_id = $1 AND l.account_id = $2 AND l.key = $3"),
        &[&app_id, &account_id, &key.trim()],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("license"))
}

/// Which licenses a bulk delete removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bulk {
    All,
    Unused,
    Used,
}

/// Deletes many of an app's licenses; every deleted key is invalidated by name.
pub async fn delete_many(wtx: &mut WriteTx<'_>, app_id: Uuid, which: Bulk) -> StoreResult<u64> {
    super::apps::owned(wtx, app_id).await?;
    let condition = match which {
        Bulk::All => "true",
        Bulk::Unused => "status = 'active' AND used_at IS NULL AND uses = 0",
        Bulk::Used => "(used_at IS NOT NULL OR uses > 0)",
    };
    let keys: Vec<String> = wtx
        .tx()
        .query(
            &format!("DELETE FROM licenses WHERE app_id = $1 AND account_id = $2 AND {condition} RETURNING key"),
            &[&app_id, &wtx.account_id()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let n = keys.len() as u64;
    if n > 1000 {
        // Thousands of payloads would cost more than the validators re-reading this app.
        wtx.invalidate(Invalidation::App { app: app_id });
    } else {
        for key in keys {
            wtx.invalidate(Invalidation::License { app: app_id, key });
        }
    }
    let action = match which {
        Bulk::All => "license.delete_all",
        Bulk::Unused => "license.delete_unused",
        Bulk::Used => "license.delete_used",
    };
    wtx.audit(
        action,
        "app",
        Some(app_id.to_string()),
        json!({"deleted": n}),
    );
    Ok(n)
}

/// Redeems a key for an end user (KeyAuth `register`, `upgrade`, `license`): counts a use when
/// one is left, records who used it and starts an expiry-on-first-use. `false` when the key is
/// banned or used up (checked under the row's lock, so concurrent redeems cannot overrun).
pub async fn redeem(wtx: &mut WriteTx<'_>, license_id: Uuid, username: &str) -> StoreResult<bool> {
    let row = wtx
        .tx()
        .query_opt(
            "UPDATE licenses SET uses = uses + 1, used_by = $2, used_at = coalesce(used_at, now()),
                    expires_at = CASE WHEN expires_at IS NULL AND duration_secs IS NOT NULL
                                      THEN now() + make_interval(secs => duration_secs) ELSE expires_at END
              WHERE id = $1 AND status = 'active'
                AND uses < coalesce(max_uses, (SELECT p.max_uses FROM policies p WHERE p.id = policy_id), 2147483647)
              RETURNING app_id, key",
            &[&license_id, &username],
        )
        .await?;
    let Some(row) = row else { return Ok(false) };
    let (app, key): (Uuid, String) = (row.get(0), row.get(1));
    wtx.invalidate(Invalidation::License {
        app,
        key: key.clone(),
    });
    wtx.audit(
        "license.redeem",
        "license",
        Some(license_id.to_string()),
        json!({"key": key, "username": username}),
    );
    Ok(true)
}

/// Load-test seeding: `count` licenses `<prefix>-<10-digit number>` (numbered from `first`), no
/// limits, never expiring, inserted by the database itself in one statement, so millions take
/// seconds; `activated` marks them used already (a fleet's steady state: validating them is a
/// read, not a first-use write). The keys are predictable: for test tenants only.
pub async fn seed_sequential(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    prefix: &str,
    (first, count): (i64, i64),
    activated: bool,
) -> StoreResult<u64> {
    let invalid = |m: &str| Err(StoreError::Invalid(m.to_string()));
    if !(1..=10_000_000).contains(&count) || first < 0 {
        return invalid("count must be between 1 and 10000000");
    }
    if prefix.is_empty() || prefix.len() > 32 || !prefix.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return invalid("prefix must be 1 to 32 letters or digits");
    }
    super::apps::owned(wtx, app_id).await?;
    let n = wtx
        .tx()
        .execute(
            "INSERT INTO licenses (id, account_id, app_id, policy_id, key, hwid_limit, ip_limit, note, used_at)
             SELECT gen_random_uuid(), $2, $1, p.id, $3 || '-' || lpad(i::text, 10, '0'), 0, 0, 'load-test seed',
                    CASE WHEN $6 THEN now() END
               FROM policies p, generate_series($4::bigint, $4::bigint + $5::bigint - 1) AS i
              WHERE p.app_id = $1 AND p.is_default
             ON CONFLICT DO NOTHING",
            &[&app_id, &wtx.account_id(), &prefix, &first, &count, &activated],
        )
        .await?;
    // Validators may hold "no such key" entries for these keys.
    wtx.invalidate(Invalidation::App { app: app_id });
    wtx.audit(
        "license.seed",
        "app",
        Some(app_id.to_string()),
        json!({"prefix": prefix, "first": first, "count": count, "inserted": n}),
    );
    Ok(n)
}

/// Renews a license by its policy's duration (Keygen's `renew`), from its expiry or from now as
/// the policy's renewal basis says. A license whose policy has no duration cannot be renewed.
pub async fn renew(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "SELECT p.duration_secs, p.renewal_basis FROM licenses l JOIN policies p ON p.id = l.policy_id
              WHERE l.id = $1 AND l.account_id = $2",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("license"))?;
    let duration: Option<i64> = row.try_get(0)?;
    let basis: String = row.try_get(1)?;
    let Some(duration) = duration else {
        return Err(StoreError::Invalid(
            "the license's policy has no duration, so there is nothing to renew by".into(),
        ));
    };
    // from_expiry: the current expiry (now when none); from_now: now; from_now_if_expired:
    // now for an expired license, else its expiry.
    mutate_one(
        wtx,
        id,
        "UPDATE licenses SET expires_at = CASE
                WHEN $4 = 'from_now' OR expires_at IS NULL THEN now()
                WHEN $4 = 'from_now_if_expired' THEN greatest(expires_at, now())
                ELSE expires_at END + make_interval(secs => $3),
             duration_secs = NULL
          WHERE id = $1 AND account_id = $2 RETURNING app_id, key",
        &[&(duration as f64), &basis],
        "license.renew",
        json!({"seconds": duration, "basis": basis}),
    )
    .await
}

/// Records a check-in now (the policy must require check-ins).
pub async fn check_in(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let required: Option<bool> = wtx
        .tx()
        .query_opt(
            "SELECT p.require_check_in FROM licenses l JOIN policies p ON p.id = l.policy_id
              WHERE l.id = $1 AND l.account_id = $2",
            &[&id, &wtx.account_id()],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    match required {
        None => return Err(StoreError::NotFound("license")),
        Some(false) => {
            return Err(StoreError::Invalid(
                "the license's policy does not require check-ins".into(),
            ))
        }
        Some(true) => {}
    }
    mutate_one(
        wtx,
        id,
        "UPDATE licenses SET last_check_in_at = now() WHERE id = $1 AND account_id = $2 RETURNING app_id, key",
        &[],
        "license.check_in",
        json!({}),
    )
    .await
}

/// A change of a license's usage counter (Keygen's `increment-usage` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageChange {
    Increment(i32),
    Decrement(i32),
    Reset,
}

/// Changes the usage counter in one statement, so concurrent increments never pass the
/// license's (or its policy's) `max_uses`: `LimitReached` when they would, `Invalid` below 0.
pub async fn change_uses(wtx: &mut WriteTx<'_>, id: Uuid, change: UsageChange) -> StoreResult<()> {
    let (delta, reset) = match change {
        UsageChange::Increment(n) | UsageChange::Decrement(n) if !(1..=1_000_000).contains(&n) => {
            return Err(StoreError::Invalid(
                "the amount must be between 1 and 1000000".into(),
            ))
        }
        UsageChange::Increment(n) => (n, false),
        UsageChange::Decrement(n) => (-n, false),
        UsageChange::Reset => (0, true),
    };
    let changed = wtx
        .tx()
        .query_opt(
            "UPDATE licenses l SET uses = CASE WHEN $4 THEN 0 ELSE l.uses + $3 END
               FROM policies p
              WHERE l.id = $1 AND l.account_id = $2 AND p.id = l.policy_id
                AND ($4 OR (l.uses + $3 >= 0
                     AND (coalesce(l.max_uses, p.max_uses) IS NULL OR l.uses + $3 <= coalesce(l.max_uses, p.max_uses))))
          RETURNING l.app_id, l.key, l.uses",
            &[&id, &wtx.account_id(), &delta, &reset],
        )
        .await?;
    let Some(row) = changed else {
        let current = get(wtx.tx(), wtx.account_id(), id).await?;
        return Err(if delta < 0 {
            StoreError::Invalid(format!("usage cannot go below 0 (it is {})", current.uses))
        } else {
            StoreError::LimitReached(format!(
                "usage exceeds the maximum allowed for the license ({})",
                current.max_uses.unwrap_or_default()
            ))
        });
    };
    let app: Uuid = row.try_get(0)?;
    let key: String = row.try_get(1)?;
    let uses: i32 = row.try_get(2)?;
    wtx.invalidate(Invalidation::License {
        app,
        key: key.clone(),
    });
    wtx.audit(
        "license.usage",
        "license",
        Some(id.to_string()),
        json!({"key": key, "change": format!("{change:?}"), "uses": uses}),
    );
    Ok(())
}

/// Starts a license's expiry now (its duration from now), when it has not started yet: Keygen's
/// first validation, activation or download. `false` when it had started already.
pub async fn start_expiry(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<bool> {
    let row = wtx
        .tx()
        .query_opt(
            "UPDATE licenses SET expires_at = now() + make_interval(secs => duration_secs),
                    duration_secs = NULL, used_at = coalesce(used_at, now())
              WHERE id = $1 AND account_id = $2 AND expires_at IS NULL AND duration_secs IS NOT NULL
          RETURNING app_id, key",
            &[&id, &wtx.account_id()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let key: String = row.try_get(1)?;
    wtx.invalidate(Invalidation::License {
        app: row.try_get(0)?,
        key: key.clone(),
    });
    wtx.audit(
        "license.expiry_started",
        "license",
        Some(id.to_string()),
        json!({"key": key}),
    );
    Ok(true)
}

/// Records a check-out now: of the license, or of one of its machines (which is also the
/// license's latest).
pub async fn record_check_out(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    machine: Option<Uuid>,
) -> StoreResult<()> {
    if let Some(m) = machine {
        wtx.tx()
            .execute(
                "UPDATE machines SET last_check_out_at = now() WHERE id = $1 AND license_id = $2",
                &[&m, &id],
            )
            .await?;
    }
    mutate_one(
        wtx,
        id,
        "UPDATE licenses SET last_check_out_at = now() WHERE id = $1 AND account_id = $2 RETURNING app_id, key",
        &[],
        "license.check_out",
        json!({"machine": machine}),
    )
    .await
}

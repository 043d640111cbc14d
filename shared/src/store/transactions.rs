//! Purchases a vendor records (CyberLicense's transactions): who bought (a customer, i.e. an
//! account user), what (a license, a product), the amount in the currency's minor unit, a status
//! and the store's reference. Validators never read them, so their writes are audited but
//! invalidate nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::model::present;
use crate::write::WriteTx;

/// Rows an export returns at most (see [`export`]).
pub const MAX_EXPORT_ROWS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    Pending,
    Processing,
    Completed,
    Failed,
    Refunded,
    Cancelled,
}

impl TransactionStatus {
    pub const ALL: [TransactionStatus; 6] = [
        TransactionStatus::Pending,
        TransactionStatus::Processing,
        TransactionStatus::Completed,
        TransactionStatus::Failed,
        TransactionStatus::Refunded,
        TransactionStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransactionStatus::Pending => "pending",
            TransactionStatus::Processing => "processing",
            TransactionStatus::Completed => "completed",
            TransactionStatus::Failed => "failed",
            TransactionStatus::Refunded => "refunded",
            TransactionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<TransactionStatus> {
        TransactionStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transaction {
    pub id: Uuid,
    /// The customer who paid (an account user); `None` when unknown or deleted since.
    pub customer_id: Option<Uuid>,
    /// The customer's e-mail, read with the row (for lists and exports).
    pub customer_email: Option<String>,
    pub license_id: Option<Uuid>,
    pub app_id: Option<Uuid>,
    pub status: TransactionStatus,
    /// In the currency's minor unit (cents).
    pub amount_minor: i64,
    /// ISO 4217, upper-case.
    pub currency: String,
    /// Where it was paid (a store, a marketplace).
    pub provider: Option<String>,
    /// The provider's order or payment id.
    pub reference: Option<String>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str =
    "SELECT t.id, t.customer_id, u.email AS customer_email, t.license_id, t.app_id,
       t.status, t.amount_minor, t.currency, t.provider, t.reference, t.note, t.created_at,
       t.updated_at
  FROM transactions t LEFT JOIN app_users u ON u.id = t.customer_id";

fn from_row(r: &Row) -> StoreResult<Transaction> {
    let status: String = r.try_get("status")?;
    Ok(Transaction {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        customer_email: r.try_get("customer_email")?,
        license_id: r.try_get("license_id")?,
        app_id: r.try_get("app_id")?,
        // The column's CHECK admits only the six names.
        status: TransactionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("transaction status {status}")))?,
        amount_minor: r.try_get("amount_minor")?,
        currency: r.try_get("currency")?,
        provider: r.try_get("provider")?,
        reference: r.try_get("reference")?,
        note: r.try_get("note")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// A new transaction.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTransaction {
    pub customer_id: Option<Uuid>,
    pub license_id: Option<Uuid>,
    pub app_id: Option<Uuid>,
    /// Default `pending`.
    pub status: Option<TransactionStatus>,
    pub amount_minor: i64,
    pub currency: String,
    pub provider: Option<String>,
    pub reference: Option<String>,
    pub note: Option<String>,
    /// When the purchase happened (a sale recorded later); default now.
    pub created_at: Option<DateTime<Utc>>,
}

/// Changes to a transaction; absent fields keep their value, `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionPatch {
    #[serde(default, deserialize_with = "present")]
    pub customer_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "present")]
    pub license_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "present")]
    pub app_id: Option<Option<Uuid>>,
    pub status: Option<TransactionStatus>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub provider: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub reference: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub note: Option<Option<String>>,
}

/// Which transactions a list or an export returns; all filters combine.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionFilter {
    pub customer_id: Option<Uuid>,
    pub status: Option<TransactionStatus>,
    pub license_id: Option<Uuid>,
    pub app_id: Option<Uuid>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    /// Keyset cursor returned as `next_cursor` by the previous page.
    pub cursor: Option<String>,
}

pub struct Page {
    pub items: Vec<Transaction>,
    pub next_cursor: Option<String>,
}

/// The fields every write stores, checked and normalised.
struct Fields {
    customer_id: Option<Uuid>,
    license_id: Option<Uuid>,
    app_id: Option<Uuid>,
    status: TransactionStatus,
    amount_minor: i64,
    currency: String,
    provider: Option<String>,
    reference: Option<String>,
    note: Option<String>,
}

fn invalid<T>(m: &str) -> StoreResult<T> {
    Err(StoreError::Invalid(m.into()))
}

/// An optional text: trimmed, empty as absent, at most `max` characters (the column's CHECK).
fn text(v: Option<String>, name: &str, max: usize) -> StoreResult<Option<String>> {
    let Some(v) = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(StoreError::Invalid(format!(
            "{name} must be at most {max} printable characters"
        )));
    }
    Ok(Some(v))
}

/// ISO 4217: three letters, stored upper-case.
fn currency(c: &str) -> StoreResult<String> {
    let c = c.trim();
    if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
        return invalid("currency must be a three-letter ISO 4217 code such as USD");
    }
    Ok(c.to_ascii_uppercase())
}

fn amount(a: i64) -> StoreResult<i64> {
    if a < 0 {
        return invalid(
            "amount_minor must be at least 0 (the amount in the currency's minor unit)",
        );
    }
    Ok(a)
}

/// Refuses references to another tenant's (or no) customer, license or product, and a license
/// of another product than the one named. The rows are locked against deletion until commit.
async fn check_references(wtx: &WriteTx<'_>, f: &Fields) -> StoreResult<()> {
    let account = wtx.account_id();
    if let Some(customer) = f.customer_id {
        wtx.tx()
            .query_opt(
                "SELECT 1 FROM app_users WHERE id = $1 AND account_id = $2 AND app_id IS NULL
                 FOR KEY SHARE",
                &[&customer, &account],
            )
            .await?
            .ok_or_else(|| {
                StoreError::Invalid("customer_id names no customer of this account".into())
            })?;
    }
    if let Some(license) = f.license_id {
        let row = wtx
            .tx()
            .query_opt(
                "SELECT app_id FROM licenses WHERE id = $1 AND account_id = $2 FOR KEY SHARE",
                &[&license, &account],
            )
            .await?
            .ok_or_else(|| {
                StoreError::Invalid("license_id names no license of this account".into())
            })?;
        let license_app: Uuid = row.try_get(0)?;
        if f.app_id.is_some_and(|app| app != license_app) {
            return invalid("license_id names a license of another app than app_id");
        }
    }
    if let Some(app) = f.app_id {
        wtx.tx()
            .query_opt(
                "SELECT 1 FROM apps WHERE id = $1 AND account_id = $2 FOR KEY SHARE",
                &[&app, &account],
            )
            .await?
            .ok_or_else(|| StoreError::Invalid("app_id names no app of this account".into()))?;
    }
    Ok(())
}

pub async fn create(wtx: &mut WriteTx<'_>, t: &NewTransaction) -> StoreResult<Transaction> {
    let f = Fields {
        customer_id: t.customer_id,
        license_id: t.license_id,
        app_id: t.app_id,
        status: t.status.unwrap_or(TransactionStatus::Pending),
        amount_minor: amount(t.amount_minor)?,
        currency: currency(&t.currency)?,
        provider: text(t.provider.clone(), "provider", 64)?,
        reference: text(t.reference.clone(), "reference", 200)?,
        note: text(t.note.clone(), "note", 2000)?,
    };
    check_references(wtx, &f).await?;
    let id = Uuid::new_v4();
    wtx.tx()
        .execute(
            "INSERT INTO transactions (id, account_id, customer_id, license_id, app_id, status,
                                       amount_minor, currency, provider, reference, note,
                                       created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                     coalesce($12, now()), now())",
            &[
                &id,
                &wtx.account_id(),
                &f.customer_id,
                &f.license_id,
                &f.app_id,
                &f.status.as_str(),
                &f.amount_minor,
                &f.currency,
                &f.provider,
                &f.reference,
                &f.note,
                &t.created_at,
            ],
        )
        .await?;
    let created = get(wtx.tx(), wtx.account_id(), id).await?;
    wtx.audit(
        "transaction.create",
        "transaction",
        Some(id.to_string()),
        json!({"before": null, "after": created}),
    );
    Ok(created)
}

pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: Uuid,
) -> StoreResult<Transaction> {
    let row = c
        .query_opt(
            &format!("{SELECT} WHERE t.id = $1 AND t.account_id = $2"),
            &[&id, &account_id],
        )
        .await?
        .ok_or(StoreError::NotFound("transaction"))?;
    from_row(&row)
}

/// The filtered transactions newest first, `limit` of them after the cursor's position.
async fn query<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    f: &TransactionFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> StoreResult<Vec<Transaction>> {
    let (after_at, after_id) = after.unzip();
    c.query(
        &format!(
            "{SELECT} WHERE t.account_id = $1
               AND ($2::uuid IS NULL OR t.customer_id = $2)
               AND ($3::text IS NULL OR t.status = $3)
               AND ($4::uuid IS NULL OR t.license_id = $4)
               AND ($5::uuid IS NULL OR t.app_id = $5)
               AND ($6::timestamptz IS NULL OR t.created_at >= $6)
               AND ($7::timestamptz IS NULL OR t.created_at < $7)
               AND ($8::timestamptz IS NULL OR (t.created_at, t.id) < ($8, $9::uuid))
             ORDER BY t.created_at DESC, t.id DESC LIMIT $10"
        ),
        &[
            &account_id,
            &f.customer_id,
            &f.status.map(TransactionStatus::as_str),
            &f.license_id,
            &f.app_id,
            &f.since,
            &f.until,
            &after_at,
            &after_id,
            &limit,
        ],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// A page of the filtered transactions, newest first (default 50, at most 500 a page).
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    f: &TransactionFilter,
) -> StoreResult<Page> {
    let limit = super::page_size(f.limit, 50, 500);
    let after = f.cursor.as_deref().map(super::decode_cursor).transpose()?;
    let mut items = query(c, account_id, f, after, limit + 1).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|t| super::encode_cursor(t.created_at, t.id))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Every filtered transaction newest first, up to [`MAX_EXPORT_ROWS`] (`limit` and `cursor` are
/// ignored); the flag says whether more matched.
pub async fn export<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    f: &TransactionFilter,
) -> StoreResult<(Vec<Transaction>, bool)> {
    let mut items = query(c, account_id, f, None, MAX_EXPORT_ROWS as i64 + 1).await?;
    let truncated = items.len() > MAX_EXPORT_ROWS;
    items.truncate(MAX_EXPORT_ROWS);
    Ok((items, truncated))
}

pub async fn update(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    p: &TransactionPatch,
) -> StoreResult<Transaction> {
    let account = wtx.account_id();
    // Locked: the before of the audit entry is what this write replaces.
    wtx.tx()
        .query_opt(
            "SELECT 1 FROM transactions WHERE id = $1 AND account_id = $2 FOR UPDATE",
            &[&id, &account],
        )
        .await?
        .ok_or(StoreError::NotFound("transaction"))?;
    let before = get(wtx.tx(), account, id).await?;
    let pick = |patch: &Option<Option<String>>, old: &Option<String>| match patch {
        Some(v) => v.clone(),
        None => old.clone(),
    };
    let f = Fields {
        customer_id: p.customer_id.unwrap_or(before.customer_id),
        license_id: p.license_id.unwrap_or(before.license_id),
        app_id: p.app_id.unwrap_or(before.app_id),
        status: p.status.unwrap_or(before.status),
        amount_minor: amount(p.amount_minor.unwrap_or(before.amount_minor))?,
        currency: currency(p.currency.as_deref().unwrap_or(&before.currency))?,
        provider: text(pick(&p.provider, &before.provider), "provider", 64)?,
        reference: text(pick(&p.reference, &before.reference), "reference", 200)?,
        note: text(pick(&p.note, &before.note), "note", 2000)?,
    };
    check_references(wtx, &f).await?;
    wtx.tx()
        .execute(
            "UPDATE transactions SET customer_id = $3, license_id = $4, app_id = $5, status = $6,
                    amount_minor = $7, currency = $8, provider = $9, reference = $10, note = $11,
                    updated_at = now()
              WHERE id = $1 AND account_id = $2",
            &[
                &id,
                &account,
                &f.customer_id,
                &f.license_id,
                &f.app_id,
                &f.status.as_str(),
                &f.amount_minor,
                &f.currency,
                &f.provider,
                &f.reference,
                &f.note,
            ],
        )
        .await?;
    let after = get(wtx.tx(), account, id).await?;
    wtx.audit(
        "transaction.update",
        "transaction",
        Some(id.to_string()),
        json!({"before": before, "after": after}),
    );
    Ok(after)
}

pub async fn delete(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let account = wtx.account_id();
    let before = get(wtx.tx(), account, id).await?;
    let n = wtx
        .tx()
        .execute(
            "DELETE FROM transactions WHERE id = $1 AND account_id = $2",
            &[&id, &account],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("transaction"));
    }
    wtx.audit(
        "transaction.delete",
        "transaction",
        Some(id.to_string()),
        json!({"before": before, "after": null}),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_is_three_letters_upper_cased() {
        assert_eq!(currency(" usd ").unwrap(), "USD");
        assert_eq!(currency("EUR").unwrap(), "EUR");
        for bad in ["", "US", "USDT", "U5D", "€€€"] {
            assert!(currency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn texts_are_trimmed_bounded_and_empty_is_absent() {
        assert_eq!(text(Some("  ".into()), "note", 5).unwrap(), None);
        assert_eq!(
            text(Some(" ab ".into()), "note", 5).unwrap().as_deref(),
            Some("ab")
        );
        assert!(text(Some("abcdef".into()), "note", 5).is_err());
        assert!(text(Some("a\u{7}b".into()), "note", 5).is_err());
        assert!(amount(-1).is_err());
        assert_eq!(amount(0).unwrap(), 0);
    }

    #[test]
    fn statuses_round_trip() {
        for s in TransactionStatus::ALL {
            assert_eq!(TransactionStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TransactionStatus::parse("done"), None);
    }
}

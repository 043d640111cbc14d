//! Checkpoint providers that hand out keys (Junkie's providers): a name, whether it is active,
//! the default validity of the keys it creates, and the link end users open to get one.

use serde::Serialize;
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::write::WriteTx;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyProvider {
    pub id: i64,
    pub name: String,
    pub is_active: bool,
    /// Default validity of its keys; `None`: forever.
    pub key_valid_minutes: Option<i32>,
    pub link_url: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str = "id, name, is_active, key_valid_minutes, link_url, created_at";

fn from_row(r: &Row) -> KeyProvider {
    KeyProvider {
        id: r.get("id"),
        name: r.get("name"),
        is_active: r.get("is_active"),
        key_valid_minutes: r.get("key_valid_minutes"),
        link_url: r.get("link_url"),
        created_at: r.get("created_at"),
    }
}

/// A new provider's fields.
#[derive(Debug, Clone, Default)]
pub struct NewProvider {
    pub name: String,
    pub is_active: bool,
    pub key_valid_minutes: Option<i32>,
    pub link_url: Option<String>,
}

fn check(p: &NewProvider) -> StoreResult<()> {
    let invalid = |m: &str| Err(StoreError::Invalid(m.into()));
    let name = p.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return invalid("name must be 1 to 100 characters");
    }
    if p.key_valid_minutes.is_some_and(|m| m <= 0) {
        return invalid("key_valid_minutes must be positive (null: forever)");
    }
    if let Some(url) = &p.link_url {
        if url.len() > 2000 || !(url.starts_with("https://") || url.starts_with("http://")) {
            return invalid("link_url must be an http(s) URL of at most 2000 characters");
        }
    }
    Ok(())
}

pub async fn create(wtx: &mut WriteTx<'_>, p: &NewProvider) -> StoreResult<KeyProvider> {
    check(p)?;
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO key_providers (account_id, name, is_active, key_valid_minutes, link_url)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[
                &wtx.account_id(),
                &p.name.trim(),
                &p.is_active,
                &p.key_valid_minutes,
                &p.link_url,
            ],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique("a provider with this name exists"))?;
    let provider = from_row(&row);
    wtx.audit(
        "provider.create",
        "provider",
        Some(provider.id.to_string()),
        json!({"name": provider.name, "key_valid_minutes": provider.key_valid_minutes}),
    );
    Ok(provider)
}

pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
) -> StoreResult<Vec<KeyProvider>> {
    Ok(c.query(
        &format!("SELECT {COLUMNS} FROM key_providers WHERE account_id = $1 ORDER BY id"),
        &[&account_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect())
}

pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: i64,
) -> StoreResult<KeyProvider> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM key_providers WHERE account_id = $1 AND id = $2"),
        &[&account_id, &id],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("provider"))
}

/// Deletes a provider; its keys stay, no longer attributed to it.
pub async fn delete(wtx: &mut WriteTx<'_>, id: i64) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM key_providers WHERE account_id = $1 AND id = $2 RETURNING name",
            &[&wtx.account_id(), &id],
        )
        .await?
        .ok_or(StoreError::NotFound("provider"))?;
    let name: String = row.get(0);
    wtx.audit(
        "provider.delete",
        "provider",
        Some(id.to_string()),
        json!({"name": name}),
    );
    Ok(())
}

/// The link of an account's active provider named by integer id or name, given the account's
/// integer id (Junkie's `getKeyOpen`, which carries no credential). `None`: no such provider or
/// no link set.
pub async fn link_for<C: GenericClient + Sync>(
    c: &C,
    account_num_id: i64,
    provider: &str,
) -> StoreResult<Option<String>> {
    let num: Option<i64> = provider.parse().ok();
    Ok(c.query_opt(
        "SELECT p.link_url FROM key_providers p JOIN accounts a ON a.id = p.account_id
              WHERE a.num_id = $1 AND p.is_active AND (p.id = $2 OR p.name = $3)
              ORDER BY (p.id = $2) DESC NULLS LAST LIMIT 1",
        &[&account_num_id, &num, &provider],
    )
    .await?
    .and_then(|r| r.get::<_, Option<String>>(0)))
}

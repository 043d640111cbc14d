//! Keygen's key pool: keys made ahead of time for a policy (imported from another system, printed
//! on boxes). A license of a policy with `use_pool` takes the oldest pooled key when it is made
//! without one; each key is taken once, however many licenses are made at the same time.

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::keygen::MAX_KEY_LEN;
use crate::write::WriteTx;

#[derive(Debug, Clone)]
pub struct PooledKey {
    pub id: Uuid,
    pub account_id: Uuid,
    pub policy_id: Uuid,
    pub app_id: Uuid,
    pub key: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "k.id, k.account_id, k.policy_id, p.app_id, k.key, k.created_at, k.updated_at";
const FROM: &str = "license_key_pool k JOIN policies p ON p.id = k.policy_id";
const KEY_TAKEN: &str = "this key is already in the policy's pool";

fn from_row(r: &Row) -> StoreResult<PooledKey> {
    Ok(PooledKey {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        policy_id: r.try_get("policy_id")?,
        app_id: r.try_get("app_id")?,
        key: r.try_get("key")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn check_key(key: &str) -> StoreResult<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::Invalid(
            "key must be 1 to 128 printable ASCII characters without spaces".into(),
        ));
    }
    Ok(())
}

/// Adds a key to one of the caller's policies' pool.
pub async fn add(wtx: &mut WriteTx<'_>, policy: Uuid, key: &str) -> StoreResult<PooledKey> {
    check_key(key)?;
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "WITH k AS (
                   INSERT INTO license_key_pool (id, account_id, policy_id, key)
                   SELECT $1, $2, id, $4 FROM policies WHERE id = $3 AND account_id = $2
                   RETURNING *)
                 SELECT {COLUMNS} FROM k JOIN policies p ON p.id = k.policy_id"
            ),
            &[&Uuid::new_v4(), &wtx.account_id(), &policy, &key],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique(KEY_TAKEN))?
        .ok_or(StoreError::NotFound("policy"))?;
    let pooled = from_row(&row)?;
    wtx.audit(
        "key_pool.add",
        "policy",
        Some(policy.to_string()),
        json!({"key_id": pooled.id}),
    );
    Ok(pooled)
}

/// A page of the caller's pooled keys (of one app or policy), newest first, with the total.
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app: Option<Uuid>,
    policy: Option<Uuid>,
    page: super::Offset,
) -> StoreResult<(Vec<PooledKey>, i64)> {
    let filter = "k.account_id = $1 AND ($2::uuid IS NULL OR p.app_id = $2)
                  AND ($3::uuid IS NULL OR k.policy_id = $3)";
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM {FROM} WHERE {filter}"),
            &[&account_id, &app, &policy],
        )
        .await?
        .try_get(0)?;
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM {FROM} WHERE {filter}
                 ORDER BY k.created_at DESC, k.id DESC LIMIT $4 OFFSET $5"
            ),
            &[&account_id, &app, &policy, &page.limit, &page.offset],
        )
        .await?;
    let items = rows.iter().map(from_row).collect::<StoreResult<_>>()?;
    Ok((items, total))
}

pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: Uuid,
) -> StoreResult<PooledKey> {
    let row = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM {FROM} WHERE k.id = $1 AND k.account_id = $2"),
            &[&id, &account_id],
        )
        .await?
        .ok_or(StoreError::NotFound("key"))?;
    from_row(&row)
}

pub async fn update(wtx: &mut WriteTx<'_>, id: Uuid, key: &str) -> StoreResult<PooledKey> {
    check_key(key)?;
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "WITH k AS (UPDATE license_key_pool SET key = $3, updated_at = now()
                             WHERE id = $1 AND account_id = $2 RETURNING *)
                 SELECT {COLUMNS} FROM k JOIN policies p ON p.id = k.policy_id"
            ),
            &[&id, &wtx.account_id(), &key],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique(KEY_TAKEN))?
        .ok_or(StoreError::NotFound("key"))?;
    wtx.audit("key_pool.update", "key", Some(id.to_string()), json!({}));
    from_row(&row)
}

pub async fn delete(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let n = wtx
        .tx()
        .execute(
            "DELETE FROM license_key_pool WHERE id = $1 AND account_id = $2",
            &[&id, &wtx.account_id()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("key"));
    }
    wtx.audit("key_pool.delete", "key", Some(id.to_string()), json!({}));
    Ok(())
}

/// Takes the oldest key of a policy's pool (`None` when it is empty). Concurrent takers skip a
/// key another one holds, so no key is taken twice.
pub async fn take(wtx: &mut WriteTx<'_>, policy: Uuid) -> StoreResult<Option<PooledKey>> {
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "WITH k AS (
                   DELETE FROM license_key_pool WHERE id = (
                     SELECT id FROM license_key_pool WHERE policy_id = $1 AND account_id = $2
                      ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
                   RETURNING *)
                 SELECT {COLUMNS} FROM k JOIN policies p ON p.id = k.policy_id"
            ),
            &[&policy, &wtx.account_id()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let pooled = from_row(&row)?;
    wtx.audit(
        "key_pool.take",
        "policy",
        Some(policy.to_string()),
        json!({"key_id": pooled.id}),
    );
    Ok(Some(pooled))
}

//! Logs of client applications (KeyAuth `log`) and client-API events, per app.

use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{contains_pattern, Offset};
use crate::error::{StoreError, StoreResult};
use crate::model::ClientLog;
use crate::write::WriteTx;

fn from_row(r: &Row) -> ClientLog {
    ClientLog {
        id: r.get("id"),
        app_id: r.get("app_id"),
        action: r.get("action"),
        username: r.get("username"),
        ip: r.get("ip"),
        data: r.get("data"),
        created_at: r.get("created_at"),
    }
}

pub async fn append<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    action: &str,
    username: Option<&str>,
    ip: Option<&str>,
    data: Option<&str>,
) -> StoreResult<()> {
    c.execute(
        "INSERT INTO client_logs (account_id, app_id, action, username, ip, data) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&account_id, &app_id, &action, &username, &ip, &data],
    )
    .await?;
    Ok(())
}

pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    action: Option<&str>,
    search: Option<&str>,
    page: Offset,
) -> StoreResult<(Vec<ClientLog>, i64)> {
    let pattern = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(contains_pattern);
    let action = action.map(str::trim).filter(|s| !s.is_empty());
    let filter = "app_id = $1 AND account_id = $2 AND ($3::text IS NULL OR action = $3)
        AND ($4::text IS NULL OR username ILIKE $4 OR ip ILIKE $4 OR data ILIKE $4)";
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM client_logs WHERE {filter}"),
            &[&app_id, &account_id, &action, &pattern],
        )
        .await?
        .get(0);
    let items = c
        .query(
            &format!("SELECT id, app_id, action, username, ip, data, created_at FROM client_logs WHERE {filter}
                      ORDER BY id DESC LIMIT $5 OFFSET $6"),
            &[&app_id, &account_id, &action, &pattern, &page.limit, &page.offset],
        )
        .await?
        .iter()
        .map(from_row)
        .collect();
    Ok((items, total))
}

pub struct Page {
    pub items: Vec<ClientLog>,
    /// The id of the last entry shown: the next page starts below it.
    pub next_cursor: Option<String>,
}

/// An app's logs, newest first, in keyset pages by id (the native API's list).
pub async fn page<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    action: Option<&str>,
    search: Option<&str>,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> StoreResult<Page> {
    let limit = super::page_size(limit, 100, 1000);
    let before: Option<i64> = cursor
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| StoreError::Invalid("cursor is malformed".into()))
        })
        .transpose()?;
    let pattern = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(contains_pattern);
    let action = action.map(str::trim).filter(|s| !s.is_empty());
    let mut items: Vec<ClientLog> = c
        .query(
            "SELECT id, app_id, action, username, ip, data, created_at FROM client_logs
              WHERE app_id = $1 AND account_id = $2 AND ($3::text IS NULL OR action = $3)
                AND ($4::text IS NULL OR username ILIKE $4 OR ip ILIKE $4 OR data ILIKE $4)
                AND ($5::bigint IS NULL OR id < $5)
              ORDER BY id DESC LIMIT $6",
            &[
                &app_id,
                &account_id,
                &action,
                &pattern,
                &before,
                &(limit + 1),
            ],
        )
        .await?
        .iter()
        .map(from_row)
        .collect();
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|l| l.id.to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

pub async fn clear(wtx: &mut WriteTx<'_>, app_id: Uuid) -> StoreResult<u64> {
    super::apps::owned(wtx, app_id).await?;
    let n = wtx
        .tx()
        .execute(
            "DELETE FROM client_logs WHERE app_id = $1 AND account_id = $2",
            &[&app_id, &wtx.account_id()],
        )
        .await?;
    wtx.audit(
        "logs.clear",
        "app",
        Some(app_id.to_string()),
        json!({"deleted": n}),
    );
    Ok(n)
}

use serde::Deserialize;
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::blacklist::{normalize_hwid_value, normalize_ip_value};
use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::model::{BlacklistEntry, BlacklistKind};
use crate::write::WriteTx;

const COLUMNS: &str = "id, app_id, kind, value, note, created_at";

fn from_row(r: &Row) -> BlacklistEntry {
    let kind: String = r.get("kind");
    BlacklistEntry {
        id: r.get("id"),
        app_id: r.get("app_id"),
        // The column's CHECK constraint admits only the two kinds.
        kind: BlacklistKind::parse(&kind).unwrap_or(BlacklistKind::Hwid),
        value: r.get("value"),
        note: r.get("note"),
        created_at: r.get("created_at"),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    pub kind: BlacklistKind,
    pub value: String,
    pub note: Option<String>,
}

pub async fn add(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    entry: &NewEntry,
) -> StoreResult<BlacklistEntry> {
    let value = match entry.kind {
        BlacklistKind::Ip => normalize_ip_value(&entry.value),
        BlacklistKind::Hwid => normalize_hwid_value(&entry.value),
    }
    .map_err(StoreError::Invalid)?;
    if entry.note.as_deref().is_some_and(|n| n.len() > 1000) {
        return Err(StoreError::Invalid(
            "note must be at most 1000 characters".into(),
        ));
    }
    // Selecting from apps scopes the insert to the caller's tenant.
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "INSERT INTO blacklist (id, account_id, app_id, kind, value, note)
                 SELECT $1, a.account_id, a.id, $4, $5, $6 FROM apps a WHERE a.id = $2 AND a.account_id = $3
                 RETURNING {COLUMNS}"
            ),
            &[&Uuid::new_v4(), &app_id, &wtx.account_id(), &entry.kind.as_str(), &value, &entry.note],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique("this value is already blacklisted"))?
        .ok_or(StoreError::NotFound("app"))?;
    let e = from_row(&row);
    wtx.invalidate(Invalidation::Blacklist { app: app_id });
    wtx.audit(
        "blacklist.add",
        "blacklist",
        Some(e.id.to_string()),
        json!({"app_id": app_id, "kind": e.kind, "value": e.value}),
    );
    Ok(e)
}

/// Tenant-scoped list of one app's entries (`None` when the app is not the caller's).
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
) -> StoreResult<Vec<BlacklistEntry>> {
    Ok(c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM blacklist WHERE app_id = $1 AND account_id = $2 ORDER BY created_at, id"
            ),
            &[&app_id, &account_id],
        )
        .await?
        .iter()
        .map(from_row)
        .collect())
}

/// Everything blacklisted for an app, for the validator.
pub async fn for_app<C: GenericClient + Sync>(
    c: &C,
    app_id: Uuid,
) -> StoreResult<Vec<BlacklistEntry>> {
    Ok(c.query(
        &format!("SELECT {COLUMNS} FROM blacklist WHERE app_id = $1"),
        &[&app_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect())
}

pub async fn delete(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<BlacklistEntry> {
    let row = wtx
        .tx()
        .query_opt(
            &format!("DELETE FROM blacklist WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"),
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("blacklist entry"))?;
    let e = from_row(&row);
    wtx.invalidate(Invalidation::Blacklist { app: e.app_id });
    wtx.audit(
        "blacklist.delete",
        "blacklist",
        Some(id.to_string()),
        json!({"app_id": e.app_id, "kind": e.kind, "value": e.value}),
    );
    Ok(e)
}

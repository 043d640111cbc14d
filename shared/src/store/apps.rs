use serde::Deserialize;
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::model::App;
use crate::secrets;
use crate::write::WriteTx;

const COLUMNS: &str =
    "id, account_id, name, secret, version, paused, hwid_lock, anti_vpn, hash_check, created_at, updated_at";

fn from_row(r: &Row) -> App {
    App {
        id: r.get("id"),
        account_id: r.get("account_id"),
        name: r.get("name"),
        secret: r.get("secret"),
        version: r.get("version"),
        paused: r.get("paused"),
        hwid_lock: r.get("hwid_lock"),
        anti_vpn: r.get("anti_vpn"),
        hash_check: r.get("hash_check"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// Fields an admin may set on create or update; absent fields keep their value (or default).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPatch {
    pub name: Option<String>,
    pub version: Option<String>,
    pub paused: Option<bool>,
    pub hwid_lock: Option<bool>,
    pub anti_vpn: Option<bool>,
    pub hash_check: Option<bool>,
}

fn check_name(name: &str) -> StoreResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 {
        return Err(StoreError::Invalid(
            "name must be 1 to 100 characters".into(),
        ));
    }
    Ok(n.to_string())
}

fn check_version(v: &str) -> StoreResult<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > 32 {
        return Err(StoreError::Invalid(
            "version must be 1 to 32 characters".into(),
        ));
    }
    Ok(v.to_string())
}

pub async fn create(wtx: &mut WriteTx<'_>, patch: &AppPatch) -> StoreResult<App> {
    let name = check_name(patch.name.as_deref().unwrap_or(""))?;
    let version = check_version(patch.version.as_deref().unwrap_or("1.0"))?;
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO apps (id, account_id, name, secret, version, paused, hwid_lock, anti_vpn, hash_check)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &wtx.account_id(),
                &name,
                &secrets::new_app_secret(),
                &version,
                &patch.paused.unwrap_or(false),
                &patch.hwid_lock.unwrap_or(true),
                &patch.anti_vpn.unwrap_or(false),
                &patch.hash_check.unwrap_or(false),
            ],
        )
        .await
        .map_err(|e| {
            StoreError::from(e).conflict_on_unique("an app with this name already exists")
        })?;
    let app = from_row(&row);
    // Every app starts with a tier, as KeyAuth's do, so users and keys always have one to get.
    wtx.tx()
        .execute(
            "INSERT INTO subscriptions (id, account_id, app_id, name, level, duration_days)
             VALUES ($1, $2, $3, $4, 1, 30)",
            &[
                &Uuid::new_v4(),
                &app.account_id,
                &app.id,
                &super::subscriptions::DEFAULT_NAME,
            ],
        )
        .await?;
    // A validator may hold a negative entry for this id (clients probing before it existed).
    wtx.invalidate(Invalidation::App { app: app.id });
    wtx.audit(
        "app.create",
        "app",
        Some(app.id.to_string()),
        json!({"name": app.name}),
    );
    Ok(app)
}

pub async fn list<C: GenericClient + Sync>(c: &C, account_id: Uuid) -> StoreResult<Vec<App>> {
    Ok(c.query(
        &format!("SELECT {COLUMNS} FROM apps WHERE account_id = $1 ORDER BY created_at, id"),
        &[&account_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect())
}

/// Tenant-scoped lookup: another account's app is simply not found.
pub async fn get<C: GenericClient + Sync>(c: &C, account_id: Uuid, id: Uuid) -> StoreResult<App> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM apps WHERE id = $1 AND account_id = $2"),
        &[&id, &account_id],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("app"))
}

/// Unscoped lookup for the validator, whose callers address apps by id.
pub async fn find<C: GenericClient + Sync>(c: &C, id: Uuid) -> StoreResult<Option<App>> {
    Ok(
        c.query_opt(&format!("SELECT {COLUMNS} FROM apps WHERE id = $1"), &[&id])
            .await?
            .map(|r| from_row(&r)),
    )
}

pub async fn update(wtx: &mut WriteTx<'_>, id: Uuid, patch: &AppPatch) -> StoreResult<App> {
    let name = patch.name.as_deref().map(check_name).transpose()?;
    let version = patch.version.as_deref().map(check_version).transpose()?;
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE apps SET name = coalesce($3, name), version = coalesce($4, version),
                        paused = coalesce($5, paused), hwid_lock = coalesce($6, hwid_lock),
                        anti_vpn = coalesce($7, anti_vpn), hash_check = coalesce($8, hash_check),
                        updated_at = now()
                 WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &wtx.account_id(),
                &name,
                &version,
                &patch.paused,
                &patch.hwid_lock,
                &patch.anti_vpn,
                &patch.hash_check,
            ],
        )
        .await
        .map_err(|e| {
            StoreError::from(e).conflict_on_unique("an app with this name already exists")
        })?
        .ok_or(StoreError::NotFound("app"))?;
    wtx.invalidate(Invalidation::App { app: id });
    wtx.audit(
        "app.update",
        "app",
        Some(id.to_string()),
        json!({"name": name, "version": version, "paused": patch.paused, "hwid_lock": patch.hwid_lock,
               "anti_vpn": patch.anti_vpn, "hash_check": patch.hash_check}),
    );
    Ok(from_row(&row))
}

pub async fn reset_secret(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<App> {
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE apps SET secret = $3, updated_at = now()
                 WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"
            ),
            &[&id, &wtx.account_id(), &secrets::new_app_secret()],
        )
        .await?
        .ok_or(StoreError::NotFound("app"))?;
    wtx.invalidate(Invalidation::App { app: id });
    wtx.audit("app.reset_secret", "app", Some(id.to_string()), json!({}));
    Ok(from_row(&row))
}

/// Deletes the app and, by cascade, its licenses and blacklist.
pub async fn delete(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM apps WHERE id = $1 AND account_id = $2 RETURNING name",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("app"))?;
    let name: String = row.get(0);
    wtx.invalidate(Invalidation::App { app: id });
    wtx.audit(
        "app.delete",
        "app",
        Some(id.to_string()),
        json!({"name": name}),
    );
    Ok(())
}

/// Fails with NotFound unless the app is the caller's; locks it against concurrent deletion.
pub async fn owned(wtx: &WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    wtx.tx()
        .query_opt(
            "SELECT 1 FROM apps WHERE id = $1 AND account_id = $2 FOR SHARE",
            &[&id, &wtx.account_id()],
        )
        .await?
        .map(drop)
        .ok_or(StoreError::NotFound("app"))
}

/// One of the caller's apps by name (the seller API addresses apps by `appname`).
pub async fn get_by_name<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    name: &str,
) -> StoreResult<App> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM apps WHERE account_id = $1 AND name = $2"),
        &[&account_id, &name.trim()],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("application"))
}

/// Counts shown with an app.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct AppStats {
    pub users: i64,
    pub licenses: i64,
    pub active_sessions: i64,
    pub logs: i64,
}

pub async fn stats<C: GenericClient + Sync>(c: &C, app_id: Uuid) -> StoreResult<AppStats> {
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM app_users WHERE app_id = $1),
                    (SELECT count(*) FROM licenses WHERE app_id = $1),
                    (SELECT count(*) FROM sessions WHERE app_id = $1 AND expires_at > now()),
                    (SELECT count(*) FROM client_logs WHERE app_id = $1)",
            &[&app_id],
        )
        .await?;
    Ok(AppStats {
        users: r.get(0),
        licenses: r.get(1),
        active_sessions: r.get(2),
        logs: r.get(3),
    })
}

/// Deletes all of an app's data (users, licenses, sessions, logs, variables, blacklist) and keeps
/// the app, its settings and its subscription tiers.
pub async fn reset_data(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    owned(wtx, id).await?;
    for table in [
        "app_users",
        "licenses",
        "sessions",
        "client_logs",
        "app_vars",
        "blacklist",
    ] {
        wtx.tx()
            .execute(
                &format!("DELETE FROM {table} WHERE app_id = $1 AND account_id = $2"),
                &[&id, &wtx.account_id()],
            )
            .await?;
    }
    wtx.invalidate(Invalidation::App { app: id });
    wtx.audit("app.reset", "app", Some(id.to_string()), json!({}));
    Ok(())
}

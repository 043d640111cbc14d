//! Variables: global to an app (KeyAuth `getvar`) or per end user (`var`/`setvar`).

use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::model::Variable;
use crate::write::WriteTx;

/// Values are small strings shipped to clients; keep them bounded.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

fn from_row(r: &Row, user: bool) -> Variable {
    Variable {
        id: r.get("id"),
        app_id: r.get("app_id"),
        user_id: if user { r.get("user_id") } else { None },
        key: r.get("key"),
        value: r.get("value"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

fn check(key: &str, value: &str) -> StoreResult<()> {
    if key.trim().is_empty() || key.chars().count() > 128 {
        return Err(StoreError::Invalid(
            "key must be 1 to 128 characters".into(),
        ));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::Invalid(format!(
            "value must be at most {MAX_VALUE_LEN} bytes"
        )));
    }
    Ok(())
}

pub async fn list_global<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
) -> StoreResult<Vec<Variable>> {
    Ok(c.query(
        "SELECT id, app_id, key, value, created_at, updated_at FROM app_vars
          WHERE app_id = $1 AND account_id = $2 ORDER BY key",
        &[&app_id, &account_id],
    )
    .await?
    .iter()
    .map(|r| from_row(r, false))
    .collect())
}

pub async fn get_global<C: GenericClient + Sync>(
    c: &C,
    app_id: Uuid,
    key: &str,
) -> StoreResult<Option<Variable>> {
    Ok(c
        .query_opt(
            "SELECT id, app_id, key, value, created_at, updated_at FROM app_vars WHERE app_id = $1 AND key = $2",
            &[&app_id, &key],
        )
        .await?
        .map(|r| from_row(&r, false)))
}

pub async fn upsert_global(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    key: &str,
    value: &str,
) -> StoreResult<Variable> {
    check(key, value)?;
    let row = wtx
        .tx()
        .query_opt(
            "INSERT INTO app_vars (id, account_id, app_id, key, value)
             SELECT $1, a.account_id, a.id, $4, $5 FROM apps a WHERE a.id = $2 AND a.account_id = $3
             ON CONFLICT (app_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
             RETURNING id, app_id, key, value, created_at, updated_at",
            &[
                &Uuid::new_v4(),
                &app_id,
                &wtx.account_id(),
                &key.trim(),
                &value,
            ],
        )
        .await?
        .ok_or(StoreError::NotFound("app"))?;
    let v = from_row(&row, false);
    wtx.invalidate(Invalidation::Vars { app: app_id });
    wtx.audit(
        "var.set",
        "var",
        Some(v.id.to_string()),
        json!({"app_id": app_id, "key": v.key}),
    );
    Ok(v)
}

pub async fn delete_global(wtx: &mut WriteTx<'_>, app_id: Uuid, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM app_vars WHERE id = $1 AND app_id = $2 AND account_id = $3 RETURNING key",
            &[&id, &app_id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("variable"))?;
    let key: String = row.get(0);
    wtx.invalidate(Invalidation::Vars { app: app_id });
    wtx.audit(
        "var.delete",
        "var",
        Some(id.to_string()),
        json!({"app_id": app_id, "key": key}),
    );
    Ok(())
}

/// Deletes one of the caller's global variables, by id alone (the native API addresses them so).
pub async fn delete_global_by_id(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "SELECT app_id FROM app_vars WHERE id = $1 AND account_id = $2",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("variable"))?;
    delete_global(wtx, row.get(0), id).await
}

pub async fn list_user<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    user_id: Option<Uuid>,
) -> StoreResult<Vec<Variable>> {
    Ok(c.query(
        "SELECT v.id, u.app_id, v.user_id, v.key, v.value, v.created_at, v.updated_at
           FROM user_vars v JOIN app_users u ON u.id = v.user_id
          WHERE u.app_id = $1 AND v.account_id = $2 AND ($3::uuid IS NULL OR v.user_id = $3)
          ORDER BY u.username, v.key",
        &[&app_id, &account_id, &user_id],
    )
    .await?
    .iter()
    .map(|r| from_row(r, true))
    .collect())
}

pub async fn get_user<C: GenericClient + Sync>(
    c: &C,
    user_id: Uuid,
    key: &str,
) -> StoreResult<Option<Variable>> {
    Ok(c
        .query_opt(
            "SELECT v.id, u.app_id, v.user_id, v.key, v.value, v.created_at, v.updated_at
               FROM user_vars v JOIN app_users u ON u.id = v.user_id WHERE v.user_id = $1 AND v.key = $2",
            &[&user_id, &key],
        )
        .await?
        .map(|r| from_row(&r, true)))
}

/// Sets one of a user's variables; the user must be in the caller's app.
pub async fn set_user(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    user_id: Uuid,
    key: &str,
    value: &str,
) -> StoreResult<Variable> {
    check(key, value)?;
    let row = wtx
        .tx()
        .query_opt(
            "WITH u AS (SELECT id, app_id, account_id, username FROM app_users
                         WHERE id = $2 AND app_id = $3 AND account_id = $4),
                  v AS (INSERT INTO user_vars (id, account_id, user_id, key, value)
                        SELECT $1, u.account_id, u.id, $5, $6 FROM u
                        ON CONFLICT (user_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
                        RETURNING id, user_id, key, value, created_at, updated_at)
             SELECT v.*, u.app_id, u.username FROM v, u",
            &[&Uuid::new_v4(), &user_id, &app_id, &wtx.account_id(), &key.trim(), &value],
        )
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    let v = from_row(&row, true);
    let username: String = row.get("username");
    wtx.invalidate(Invalidation::User {
        app: app_id,
        username: username.clone(),
    });
    wtx.audit(
        "user_var.set",
        "user",
        Some(user_id.to_string()),
        json!({"app_id": app_id, "username": username, "key": v.key}),
    );
    Ok(v)
}

pub async fn delete_user(wtx: &mut WriteTx<'_>, app_id: Uuid, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM user_vars v USING app_users u
              WHERE v.id = $1 AND u.id = v.user_id AND u.app_id = $2 AND v.account_id = $3
              RETURNING u.username, v.key",
            &[&id, &app_id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("variable"))?;
    let username: String = row.get(0);
    let key: String = row.get(1);
    wtx.invalidate(Invalidation::User {
        app: app_id,
        username: username.clone(),
    });
    wtx.audit(
        "user_var.delete",
        "user",
        None,
        json!({"app_id": app_id, "username": username, "key": key}),
    );
    Ok(())
}

/// Deletes one variable of one of the caller's users; another user's variable is not found.
pub async fn delete_of_user(wtx: &mut WriteTx<'_>, user_id: Uuid, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "SELECT u.app_id FROM user_vars v JOIN app_users u ON u.id = v.user_id
              WHERE v.id = $1 AND v.user_id = $2 AND v.account_id = $3 AND u.app_id IS NOT NULL",
            &[&id, &user_id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("variable"))?;
    delete_user(wtx, row.get(0), id).await
}

/// A global variable as the client API serves it (`var`).
#[derive(Debug, Clone)]
pub struct ClientVar {
    pub value: String,
    /// Only a validated session may read it.
    pub authed: bool,
}

/// Every global variable of an app, for the validator's cache.
pub async fn client_vars<C: GenericClient + Sync>(
    c: &C,
    app_id: Uuid,
) -> StoreResult<std::collections::HashMap<String, ClientVar>> {
    Ok(c.query(
        "SELECT key, value, authed FROM app_vars WHERE app_id = $1",
        &[&app_id],
    )
    .await?
    .iter()
    .map(|r| {
        (
            r.get(0),
            ClientVar {
                value: r.get(1),
                authed: r.get(2),
            },
        )
    })
    .collect())
}

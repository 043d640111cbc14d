//! Subscription tiers of an app. A new app gets a `default` tier.

use serde::Deserialize;
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::model::Subscription;
use crate::write::WriteTx;

pub const DEFAULT_NAME: &str = "default";
const COLUMNS: &str = "id, app_id, name, level, duration_days, created_at";

fn from_row(r: &Row) -> Subscription {
    Subscription {
        id: r.get("id"),
        app_id: r.get("app_id"),
        name: r.get("name"),
        level: r.get("level"),
        duration_days: r.get("duration_days"),
        created_at: r.get("created_at"),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    pub name: String,
    pub level: Option<i32>,
    pub duration_days: Option<i32>,
}

pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
) -> StoreResult<Vec<Subscription>> {
    Ok(c.query(
        &format!("SELECT {COLUMNS} FROM subscriptions WHERE app_id = $1 AND account_id = $2 ORDER BY level, name"),
        &[&app_id, &account_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect())
}

/// The tier with this name, or the lowest-level one when no name is given.
pub async fn find<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    name: Option<&str>,
) -> StoreResult<Option<Subscription>> {
    let row = match name {
        Some(n) => {
            c.query_opt(
                &format!("SELECT {COLUMNS} FROM subscriptions WHERE app_id = $1 AND account_id = $2 AND name = $3"),
                &[&app_id, &account_id, &n],
            )
            .await?
        }
        None => {
            c.query_opt(
                &format!("SELECT {COLUMNS} FROM subscriptions WHERE app_id = $1 AND account_id = $2 ORDER BY level, created_at LIMIT 1"),
                &[&app_id, &account_id],
            )
            .await?
        }
    };
    Ok(row.map(|r| from_row(&r)))
}

/// The tier whose level a license grants (KeyAuth maps a key's level to the tier of that level).
pub async fn for_level<C: GenericClient + Sync>(
    c: &C,
    app_id: Uuid,
    level: i32,
) -> StoreResult<Option<Subscription>> {
    Ok(c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM subscriptions WHERE app_id = $1 AND level = $2 ORDER BY created_at LIMIT 1"),
            &[&app_id, &level],
        )
        .await?
        .map(|r| from_row(&r)))
}

pub async fn create(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    s: &NewSubscription,
) -> StoreResult<Subscription> {
    let name = s.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(StoreError::Invalid(
            "name must be 1 to 64 characters".into(),
        ));
    }
    let level = s.level.unwrap_or(1);
    let days = s.duration_days.unwrap_or(30);
    if !(0..=1_000_000).contains(&level) {
        return Err(StoreError::Invalid(
            "level must be between 0 and 1000000".into(),
        ));
    }
    if !(1..=36_600).contains(&days) {
        return Err(StoreError::Invalid(
            "duration_days must be between 1 and 36600".into(),
        ));
    }
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "INSERT INTO subscriptions (id, account_id, app_id, name, level, duration_days)
                 SELECT $1, a.account_id, a.id, $4, $5, $6 FROM apps a WHERE a.id = $2 AND a.account_id = $3
                 RETURNING {COLUMNS}"
            ),
            &[&Uuid::new_v4(), &app_id, &wtx.account_id(), &name, &level, &days],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique("a subscription with this name already exists"))?
        .ok_or(StoreError::NotFound("app"))?;
    let sub = from_row(&row);
    wtx.invalidate(Invalidation::App { app: app_id });
    wtx.audit(
        "subscription.create",
        "subscription",
        Some(sub.id.to_string()),
        json!({"app_id": app_id, "name": sub.name, "level": level, "duration_days": days}),
    );
    Ok(sub)
}

pub async fn delete(wtx: &mut WriteTx<'_>, app_id: Uuid, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM subscriptions WHERE id = $1 AND app_id = $2 AND account_id = $3 RETURNING name",
            &[&id, &app_id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("subscription"))?;
    let name: String = row.get(0);
    wtx.invalidate(Invalidation::App { app: app_id });
    wtx.audit(
        "subscription.delete",
        "subscription",
        Some(id.to_string()),
        json!({"app_id": app_id, "name": name}),
    );
    Ok(())
}

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

/// What a PATCH may change of a tier. Not its name: users hold their subscriptions by the
/// tier's name, so a rename would detach them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionPatch {
    pub level: Option<i32>,
    pub duration_days: Option<i32>,
}

fn check_level(level: i32) -> StoreResult<()> {
    if !(0..=1_000_000).contains(&level) {
        return Err(StoreError::Invalid(
            "level must be between 0 and 1000000".into(),
        ));
    }
    Ok(())
}

fn check_days(days: i32) -> StoreResult<()> {
    if !(1..=36_600).contains(&days) {
        return Err(StoreError::Invalid(
            "duration_days must be between 1 and 36600".into(),
        ));
    }
    Ok(())
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
    check_level(level)?;
    check_days(days)?;
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

/// One of the caller's tiers, by id alone (the native API addresses tiers so).
pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: Uuid,
) -> StoreResult<Subscription> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM subscriptions WHERE id = $1 AND account_id = $2"),
        &[&id, &account_id],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("subscription"))
}

/// Changes a tier's level (which license level grants it) or default length. Subscriptions users
/// already hold keep their own level and expiry.
pub async fn update(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    p: &SubscriptionPatch,
) -> StoreResult<Subscription> {
    if let Some(level) = p.level {
        check_level(level)?;
    }
    if let Some(days) = p.duration_days {
        check_days(days)?;
    }
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE subscriptions SET level = coalesce($3, level),
                        duration_days = coalesce($4, duration_days)
                  WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"
            ),
            &[&id, &wtx.account_id(), &p.level, &p.duration_days],
        )
        .await?
        .ok_or(StoreError::NotFound("subscription"))?;
    let sub = from_row(&row);
    // Validators map a redeemed key's level to a tier.
    wtx.invalidate(Invalidation::App { app: sub.app_id });
    wtx.audit(
        "subscription.update",
        "subscription",
        Some(id.to_string()),
        json!({"app_id": sub.app_id, "name": sub.name, "level": p.level, "duration_days": p.duration_days}),
    );
    Ok(sub)
}

/// Deletes one of the caller's tiers, by id alone.
pub async fn delete_by_id(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "SELECT app_id FROM subscriptions WHERE id = $1 AND account_id = $2",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("subscription"))?;
    delete(wtx, row.get(0), id).await
}

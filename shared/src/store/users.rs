//! End users of an app (KeyAuth "users"): accounts with a password, a bound HWID, subscriptions
//! and variables. Single-user writes invalidate that user; bulk writes invalidate the app.

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{contains_pattern, subscriptions, Offset};
use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::model::{AppUser, UserSubscription};
use crate::write::WriteTx;

/// A full user with subscriptions as arrays (one round trip).
const SELECT: &str = "SELECT u.id, u.app_id, u.username, u.email, u.password_hash, u.hwid, u.ip, u.banned,
       u.ban_reason, u.created_at, u.last_login_at,
       ARRAY(SELECT s.name FROM user_subscriptions s WHERE s.user_id = u.id ORDER BY s.level, s.name) AS sub_names,
       ARRAY(SELECT s.level FROM user_subscriptions s WHERE s.user_id = u.id ORDER BY s.level, s.name) AS sub_levels,
       ARRAY(SELECT s.expires_at FROM user_subscriptions s WHERE s.user_id = u.id ORDER BY s.level, s.name) AS sub_expiries,
       ARRAY(SELECT coalesce(s.key, '') FROM user_subscriptions s WHERE s.user_id = u.id ORDER BY s.level, s.name) AS sub_keys
  FROM app_users u";

fn from_row(r: &Row) -> AppUser {
    let names: Vec<String> = r.get("sub_names");
    let levels: Vec<i32> = r.get("sub_levels");
    let expiries: Vec<DateTime<Utc>> = r.get("sub_expiries");
    let keys: Vec<String> = r.get("sub_keys");
    AppUser {
        id: r.get("id"),
        app_id: r.get("app_id"),
        username: r.get("username"),
        email: r.get("email"),
        password_hash: r.get("password_hash"),
        hwid: r.get("hwid"),
        ip: r.get("ip"),
        banned: r.get("banned"),
        ban_reason: r.get("ban_reason"),
        created_at: r.get("created_at"),
        last_login_at: r.get("last_login_at"),
        subscriptions: names
            .into_iter()
            .zip(levels)
            .zip(expiries)
            .zip(keys)
            .map(|(((name, level), expires_at), key)| UserSubscription {
                name,
                level,
                expires_at,
                key: (!key.is_empty()).then_some(key),
            })
            .collect(),
    }
}

pub fn validate_username(username: &str) -> StoreResult<&str> {
    let u = username.trim();
    if u.is_empty() || u.chars().count() > 128 || u.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "username must be 1 to 128 printable characters".into(),
        ));
    }
    Ok(u)
}

pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    search: Option<&str>,
    page: Offset,
) -> StoreResult<(Vec<AppUser>, i64)> {
    let pattern = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(contains_pattern);
    let filter = "u.app_id = $1 AND u.account_id = $2 AND ($3::text IS NULL OR u.username ILIKE $3
        OR u.email ILIKE $3 OR u.hwid ILIKE $3 OR u.ip ILIKE $3)";
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM app_users u WHERE {filter}"),
            &[&app_id, &account_id, &pattern],
        )
        .await?
        .get(0);
    let items = c
        .query(
            &format!(
                "{SELECT} WHERE {filter} ORDER BY u.created_at DESC, u.id DESC LIMIT $4 OFFSET $5"
            ),
            &[&app_id, &account_id, &pattern, &page.limit, &page.offset],
        )
        .await?
        .iter()
        .map(from_row)
        .collect();
    Ok((items, total))
}

/// A page of an app's users, newest first: `next_cursor` resumes after the last one.
pub struct Page {
    pub items: Vec<AppUser>,
    pub next_cursor: Option<String>,
}

/// An app's users, newest first, in keyset pages (the native API's list; `search` matches the
/// username, e-mail, HWID or IP, case-insensitively).
pub async fn page<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    search: Option<&str>,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> StoreResult<Page> {
    let limit = super::page_size(limit, 50, 500);
    let (after_at, after_id) = cursor.map(super::decode_cursor).transpose()?.unzip();
    let pattern = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(contains_pattern);
    let mut items: Vec<AppUser> = c
        .query(
            &format!(
                "{SELECT} WHERE u.app_id = $1 AND u.account_id = $2
                   AND ($3::text IS NULL OR u.username ILIKE $3 OR u.email ILIKE $3
                        OR u.hwid ILIKE $3 OR u.ip ILIKE $3)
                   AND ($4::timestamptz IS NULL OR (u.created_at, u.id) < ($4, $5::uuid))
                 ORDER BY u.created_at DESC, u.id DESC LIMIT $6"
            ),
            &[
                &app_id,
                &account_id,
                &pattern,
                &after_at,
                &after_id,
                &(limit + 1),
            ],
        )
        .await?
        .iter()
        .map(from_row)
        .collect();
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|u| super::encode_cursor(u.created_at, u.id))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// The app of one of the caller's app users (not an account user, which has no app). A user
/// never changes app, so the answer stays true for the rest of a request.
pub async fn app_of<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: Uuid,
) -> StoreResult<Uuid> {
    c.query_opt(
        "SELECT app_id FROM app_users WHERE id = $1 AND account_id = $2 AND app_id IS NOT NULL",
        &[&id, &account_id],
    )
    .await?
    .map(|r| r.get(0))
    .ok_or(StoreError::NotFound("user"))
}

/// What the client API accepts as an end user's password (KeyAuth's `register`): 1 to 1024
/// bytes. No strength rule: a `license` user's password is its key.
pub fn validate_password(password: &str) -> StoreResult<()> {
    if password.is_empty() || password.len() > 1024 {
        return Err(StoreError::Invalid(
            "password must be 1 to 1024 bytes".into(),
        ));
    }
    Ok(())
}

fn check_email(email: Option<&str>) -> StoreResult<()> {
    if email.is_some_and(|e| e.len() > 254) {
        return Err(StoreError::Invalid(
            "email must be at most 254 characters".into(),
        ));
    }
    Ok(())
}

pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    id: Uuid,
) -> StoreResult<AppUser> {
    c.query_opt(
        &format!("{SELECT} WHERE u.id = $1 AND u.app_id = $2 AND u.account_id = $3"),
        &[&id, &app_id, &account_id],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("user"))
}

/// By username, unscoped by tenant: the client API addresses users within an app it resolved.
pub async fn find_by_name<C: crate::db::Hot>(
    c: &C,
    app_id: Uuid,
    username: &str,
) -> StoreResult<Option<AppUser>> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{SELECT} WHERE u.app_id = $1 AND u.username = $2"));
    let stmt = c.statement(&SQL).await?;
    Ok(c.client()
        .query_opt(&stmt, &[&app_id, &username])
        .await?
        .map(|r| from_row(&r)))
}

/// By username within one of the caller's apps (the seller API addresses users so).
pub async fn get_by_name<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    username: &str,
) -> StoreResult<AppUser> {
    c.query_opt(
        &format!("{SELECT} WHERE u.app_id = $1 AND u.account_id = $2 AND u.username = $3"),
        &[&app_id, &account_id, &username],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("user"))
}

pub struct NewUser<'a> {
    pub username: &'a str,
    /// argon2id PHC string.
    pub password_hash: &'a str,
    pub email: Option<&'a str>,
    pub hwid: Option<&'a str>,
    pub ip: Option<&'a str>,
    /// Tier name; default: the app's lowest tier (or `default`).
    pub subscription: Option<&'a str>,
    /// Level when the named tier does not exist.
    pub level: Option<i32>,
    /// Length; default: the tier's.
    pub days: Option<i64>,
    /// The license key redeemed for this subscription, if any.
    pub key: Option<&'a str>,
}

pub async fn create(wtx: &mut WriteTx<'_>, app_id: Uuid, u: &NewUser<'_>) -> StoreResult<AppUser> {
    let (id, username) = insert(wtx, app_id, u).await?;
    grant(wtx, app_id, id, u.subscription, u.level, u.days, u.key).await?;
    created(wtx, app_id, id, username, u.subscription).await
}

/// A user registering with a license key (client-API `register`/`license`): the subscription is
/// the key's tier for `secs`, instead of `NewUser`'s subscription fields.
pub async fn create_for_key(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    u: &NewUser<'_>,
    tier: &crate::model::Subscription,
    secs: i64,
    key: &str,
) -> StoreResult<AppUser> {
    let (id, username) = insert(wtx, app_id, u).await?;
    grant_for_key(wtx, id, tier, secs, key).await?;
    created(wtx, app_id, id, username, Some(&tier.name)).await
}

async fn insert(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    u: &NewUser<'_>,
) -> StoreResult<(Uuid, String)> {
    let username = validate_username(u.username)?;
    check_email(u.email)?;
    let id = Uuid::new_v4();
    let inserted = wtx
        .tx()
        .query_opt(
            "INSERT INTO app_users (id, account_id, app_id, username, email, password_hash, hwid, ip)
             SELECT $1, a.account_id, a.id, $4, $5, $6, $7, $8 FROM apps a WHERE a.id = $2 AND a.account_id = $3
             RETURNING id",
            &[&id, &app_id, &wtx.account_id(), &username, &u.email, &u.password_hash, &u.hwid, &u.ip],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique("a user with this username already exists"))?;
    if inserted.is_none() {
        return Err(StoreError::NotFound("app"));
    }
    Ok((id, username.to_string()))
}

async fn created(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    id: Uuid,
    username: String,
    subscription: Option<&str>,
) -> StoreResult<AppUser> {
    wtx.audit(
        "user.create",
        "user",
        Some(id.to_string()),
        json!({"app_id": app_id, "username": username, "subscription": subscription}),
    );
    wtx.invalidate(Invalidation::User {
        app: app_id,
        username,
    });
    get(wtx.tx(), wtx.account_id(), app_id, id).await
}

/// Adds `days` to the user's named subscription (from now if it has lapsed), creating it when
/// the user does not hold it.
async fn grant(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    user_id: Uuid,
    name: Option<&str>,
    level: Option<i32>,
    days: Option<i64>,
    key: Option<&str>,
) -> StoreResult<()> {
    if name.is_some_and(|n| n.trim().is_empty() || n.chars().count() > 64) {
        return Err(StoreError::Invalid(
            "subscription must be 1 to 64 characters".into(),
        ));
    }
    let tier = subscriptions::find(wtx.tx(), wtx.account_id(), app_id, name).await?;
    let name = name
        .map(str::to_string)
        .or_else(|| tier.as_ref().map(|t| t.name.clone()))
        .unwrap_or_else(|| subscriptions::DEFAULT_NAME.to_string());
    let level = tier.as_ref().map(|t| t.level).or(level).unwrap_or(1);
    let days = days
        .or(tier.as_ref().map(|t| i64::from(t.duration_days)))
        .unwrap_or(30);
    if !(-36_600..=36_600).contains(&days) || days == 0 {
        return Err(StoreError::Invalid(
            "days must be between 1 and 36600".into(),
        ));
    }
    wtx.tx()
        .execute(
            "INSERT INTO user_subscriptions (id, account_id, user_id, name, level, expires_at, key)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(days => $6), $7)
             ON CONFLICT (user_id, name) DO UPDATE
               SET expires_at = greatest(user_subscriptions.expires_at, now()) + make_interval(days => $6),
                   key = coalesce(EXCLUDED.key, user_subscriptions.key)",
            &[&Uuid::new_v4(), &wtx.account_id(), &user_id, &name, &level, &(days as i32), &key],
        )
        .await?;
    Ok(())
}

/// Runs an UPDATE on one of the caller's users that returns `username`; invalidates and audits.
async fn mutate_one(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    id: Uuid,
    set: &str,
    extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    action: &str,
    details: serde_json::Value,
) -> StoreResult<String> {
    let account = wtx.account_id();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&id, &app_id, &account];
    params.extend_from_slice(extra);
    let row = wtx
        .tx()
        .query_opt(
            &format!("UPDATE app_users SET {set} WHERE id = $1 AND app_id = $2 AND account_id = $3 RETURNING username"),
            &params,
        )
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    let username: String = row.get(0);
    wtx.invalidate(Invalidation::User {
        app: app_id,
        username: username.clone(),
    });
    wtx.audit(action, "user", Some(id.to_string()), {
        let mut d = details;
        if let Some(obj) = d.as_object_mut() {
            obj.insert("username".into(), json!(username));
        }
        d
    });
    Ok(username)
}

pub async fn ban(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    id: Uuid,
    reason: Option<&str>,
) -> StoreResult<()> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(StoreError::Invalid(
            "reason must be at most 500 characters".into(),
        ));
    }
    mutate_one(
        wtx,
        app_id,
        id,
        "banned = true, ban_reason = $4",
        &[&reason],
        "user.ban",
        json!({"reason": reason}),
    )
    .await
    .map(drop)
}

pub async fn unban(wtx: &mut WriteTx<'_>, app_id: Uuid, id: Uuid) -> StoreResult<()> {
    mutate_one(
        wtx,
        app_id,
        id,
        "banned = false, ban_reason = NULL",
        &[],
        "user.unban",
        json!({}),
    )
    .await
    .map(drop)
}

pub async fn reset_hwid(wtx: &mut WriteTx<'_>, app_id: Uuid, id: Uuid) -> StoreResult<()> {
    mutate_one(
        wtx,
        app_id,
        id,
        "hwid = NULL",
        &[],
        "user.reset_hwid",
        json!({}),
    )
    .await
    .map(drop)
}

pub async fn set_password(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    id: Uuid,
    password_hash: &str,
) -> StoreResult<()> {
    mutate_one(
        wtx,
        app_id,
        id,
        "password_hash = $4",
        &[&password_hash],
        "user.set_password",
        json!({}),
    )
    .await
    .map(drop)
}

/// Sets or (with `None`) clears a user's e-mail.
pub async fn set_email(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    id: Uuid,
    email: Option<&str>,
) -> StoreResult<()> {
    let email = email.map(str::trim).filter(|e| !e.is_empty());
    check_email(email)?;
    mutate_one(
        wtx,
        app_id,
        id,
        "email = $4",
        &[&email],
        "user.set_email",
        json!({}),
    )
    .await
    .map(drop)
}

/// Adds days to one named subscription (created when absent) or, without a name, to every
/// subscription the user holds (the default tier when none).
pub async fn extend(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    id: Uuid,
    days: i64,
    subscription: Option<&str>,
) -> StoreResult<()> {
    if !(1..=36_600).contains(&days) {
        return Err(StoreError::Invalid(
            "days must be between 1 and 36600".into(),
        ));
    }
    // A no-op SET: checks ownership, invalidates the user and audits in one statement.
    mutate_one(
        wtx,
        app_id,
        id,
        "ip = ip",
        &[],
        "user.extend",
        json!({"days": days, "subscription": subscription}),
    )
    .await?;
    let held = subscription.is_none()
        && wtx
            .tx()
            .execute(
                "UPDATE user_subscriptions SET expires_at = greatest(expires_at, now()) + make_interval(days => $2)
                  WHERE user_id = $1",
                &[&id, &(days as i32)],
            )
            .await?
            > 0;
    if !held {
        grant(wtx, app_id, id, subscription, None, Some(days), None).await?;
    }
    Ok(())
}

/// Takes time off a user's subscriptions (one named, or all).
pub async fn subtract(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    id: Uuid,
    seconds: i64,
    subscription: Option<&str>,
) -> StoreResult<()> {
    if !(1..=3_162_240_000).contains(&seconds) {
        return Err(StoreError::Invalid(
            "seconds must be a positive number".into(),
        ));
    }
    mutate_one(
        wtx,
        app_id,
        id,
        "ip = ip",
        &[],
        "user.subtract",
        json!({"seconds": seconds, "subscription": subscription}),
    )
    .await?;
    let n = wtx
        .tx()
        .execute(
            "UPDATE user_subscriptions SET expires_at = expires_at - make_interval(secs => $2)
              WHERE user_id = $1 AND ($3::text IS NULL OR name = $3)",
            &[&id, &(seconds as f64), &subscription],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("subscription"));
    }
    Ok(())
}

pub async fn delete(wtx: &mut WriteTx<'_>, app_id: Uuid, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM app_users WHERE id = $1 AND app_id = $2 AND account_id = $3 RETURNING username",
            &[&id, &app_id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    let username: String = row.get(0);
    wtx.tx()
        .execute("DELETE FROM sessions WHERE user_id = $1", &[&id])
        .await?;
    wtx.invalidate(Invalidation::User {
        app: app_id,
        username: username.clone(),
    });
    wtx.audit(
        "user.delete",
        "user",
        Some(id.to_string()),
        json!({"username": username}),
    );
    Ok(())
}

/// Deletes every user of the app, or only those without a subscription still running.
pub async fn delete_many(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    only_expired: bool,
) -> StoreResult<u64> {
    super::apps::owned(wtx, app_id).await?;
    let n = wtx
        .tx()
        .execute(
            "DELETE FROM app_users u WHERE u.app_id = $1 AND u.account_id = $2
               AND (NOT $3 OR NOT EXISTS (SELECT 1 FROM user_subscriptions s
                                           WHERE s.user_id = u.id AND s.expires_at > now()))",
            &[&app_id, &wtx.account_id(), &only_expired],
        )
        .await?;
    wtx.tx()
        .execute(
            "DELETE FROM sessions s WHERE s.app_id = $1 AND s.user_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM app_users u WHERE u.id = s.user_id)",
            &[&app_id],
        )
        .await?;
    wtx.invalidate(Invalidation::App { app: app_id });
    wtx.audit(
        if only_expired {
            "user.delete_expired"
        } else {
            "user.delete_all"
        },
        "app",
        Some(app_id.to_string()),
        json!({"deleted": n}),
    );
    Ok(n)
}

/// Grants (or lengthens) the subscription a redeemed key gives: `secs` from now, or from the end
/// of the time the user already has on that subscription.
pub async fn grant_for_key(
    wtx: &mut WriteTx<'_>,
    user_id: Uuid,
    tier: &crate::model::Subscription,
    secs: i64,
    key: &str,
) -> StoreResult<()> {
    let secs = secs.clamp(1, 3_162_240_000) as f64;
    wtx.tx()
        .execute(
            "INSERT INTO user_subscriptions (id, account_id, user_id, name, level, expires_at, key)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7)
             ON CONFLICT (user_id, name) DO UPDATE
               SET expires_at = greatest(user_subscriptions.expires_at, now()) + make_interval(secs => $6),
                   key = EXCLUDED.key",
            &[&Uuid::new_v4(), &wtx.account_id(), &user_id, &tier.name, &tier.level, &secs, &key],
        )
        .await?;
    let username: String = wtx
        .tx()
        .query_one("SELECT username FROM app_users WHERE id = $1", &[&user_id])
        .await?
        .get(0);
    wtx.invalidate(Invalidation::User {
        app: tier.app_id,
        username,
    });
    Ok(())
}

/// A client-API login: records the time and address and binds the HWID when none is bound yet.
pub async fn record_login(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    user: &AppUser,
    ip: &str,
    bind_hwid: Option<&str>,
) -> StoreResult<()> {
    wtx.tx()
        .execute(
            "UPDATE app_users SET last_login_at = now(), ip = $3,
                    hwid = CASE WHEN hwid IS NULL THEN $4 ELSE hwid END
              WHERE id = $1 AND app_id = $2",
            &[&user.id, &app_id, &ip, &bind_hwid],
        )
        .await?;
    wtx.invalidate(Invalidation::User {
        app: app_id,
        username: user.username.clone(),
    });
    Ok(())
}

/// Renames a user (client-API `changeUsername`); their sessions end.
pub async fn rename(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    user: &AppUser,
    new_name: &str,
) -> StoreResult<()> {
    let new_name = validate_username(new_name)?;
    wtx.tx()
        .execute(
            "UPDATE app_users SET username = $3 WHERE id = $1 AND app_id = $2",
            &[&user.id, &app_id, &new_name],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique("Username already used!"))?;
    let sessions = wtx
        .tx()
        .query(
            "DELETE FROM sessions WHERE user_id = $1 RETURNING id",
            &[&user.id],
        )
        .await?;
    for s in sessions {
        wtx.invalidate(Invalidation::Session {
            app: app_id,
            id: s.get(0),
        });
    }
    for name in [user.username.as_str(), new_name] {
        wtx.invalidate(Invalidation::User {
            app: app_id,
            username: name.to_string(),
        });
    }
    wtx.audit(
        "user.rename",
        "user",
        Some(user.id.to_string()),
        json!({"from": user.username, "to": new_name}),
    );
    Ok(())
}

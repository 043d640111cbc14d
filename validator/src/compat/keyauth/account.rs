//! `login`, `register`, `license` and `upgrade`: end users, their passwords and HWIDs, and keys
//! redeemed for subscriptions. Every write is one transaction that also marks the session
//! logged in, committed before the answer.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keyward_shared::license_facts::LicenseFacts;
use keyward_shared::model::{AppUser, LicenseStatus, Subscription};
use keyward_shared::store::{licenses, sessions, subscriptions, users};
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;
use serde_json::{json, Value};

use super::password::Outcome;
use super::reply::Reply;
use super::{Answer, Ctx, Fault, Why};
use crate::cache::InApp;
use keyward_shared::store::sessions::Session;

/// KeyAuth's limits on usernames and keys sent by clients.
const MAX_NAME: usize = 70;
const MAX_PASSWORD: usize = 1024;
/// A key that never expires grants this much (KeyAuth has no "forever" subscription).
const LIFETIME_SECS: i64 = 100 * 365 * 86_400;

fn ts(t: DateTime<Utc>) -> String {
    t.timestamp().to_string()
}

/// HWID rules of `login` and `license`, checked before anything else.
fn hwid_precheck(ctx: &Ctx<'_>) -> Option<Reply> {
    let app = ctx.app();
    match ctx.p.get("hwid") {
        Some(h) if (h.chars().count() as i64) < i64::from(app.min_hwid_len) => Some(Reply::fail(
            Why::HwidRule,
            format!(
                "HWID must be {} or more characters, change this in app settings.",
                app.min_hwid_len
            ),
        )),
        Some(h) if h.len() > 2000 => Some(Reply::fail(
            Why::HwidRule,
            "HWID must be at most 2000 characters",
        )),
        None if app.force_hwid => Some(Reply::fail(
            Why::HwidRule,
            "Force HWID is enabled, disable in app settings if you want to use blank HWIDs",
        )),
        _ => None,
    }
}

fn blacklisted(ctx: &Ctx<'_>, hwid: Option<&str>) -> bool {
    let bl = &ctx.app.blacklist;
    bl.blocks_ip(ctx.ip) || hwid.is_some_and(|h| bl.blocks_hwid(h))
}

fn with_reason(template: String, reason: Option<&str>) -> String {
    template.replace("{reason}", reason.unwrap_or(""))
}

pub async fn load_user(ctx: &Ctx<'_>, username: &str) -> Result<Option<Arc<AppUser>>, Fault> {
    if username.chars().count() > 128 {
        return Ok(None);
    }
    let app = ctx.app().id;
    let reads = &ctx.state.caches.reads;
    Ok(ctx
        .state
        .caches
        .client
        .users
        .get_or_load(&InApp(app, username), || {
            reads.read(|c| async move { users::find_by_name(&*c, app, username).await })
        })
        .await?)
}

fn subscriptions_info(user: &AppUser, with_level: bool, now: DateTime<Utc>) -> Vec<Value> {
    user.subscriptions
        .iter()
        .filter(|s| s.expires_at > now)
        .map(|s| {
            let mut item = json!({
                "subscription": s.name,
                "key": s.key,
                "expiry": ts(s.expires_at),
                "timeleft": (s.expires_at - now).num_seconds(),
            });
            if with_level {
                item["level"] = json!(s.level.to_string());
            }
            item
        })
        .collect()
}

async fn forget(ctx: &Ctx<'_>, session: &Session, usernames: &[&str]) {
    let client = &ctx.state.caches.client;
    let app = ctx.app().id;
    client.sessions.forget(&InApp(app, &session.id));
    for u in usernames {
        client.users.forget(&InApp(app, u));
    }
}

pub async fn login(ctx: &Ctx<'_>, s: &Session) -> Answer {
    if let Some(r) = hwid_precheck(ctx) {
        return Ok(r);
    }
    let username = ctx.p.get("username").unwrap_or("");
    let password = ctx.p.get("pass").unwrap_or("");
    let user = load_user(ctx, username).await?;
    login_as(ctx, s, user, password).await
}

/// Logs the session in as `user` (as loaded for `username`; `None`: no such user).
async fn login_as(
    ctx: &Ctx<'_>,
    s: &Session,
    user: Option<Arc<AppUser>>,
    password: &str,
) -> Answer {
    let password = if password.len() > MAX_PASSWORD {
        ""
    } else {
        password
    };
    let outcome = ctx
        .state
        .client
        .passwords
        .verify(user.as_deref(), password)
        .await?;
    let Some(user) = user else {
        return Ok(ctx.fail(Why::UserNotFound, "usernamenotfound"));
    };
    let Outcome::Match { upgrade } = outcome else {
        return Ok(ctx.fail(Why::PasswordMismatch, "passmismatch"));
    };
    if user.banned {
        let msg = with_reason(ctx.message("userbanned"), user.ban_reason.as_deref());
        return Ok(Reply::fail(Why::UserBanned, msg));
    }
    let hwid = ctx.p.get("hwid");
    if blacklisted(ctx, hwid) {
        return Ok(ctx.fail(Why::Blacklisted, "hwidblacked"));
    }
    if ctx.app().hwid_lock {
        if let (Some(sent), Some(stored)) = (hwid, user.hwid.as_deref()) {
            // KeyAuth semantics: the stored value may hold several HWIDs (slots).
            if !stored.contains(sent) {
                return Ok(ctx.fail(Why::HwidMismatch, "hwidmismatch"));
            }
        }
    }
    let now = Utc::now();
    let subs = subscriptions_info(&user, true, now);
    if subs.is_empty() {
        return Ok(ctx.fail(Why::NoActiveSubscription, "noactivesubs"));
    }
    let app = ctx.app().id;
    let bind = hwid.filter(|_| user.hwid.is_none());
    // Logging in again on a session already logged in as this user, from the same machine,
    // changes nothing worth a commit (the session's login time is already recorded).
    let unchanged = s.validated
        && s.user_id == Some(user.id)
        && s.hwid.as_deref() == hwid
        && bind.is_none()
        && upgrade.is_none();
    if !unchanged {
        let mut c = keyward_shared::db::checkout(&ctx.state.pool).await?;
        let mut w = WriteTx::begin(&mut c, ctx.actor()).await?;
        users::record_login(&mut w, app, &user, &ctx.ip_string(), bind).await?;
        if let Some(hash) = &upgrade {
            users::set_password(&mut w, app, user.id, hash).await?;
        }
        sessions::validate(&mut w, app, &s.id, user.id, &user.username, hwid).await?;
        w.commit().await?;
        forget(ctx, s, &[&user.username]).await;
    }
    Ok(Reply::ok(ctx.message("loggedInMsg")).field(
        "info",
        json!({
            "username": user.username,
            "subscriptions": subs,
            "ip": ctx.ip_string(),
            "hwid": user.hwid,
            "createdate": ts(user.created_at),
            "lastlogin": ts(now),
        }),
    ))
}

/// A key a client may redeem: its license, the tier of its level, and the time it grants.
struct Redeemable {
    license: LicenseFacts,
    tier: Subscription,
    secs: i64,
}

async fn redeemable(ctx: &Ctx<'_>, key: &str) -> Result<Result<Redeemable, Reply>, Fault> {
    let app = ctx.app().id;
    let Some(license) = ctx.state.caches.license(app, key).await? else {
        return Ok(Err(ctx.fail(Why::KeyNotFound, "keynotfound")));
    };
    // KeyAuth knows one refused state: revoked and disabled keys answer as banned.
    if license.status != LicenseStatus::Active {
        let msg = with_reason(ctx.message("keybanned"), license.ban_reason());
        return Ok(Err(Reply::fail(Why::KeyBanned, msg)));
    }
    if license.uses >= license.max_uses {
        return Ok(Err(ctx.fail(Why::KeyUsed, "keyused")));
    }
    let now = Utc::now();
    let secs = match (license.expires_at(), license.duration_secs()) {
        (Some(at), _) if at <= now => {
            return Ok(Err(Reply::fail(
                Why::KeyExpired,
                "This license key has expired",
            )))
        }
        (Some(at), _) => (at - now).num_seconds(),
        (None, Some(d)) => d,
        (None, None) => LIFETIME_SECS,
    };
    let c = keyward_shared::db::checkout(&ctx.state.pool).await?;
    let Some(tier) = subscriptions::for_level(&**c, app, license.level).await? else {
        return Ok(Err(ctx.fail(Why::NoSubscriptionLevel, "nosublevel")));
    };
    Ok(Ok(Redeemable {
        license,
        tier,
        secs,
    }))
}

pub async fn register(ctx: &Ctx<'_>, s: &Session) -> Answer {
    let p = ctx.p;
    let (username, key) = (p.get("username").unwrap_or(""), p.get("key").unwrap_or(""));
    register_as(
        ctx,
        s,
        username,
        p.get("pass").unwrap_or(""),
        key,
        p.get("email"),
    )
    .await
}

async fn register_as(
    ctx: &Ctx<'_>,
    s: &Session,
    username: &str,
    password: &str,
    key: &str,
    email: Option<&str>,
) -> Answer {
    if username.chars().count() > MAX_NAME {
        return Ok(Reply::fail(
            Why::BadRequest,
            "Username must be shorter than 70 characters",
        ));
    }
    if key.chars().count() > MAX_NAME {
        return Ok(Reply::fail(
            Why::BadRequest,
            "Key must be shorter than 70 characters",
        ));
    }
    if (username.chars().count() as i64) < i64::from(ctx.app().min_username_len)
        || username.chars().any(char::is_control)
    {
        return Ok(ctx.fail(Why::UsernameTooShort, "unTooShort"));
    }
    if password.is_empty() || password.len() > MAX_PASSWORD {
        return Ok(Reply::fail(
            Why::BadRequest,
            "Password must be 1 to 1024 characters",
        ));
    }
    if email.is_some_and(|e| e.len() > 254) {
        return Ok(Reply::fail(
            Why::BadRequest,
            "Email must be at most 254 characters",
        ));
    }
    let hwid = ctx.p.get("hwid").filter(|h| h.len() <= 2000);
    if blacklisted(ctx, hwid) {
        return Ok(ctx.fail(Why::Blacklisted, "hwidblacked"));
    }
    if load_user(ctx, username).await?.is_some() {
        return Ok(ctx.fail(Why::UsernameTaken, "usernametaken"));
    }
    let r = match redeemable(ctx, key).await? {
        Ok(r) => r,
        Err(reply) => return Ok(reply),
    };
    let hash = ctx.state.client.passwords.hash(password).await?;
    let app = ctx.app().id;
    let ip = ctx.ip_string();
    let mut c = keyward_shared::db::checkout(&ctx.state.pool).await?;
    let mut w = WriteTx::begin(&mut c, ctx.actor()).await?;
    let new = users::NewUser {
        username,
        password_hash: &hash,
        email,
        hwid,
        ip: Some(&ip),
        subscription: None,
        level: None,
        days: None,
        key: Some(key),
    };
    let user = match users::create_for_key(&mut w, app, &new, &r.tier, r.secs, key).await {
        Ok(u) => u,
        Err(StoreError::Conflict(_)) => return Ok(ctx.fail(Why::UsernameTaken, "usernametaken")),
        Err(StoreError::Invalid(m)) => return Ok(Reply::fail(Why::BadRequest, m)),
        Err(e) => return Err(e.into()),
    };
    // A registration is also the user's first login.
    users::record_login(&mut w, app, &user, &ip, None).await?;
    if !licenses::redeem(&mut w, r.license.id, username).await? {
        // Used up (or banned) by a concurrent call since the check: nothing is committed.
        return Ok(ctx.fail(Why::KeyUsed, "keyused"));
    }
    sessions::validate(&mut w, app, &s.id, user.id, username, hwid).await?;
    w.commit().await?;
    ctx.state.caches.forget_license(app, key);
    forget(ctx, s, &[username]).await;
    let now = Utc::now();
    Ok(Reply::ok(ctx.message("loggedInMsg")).field(
        "info",
        json!({
            "username": user.username,
            "subscriptions": subscriptions_info(&user, false, now),
            "ip": ip,
            "hwid": hwid,
            "createdate": ts(now),
            "lastlogin": ts(now),
        }),
    ))
}

/// `license`: the key is both username and password of a user made on first use.
pub async fn license(ctx: &Ctx<'_>, s: &Session) -> Answer {
    if let Some(r) = hwid_precheck(ctx) {
        return Ok(r);
    }
    let key = ctx.p.get("key").unwrap_or("");
    if key.is_empty() {
        return Ok(ctx.fail(Why::KeyNotFound, "keynotfound"));
    }
    if key.chars().count() > MAX_NAME {
        return Ok(Reply::fail(
            Why::BadRequest,
            "Key must be shorter than 70 characters",
        ));
    }
    if let Some(user) = load_user(ctx, key).await? {
        return login_as(ctx, s, Some(user), key).await;
    }
    let reply = register_as(ctx, s, key, key, key, None).await?;
    let lost_race = [Why::UsernameTaken.code(), Why::KeyUsed.code()];
    if reply
        .failure()
        .is_some_and(|code| lost_race.contains(&code))
    {
        // Another machine's first `license` with this key created its user a moment ago:
        // log in as that user (read afresh: the cache may still hold "no such user").
        let app = ctx.app().id;
        ctx.state.caches.client.users.forget(&InApp(app, key));
        if let Some(user) = load_user(ctx, key).await? {
            return login_as(ctx, s, Some(user), key).await;
        }
    }
    Ok(reply)
}

/// `upgrade`: adds a key's subscription to an existing user (no password: KeyAuth's protocol).
pub async fn upgrade(ctx: &Ctx<'_>) -> Answer {
    let username = ctx.p.get("username").unwrap_or("");
    let key = ctx.p.get("key").unwrap_or("");
    if key.chars().count() > MAX_NAME {
        return Ok(Reply::fail(
            Why::BadRequest,
            "Key must be shorter than 70 characters",
        ));
    }
    let r = match redeemable(ctx, key).await? {
        Ok(r) => r,
        Err(reply) => return Ok(reply),
    };
    let Some(user) = load_user(ctx, username).await? else {
        return Ok(ctx.fail(Why::UserNotFound, "usernamenotfound"));
    };
    let app = ctx.app().id;
    let mut c = keyward_shared::db::checkout(&ctx.state.pool).await?;
    let mut w = WriteTx::begin(&mut c, ctx.actor()).await?;
    if !licenses::redeem(&mut w, r.license.id, &user.username).await? {
        return Ok(ctx.fail(Why::KeyUsed, "keyused"));
    }
    users::grant_for_key(&mut w, user.id, &r.tier, r.secs, key).await?;
    w.commit().await?;
    ctx.state.caches.forget_license(app, key);
    ctx.state
        .caches
        .client
        .users
        .forget(&InApp(app, &user.username));
    Ok(Reply::ok("Upgraded successfully"))
}

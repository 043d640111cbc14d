//! Session-level calls: `check`, `logout`, `changeUsername`, `ban`, `checkblacklist`,
//! `fetchOnline`, `fetchStats`.

use std::sync::Arc;

use keyward_shared::invalidation::Invalidation;
use keyward_shared::model::{AppUser, BlacklistKind};
use keyward_shared::store::sessions::Session;
use keyward_shared::store::{apps, blacklist, sessions, users};
use keyward_shared::write::WriteTx;
use keyward_shared::StoreError;
use serde_json::json;

use super::account::load_user;
use super::reply::Reply;
use super::{Answer, Ctx, Fault, Why};
use crate::cache::InApp;

const DEFAULT_BAN_REASON: &str = "User banned from triggering ban function in the client";

/// The user of a validated session, or the answer refusing the call. A user banned or deleted
/// since login is refused here, so a ban made anywhere ends every session on every validator.
pub async fn validated_user(
    ctx: &Ctx<'_>,
    s: &Session,
) -> Result<Result<Arc<AppUser>, Reply>, Fault> {
    let unauthed = || Ok(Err(ctx.fail(Why::SessionUnauthed, "sessionunauthed")));
    if !s.validated {
        return unauthed();
    }
    let Some(name) = s.credential.as_deref() else {
        return unauthed();
    };
    let Some(user) = load_user(ctx, name).await? else {
        return unauthed();
    };
    if Some(user.id) != s.user_id {
        return unauthed();
    }
    if user.banned {
        let msg = ctx
            .message("userbanned")
            .replace("{reason}", user.ban_reason.as_deref().unwrap_or(""));
        return Ok(Err(Reply::fail(Why::UserBanned, msg)));
    }
    Ok(Ok(user))
}

macro_rules! user_or_refusal {
    ($ctx:expr, $s:expr) => {
        match validated_user($ctx, $s).await? {
            Ok(u) => u,
            Err(reply) => return Ok(reply),
        }
    };
}
pub(crate) use user_or_refusal;

pub async fn check(ctx: &Ctx<'_>, s: &Session) -> Answer {
    let _user = user_or_refusal!(ctx, s);
    Ok(Reply::ok("Session is validated."))
}

pub async fn logout(ctx: &Ctx<'_>, s: &Session) -> Answer {
    let mut c = keyward_shared::db::checkout(&ctx.state.pool).await?;
    let mut w = WriteTx::begin(&mut c, ctx.actor()).await?;
    sessions::delete(&mut w, ctx.app().id, &s.id).await?;
    w.commit().await?;
    let key = InApp(ctx.app().id, &s.id);
    ctx.state.caches.client.sessions.forget(&key);
    Ok(Reply::ok("Successfully logged out."))
}

pub async fn change_username(ctx: &Ctx<'_>, s: &Session) -> Answer {
    let user = user_or_refusal!(ctx, s);
    let new_name = ctx.p.get("newUsername").unwrap_or("");
    let len = new_name.chars().count();
    if len < ctx.app().min_username_len as usize || len > 70 {
        return Ok(ctx.fail(Why::UsernameTooShort, "unTooShort"));
    }
    let app = ctx.app().id;
    let mut c = keyward_shared::db::checkout(&ctx.state.pool).await?;
    let mut w = WriteTx::begin(&mut c, ctx.actor()).await?;
    match users::rename(&mut w, app, &user, new_name).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Ok(Reply::fail(Why::UsernameTaken, "Username already used!"))
        }
        Err(StoreError::Invalid(m)) => return Ok(Reply::fail(Why::BadRequest, m)),
        Err(e) => return Err(e.into()),
    }
    w.commit().await?;
    let caches = &ctx.state.caches.client;
    caches.sessions.forget(&InApp(app, &s.id));
    caches.users.forget(&InApp(app, &user.username));
    caches.users.forget(&InApp(app, new_name));
    Ok(Reply::ok("Successfully changed username, user logged out."))
}

/// `ban`: bans the session's user and blacklists their HWID and address. Answers success when it
/// did (KeyAuth's own server always answers failure here, a bug SDKs ignore).
pub async fn ban(ctx: &Ctx<'_>, s: &Session) -> Answer {
    let user = user_or_refusal!(ctx, s);
    let reason = ctx.p.get("reason").unwrap_or(DEFAULT_BAN_REASON);
    if reason.chars().count() > 99 {
        return Ok(Reply::fail(
            Why::BadRequest,
            "Reason must be 99 characters or less",
        ));
    }
    let app = ctx.app().id;
    let hwid = ctx
        .p
        .get("hwid")
        .or(s.hwid.as_deref())
        .or(user.hwid.as_deref());
    let mut c = keyward_shared::db::checkout(&ctx.state.pool).await?;
    let mut w = WriteTx::begin(&mut c, ctx.actor()).await?;
    users::ban(&mut w, app, user.id, Some(reason)).await?;
    w.commit().await?;
    // One transaction per entry: an entry that already exists is a unique violation, which would
    // abort a shared transaction.
    let entries = [
        Some((BlacklistKind::Ip, ctx.ip_string())),
        hwid.map(|h| (BlacklistKind::Hwid, h.to_string())),
    ];
    for (kind, value) in entries.into_iter().flatten() {
        let mut w = WriteTx::begin(&mut c, ctx.actor()).await?;
        let entry = blacklist::NewEntry {
            kind,
            value,
            note: Some(format!("client ban of {}: {reason}", user.username)),
        };
        match blacklist::add(&mut w, app, &entry).await {
            Ok(_) => w.commit().await?,
            Err(StoreError::Conflict(_) | StoreError::Invalid(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.state
        .caches
        .apply(&Invalidation::Blacklist { app })
        .await;
    ctx.state
        .caches
        .client
        .users
        .forget(&InApp(app, &user.username));
    Ok(Reply::ok("Successfully Banned User"))
}

/// Inverted, as in KeyAuth: success means the client IS blacklisted.
pub async fn check_blacklist(ctx: &Ctx<'_>) -> Answer {
    let bl = &ctx.app.blacklist;
    let hwid = ctx.p.get("hwid");
    if bl.blocks_ip(ctx.ip) || hwid.is_some_and(|h| bl.blocks_hwid(h)) {
        Ok(Reply::ok("Client is blacklisted"))
    } else {
        Ok(Reply::fail(
            Why::NotBlacklisted,
            "Client is not blacklisted",
        ))
    }
}

/// Credentials are shown up to 10 characters, the rest masked (they may be license keys).
fn mask(credential: &str) -> String {
    credential
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 10 { c } else { '*' })
        .collect()
}

pub async fn fetch_online(ctx: &Ctx<'_>) -> Answer {
    let app = ctx.app().id;
    let cache = &ctx.state.caches.client.online;
    let online = match cache.get(&app).await {
        Some(o) => o,
        None => {
            let c = keyward_shared::db::checkout(&ctx.state.pool).await?;
            let o = Arc::new(sessions::online(&**c, app, 1000).await?);
            cache.insert(app, o.clone()).await;
            o
        }
    };
    if online.is_empty() {
        return Ok(Reply::fail(Why::NoOnlineUsers, "No online users found!"));
    }
    let users: Vec<_> = online
        .iter()
        .map(|c| json!({"credential": mask(c)}))
        .collect();
    Ok(Reply::ok("Successfully fetched online users.").field("users", users))
}

pub async fn fetch_stats(ctx: &Ctx<'_>) -> Answer {
    let app = ctx.app().id;
    let cache = &ctx.state.caches.client.stats;
    let stats = match cache.get(&app).await {
        Some(s) => s,
        None => {
            let c = keyward_shared::db::checkout(&ctx.state.pool).await?;
            let s = Arc::new(apps::stats(&**c, app).await?);
            cache.insert(app, s.clone()).await;
            s
        }
    };
    Ok(Reply::ok("Successfully fetched stats").field(
        "appinfo",
        json!({
            "numUsers": stats.users.to_string(),
            "numOnlineUsers": stats.active_sessions.to_string(),
            "numKeys": stats.licenses.to_string(),
            "version": ctx.app().version,
            "customerPanelLink": "",
        }),
    ))
}

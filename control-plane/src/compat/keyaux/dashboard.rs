//! The KeyAux dashboard API: accounts, apps, licenses, end users, subscriptions, variables,
//! webhooks, blacklist, logs and seller keys, in the documented paths and shapes.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::response::Response;
use keyward_shared::model::{App, BlacklistKind};
use keyward_shared::store::licenses::{self, Bulk, GenerateSpec, KeyState};
use keyward_shared::store::{
    accounts, api_keys, apps, blacklist, client_logs, subscriptions, users, variables, webhooks,
    Offset,
};
use keyward_shared::write::{Actor, WriteTx};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    created, hash, repr, verify, KaAuth, KaBody, KaError, KaJson, KaPath, KaQuery, KaResult,
};
use crate::AppState;

/// Dashboard tokens live 7 days, as KeyAux's do.
const TOKEN_TTL: Duration = Duration::from_secs(7 * 86_400);

type Answer = KaResult<axum::Json<Value>>;

fn ok(v: Value) -> Answer {
    Ok(axum::Json(v))
}

fn done(message: &str) -> Answer {
    ok(json!({"success": true, "message": message}))
}

/// Runs `$body` inside a `WriteTx` of the caller and commits it.
macro_rules! write_tx {
    ($state:expr, $actor:expr, |$w:ident| $body:expr) => {{
        let mut client = $state.client().await?;
        let mut $w = WriteTx::begin(&mut client, $actor).await?;
        let out = $body;
        $w.commit().await?;
        out
    }};
}

async fn own_app(state: &AppState, auth: &KaAuth, app: Uuid) -> KaResult<App> {
    let c = state.client().await?;
    Ok(apps::get(&**c, auth.0.account_id(), app).await?)
}

// ---- accounts ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    username: String,
    email: String,
    password: String,
}

fn check_password(p: &str) -> KaResult<()> {
    if p.chars().count() < 6 || p.len() > 1024 {
        return Err(KaError::bad_request(
            "Password must be at least 6 characters",
        ));
    }
    Ok(())
}

pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parts: Parts,
    KaJson(req): KaJson<Register>,
) -> KaResult<Response> {
    state.check_login_rate(peer.ip())?;
    let (username, email) = (req.username.trim(), req.email.trim());
    if username.is_empty() || email.is_empty() {
        return Err(KaError::bad_request("Missing username, email or password"));
    }
    check_password(&req.password)?;
    let password_hash = hash(req.password).await?;
    let id = Uuid::new_v4();
    let actor = Actor {
        origin: crate::auth::origin(&parts),
        account_id: id,
        label: format!("admin:{username}"),
    };
    let account = write_tx!(state, actor, |w| {
        let account =
            accounts::create_with_id(w.tx(), id, username, Some(email), &password_hash).await?;
        api_keys::create_seller(&mut w, "Default").await?;
        account
    });
    let (token, _) = state
        .jwt()
        .issue_for(account.id, &account.username, TOKEN_TTL)?;
    Ok(created(json!({"success": true, "token": token, "user": {
        "id": account.public_id, "username": account.username, "email": account.email, "plan": account.plan,
    }})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    KaJson(req): KaJson<Login>,
) -> Answer {
    state.check_login_rate(peer.ip())?;
    if req.username.len() > 256 || req.password.len() > 1024 {
        return Err(KaError::bad_request("Username or password is too long"));
    }
    let found = {
        let c = state.client().await?;
        accounts::find_for_login(&**c, req.username.trim()).await?
    };
    // Unknown accounts cost the same as known ones.
    let hash_to_check = found.as_ref().map_or_else(
        || keyward_shared::secrets::dummy_password_hash().to_string(),
        |(_, h)| h.clone(),
    );
    let matches = verify(req.password, hash_to_check).await?;
    let account = match found {
        Some((a, _)) if matches => a,
        _ => return Err(KaError::unauthorized("Invalid username or password")),
    };
    let (token, _) = state
        .jwt()
        .issue_for(account.id, &account.username, TOKEN_TTL)?;
    ok(json!({"success": true, "token": token, "user": repr::user(&account, false)}))
}

pub async fn me(State(state): State<AppState>, auth: KaAuth) -> Answer {
    let c = state.client().await?;
    let account = accounts::get(&**c, auth.0.account_id()).await?;
    ok(json!({"success": true, "user": repr::user(&account, true)}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    auth: KaAuth,
    KaJson(req): KaJson<ChangePassword>,
) -> Answer {
    check_password(&req.new_password)?;
    let c = state.client().await?;
    let current = accounts::password_hash(&**c, auth.0.account_id()).await?;
    if !verify(req.current_password, current).await? {
        return Err(KaError::unauthorized("Current password is incorrect"));
    }
    let new_hash = hash(req.new_password).await?;
    accounts::set_password(&**c, auth.0.account_id(), &new_hash).await?;
    done("Password updated")
}

pub async fn stats(State(state): State<AppState>, auth: KaAuth) -> Answer {
    let c = state.client().await?;
    let s = accounts::stats(&**c, auth.0.account_id()).await?;
    ok(json!({"success": true, "stats": s}))
}

// ---- applications ----

pub async fn list_apps(State(state): State<AppState>, auth: KaAuth) -> Answer {
    auth.0.require("apps:read")?;
    let c = state.client().await?;
    let list = apps::list(&**c, auth.0.account_id()).await?;
    ok(json!({"success": true, "applications": list.iter().map(repr::app).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppFields {
    name: Option<String>,
    version: Option<String>,
    hwid_lock: Option<bool>,
    anti_vpn: Option<bool>,
    hash_check: Option<bool>,
    paused: Option<bool>,
}

impl AppFields {
    fn patch(self) -> apps::AppPatch {
        apps::AppPatch {
            name: self.name,
            version: self.version,
            paused: self.paused,
            hwid_lock: self.hwid_lock,
            anti_vpn: self.anti_vpn,
            hash_check: self.hash_check,
            ..Default::default()
        }
    }
}

pub async fn create_app(
    State(state): State<AppState>,
    auth: KaAuth,
    KaJson(req): KaJson<AppFields>,
) -> KaResult<Response> {
    auth.0.require("apps:write")?;
    if req.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(KaError::bad_request("Application name is required"));
    }
    let app = write_tx!(state, auth.0.actor.clone(), |w| apps::create(
        &mut w,
        &req.patch()
    )
    .await?);
    Ok(created(
        json!({"success": true, "message": "Application created", "application": repr::app(&app)}),
    ))
}

pub async fn get_app(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(id): KaPath<Uuid>,
) -> Answer {
    auth.0.require("apps:read")?;
    let app = own_app(&state, &auth, id).await?;
    let c = state.client().await?;
    let stats = apps::stats(&**c, id).await?;
    let mut body = repr::app(&app);
    body["stats"] = json!(stats);
    ok(json!({"success": true, "application": body}))
}

pub async fn update_app(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(id): KaPath<Uuid>,
    KaJson(req): KaJson<AppFields>,
) -> Answer {
    auth.0.require("apps:write")?;
    let app = write_tx!(state, auth.0.actor.clone(), |w| apps::update(
        &mut w,
        id,
        &req.patch()
    )
    .await?);
    ok(json!({"success": true, "message": "Application updated", "application": repr::app(&app)}))
}

pub async fn reset_secret(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(id): KaPath<Uuid>,
) -> Answer {
    auth.0.require("apps:write")?;
    let app = write_tx!(state, auth.0.actor.clone(), |w| apps::reset_secret(
        &mut w, id
    )
    .await?);
    ok(json!({"success": true, "message": "Secret regenerated", "secret": app.secret}))
}

pub async fn delete_app(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(id): KaPath<Uuid>,
) -> Answer {
    auth.0.require("apps:write")?;
    write_tx!(state, auth.0.actor.clone(), |w| apps::delete(&mut w, id)
        .await?);
    done("Application deleted")
}

// ---- licenses ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    page: Option<i64>,
    limit: Option<i64>,
    search: Option<String>,
    status: Option<KeyState>,
}

pub async fn list_licenses(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
    KaQuery(q): KaQuery<ListParams>,
) -> Answer {
    auth.0.require("licenses:read")?;
    own_app(&state, &auth, app).await?;
    let page = Offset::new(q.page, q.limit, 50, 500);
    let c = state.client().await?;
    let (items, total) = licenses::list_paged(
        &**c,
        auth.0.account_id(),
        app,
        q.search.as_deref(),
        q.status,
        page,
    )
    .await?;
    ok(
        json!({"success": true, "licenses": items.iter().map(repr::license).collect::<Vec<_>>(),
              "total": total, "page": q.page.unwrap_or(1).max(1), "limit": page.limit}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    count: Option<i64>,
    mask: Option<String>,
    duration_days: Option<i64>,
    level: Option<i32>,
    max_uses: Option<i32>,
    note: Option<String>,
}

/// KeyAuth keys run for their duration from redemption.
pub fn keyauth_spec(
    count: i64,
    mask: Option<String>,
    days: i64,
    level: Option<i32>,
    max_uses: Option<i32>,
    note: Option<String>,
) -> GenerateSpec {
    GenerateSpec {
        count: Some(count),
        mask,
        duration_days: Some(days),
        expiry_on_first_use: true,
        level,
        max_uses,
        note,
        ..Default::default()
    }
}

pub async fn generate_licenses(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
    KaJson(req): KaJson<Generate>,
) -> KaResult<Response> {
    auth.0.require("licenses:write")?;
    let spec = keyauth_spec(
        req.count.unwrap_or(1),
        req.mask,
        req.duration_days.unwrap_or(30),
        req.level,
        req.max_uses,
        req.note,
    );
    let made = write_tx!(state, auth.0.actor.clone(), |w| licenses::generate(
        &mut w, app, &spec
    )
    .await?);
    let list: Vec<Value> = made
        .iter()
        .map(|l| json!({"id": l.id, "license_key": l.key}))
        .collect();
    Ok(created(
        json!({"success": true, "licenses": list, "count": made.len()}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    reason: Option<String>,
}

/// An optional JSON body: absent or empty is the default.
fn optional<T: Default + serde::de::DeserializeOwned>(body: &axum::body::Bytes) -> KaResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| KaError::bad_request(format!("Invalid JSON body: {e}")))
}

pub async fn ban_license(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
    KaBody(body): KaBody,
) -> Answer {
    auth.0.require("licenses:write")?;
    let r: Reason = optional(&body)?;
    write_tx!(state, auth.0.actor.clone(), |w| {
        licenses_in_app(&w, app, id).await?;
        licenses::ban(&mut w, id, r.reason.as_deref()).await?
    });
    done("License banned")
}

/// NotFound unless the license belongs to that (caller's) app.
async fn licenses_in_app(w: &WriteTx<'_>, app: Uuid, id: Uuid) -> KaResult<()> {
    let l = licenses::get(w.tx(), w.account_id(), id).await?;
    if l.app_id != app {
        return Err(KaError::not_found("License not found"));
    }
    Ok(())
}

pub async fn delete_license(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
) -> Answer {
    auth.0.require("licenses:write")?;
    write_tx!(state, auth.0.actor.clone(), |w| {
        licenses_in_app(&w, app, id).await?;
        licenses::delete(&mut w, id).await?
    });
    done("License deleted")
}

async fn delete_licenses(state: AppState, auth: KaAuth, app: Uuid, which: Bulk) -> Answer {
    auth.0.require("licenses:write")?;
    let n = write_tx!(state, auth.0.actor.clone(), |w| licenses::delete_many(
        &mut w, app, which
    )
    .await?);
    ok(json!({"success": true, "message": format!("Deleted {n} licenses"), "deleted": n}))
}

pub async fn delete_unused_licenses(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
) -> Answer {
    delete_licenses(state, auth, app, Bulk::Unused).await
}

pub async fn delete_used_licenses(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
) -> Answer {
    delete_licenses(state, auth, app, Bulk::Used).await
}

// ---- users ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserListParams {
    page: Option<i64>,
    limit: Option<i64>,
    search: Option<String>,
}

pub async fn list_users(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
    KaQuery(q): KaQuery<UserListParams>,
) -> Answer {
    auth.0.require("licenses:read")?;
    own_app(&state, &auth, app).await?;
    let page = Offset::new(q.page, q.limit, 50, 500);
    let c = state.client().await?;
    let (items, total) =
        users::list(&**c, auth.0.account_id(), app, q.search.as_deref(), page).await?;
    ok(
        json!({"success": true, "users": items.iter().map(repr::end_user).collect::<Vec<_>>(),
              "total": total, "page": q.page.unwrap_or(1).max(1), "limit": page.limit}),
    )
}

pub async fn get_user(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
) -> Answer {
    auth.0.require("licenses:read")?;
    let c = state.client().await?;
    let user = users::get(&**c, auth.0.account_id(), app, id).await?;
    let vars = variables::list_user(&**c, auth.0.account_id(), app, Some(id)).await?;
    let mut body = repr::end_user(&user);
    body["variables"] = json!(vars.iter().map(repr::variable).collect::<Vec<_>>());
    ok(json!({"success": true, "user": body}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    username: String,
    password: String,
    email: Option<String>,
    level: Option<i32>,
    subscription_name: Option<String>,
    subscription_days: Option<i64>,
}

pub async fn create_user(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
    KaJson(req): KaJson<NewUser>,
) -> KaResult<Response> {
    auth.0.require("licenses:write")?;
    if req.username.trim().is_empty() || req.password.is_empty() {
        return Err(KaError::bad_request("Username and password are required"));
    }
    if req.password.len() > 1024 {
        return Err(KaError::bad_request("Password is too long"));
    }
    let password_hash = hash(req.password).await?;
    let user = write_tx!(state, auth.0.actor.clone(), |w| {
        users::create(
            &mut w,
            app,
            &users::NewUser {
                username: &req.username,
                password_hash: &password_hash,
                email: req.email.as_deref(),
                hwid: None,
                ip: None,
                subscription: req.subscription_name.as_deref(),
                level: req.level,
                days: req.subscription_days,
                key: None,
            },
        )
        .await?
    });
    Ok(created(
        json!({"success": true, "message": "User created", "user": repr::end_user(&user)}),
    ))
}

pub async fn ban_user(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
    KaBody(body): KaBody,
) -> Answer {
    auth.0.require("licenses:write")?;
    let r: Reason = optional(&body)?;
    write_tx!(state, auth.0.actor.clone(), |w| users::ban(
        &mut w,
        app,
        id,
        r.reason.as_deref()
    )
    .await?);
    done("User banned")
}

pub async fn unban_user(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
) -> Answer {
    auth.0.require("licenses:write")?;
    write_tx!(state, auth.0.actor.clone(), |w| users::unban(
        &mut w, app, id
    )
    .await?);
    done("User unbanned")
}

pub async fn reset_user_hwid(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
) -> Answer {
    auth.0.require("licenses:write")?;
    write_tx!(state, auth.0.actor.clone(), |w| users::reset_hwid(
        &mut w, app, id
    )
    .await?);
    done("HWID reset")
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Extend {
    days: Option<i64>,
    subscription_name: Option<String>,
}

pub async fn extend_user(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
    KaBody(body): KaBody,
) -> Answer {
    auth.0.require("licenses:write")?;
    let e: Extend = optional(&body)?;
    let days = e.days.unwrap_or(30);
    write_tx!(state, auth.0.actor.clone(), |w| users::extend(
        &mut w,
        app,
        id,
        days,
        e.subscription_name.as_deref()
    )
    .await?);
    done("Subscription extended")
}

pub async fn delete_user(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
) -> Answer {
    auth.0.require("licenses:write")?;
    write_tx!(state, auth.0.actor.clone(), |w| users::delete(
        &mut w, app, id
    )
    .await?);
    done("User deleted")
}

pub async fn delete_all_users(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
) -> Answer {
    auth.0.require("licenses:write")?;
    let n = write_tx!(state, auth.0.actor.clone(), |w| users::delete_many(
        &mut w, app, false
    )
    .await?);
    ok(json!({"success": true, "message": format!("Deleted {n} users"), "deleted": n}))
}

// ---- subscriptions ----

pub async fn list_subscriptions(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
) -> Answer {
    auth.0.require("apps:read")?;
    own_app(&state, &auth, app).await?;
    let c = state.client().await?;
    let list = subscriptions::list(&**c, auth.0.account_id(), app).await?;
    ok(json!({"success": true, "subscriptions": list}))
}

pub async fn create_subscription(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
    KaJson(req): KaJson<subscriptions::NewSubscription>,
) -> KaResult<Response> {
    auth.0.require("apps:write")?;
    let s = write_tx!(state, auth.0.actor.clone(), |w| subscriptions::create(
        &mut w, app, &req
    )
    .await?);
    Ok(created(
        json!({"success": true, "message": "Subscription created", "subscription": s}),
    ))
}

pub async fn delete_subscription(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
) -> Answer {
    auth.0.require("apps:write")?;
    write_tx!(state, auth.0.actor.clone(), |w| subscriptions::delete(
        &mut w, app, id
    )
    .await?);
    done("Subscription deleted")
}

// ---- variables ----

pub async fn list_global_vars(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
) -> Answer {
    auth.0.require("apps:read")?;
    own_app(&state, &auth, app).await?;
    let c = state.client().await?;
    let list = variables::list_global(&**c, auth.0.account_id(), app).await?;
    ok(json!({"success": true, "variables": list.iter().map(repr::variable).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVar {
    key: String,
    value: Option<String>,
}

pub async fn set_global_var(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
    KaJson(req): KaJson<SetVar>,
) -> Answer {
    auth.0.require("apps:write")?;
    let v = write_tx!(state, auth.0.actor.clone(), |w| {
        variables::upsert_global(&mut w, app, &req.key, req.value.as_deref().unwrap_or("")).await?
    });
    ok(json!({"success": true, "message": "Variable saved", "variable": repr::variable(&v)}))
}

pub async fn delete_global_var(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
) -> Answer {
    auth.0.require("apps:write")?;
    write_tx!(state, auth.0.actor.clone(), |w| variables::delete_global(
        &mut w, app, id
    )
    .await?);
    done("Variable deleted")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserVarFilter {
    user_id: Option<Uuid>,
}

pub async fn list_user_vars(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
    KaQuery(q): KaQuery<UserVarFilter>,
) -> Answer {
    auth.0.require("licenses:read")?;
    own_app(&state, &auth, app).await?;
    let c = state.client().await?;
    let list = variables::list_user(&**c, auth.0.account_id(), app, q.user_id).await?;
    ok(json!({"success": true, "variables": list.iter().map(repr::variable).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetUserVar {
    user_id: Uuid,
    key: String,
    value: Option<String>,
}

pub async fn set_user_var(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
    KaJson(req): KaJson<SetUserVar>,
) -> Answer {
    auth.0.require("licenses:write")?;
    let v = write_tx!(state, auth.0.actor.clone(), |w| {
        variables::set_user(
            &mut w,
            app,
            req.user_id,
            &req.key,
            req.value.as_deref().unwrap_or(""),
        )
        .await?
    });
    ok(json!({"success": true, "message": "Variable saved", "variable": repr::variable(&v)}))
}

pub async fn delete_user_var(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
) -> Answer {
    auth.0.require("licenses:write")?;
    write_tx!(state, auth.0.actor.clone(), |w| variables::delete_user(
        &mut w, app, id
    )
    .await?);
    done("Variable deleted")
}

// ---- webhooks ----

pub async fn list_webhooks(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
) -> Answer {
    auth.0.require("apps:read")?;
    own_app(&state, &auth, app).await?;
    let c = state.client().await?;
    let list = webhooks::list(&**c, auth.0.account_id(), app).await?;
    ok(json!({"success": true, "webhooks": list.iter().map(repr::webhook).collect::<Vec<_>>()}))
}

pub async fn create_webhook(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
    KaJson(req): KaJson<webhooks::NewWebhook>,
) -> KaResult<Response> {
    auth.0.require("apps:write")?;
    let h = write_tx!(state, auth.0.actor.clone(), |w| webhooks::create(
        &mut w, app, &req
    )
    .await?);
    Ok(created(
        json!({"success": true, "message": "Webhook created", "webhook": repr::webhook(&h)}),
    ))
}

pub async fn delete_webhook(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
) -> Answer {
    auth.0.require("apps:write")?;
    write_tx!(state, auth.0.actor.clone(), |w| webhooks::delete(
        &mut w, app, id
    )
    .await?);
    done("Webhook deleted")
}

// ---- blacklist ----

pub async fn list_blacklist(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
) -> Answer {
    auth.0.require("blacklist:read")?;
    own_app(&state, &auth, app).await?;
    let c = state.client().await?;
    let list = blacklist::list(&**c, auth.0.account_id(), app).await?;
    ok(json!({"success": true, "blacklist": list.iter().map(repr::blacklist).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    #[serde(rename = "type")]
    kind: String,
    value: String,
    note: Option<String>,
}

pub async fn add_blacklist(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
    KaJson(req): KaJson<NewEntry>,
) -> KaResult<Response> {
    auth.0.require("blacklist:write")?;
    let kind = BlacklistKind::parse(req.kind.trim())
        .ok_or_else(|| KaError::bad_request("type must be 'ip' or 'hwid'"))?;
    let entry = blacklist::NewEntry {
        kind,
        value: req.value,
        note: req.note,
    };
    let e = write_tx!(state, auth.0.actor.clone(), |w| blacklist::add(
        &mut w, app, &entry
    )
    .await?);
    Ok(created(
        json!({"success": true, "message": "Added to blacklist", "entry": repr::blacklist(&e)}),
    ))
}

pub async fn delete_blacklist(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath((app, id)): KaPath<(Uuid, Uuid)>,
) -> Answer {
    auth.0.require("blacklist:write")?;
    write_tx!(state, auth.0.actor.clone(), |w| {
        let gone = blacklist::delete(&mut w, id).await?;
        if gone.app_id != app {
            // Rolls back: the entry is the caller's but not under this app.
            return Err(KaError::not_found("Blacklist entry not found"));
        }
    });
    done("Removed from blacklist")
}

// ---- logs ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    page: Option<i64>,
    limit: Option<i64>,
    action: Option<String>,
    search: Option<String>,
}

pub async fn list_logs(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
    KaQuery(q): KaQuery<LogParams>,
) -> Answer {
    auth.0.require("audit:read")?;
    own_app(&state, &auth, app).await?;
    let page = Offset::new(q.page, q.limit, 100, 1000);
    let c = state.client().await?;
    let (items, total) = client_logs::list(
        &**c,
        auth.0.account_id(),
        app,
        q.action.as_deref(),
        q.search.as_deref(),
        page,
    )
    .await?;
    ok(
        json!({"success": true, "logs": items.iter().map(repr::log).collect::<Vec<_>>(),
              "total": total, "page": q.page.unwrap_or(1).max(1), "limit": page.limit}),
    )
}

pub async fn clear_logs(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(app): KaPath<Uuid>,
) -> Answer {
    auth.0.require("apps:write")?;
    let n = write_tx!(state, auth.0.actor.clone(), |w| client_logs::clear(
        &mut w, app
    )
    .await?);
    ok(json!({"success": true, "message": "Logs cleared", "deleted": n}))
}

// ---- seller keys ----

pub async fn list_seller_keys(State(state): State<AppState>, auth: KaAuth) -> Answer {
    auth.0.require("api_keys:write")?;
    let c = state.client().await?;
    let keys = api_keys::list_seller(&**c, auth.0.account_id()).await?;
    let list: Vec<Value> = keys
        .iter()
        .map(|k| json!({"id": k.id, "name": k.name, "prefix": k.prefix, "created_at": k.created_at, "last_used_at": k.last_used_at}))
        .collect();
    ok(json!({"success": true, "keys": list}))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewSellerKey {
    name: Option<String>,
}

pub async fn create_seller_key(
    State(state): State<AppState>,
    auth: KaAuth,
    KaBody(body): KaBody,
) -> KaResult<Response> {
    auth.0.require("api_keys:write")?;
    let req: NewSellerKey = optional(&body)?;
    let name = req.name.unwrap_or_else(|| "New Key".into());
    let (k, plaintext) = write_tx!(state, auth.0.actor.clone(), |w| api_keys::create_seller(
        &mut w, &name
    )
    .await?);
    Ok(created(
        json!({"success": true, "message": "Seller key created (shown once)", "id": k.id, "name": k.name, "key": plaintext}),
    ))
}

pub async fn delete_seller_key(
    State(state): State<AppState>,
    auth: KaAuth,
    KaPath(id): KaPath<Uuid>,
) -> Answer {
    auth.0.require("api_keys:write")?;
    write_tx!(state, auth.0.actor.clone(), |w| api_keys::delete_seller(
        &mut w, id
    )
    .await?);
    done("Seller key deleted")
}

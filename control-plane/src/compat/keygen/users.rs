//! Users of the account (`POST`/`GET /v1/users`, `GET`/`PATCH`/`DELETE /v1/users/{id|email}`),
//! their ban (`actions/ban`, `actions/unban`: a banned user's licenses validate as `BANNED`), and
//! passwords: `actions/update-password` (the user, with the old one), `POST /v1/passwords`
//! (starts a reset; the token goes out in a `user.password-reset` webhook, Keygen's
//! `deliver:false` flow, since Keyward sends no mail) and `actions/reset-password` (with that
//! token; no credential).

use axum::body::Bytes;
use axum::http::StatusCode;
use keyward_shared::keygen_doc::{user as render, KgError, Source};
use keyward_shared::secrets;
use keyward_shared::store::account_users::{self, AccountUser, UserPatch};
use keyward_shared::store::accounts;
use keyward_shared::write::{Actor, WriteTx};
use keyward_shared::StoreError;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::paging::Query;
use super::{body, not_found, unprocessable, Answer, Ctx, Handled, Kg};
use crate::webhooks::emit;
use crate::AppState;

/// Keygen's user attributes onto the core's patch, and the password when one is given.
fn patch(attrs: &Map<String, Value>) -> Result<(UserPatch, Option<String>), KgError> {
    let mut core = Map::new();
    for (from, to) in [
        ("email", "email"),
        ("firstName", "first_name"),
        ("lastName", "last_name"),
        ("role", "role"),
        ("metadata", "metadata"),
    ] {
        if let Some(v) = attrs.get(from) {
            core.insert(to.into(), v.clone());
        }
    }
    let password = match attrs.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => {
            return Err(unprocessable(
                "password must be a string",
                "/data/attributes/password",
            ))
        }
    };
    let p = serde_json::from_value(Value::Object(core))
        .map_err(|e| unprocessable(e.to_string(), "/data/attributes"))?;
    Ok((p, password))
}

/// An argon2id hash of a new password, checked like every password (off the async workers).
async fn hash(password: String) -> Result<String, KgError> {
    accounts::validate_password(&password)
        .map_err(|e| unprocessable(e.to_string(), "/data/attributes/password"))?;
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(|_| KgError::new(StatusCode::INTERNAL_SERVER_ERROR, "password hashing failed"))?
        .map_err(|_| KgError::new(StatusCode::INTERNAL_SERVER_ERROR, "password hashing failed"))
}

fn write_error(e: StoreError, raw: &str) -> KgError {
    match e {
        StoreError::NotFound(_) => not_found("user", raw),
        StoreError::Conflict(m) => unprocessable(m, "/data/attributes/email").code("EMAIL_TAKEN"),
        StoreError::Invalid(m) => unprocessable(m, "/data/attributes"),
        e => super::store_error(e),
    }
}

async fn find(ctx: &Ctx<'_>, raw: &str) -> Result<AccountUser, KgError> {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let client = ctx.client().await?;
    account_users::find(&**client, ctx.account, &decoded)
        .await
        .map_err(|e| write_error(e, raw))
}

fn one(ctx: &Ctx<'_>, u: &AccountUser) -> Answer {
    Answer::ok(&json!({"data": render(u, &ctx.links)}))
}

pub async fn create(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require_admin()?;
    ctx.bearer.require("users:write")?;
    let r = body::resource(&ctx.json()?, "users")?;
    let (p, password) = patch(&r.attributes)?;
    if p.email.is_none() {
        return Err(
            unprocessable("email is required", "/data/attributes/email").code("EMAIL_MISSING")
        );
    }
    let hash = match password {
        Some(pw) => Some(hash(pw).await?),
        None => None,
    };
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let u = account_users::create(&mut w, &p, hash.as_deref())
        .await
        .map_err(|e| write_error(e, ""))?;
    emit::document(&mut w, "user.created", None, || render(&u, &ctx.links))
        .await
        .kg()?;
    w.commit().await.kg()?;
    let doc = json!({"data": render(&u, &ctx.links)});
    Ok(Answer::created(&doc, ctx.links.of("users", u.id)))
}

pub async fn list(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require_admin()?;
    ctx.bearer.require("users:read")?;
    let q = Query::parse(ctx.query)?;
    let client = ctx.client().await?;
    let (items, total) = account_users::list(&**client, ctx.account, q.get("search"), q.page)
        .await
        .kg()?;
    let data = items.iter().map(|u| render(u, &ctx.links)).collect();
    Ok(Answer::ok(&q.collection(ctx.path, data, total)))
}

pub async fn show(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("users:read")?;
    if ctx.bearer.product().is_some() {
        return Err(super::auth::access_denied());
    }
    Ok(one(ctx, &find(ctx, raw).await?))
}

pub async fn update(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require_admin()?;
    ctx.bearer.require("users:write")?;
    let current = find(ctx, raw).await?;
    let r = body::resource(&ctx.json()?, "users")?;
    let (p, password) = patch(&r.attributes)?;
    let hash = match password {
        Some(pw) => Some(hash(pw).await?),
        None => None,
    };
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    let u = account_users::update(&mut w, current.id, &p)
        .await
        .map_err(|e| write_error(e, raw))?;
    if let Some(hash) = hash {
        account_users::set_password_hash(&mut w, u.id, &hash)
            .await
            .kg()?;
    }
    emit::document(&mut w, "user.updated", None, || render(&u, &ctx.links))
        .await
        .kg()?;
    w.commit().await.kg()?;
    Ok(one(ctx, &u))
}

pub async fn delete(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require_admin()?;
    ctx.bearer.require("users:write")?;
    let u = find(ctx, raw).await?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    emit::document(&mut w, "user.deleted", None, || render(&u, &ctx.links))
        .await
        .kg()?;
    account_users::delete(&mut w, u.id)
        .await
        .map_err(|e| write_error(e, raw))?;
    w.commit().await.kg()?;
    Ok(Answer::no_content())
}

/// `POST /v1/users/{id}/actions/{ban|unban|update-password}`.
pub async fn action(ctx: &Ctx<'_>, raw: &str, action: &str) -> Handled {
    match action {
        "ban" | "unban" => {
            ctx.bearer.require_admin()?;
            ctx.bearer.require("users:write")?;
            let current = find(ctx, raw).await?;
            let banned = action == "ban";
            let mut client = ctx.client().await?;
            let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
            let u = account_users::set_banned(&mut w, current.id, banned)
                .await
                .map_err(|e| write_error(e, raw))?;
            let event = if banned {
                "user.banned"
            } else {
                "user.unbanned"
            };
            emit::document(&mut w, event, None, || render(&u, &ctx.links))
                .await
                .kg()?;
            w.commit().await.kg()?;
            Ok(one(ctx, &u))
        }
        "update-password" => update_password(ctx, raw).await,
        _ => Err(super::not_found_route(ctx.path)),
    }
}

fn meta_string<'a>(
    body: &'a Value,
    key: &'static str,
    pointer: &'static str,
) -> Result<&'a str, KgError> {
    body::meta(body, key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| KgError::bad_request(format!("{key} is required"), Source::Pointer(pointer)))
}

/// The user changes its own password, proving the old one.
async fn update_password(ctx: &Ctx<'_>, raw: &str) -> Handled {
    let u = find(ctx, raw).await?;
    if ctx.bearer.user() != Some(u.id) {
        return Err(super::auth::access_denied());
    }
    let body = ctx.json()?;
    let old = meta_string(&body, "oldPassword", "/meta/oldPassword")?.to_owned();
    let new = meta_string(&body, "newPassword", "/meta/newPassword")?.to_owned();
    let stored = {
        let client = ctx.client().await?;
        account_users::password_hash(&**client, ctx.account, u.id)
            .await
            .kg()?
    };
    let ok = tokio::task::spawn_blocking(move || secrets::verify_password(&old, &stored))
        .await
        .unwrap_or(false);
    if !ok {
        return Err(
            KgError::new(StatusCode::UNPROCESSABLE_ENTITY, "is incorrect")
                .code("OLD_PASSWORD_INCORRECT")
                .source(Source::Pointer("/meta/oldPassword")),
        );
    }
    let hash = hash(new).await?;
    let mut client = ctx.client().await?;
    let mut w = WriteTx::begin(&mut client, ctx.actor()).await.kg()?;
    account_users::set_password_hash(&mut w, u.id, &hash)
        .await
        .kg()?;
    w.commit().await.kg()?;
    Ok(one(ctx, &u))
}

/// Who acts for a request without a credential, in the audit log.
fn anonymous(account: Uuid) -> Actor {
    Actor {
        origin: Default::default(),
        account_id: account,
        label: "keygen:password-reset".into(),
    }
}

/// The one user with this e-mail (in the named account, else in any): a reset names no
/// account when clients use the unscoped path.
async fn user_by_email(
    state: &AppState,
    named: Option<Uuid>,
    email: &str,
) -> Result<Option<AccountUser>, KgError> {
    let client = state.client().await.kg()?;
    let mut found = account_users::for_login(&**client, named, email)
        .await
        .kg()?;
    Ok(if found.len() == 1 {
        found.pop().map(|(u, _)| u)
    } else {
        None
    })
}

/// `POST /v1/passwords {meta:{email, deliver}}`: 204 whatever the e-mail, so it cannot be used
/// to find out who has an account.
pub async fn request_reset(
    state: &AppState,
    named: Option<Uuid>,
    raw: &Bytes,
) -> Result<(Answer, Option<Uuid>), (KgError, Option<Uuid>)> {
    let fail = |e: KgError| (e, named);
    let doc = body::parse(raw).map_err(fail)?;
    let email = meta_string(&doc, "email", "/meta/email").map_err(fail)?;
    let Some(u) = user_by_email(state, named, email).await.map_err(fail)? else {
        return Ok((Answer::no_content(), named));
    };
    let links = keyward_shared::keygen_doc::Links::new(u.account_id);
    let mut client = state.client().await.kg().map_err(fail)?;
    let done = async {
        let mut w = WriteTx::begin(&mut client, anonymous(u.account_id)).await?;
        let token = account_users::start_password_reset(&mut w, u.id).await?;
        // The vendor's endpoint delivers it (Keygen's `deliver:false`): Keyward sends no mail.
        if w.subscribed("user.password-reset").await? {
            let mut doc = json!({"data": render(&u, &links)});
            doc["meta"] = json!({"passwordResetToken": token});
            w.event_in_app("user.password-reset", None, doc);
        }
        w.commit().await
    };
    done.await.kg().map_err(fail)?;
    Ok((Answer::no_content(), Some(u.account_id)))
}

/// `POST /v1/users/{id|email}/actions/reset-password {meta:{passwordResetToken, newPassword}}`.
pub async fn reset_password(
    state: &AppState,
    named: Option<Uuid>,
    raw_id: &str,
    raw: &Bytes,
) -> Result<(Answer, Option<Uuid>), (KgError, Option<Uuid>)> {
    let fail = |e: KgError| (e, named);
    let doc = body::parse(raw).map_err(fail)?;
    let token =
        meta_string(&doc, "passwordResetToken", "/meta/passwordResetToken").map_err(fail)?;
    let new = meta_string(&doc, "newPassword", "/meta/newPassword")
        .map_err(fail)?
        .to_owned();
    let refused = || {
        KgError::new(
            StatusCode::UNAUTHORIZED,
            "password reset token is invalid or expired",
        )
        .code("RESET_TOKEN_INVALID")
        .source(Source::Pointer("/meta/passwordResetToken"))
    };
    let decoded = percent_encoding::percent_decode_str(raw_id).decode_utf8_lossy();
    let u = {
        let client = state.client().await.kg().map_err(fail)?;
        match named {
            Some(account) => account_users::find(&**client, account, &decoded).await.ok(),
            None => account_users::find_anywhere(&**client, &decoded)
                .await
                .kg()
                .map_err(fail)?,
        }
    };
    let Some(u) = u else {
        return Err(fail(refused()));
    };
    let hash = hash(new).await.map_err(fail)?;
    let mut client = state.client().await.kg().map_err(fail)?;
    let reset = async {
        let mut w = WriteTx::begin(&mut client, anonymous(u.account_id)).await?;
        let ok = account_users::finish_password_reset(&mut w, u.id, token, &hash).await?;
        w.commit().await?;
        Ok::<_, StoreError>(ok)
    };
    if !reset.await.kg().map_err(fail)? {
        return Err(fail(refused()));
    }
    let links = keyward_shared::keygen_doc::Links::new(u.account_id);
    Ok((
        Answer::ok(&json!({"data": render(&u, &links)})),
        Some(u.account_id),
    ))
}

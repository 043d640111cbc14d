//! Tokens: `POST /v1/tokens` with the admin's email (or username) and password over HTTP Basic
//! answers a new admin token; product tokens are made for a product
//! (`POST /v1/products/{id}/tokens`). List, show, regenerate (`PUT`, a new secret and two more
//! weeks for an expiring token) and revoke (`DELETE`, 204).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use chrono::{DateTime, Utc};
use keyward_shared::keygen_doc::{time, KgError, Source};
use keyward_shared::secrets;
use keyward_shared::store::tokens::{self, Token};
use keyward_shared::store::{account_users, accounts};
use keyward_shared::write::{Actor, Origin, WriteTx};
use serde_json::{json, Value};
use uuid::Uuid;

use super::auth::{access_denied, Bearer};
use super::paging::Query;
use super::{body, id_of, not_found, store_error, Answer, Ctx, Handled};
use crate::AppState;

fn render(
    t: &Token,
    plaintext: Option<&str>,
    ctx_links: &keyward_shared::keygen_doc::Links,
) -> Value {
    let (bearer_type, bearer_id) = match t.bearer {
        tokens::Bearer::Admin => ("users", t.account_id),
        tokens::Bearer::Product(app) => ("products", app),
        tokens::Bearer::User(user) => ("users", user),
    };
    json!({
        "id": t.id.to_string(),
        "type": "tokens",
        "attributes": {
            "kind": t.bearer.kind(),
            "token": plaintext,
            "expiry": t.expires_at.map(time),
            "name": t.name,
            "permissions": ["*"],
            "created": time(t.created_at),
            "updated": time(t.updated_at),
        },
        "relationships": {
            "account": ctx_links.account(),
            "bearer": ctx_links.to_one(bearer_type, Some(bearer_id), ctx_links.of(bearer_type, bearer_id)),
        },
        "links": {"self": ctx_links.of("tokens", t.id)},
    })
}

fn credentials_error(detail: &str, code: &'static str) -> KgError {
    KgError::new(StatusCode::UNAUTHORIZED, detail)
        .code(code)
        .source(Source::Header("Authorization"))
        .challenge("Basic realm=\"keygen\"")
}

/// `email:password` of a Basic header.
fn basic(headers: &HeaderMap) -> Result<(String, String), KgError> {
    let value = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| credentials_error("email and password are required", "EMAIL_REQUIRED"))?;
    let (scheme, encoded) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(credentials_error(
            "Tokens are created with HTTP Basic authentication (email and password)",
            "CREDENTIALS_INVALID",
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| credentials_error("credentials are malformed", "CREDENTIALS_INVALID"))?;
    let (email, password) = decoded
        .split_once(':')
        .ok_or_else(|| credentials_error("credentials are malformed", "CREDENTIALS_INVALID"))?;
    if email.trim().is_empty() {
        return Err(credentials_error("email is required", "EMAIL_REQUIRED"));
    }
    if password.is_empty() {
        return Err(credentials_error(
            "password is required",
            "PASSWORD_REQUIRED",
        ));
    }
    if email.len() > 256 || password.len() > 1024 {
        return Err(credentials_error(
            "credentials are too long",
            "CREDENTIALS_INVALID",
        ));
    }
    Ok((email.trim().to_owned(), password.to_owned()))
}

/// `{data:{attributes:{name?, expiry?}}}` of a token request (absent body: neither).
fn token_attributes(raw: &Bytes) -> Result<(Option<String>, Option<DateTime<Utc>>), KgError> {
    let doc = body::parse(raw)?;
    if doc.get("data").is_none() {
        return Ok((None, None));
    }
    let r = body::resource(&doc, "tokens")?;
    let name = match r.attributes.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(super::unprocessable(
                "name must be a string",
                "/data/attributes/name",
            ))
        }
    };
    let expiry = match r.attributes.get("expiry") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    super::unprocessable(
                        "expiry must be an ISO-8601 timestamp",
                        "/data/attributes/expiry",
                    )
                })?
                .with_timezone(&Utc),
        ),
        Some(_) => {
            return Err(super::unprocessable(
                "expiry must be an ISO-8601 timestamp",
                "/data/attributes/expiry",
            ))
        }
    };
    Ok((name, expiry))
}

/// `POST /v1/tokens`: a new admin token for the account whose email (or username) and password
/// are given. Answers with the account it acted for, so the answer is signed for it.
pub async fn create(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    named: Option<Uuid>,
    raw: &Bytes,
) -> Result<(Answer, Option<Uuid>), (KgError, Option<Uuid>)> {
    let fail = |e: KgError| (e, named);
    state.check_login_rate(peer.ip()).map_err(|e| {
        let secs = e.retry_after.map_or(1, |d| d.as_secs().max(1));
        let mut kg = KgError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many attempts; retry in {secs} s"),
        )
        .code("TOO_MANY_REQUESTS");
        kg.retry_after = Some(secs);
        fail(kg)
    })?;
    let (email, password) = basic(headers).map_err(fail)?;
    let (name, expiry) = token_attributes(raw).map_err(fail)?;
    let found = {
        let client = state
            .client()
            .await
            .map_err(|e| fail(super::api_error(e)))?;
        accounts::find_for_login(&**client, &email)
            .await
            .map_err(|e| fail(store_error(e)))?
    };
    // Unknown accounts cost the same argon2 time as known ones.
    let hash = found.as_ref().map_or_else(
        || secrets::dummy_password_hash().to_string(),
        |(_, h)| h.clone(),
    );
    let tried = password.clone();
    let ok = tokio::task::spawn_blocking(move || secrets::verify_password(&tried, &hash))
        .await
        .unwrap_or(false);
    let account = match found {
        Some((account, _)) if ok && named.is_none_or(|n| n == account.id) => account,
        // Not an admin: perhaps one of an account's users.
        _ => return user_token(state, named, &email, password, name, expiry).await,
    };
    let mut client = state
        .client()
        .await
        .map_err(|e| fail(super::api_error(e)))?;
    let actor = Actor {
        origin: Origin::new(
            Some(peer.ip()),
            headers.get(USER_AGENT).and_then(|v| v.to_str().ok()),
        ),
        account_id: account.id,
        label: format!("admin:{}", account.username),
    };
    let made = async {
        let mut w = WriteTx::begin(&mut client, actor).await?;
        let made = tokens::create(&mut w, tokens::Bearer::Admin, name.as_deref(), expiry).await?;
        w.commit().await?;
        Ok::<_, keyward_shared::StoreError>(made)
    }
    .await
    .map_err(|e| (store_error(e), Some(account.id)))?;
    let links = keyward_shared::keygen_doc::Links::new(account.id);
    let (token, plaintext) = made;
    let doc = json!({"data": render(&token, Some(&plaintext), &links)});
    Ok((
        Answer::created(&doc, links.of("tokens", token.id)),
        Some(account.id),
    ))
}

/// A user token for the account user with this e-mail and password (in the named account, else
/// the one account that has the e-mail).
async fn user_token(
    state: &AppState,
    named: Option<Uuid>,
    email: &str,
    password: String,
    name: Option<String>,
    expiry: Option<DateTime<Utc>>,
) -> Result<(Answer, Option<Uuid>), (KgError, Option<Uuid>)> {
    let fail = |e: KgError| (e, named);
    let invalid = || credentials_error("email and password must be valid", "CREDENTIALS_INVALID");
    let mut found = {
        let client = state
            .client()
            .await
            .map_err(|e| fail(super::api_error(e)))?;
        account_users::for_login(&**client, named, email)
            .await
            .map_err(|e| fail(store_error(e)))?
    };
    let (user, hash) = match (found.pop(), found.is_empty()) {
        (Some(one), true) => one,
        // None, or the same e-mail in several accounts: the path must name the account.
        _ => return Err(fail(invalid())),
    };
    let ok = tokio::task::spawn_blocking(move || secrets::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    if !ok {
        return Err(fail(invalid()));
    }
    let account = Some(user.account_id);
    if user.banned {
        return Err((
            KgError::forbidden("User is banned").code("USER_BANNED"),
            account,
        ));
    }
    let mut client = state
        .client()
        .await
        .map_err(|e| (super::api_error(e), account))?;
    let actor = Actor {
        origin: Default::default(),
        account_id: user.account_id,
        label: format!("user:{}", user.email),
    };
    let made = async {
        let mut w = WriteTx::begin(&mut client, actor).await?;
        let made = tokens::create(
            &mut w,
            tokens::Bearer::User(user.id),
            name.as_deref(),
            expiry,
        )
        .await?;
        w.commit().await?;
        Ok::<_, keyward_shared::StoreError>(made)
    }
    .await
    .map_err(|e| (store_error(e), account))?;
    let links = keyward_shared::keygen_doc::Links::new(user.account_id);
    let (token, plaintext) = made;
    let doc = json!({"data": render(&token, Some(&plaintext), &links)});
    Ok((Answer::created(&doc, links.of("tokens", token.id)), account))
}

/// `POST /v1/products/{id}/tokens`: a product token (admins only).
pub async fn create_for_product(ctx: &Ctx<'_>, product: &str) -> Handled {
    ctx.bearer.require_admin()?;
    ctx.bearer.require("api_keys:write")?;
    let app = id_of("product", product)?;
    let (name, expiry) = token_attributes(ctx.body)?;
    let mut client = ctx.state.client().await.map_err(super::api_error)?;
    let mut w = WriteTx::begin(&mut client, ctx.actor())
        .await
        .map_err(store_error)?;
    let (token, plaintext) = tokens::create(
        &mut w,
        tokens::Bearer::Product(app),
        name.as_deref(),
        expiry,
    )
    .await
    .map_err(|e| match e {
        keyward_shared::StoreError::NotFound(_) => not_found("product", product),
        e => store_error(e),
    })?;
    w.commit().await.map_err(store_error)?;
    let doc = json!({"data": render(&token, Some(&plaintext), &ctx.links)});
    Ok(Answer::created(&doc, ctx.links.of("tokens", token.id)))
}

pub async fn list(ctx: &Ctx<'_>) -> Handled {
    ctx.bearer.require("api_keys:write")?;
    let q = Query::parse(ctx.query)?;
    let app = match ctx.bearer.product() {
        Some(own) => Some(own),
        None => q.id("product")?,
    };
    let client = ctx.state.client().await.map_err(super::api_error)?;
    let (items, total) = tokens::list(&**client, ctx.account, app, ctx.bearer.user(), q.page)
        .await
        .map_err(store_error)?;
    let data = items.iter().map(|t| render(t, None, &ctx.links)).collect();
    Ok(Answer::ok(&q.collection(ctx.path, data, total)))
}

/// One of the account's tokens the bearer may see: its own, or any for an admin.
async fn visible(ctx: &Ctx<'_>, raw: &str) -> Result<Token, KgError> {
    let id = id_of("token", raw)?;
    let client = ctx.state.client().await.map_err(super::api_error)?;
    let token = tokens::get(&**client, ctx.account, id)
        .await
        .map_err(|e| match e {
            keyward_shared::StoreError::NotFound(_) => not_found("token", raw),
            e => store_error(e),
        })?;
    match &ctx.bearer {
        Bearer::Product { token: own, .. } if *own != token.id => Err(not_found("token", raw)),
        Bearer::User { user, .. } if token.bearer != tokens::Bearer::User(*user) => {
            Err(not_found("token", raw))
        }
        _ => Ok(token),
    }
}

pub async fn show(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("api_keys:write")?;
    let token = visible(ctx, raw).await?;
    Ok(Answer::ok(
        &json!({"data": render(&token, None, &ctx.links)}),
    ))
}

pub async fn regenerate(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("api_keys:write")?;
    let token = visible(ctx, raw).await?;
    regenerate_token(ctx, token.id).await
}

/// `PUT /v1/tokens`: regenerates the token the request was made with.
pub async fn regenerate_current(ctx: &Ctx<'_>) -> Handled {
    let Some(id) = ctx.bearer.token() else {
        return Err(access_denied());
    };
    regenerate_token(ctx, id).await
}

async fn regenerate_token(ctx: &Ctx<'_>, id: Uuid) -> Handled {
    let mut client = ctx.state.client().await.map_err(super::api_error)?;
    let mut w = WriteTx::begin(&mut client, ctx.actor())
        .await
        .map_err(store_error)?;
    let (token, plaintext) = tokens::regenerate(&mut w, id).await.map_err(store_error)?;
    w.commit().await.map_err(store_error)?;
    Ok(Answer::ok(
        &json!({"data": render(&token, Some(&plaintext), &ctx.links)}),
    ))
}

pub async fn revoke(ctx: &Ctx<'_>, raw: &str) -> Handled {
    ctx.bearer.require("api_keys:write")?;
    let token = visible(ctx, raw).await?;
    let mut client = ctx.state.client().await.map_err(super::api_error)?;
    let mut w = WriteTx::begin(&mut client, ctx.actor())
        .await
        .map_err(store_error)?;
    tokens::revoke(&mut w, token.id)
        .await
        .map_err(store_error)?;
    w.commit().await.map_err(store_error)?;
    Ok(Answer::no_content())
}

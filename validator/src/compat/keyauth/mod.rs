//! The KeyAuth client API (`/api/1.1/`, `/api/1.2/`, `/api/1.3/`): a facade over the same core
//! as `/v1/validate`, wire-compatible with the shipped SDKs (see ARCHITECTURE.md, "KeyAuth
//! compatibility", for which quirks of the original are kept and which are not).
//!
//! One request: client address and per-address limit → parameters → the checks KeyAuth makes
//! before dispatch → app (by owner id + name) and per-app limit → session (every type but
//! `init`) → the type's handler → body rendered, signed for the version, sent.

mod account;
mod data;
mod init;
mod params;
mod password;
mod reply;
mod session_ops;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use keyward_shared::model::App;
use keyward_shared::store::sessions::Session;
use keyward_shared::verdict::Code;
use uuid::Uuid;

pub use password::Passwords;

use crate::body::{BodyError, RequestBody};
use crate::cache::{AppView, CacheError, InApp, Named};
use crate::client_ip::client_ip;
use crate::rate_limit::Limiter;
use crate::State;
use keyward_shared::signers::Signers;
pub(crate) use params::Params;
use reply::{Reply, SignWith};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Unsigned.
    V1_1,
    /// HMAC-SHA256 in `signature`.
    V1_2,
    /// Ed25519 in `x-signature-ed25519` + `x-signature-timestamp`; `code` and `ownerid` in bodies.
    V1_3,
}

impl Api {
    pub fn from_path(path: &str) -> Option<Api> {
        match path.trim_end_matches('/') {
            "/api/1.1" => Some(Api::V1_1),
            "/api/1.2" => Some(Api::V1_2),
            "/api/1.3" => Some(Api::V1_3),
            _ => None,
        }
    }
}

/// Why a call failed; its number is the 1.3 `code` of the answer (success is 68).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    BadRequest = 1,
    RateLimited = 2,
    UnknownType = 4,
    SessionNotFound = 5,
    SessionUnauthed = 6,
    AppPaused = 7,
    InvalidVersion = 8,
    HashCheck = 9,
    Encryption = 10,
    HwidRule = 11,
    UserNotFound = 12,
    PasswordMismatch = 13,
    UserBanned = 14,
    HwidMismatch = 15,
    Blacklisted = 16,
    NoActiveSubscription = 17,
    UsernameTaken = 18,
    KeyNotFound = 19,
    KeyUsed = 20,
    KeyBanned = 21,
    NoSubscriptionLevel = 22,
    KeyExpired = 23,
    VariableNotFound = 24,
    WebhookNotFound = 25,
    WebhookFailed = 26,
    NotBlacklisted = 27,
    NoOnlineUsers = 28,
    Unavailable = 29,
    UsernameTooShort = 30,
}

impl Why {
    pub fn code(self) -> i64 {
        self as i64
    }
}

/// A failure of the service (database unreachable), not of the caller's request.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fault(String);

impl From<CacheError> for Fault {
    fn from(e: CacheError) -> Self {
        Fault(e.to_string())
    }
}

impl From<keyward_shared::StoreError> for Fault {
    fn from(e: keyward_shared::StoreError) -> Self {
        Fault(e.to_string())
    }
}

impl From<password::PasswordError> for Fault {
    fn from(e: password::PasswordError) -> Self {
        Fault(e.to_string())
    }
}

type Answer = Result<Reply, Fault>;

/// Everything a handler needs about the call.
pub(crate) struct Ctx<'a> {
    pub state: &'a State,
    pub api: Api,
    pub app: AppView,
    pub ip: IpAddr,
    pub p: &'a Params,
}

impl Ctx<'_> {
    pub fn app(&self) -> &App {
        &self.app.app
    }

    /// The app's text for a KeyAuth message name (its custom one, else KeyAuth's default).
    pub fn message(&self, name: &str) -> String {
        self.app()
            .messages
            .get(name)
            .cloned()
            .or_else(|| keyward_shared::client_api::default_message(name).map(str::to_string))
            .unwrap_or_else(|| name.to_string())
    }

    pub fn fail(&self, why: Why, name: &str) -> Reply {
        Reply::fail(why, self.message(name))
    }

    pub fn actor(&self) -> keyward_shared::write::Actor {
        keyward_shared::write::Actor {
            origin: Default::default(),
            account_id: self.app().account_id,
            label: "client-api".into(),
        }
    }

    /// `ip` as stored and shown (`info.ip`).
    pub fn ip_string(&self) -> String {
        self.ip.to_canonical().to_string()
    }
}

/// The client API's own state, held by the validator's `State`.
pub struct ClientApi {
    pub app_limiter: Limiter<Uuid>,
    pub passwords: Passwords,
    pub signers: Signers,
    pub outbound: Option<keyward_shared::outbound::Outbound>,
}

pub async fn handle(
    state: &State,
    peer: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
    api: Api,
) -> Response<Full<Bytes>> {
    let ip = client_ip(peer, &parts.headers, &state.cfg.trusted_proxies);
    let (reply, app, session, ownerid) = match answer(state, ip, parts, body, api).await {
        Ok(done) => done,
        Err((reply, ownerid)) => (reply, None, None, ownerid),
    };
    if !reply.is_success() {
        state.metrics.error(if reply.status == 200 {
            "CLIENT_API_FAILURE"
        } else {
            "CLIENT_API_REJECTED"
        });
    }
    respond(
        state,
        api,
        reply,
        app.as_deref(),
        session.as_deref(),
        &ownerid,
    )
    .await
}

type Done = (Reply, Option<Arc<App>>, Option<Arc<Session>>, String);

async fn answer(
    state: &State,
    ip: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
    api: Api,
) -> Result<Done, (Reply, String)> {
    let early = |r: Reply| (r.signed_with(SignWith::Nothing), String::new());
    if let Err(wait) = state.limiter.check(ip) {
        return Err(early(too_many(wait)));
    }
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body = match body.read(state.cfg.client_api_max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let status = match e {
                BodyError::TooLarge(_) => 413,
                BodyError::TimedOut => 408,
                BodyError::Unreadable(_) => 400,
            };
            return Err(early(
                Reply::fail(Why::BadRequest, e.to_string()).status(status),
            ));
        }
    };
    let p = match Params::parse(parts.uri.query(), content_type, body).await {
        Ok(p) => p,
        Err(e) => {
            return Err(early(
                Reply::fail(Why::BadRequest, e.to_string()).status(400),
            ))
        }
    };
    let ownerid = p.get("ownerid").unwrap_or("").to_string();
    let with_owner = |r: Reply| (r.signed_with(SignWith::Nothing), ownerid.clone());
    const COPY: &str = "Select app & copy code snippet from the dashboard.";
    let Some(owner) = p.get("ownerid") else {
        return Err(with_owner(Reply::fail(
            Why::BadRequest,
            format!("No OwnerID specified. {COPY}"),
        )));
    };
    let Some(name) = p.get("name") else {
        return Err(with_owner(Reply::fail(
            Why::BadRequest,
            format!("No app name specified. {COPY}"),
        )));
    };
    if owner.chars().count() != 10 {
        return Err(with_owner(Reply::fail(
            Why::BadRequest,
            format!("OwnerID should be 10 characters long. {COPY}"),
        )));
    }
    if name.len() > 200 {
        return Err(with_owner(Reply::text("KeyAuth_Invalid")));
    }
    let app = match find_app(state, owner, name).await {
        Ok(Some(app)) => app,
        Ok(None) => return Err(with_owner(Reply::text("KeyAuth_Invalid"))),
        Err(f) => return Err(with_owner(unavailable(f))),
    };
    let app_arc = app.app.clone();
    if let Err(wait) = state.client.app_limiter.check_key(&app.app.id) {
        return Ok((too_many(wait), Some(app_arc), None, ownerid));
    }
    let ctx = Ctx {
        state,
        api,
        app,
        ip,
        p: &p,
    };
    let kind = p.get("type").unwrap_or("");
    if kind == "init" {
        let reply = init::init(&ctx).await.unwrap_or_else(unavailable);
        return Ok((reply, Some(app_arc), None, ownerid));
    }
    if !is_known(kind) {
        let reply = Reply::fail(
            Why::UnknownType,
            "The value inputted for type paramater was not found",
        );
        return Ok((
            reply.signed_with(SignWith::Nothing),
            Some(app_arc),
            None,
            ownerid,
        ));
    }
    let session = match session_of(&ctx).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let reply = Reply::fail(
                Why::SessionNotFound,
                "Session not found. If you get this frequently, ask the developer to use the latest example code",
            );
            return Ok((
                reply.signed_with(SignWith::Nothing),
                Some(app_arc),
                None,
                ownerid,
            ));
        }
        Err(f) => return Ok((unavailable(f), Some(app_arc), None, ownerid)),
    };
    let reply = dispatch(&ctx, kind, &session)
        .await
        .unwrap_or_else(unavailable);
    Ok((reply, Some(app_arc), Some(session), ownerid))
}

const TYPES: &[&str] = &[
    "register",
    "login",
    "license",
    "upgrade",
    "check",
    "var",
    "getvar",
    "setvar",
    "log",
    "webhook",
    "fetchOnline",
    "fetchStats",
    "checkblacklist",
    "checkblack",
    "checkBlack",
    "ban",
    "logout",
    "changeUsername",
];

fn is_known(kind: &str) -> bool {
    TYPES.contains(&kind)
}

async fn dispatch(ctx: &Ctx<'_>, kind: &str, s: &Arc<Session>) -> Answer {
    match kind {
        "register" => account::register(ctx, s).await,
        "login" => counted(ctx, account::login(ctx, s).await),
        "license" => counted(ctx, account::license(ctx, s).await),
        "upgrade" => account::upgrade(ctx).await,
        "check" => session_ops::check(ctx, s).await,
        "var" => data::var(ctx, s).await,
        "getvar" => data::getvar(ctx, s).await,
        "setvar" => data::setvar(ctx, s).await,
        "log" => data::log(ctx, s).await,
        "webhook" => data::webhook(ctx, s).await,
        "fetchOnline" => session_ops::fetch_online(ctx).await,
        "fetchStats" => session_ops::fetch_stats(ctx).await,
        "checkblacklist" | "checkblack" | "checkBlack" => session_ops::check_blacklist(ctx).await,
        "ban" => session_ops::ban(ctx, s).await,
        "logout" => session_ops::logout(ctx, s).await,
        "changeUsername" => session_ops::change_username(ctx, s).await,
        _ => Ok(Reply::fail(
            Why::UnknownType,
            "The value inputted for type paramater was not found",
        )),
    }
}

/// A `login` or `license` answer, counted per app and minute as the verdict code it amounts to
/// (a failure of the service, or one with no such code, is not counted).
fn counted(ctx: &Ctx<'_>, answer: Answer) -> Answer {
    if let Ok(reply) = &answer {
        let code = match reply.failure() {
            None if reply.is_success() => Some(Code::Valid),
            None => None,
            Some(failure) => verdict_code(failure),
        };
        if let Some(code) = code {
            ctx.state
                .validation_counts
                .verdict(ctx.app(), code, Utc::now());
        }
    }
    answer
}

/// The verdict code a `login`/`license` refusal amounts to.
fn verdict_code(failure: i64) -> Option<Code> {
    const CODES: &[(Why, Code)] = &[
        (Why::UserNotFound, Code::NotFound),
        (Why::KeyNotFound, Code::NotFound),
        (Why::UserBanned, Code::Banned),
        (Why::KeyBanned, Code::Banned),
        (Why::HwidMismatch, Code::HwidMismatch),
        (Why::HwidRule, Code::HwidRequired),
        (Why::Blacklisted, Code::Blacklisted),
        (Why::NoActiveSubscription, Code::Expired),
        (Why::KeyExpired, Code::Expired),
        (Why::KeyUsed, Code::AlreadyUsed),
        (Why::AppPaused, Code::AppPaused),
    ];
    CODES
        .iter()
        .find(|(why, _)| why.code() == failure)
        .map(|&(_, code)| code)
}

async fn find_app(state: &State, owner: &str, name: &str) -> Result<Option<AppView>, Fault> {
    let reads = &state.caches.reads;
    let id = state
        .caches
        .client
        .app_ids
        .get_or_load(&Named(owner, name), || {
            reads.read(|c| async move {
                keyward_shared::store::apps::find_by_owner_and_name(&*c, owner, name).await
            })
        })
        .await?;
    match id {
        Some(id) => Ok(state.caches.app(*id).await?),
        None => Ok(None),
    }
}

async fn session_of(ctx: &Ctx<'_>) -> Result<Option<Arc<Session>>, Fault> {
    let Some(id) = ctx.p.get("sessionid") else {
        return Ok(None);
    };
    if id.len() > 64 {
        return Ok(None);
    }
    let app = ctx.app().id;
    // On the primary even with replicas: a session is written by `init` (here or on another
    // validator) without an invalidation, and read moments later.
    let pool = &ctx.state.pool;
    let session = ctx
        .state
        .caches
        .client
        .sessions
        .get_or_load(&InApp(app, id), || async {
            let c = keyward_shared::db::checkout(pool).await?;
            keyward_shared::store::sessions::find(&*c, app, id).await
        })
        .await?;
    // Expiry is fixed at `init`; a cached session ends on time without a reload.
    Ok(session.filter(|s| s.expires_at > Utc::now()))
}

fn too_many(wait: std::time::Duration) -> Reply {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Reply::fail(
        Why::RateLimited,
        "This application has sent too many requests. Try again in a minute.",
    )
    .status(429)
    .retry_after(secs)
}

fn unavailable(f: Fault) -> Reply {
    tracing::warn!(error = %f, "client API call could not be served");
    Reply::fail(
        Why::Unavailable,
        "The license service is temporarily unavailable, please try again shortly.",
    )
    .status(503)
}

async fn respond(
    state: &State,
    api: Api,
    reply: Reply,
    app: Option<&App>,
    session: Option<&Session>,
    ownerid: &str,
) -> Response<Full<Bytes>> {
    let body = reply.render(api, ownerid);
    let mut headers: Vec<(HeaderName, String)> = Vec::with_capacity(3);
    match api {
        Api::V1_1 => {}
        Api::V1_2 => {
            let key = match reply.sign {
                SignWith::Nothing => None,
                SignWith::AppSecret => app.map(|a| a.secret.clone()),
                SignWith::Session => session.and_then(|s| s.enckey.clone()),
            };
            match key {
                Some(k) => headers.push((
                    HeaderName::from_static("signature"),
                    keyward_shared::signing::hmac_hex(k.as_bytes(), &body),
                )),
                None if reply.sign != SignWith::Nothing => headers.push((
                    HeaderName::from_static("signature"),
                    "No encryption key supplied".into(),
                )),
                None => {}
            }
        }
        Api::V1_3 => match state.client.signers.for_app(&state.pool, app).await {
            Ok(signer) => {
                let ts = Utc::now().timestamp().to_string();
                let sig = signer.sign(&ts, &body);
                headers.push((HeaderName::from_static("x-signature-ed25519"), sig));
                headers.push((HeaderName::from_static("x-signature-timestamp"), ts));
            }
            Err(e) => tracing::error!(error = %e, "no Ed25519 key to sign a 1.3 answer"),
        },
    }
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        HeaderName::from_static("access-control-allow-origin"),
        HeaderValue::from_static("*"),
    );
    if let Some(secs) = reply.retry_after_secs {
        h.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

//! Keygen's admin API (seed 004, the token-authenticated set): a facade over the same core as
//! the native `/v1/…` routes, at the same base path as the validator's client set (`/keygen`),
//! so a load balancer can split one Keygen base URL by path. Routes are served under
//! `/keygen/v1/…` and `/keygen/v1/accounts/{id|public id}/…`.
//!
//! One request: the guard has read the body → [`handle`] parses the path, resolves the account
//! and the bearer ([`auth`]) and dispatches by (method, path) to one resource module → a JSON:API
//! document or a Keygen error document → [`sign`] (a layer outside the guard) signs whatever
//! left, including the guard's own refusals and empty answers, exactly as the validator does.

mod auth;
mod body;
mod entitlements;
mod keys;
mod licenses;
mod machines;
mod paging;
mod policies;
mod products;
mod sign;
mod tokens;
mod users;
mod webhooks;

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use keyward_shared::keygen_doc::{KeygenPath, KgError, Links, Source, PREFIX};
use keyward_shared::StoreError;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;
use auth::Bearer;
use keyward_shared::write::{Actor, Origin};
pub use sign::sign;

pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/keygen/")
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PREFIX, any(handle))
        .route("/keygen/{*rest}", any(handle))
}

/// What the facade calls the path segment at `index` (for the input guard's NUL refusals).
pub fn path_parameter(path: &str, index: usize) -> Option<&'static str> {
    if !owns(path) {
        return None;
    }
    KeygenPath::parameter_name(path, index)
}

/// A refusal made before the facade ran (the input guard's), as a Keygen error document.
pub fn reject(e: ApiError) -> Response {
    let mut kg = KgError::new(e.status, e.message);
    if e.status == StatusCode::BAD_REQUEST {
        kg = kg.source(Source::Pointer("/"));
    }
    Answer::error(&kg).into_response()
}

/// A route's answer before it is signed: status, body and what the signer needs to know.
pub struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    account: Option<Uuid>,
    /// The app whose key signs (the deployment's primary key otherwise).
    app: Option<Uuid>,
    challenge: Option<&'static str>,
    location: Option<String>,
}

impl Answer {
    fn document(status: StatusCode, doc: &Value) -> Answer {
        Answer {
            status,
            body: serde_json::to_vec(doc).unwrap_or_default(),
            account: None,
            app: None,
            challenge: None,
            location: None,
        }
    }

    fn ok(doc: &Value) -> Answer {
        Answer::document(StatusCode::OK, doc)
    }

    fn created(doc: &Value, location: String) -> Answer {
        Answer {
            location: Some(location),
            ..Answer::document(StatusCode::CREATED, doc)
        }
    }

    fn no_content() -> Answer {
        Answer {
            body: Vec::new(),
            ..Answer::document(StatusCode::NO_CONTENT, &Value::Null)
        }
    }

    fn error(e: &KgError) -> Answer {
        Answer {
            challenge: e.challenge,
            ..Answer::document(e.status, &e.document(Uuid::new_v4()))
        }
    }

    fn signed_by(mut self, app: Uuid) -> Answer {
        self.app = Some(app);
        self
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let has_body = !self.body.is_empty();
        let mut resp = (self.status, self.body).into_response();
        let h = resp.headers_mut();
        if has_body {
            h.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.api+json; charset=utf-8"),
            );
        } else {
            h.remove(axum::http::header::CONTENT_TYPE);
        }
        if let Some(c) = self.challenge {
            h.insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static(c),
            );
        }
        if let Some(location) = self.location.as_deref().and_then(|l| l.parse().ok()) {
            h.insert(axum::http::header::LOCATION, location);
        }
        resp.extensions_mut().insert(sign::SignAs {
            account: self.account,
            app: self.app,
        });
        resp
    }
}

/// What a handler is given: the state, the account and bearer, the request's parts and body.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub account: Uuid,
    pub bearer: Bearer,
    pub links: Links,
    pub query: Option<&'a str>,
    /// The request path, for collection links.
    pub path: &'a str,
    pub body: &'a Bytes,
    /// Where the request came from, for the audit log.
    pub origin: Origin,
}

impl Ctx<'_> {
    /// The request body as JSON (an empty body reads as `{}`: body-less POSTs carry no
    /// content type).
    fn json(&self) -> Result<Value, KgError> {
        body::parse(self.body)
    }
}

impl Ctx<'_> {
    /// Who the audit log names for this request.
    fn actor(&self) -> Actor {
        let label = match &self.bearer {
            Bearer::Admin { token: Some(t), .. } => format!("keygen:admin-token:{t}"),
            Bearer::Admin { token: None, .. } => "keygen:admin".to_owned(),
            Bearer::Product { token, .. } => format!("keygen:product-token:{token}"),
            Bearer::ApiKey { .. } => "keygen:api-key".to_owned(),
            Bearer::User { token, .. } => format!("keygen:user-token:{token}"),
        };
        Actor {
            origin: self.origin.clone(),
            account_id: self.account,
            label,
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, KgError> {
        self.state.client().await.kg()
    }
}

type Handled = Result<Answer, KgError>;

/// Errors of the layers below, in Keygen's terms.
trait Kg<T> {
    fn kg(self) -> Result<T, KgError>;
}

impl<T> Kg<T> for Result<T, StoreError> {
    fn kg(self) -> Result<T, KgError> {
        self.map_err(store_error)
    }
}

impl<T> Kg<T> for Result<T, ApiError> {
    fn kg(self) -> Result<T, KgError> {
        self.map_err(api_error)
    }
}

fn api_error(e: ApiError) -> KgError {
    KgError::new(e.status, e.message)
}

async fn handle(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    // The input guard has already read the body whole, within its cap.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let (answer, account) = match serve(&state, peer, &parts, &body, &path).await {
        Ok((answer, account)) => (answer, account),
        Err((e, account)) => (Answer::error(&e), account),
    };
    Answer { account, ..answer }.into_response()
}

async fn serve(
    state: &AppState,
    peer: SocketAddr,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    path: &str,
) -> Result<(Answer, Option<Uuid>), (KgError, Option<Uuid>)> {
    let Some(route) = KeygenPath::parse(path) else {
        return Err((not_found_route(path), None));
    };
    let named = match route.account {
        Some(reference) => Some(
            auth::named_account(state, reference)
                .await
                .map_err(|e| (e, None))?,
        ),
        None => None,
    };
    // Ping needs no credential (SDKs call it to check the service).
    if matches!(parts.method, Method::GET | Method::HEAD) && route.rest.as_slice() == ["ping"] {
        return Ok((Answer::no_content_ok(), named));
    }
    // Password resets carry no credential: the reset token is the proof.
    match (&parts.method, route.rest.as_slice()) {
        (&Method::POST, ["passwords"]) => return users::request_reset(state, named, body).await,
        (&Method::POST, ["users", id, "actions", "reset-password"]) => {
            return users::reset_password(state, named, id, body).await
        }
        _ => {}
    }
    // `POST /v1/tokens` authenticates with the admin's email and password, not a bearer.
    if parts.method == Method::POST && route.rest.as_slice() == ["tokens"] {
        let answer = tokens::create(state, peer, &parts.headers, named, body)
            .await
            .map_err(|(e, a)| (e, a.or(named)))?;
        return Ok(answer);
    }
    let bearer = auth::bearer(state, &parts.headers)
        .await
        .map_err(|e| (e, named))?;
    let account = bearer.account();
    if named.is_some_and(|n| n != account) {
        // Another account's credential: that account's resources are not visible here.
        return Err((
            KgError::new(
                StatusCode::UNAUTHORIZED,
                "Token is not valid for this account",
            )
            .code("TOKEN_INVALID")
            .source(Source::Header("Authorization"))
            .challenge("Bearer realm=\"keygen\""),
            named,
        ));
    }
    let ctx = Ctx {
        state,
        account,
        bearer,
        links: Links::new(account),
        query: parts.uri.query(),
        path,
        body,
        origin: crate::auth::origin(parts),
    };
    let answer = dispatch(&ctx, &parts.method, &route.rest, path)
        .await
        .map_err(|e| (e, Some(account)))?;
    Ok((answer, Some(account)))
}

/// What a user token may do: read itself, manage its own tokens and password, and use the
/// licenses it owns (read, validate, machines).
fn user_may(method: &Method, rest: &[&str], user: Uuid) -> bool {
    use Method as M;
    let me = user.to_string();
    match (method, rest) {
        (&M::GET, ["me"]) => true,
        (_, ["tokens", ..]) => true,
        (&M::GET, ["users", id]) => *id == me,
        (&M::POST, ["users", id, "actions", "update-password"]) => *id == me,
        (&M::GET, ["licenses", ..]) => true,
        (&M::POST, ["licenses", "actions", "validate-key"]) => true,
        (&M::POST, ["licenses", _, "actions", "validate"]) => true,
        (_, ["machines", ..]) => method != M::PATCH && method != M::PUT,
        _ => false,
    }
}

async fn dispatch(ctx: &Ctx<'_>, method: &Method, rest: &[&str], path: &str) -> Handled {
    use Method as M;
    if let Some(user) = ctx.bearer.user() {
        if !user_may(method, rest, user) {
            return Err(auth::access_denied());
        }
    }
    match (method, rest) {
        (&M::GET, ["me"]) => auth::me(ctx).await,
        (&M::GET, ["tokens"]) => tokens::list(ctx).await,
        (&M::PUT, ["tokens"]) => tokens::regenerate_current(ctx).await,
        (&M::GET, ["tokens", id]) => tokens::show(ctx, id).await,
        (&M::PUT, ["tokens", id]) => tokens::regenerate(ctx, id).await,
        (&M::DELETE, ["tokens", id]) => tokens::revoke(ctx, id).await,
        (_, ["tokens"]) => Err(method_not_allowed("GET, POST, PUT")),
        (_, ["tokens", _]) => Err(method_not_allowed("GET, PUT, DELETE")),

        (&M::POST, ["users"]) => users::create(ctx).await,
        (&M::GET, ["users"]) => users::list(ctx).await,
        (&M::GET, ["users", id]) => users::show(ctx, id).await,
        (&M::PATCH | &M::PUT, ["users", id]) => users::update(ctx, id).await,
        (&M::DELETE, ["users", id]) => users::delete(ctx, id).await,
        (&M::POST, ["users", id, "actions", action]) => users::action(ctx, id, action).await,
        (_, ["users"]) => Err(method_not_allowed("GET, POST")),
        (_, ["users", _]) => Err(method_not_allowed("GET, PATCH, DELETE")),

        (&M::POST, ["products"]) => products::create(ctx).await,
        (&M::GET, ["products"]) => products::list(ctx).await,
        (&M::GET, ["products", id]) => products::show(ctx, id).await,
        (&M::PATCH | &M::PUT, ["products", id]) => products::update(ctx, id).await,
        (&M::DELETE, ["products", id]) => products::delete(ctx, id).await,
        (&M::POST, ["products", id, "tokens"]) => tokens::create_for_product(ctx, id).await,
        (_, ["products"]) => Err(method_not_allowed("GET, POST")),
        (_, ["products", _]) => Err(method_not_allowed("GET, PATCH, DELETE")),

        (&M::POST, ["policies"]) => policies::create(ctx).await,
        (&M::GET, ["policies"]) => policies::list(ctx).await,
        (&M::GET, ["policies", id]) => policies::show(ctx, id).await,
        (&M::PATCH | &M::PUT, ["policies", id]) => policies::update(ctx, id).await,
        (&M::DELETE, ["policies", id]) => policies::delete(ctx, id).await,
        (&M::GET, ["policies", id, "entitlements"]) => {
            entitlements::of_holder(ctx, entitlements::Kind::Policy, id).await
        }
        (&M::POST, ["policies", id, "entitlements"]) => {
            entitlements::attach(ctx, entitlements::Kind::Policy, id).await
        }
        (&M::DELETE, ["policies", id, "entitlements"]) => {
            entitlements::detach(ctx, entitlements::Kind::Policy, id).await
        }
        (&M::GET, ["policies", id, "pool"]) => keys::pool(ctx, id).await,
        (&M::DELETE, ["policies", id, "pool"]) => keys::pop(ctx, id).await,
        (_, ["policies"]) => Err(method_not_allowed("GET, POST")),
        (_, ["policies", _]) => Err(method_not_allowed("GET, PATCH, DELETE")),

        (&M::POST, ["entitlements"]) => entitlements::create(ctx).await,
        (&M::GET, ["entitlements"]) => entitlements::list(ctx).await,
        (&M::GET, ["entitlements", id]) => entitlements::show(ctx, id).await,
        (&M::PATCH | &M::PUT, ["entitlements", id]) => entitlements::update(ctx, id).await,
        (&M::DELETE, ["entitlements", id]) => entitlements::delete(ctx, id).await,
        (_, ["entitlements"]) => Err(method_not_allowed("GET, POST")),
        (_, ["entitlements", _]) => Err(method_not_allowed("GET, PATCH, DELETE")),

        (&M::POST, ["licenses"]) => licenses::create(ctx).await,
        (&M::GET, ["licenses"]) => licenses::list(ctx).await,
        (&M::GET, ["licenses", id]) => licenses::show(ctx, id).await,
        (&M::PATCH | &M::PUT, ["licenses", id]) => licenses::update(ctx, id).await,
        (&M::DELETE, ["licenses", id]) => licenses::delete(ctx, id, "license.deleted").await,
        (&M::POST, ["licenses", "actions", "validate-key"]) => licenses::validate_key(ctx).await,
        (&M::GET | &M::POST, ["licenses", id, "actions", "validate"]) => {
            licenses::validate(ctx, id, method == M::GET).await
        }
        (&M::POST, ["licenses", id, "actions", action]) => licenses::action(ctx, id, action).await,
        (&M::DELETE, ["licenses", id, "actions", "revoke"]) => {
            licenses::delete(ctx, id, "license.revoked").await
        }
        (&M::GET, ["licenses", id, "machines"]) => machines::of_license(ctx, id).await,
        (&M::GET, ["licenses", id, "entitlements"]) => {
            entitlements::of_holder(ctx, entitlements::Kind::License, id).await
        }
        (&M::POST, ["licenses", id, "entitlements"]) => {
            entitlements::attach(ctx, entitlements::Kind::License, id).await
        }
        (&M::DELETE, ["licenses", id, "entitlements"]) => {
            entitlements::detach(ctx, entitlements::Kind::License, id).await
        }
        (&M::GET, ["licenses", id, "policy"]) => licenses::policy_of(ctx, id).await,
        (&M::GET, ["licenses", id, "product"]) => licenses::product_of(ctx, id).await,
        (_, ["licenses"]) => Err(method_not_allowed("GET, POST")),
        (_, ["licenses", _]) => Err(method_not_allowed("GET, PATCH, DELETE")),

        (&M::POST, ["keys"]) => keys::create(ctx).await,
        (&M::GET, ["keys"]) => keys::list(ctx).await,
        (&M::GET, ["keys", id]) => keys::show(ctx, id).await,
        (&M::PATCH | &M::PUT, ["keys", id]) => keys::update(ctx, id).await,
        (&M::DELETE, ["keys", id]) => keys::delete(ctx, id).await,
        (_, ["keys"]) => Err(method_not_allowed("GET, POST")),
        (_, ["keys", _]) => Err(method_not_allowed("GET, PATCH, DELETE")),

        (&M::POST, ["webhook-endpoints"]) => webhooks::create_endpoint(ctx).await,
        (&M::GET, ["webhook-endpoints"]) => webhooks::list_endpoints(ctx).await,
        (&M::GET, ["webhook-endpoints", id]) => webhooks::show_endpoint(ctx, id).await,
        (&M::PATCH | &M::PUT, ["webhook-endpoints", id]) => {
            webhooks::update_endpoint(ctx, id).await
        }
        (&M::DELETE, ["webhook-endpoints", id]) => webhooks::delete_endpoint(ctx, id).await,
        (&M::GET, ["webhook-events"]) => webhooks::list_events(ctx).await,
        (&M::GET, ["webhook-events", id]) => webhooks::show_event(ctx, id).await,
        (&M::DELETE, ["webhook-events", id]) => webhooks::delete_event(ctx, id).await,
        (&M::POST, ["webhook-events", id, "actions", "retry"]) => {
            webhooks::retry_event(ctx, id).await
        }
        (_, ["webhook-endpoints"]) => Err(method_not_allowed("GET, POST")),
        (_, ["webhook-endpoints", _]) => Err(method_not_allowed("GET, PATCH, DELETE")),
        (_, ["webhook-events"]) => Err(method_not_allowed("GET")),
        (_, ["webhook-events", _]) => Err(method_not_allowed("GET, DELETE")),

        (&M::POST, ["machines"]) => machines::create(ctx).await,
        (&M::GET, ["machines"]) => machines::list(ctx).await,
        (&M::GET, ["machines", id]) => machines::show(ctx, id).await,
        (&M::PATCH | &M::PUT, ["machines", id]) => machines::update(ctx, id).await,
        (&M::DELETE, ["machines", id]) => machines::delete(ctx, id).await,
        (&M::POST, ["machines", id, "actions", "ping" | "ping-heartbeat"]) => {
            machines::heartbeat(ctx, id, false).await
        }
        (&M::POST, ["machines", id, "actions", "reset" | "reset-heartbeat"]) => {
            machines::heartbeat(ctx, id, true).await
        }
        (_, ["machines"]) => Err(method_not_allowed("GET, POST")),
        (_, ["machines", _]) => Err(method_not_allowed("GET, PATCH, DELETE")),
        _ => Err(not_found_route(path)),
    }
}

impl Answer {
    /// `GET /v1/ping`: 200 with an empty (still signed) body.
    fn no_content_ok() -> Answer {
        Answer {
            status: StatusCode::OK,
            ..Answer::no_content()
        }
    }
}

fn not_found_route(path: &str) -> KgError {
    KgError::not_found(format!("The requested endpoint '{path}' was not found"))
}

fn method_not_allowed(allowed: &str) -> KgError {
    KgError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allowed}"),
    )
}

/// A resource id in a path: a UUID, else "not found" in Keygen's words.
fn id_of(kind: &str, raw: &str) -> Result<Uuid, KgError> {
    Uuid::parse_str(raw).map_err(|_| not_found(kind, raw))
}

fn not_found(kind: &str, id: &str) -> KgError {
    KgError::not_found(format!("The requested {kind} '{id}' was not found"))
}

/// A store error in Keygen's terms: the caller's input is a 422 naming the resource, a missing
/// row 404, a conflict 409, infrastructure 503/500.
fn store_error(e: StoreError) -> KgError {
    if let Some(reason) = e.rejected_value() {
        return unprocessable(format!("a value was refused: {reason}"), "/data");
    }
    match e {
        StoreError::Invalid(m) => unprocessable(m, "/data"),
        StoreError::NotFound(what) => {
            KgError::not_found(format!("The requested {what} was not found"))
        }
        StoreError::Conflict(m) => KgError::new(StatusCode::CONFLICT, m).code("CONFLICT"),
        StoreError::LimitReached(m) => unprocessable(m, "/data").code("LIMIT_EXCEEDED"),
        e if e.is_unavailable() => {
            tracing::warn!(error = %e, "Keygen facade: database unavailable");
            KgError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unreachable; retry shortly",
            )
            .code("UNAVAILABLE")
        }
        e => {
            tracing::error!(error = %e, "Keygen facade: store error");
            KgError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An unexpected error occurred",
            )
        }
    }
}

fn unprocessable(detail: impl Into<String>, pointer: &'static str) -> KgError {
    KgError::new(StatusCode::UNPROCESSABLE_ENTITY, detail).source(Source::Pointer(pointer))
}

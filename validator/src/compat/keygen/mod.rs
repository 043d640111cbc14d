//! The Keygen client API (the calls Keygen's SDKs make with a license key): a facade over the
//! same core as `/v1/validate`. Its base URL is `/keygen`, so clients configured with
//! `http(s)://<validator>/keygen` call `/keygen/v1/…` (and `/keygen/v1/accounts/{account}/…`
//! when an account is named), next to the native `/v1/…` without sharing a path.
//!
//! One request: path (account named or not) → `Authorization: License <key>` checked first
//! (Keygen's order: unknown 401, suspended/expired 403, policy not allowing license
//! authentication 403) → the route → a JSON:API document, signed (`Keygen-Signature` over the
//! request target and `Host` as received, `Date`/`Digest` and their `Keygen-` twins) whatever
//! its status, including errors and empty answers.

mod auth;
mod checkout;
mod machines;
pub mod validate;
mod writes;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, DATE, HOST, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use keyward_shared::keygen_signature;
use keyward_shared::license_file::FileKind;
use keyward_shared::store::license_details::LicenseDetail;
use serde_json::Value;
use uuid::Uuid;

use crate::body::{BodyError, RequestBody};
use crate::cache::CacheError;
use crate::client_ip::client_ip;
use crate::State;
use auth::Bearer;
pub use keyward_shared::keygen_doc::PREFIX;
use keyward_shared::keygen_doc::{self as doc, KeygenPath, KgError, Links, Source};

/// The API version answered when the client names none.
const DEFAULT_VERSION: &str = "1.8";

pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/keygen/")
}

/// What a route answers before it is signed.
pub struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    /// The license the answer concerns (its app's key signs it).
    app: Option<Uuid>,
    /// `Location` of a created resource.
    location: Option<String>,
    /// `Content-Disposition` of a file (then the body is `application/octet-stream`).
    attachment: Option<String>,
}

impl Answer {
    fn document(status: StatusCode, doc: &Value, app: Option<Uuid>) -> Answer {
        Answer {
            status,
            body: serde_json::to_vec(doc).unwrap_or_default(),
            app,
            location: None,
            attachment: None,
        }
    }

    fn raw(status: StatusCode, body: Vec<u8>, app: Option<Uuid>) -> Answer {
        Answer {
            status,
            body,
            app,
            location: None,
            attachment: None,
        }
    }

    fn empty(status: StatusCode) -> Answer {
        Answer {
            status,
            body: Vec::new(),
            app: None,
            location: None,
            attachment: None,
        }
    }
}

/// Who is asking: the account the answer belongs to and the license bearer, if any.
pub struct Caller {
    /// The account named in the path, the bearer's, or the deployment's default.
    pub account: Option<Uuid>,
    pub bearer: Option<Arc<LicenseDetail>>,
}

impl Caller {
    fn links(&self, fallback: Uuid) -> Links {
        Links::new(self.account.unwrap_or(fallback))
    }
}

pub async fn handle(
    state: &State,
    peer: IpAddr,
    parts: &Parts,
    body: &mut RequestBody,
) -> Response<Full<Bytes>> {
    let request_id = Uuid::new_v4();
    let (answer, account, challenge, retry_after) = match serve(state, peer, parts, body).await {
        Ok((answer, account)) => (answer, account, None, None),
        Err((e, account)) => {
            let retry_after = e.retry_after;
            let answer = Answer::document(e.status, &e.document(request_id), None);
            (answer, account, e.challenge, retry_after)
        }
    };
    finish(state, parts, answer, account, challenge, retry_after).await
}

type Served = Result<(Answer, Option<Uuid>), (KgError, Option<Uuid>)>;

async fn serve(state: &State, peer: IpAddr, parts: &Parts, body: &mut RequestBody) -> Served {
    let ip = client_ip(peer, &parts.headers, &state.cfg.trusted_proxies);
    if let Err(wait) = state.limiter.check(ip) {
        let secs = wait.as_secs().max(1);
        let mut e = KgError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Throttle limit has been reached for your IP address; retry in {secs} s"),
        )
        .code("TOO_MANY_REQUESTS");
        e.retry_after = Some(secs);
        return Err((e, None));
    }
    let path = parts.uri.path();
    if let Some(e) = KeygenPath::nul(path) {
        return Err((e, None));
    }
    let Some(route) = KeygenPath::parse(path) else {
        return Err((
            KgError::not_found(format!("The requested endpoint '{path}' was not found")),
            None,
        ));
    };
    // The account a path names must exist, whatever the credential says.
    let named = match route.account {
        Some(reference) => match state.caches.details.account(reference).await {
            Ok(Some(id)) => Some(id),
            Ok(None) => {
                return Err((
                    KgError::not_found(format!(
                        "The requested account '{reference}' was not found"
                    )),
                    None,
                ))
            }
            Err(e) => return Err((unavailable(&e), None)),
        },
        None => None,
    };
    let account = match named {
        Some(id) => Some(id),
        None => default_account(state).await.map_err(|e| (e, None))?,
    };
    let bearer = match auth::bearer(&parts.headers) {
        Ok(b) => b,
        Err(e) => return Err((e, account)),
    };
    let bearer =
        match bearer {
            Some(Bearer::License(key)) => {
                let license = auth::license(state, account, key)
                    .await
                    .map_err(|e| (e, account))?;
                Some(license)
            }
            Some(Bearer::Token) => return Err((
                KgError::new(
                    StatusCode::UNAUTHORIZED,
                    "Token authentication is served by the control-plane; the validator accepts \
                     `Authorization: License <key>`",
                )
                .code("TOKEN_INVALID")
                .source(Source::Header("Authorization")),
                account,
            )),
            None => None,
        };
    let caller = Caller {
        account: account.or(bearer.as_ref().map(|b| b.license.account_id)),
        bearer,
    };
    let account = caller.account;
    if let Some(accept) = parts.headers.get("keygen-accept-signature") {
        let keyid = account.map(|a| a.to_string()).unwrap_or_default();
        let accepted = accept
            .to_str()
            .map_err(|_| keygen_signature::AcceptSignatureError::Malformed)
            .and_then(|v| keygen_signature::parse_accept_signature(v, &keyid));
        if let Err(e) = accepted {
            return Err((
                KgError::bad_request(e.to_string(), Source::Header("Keygen-Accept-Signature")),
                account,
            ));
        }
    }
    let answer = dispatch(state, parts, body, &route, &caller)
        .await
        .map_err(|e| (e, account))?;
    Ok((answer, account))
}

async fn dispatch(
    state: &State,
    parts: &Parts,
    body: &mut RequestBody,
    route: &KeygenPath<'_>,
    caller: &Caller,
) -> Result<Answer, KgError> {
    let method = &parts.method;
    match (method, route.rest.as_slice()) {
        (&Method::GET | &Method::HEAD, ["ping"]) => Ok(Answer::empty(StatusCode::OK)),
        (&Method::GET, ["me"]) => me(caller),
        (&Method::POST, ["licenses", "actions", "validate-key"]) => {
            let body = read_json(state, body).await?;
            validate::by_key(state, caller, &body).await
        }
        (&Method::GET | &Method::POST, ["licenses", id, "actions", "validate"]) => {
            let quick = method == Method::GET;
            let body = if quick {
                Value::Null
            } else {
                read_json(state, body).await?
            };
            validate::by_id(state, caller, id, &body, quick).await
        }
        (&Method::POST, ["machines"]) => {
            let body = read_json(state, body).await?;
            machines::activate(state, caller, &body).await
        }
        (&Method::GET, ["machines", id]) => machines::show(caller, id),
        (&Method::DELETE, ["machines", id]) => machines::deactivate(state, caller, id).await,
        (&Method::POST, ["machines", id, "actions", "ping" | "ping-heartbeat"]) => {
            machines::heartbeat(state, caller, id, false).await
        }
        (&Method::POST, ["machines", id, "actions", "reset" | "reset-heartbeat"]) => {
            machines::heartbeat(state, caller, id, true).await
        }
        (&Method::GET, ["licenses", id, "machines"]) => machines::list(state, caller, id).await,
        (
            &Method::GET | &Method::POST,
            [kind @ ("licenses" | "machines"), id, "actions", "check-out"],
        ) => {
            let body = if method == Method::POST {
                read_json(state, body).await?
            } else {
                Value::Null
            };
            let file = if *kind == "licenses" {
                FileKind::License
            } else {
                FileKind::Machine
            };
            checkout::check_out(state, parts, caller, &body, file, id).await
        }
        (_, ["ping" | "me"]) => Err(method_not_allowed("GET")),
        (_, ["machines"]) => Err(method_not_allowed("POST")),
        (_, ["machines", _]) => Err(method_not_allowed("GET, DELETE")),
        (_, ["licenses", "actions", "validate-key"]) => Err(method_not_allowed("POST")),
        (_, ["licenses", _, "actions", "validate"]) => Err(method_not_allowed("GET, POST")),
        _ => Err(KgError::not_found(format!(
            "The requested endpoint '{}' was not found",
            parts.uri.path()
        ))),
    }
}

fn method_not_allowed(allowed: &str) -> KgError {
    KgError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allowed}"),
    )
}

/// `GET /v1/me`: the bearer itself (under license authentication, the license).
fn me(caller: &Caller) -> Result<Answer, KgError> {
    let Some(license) = &caller.bearer else {
        return Err(KgError::new(
            StatusCode::UNAUTHORIZED,
            "An authentication token or license key is required",
        )
        .code("TOKEN_MISSING"));
    };
    let links = caller.links(license.license.account_id);
    let doc = serde_json::json!({"data": doc::license(license, &links, Utc::now())});
    Ok(Answer::document(
        StatusCode::OK,
        &doc,
        Some(license.license.app_id),
    ))
}

/// The deployment's default Keygen account, for calls that name none.
async fn default_account(state: &State) -> Result<Option<Uuid>, KgError> {
    let Some(reference) = state.cfg.keygen_account.as_deref() else {
        return Ok(None);
    };
    match state.caches.details.account(reference).await {
        Ok(found) => Ok(found),
        Err(e) => Err(unavailable(&e)),
    }
}

pub fn unavailable(e: &CacheError) -> KgError {
    match e {
        CacheError::Unavailable => KgError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The license store is unreachable; retry shortly",
        )
        .code("UNAVAILABLE"),
        CacheError::Database(_) => {
            tracing::error!(error = %e, "Keygen facade: store error");
            KgError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The license store answered with an error",
            )
        }
    }
}

/// A JSON body (an empty one reads as `{}`: Keygen's body-less POSTs have no content type).
async fn read_json(state: &State, body: &mut RequestBody) -> Result<Value, KgError> {
    let bytes = body
        .read(state.cfg.max_body_bytes)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(limit) => KgError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds {limit} bytes"),
            ),
            other => KgError::bad_request(other.to_string(), Source::Pointer("/")),
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => match doc::nul_in_json(&v) {
            // PostgreSQL text cannot hold a NUL, and no stored value does.
            Some(pointer) => Err(KgError::bad_request(
                format!("{pointer} contains a NUL character (\\u0000), which no value may hold"),
                Source::Pointer("/"),
            )),
            None => Ok(v),
        },
        Ok(_) => Err(KgError::bad_request(
            "The request body must be a JSON object",
            Source::Pointer("/"),
        )),
        Err(e) => Err(KgError::bad_request(
            format!("The request body is not valid JSON: {e}"),
            Source::Pointer("/"),
        )),
    }
}

/// Signs and sends: `Date`, `Digest` (and their `Keygen-` twins) and `Keygen-Signature` over the
/// request target and `Host` exactly as received, for every status.
async fn finish(
    state: &State,
    parts: &Parts,
    answer: Answer,
    account: Option<Uuid>,
    challenge: Option<&'static str>,
    retry_after: Option<u64>,
) -> Response<Full<Bytes>> {
    let version = parts
        .headers
        .get("keygen-version")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            matches!(
                *v,
                "1.0" | "1.1" | "1.2" | "1.3" | "1.4" | "1.5" | "1.6" | "1.7" | "1.8"
            )
        })
        .unwrap_or(DEFAULT_VERSION)
        .to_owned();
    let mut resp = Response::new(Full::new(Bytes::new()));
    let status = answer.status;
    let has_body = !answer.body.is_empty();
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    // Under HTTP/2 the authority stands in for `Host`.
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    let app = match answer.app {
        Some(app) => state.caches.app(app).await.ok().flatten().map(|v| v.app),
        None => None,
    };
    let signer = state
        .client
        .signers
        .for_app(&state.pool, app.as_deref())
        .await;
    let h = resp.headers_mut();
    match signer {
        Ok(signer) => {
            // keygen-rs takes a signature with an empty keyid for a tampered answer; one that
            // concerns no account (an unknown key on the unscoped path, with no default
            // account) is signed under the nil UUID, keyid-shaped like the others.
            let keyid = account.unwrap_or_else(Uuid::nil).to_string();
            let signed = keygen_signature::sign_response(
                &signer,
                &keyid,
                parts.method.as_str(),
                target,
                &host,
                &answer.body,
                SystemTime::now(),
            );
            for (name, value) in [
                (DATE, signed.date.as_str()),
                (HeaderName::from_static("keygen-date"), signed.date.as_str()),
                (HeaderName::from_static("digest"), signed.digest.as_str()),
                (
                    HeaderName::from_static("keygen-digest"),
                    signed.digest.as_str(),
                ),
                (
                    HeaderName::from_static("keygen-signature"),
                    signed.signature.as_str(),
                ),
            ] {
                if let Ok(v) = HeaderValue::from_str(value) {
                    h.insert(name, v);
                }
            }
        }
        // Unsigned rather than unanswered: SDKs report it as tampering, which it is not, but
        // the log says why.
        Err(e) => tracing::error!(error = %e, "no Ed25519 key to sign a Keygen answer"),
    }
    match answer.attachment.as_deref() {
        Some(disposition) => {
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(v) = HeaderValue::from_str(disposition) {
                h.insert(hyper::header::CONTENT_DISPOSITION, v);
            }
        }
        None if has_body => {
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.api+json; charset=utf-8"),
            );
        }
        None => {}
    }
    if let Ok(v) = HeaderValue::from_str(&version) {
        h.insert(HeaderName::from_static("keygen-version"), v);
    }
    if let Some(account) = account {
        if let Ok(v) = HeaderValue::from_str(&account.to_string()) {
            h.insert(HeaderName::from_static("keygen-account"), v);
        }
    }
    if let Some(c) = challenge {
        h.insert(hyper::header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
    }
    if let Some(location) = answer.location.as_deref() {
        if let Ok(v) = HeaderValue::from_str(location) {
            h.insert(hyper::header::LOCATION, v);
        }
    }
    if let Some(secs) = retry_after {
        h.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    *resp.status_mut() = status;
    *resp.body_mut() = Full::new(Bytes::from(answer.body));
    resp
}

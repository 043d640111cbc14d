//! Signs every answer under the Keygen base path, whoever made it (a handler, the input guard,
//! the router's 404/405): `Date`/`Keygen-Date`, `Digest`/`Keygen-Digest` over the exact bytes
//! sent, and `Keygen-Signature` over the request target and `Host` as received, with the same
//! keys and the same signing string as the validator's client API. Also echoes `Keygen-Version`.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, DATE, HOST};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyward_shared::keygen_signature;
use keyward_shared::store::apps;
use uuid::Uuid;

use crate::AppState;

/// Set by the facade on its answers: the account (the signature's `keyid`) and the app whose
/// key signs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignAs {
    pub account: Option<Uuid>,
    pub app: Option<Uuid>,
}

const VERSIONS: &[&str] = &[
    "1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8",
];
const DEFAULT_VERSION: &str = "1.8";

pub async fn sign(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !super::owns(req.uri().path()) {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_owned();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    // Under HTTP/2 the authority stands in for `Host`.
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    let version = req
        .headers()
        .get("keygen-version")
        .and_then(|v| v.to_str().ok())
        .filter(|v| VERSIONS.contains(v))
        .unwrap_or(DEFAULT_VERSION)
        .to_owned();
    let resp = next.run(req).await;
    let sign_as = resp
        .extensions()
        .get::<SignAs>()
        .copied()
        .unwrap_or_default();
    let (mut parts, body) = resp.into_parts();
    // Answers here are small JSON documents made in memory; nothing streams.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "Keygen facade: could not read an answer to sign it");
            return super::Answer::error(&keyward_shared::keygen_doc::KgError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "An unexpected error occurred",
            ))
            .into_response();
        }
    };
    let app = match sign_as.app {
        Some(id) => match state.client().await {
            Ok(c) => apps::find(&**c, id).await.ok().flatten(),
            Err(_) => None,
        },
        None => None,
    };
    let h = &mut parts.headers;
    match state.signers().for_app(state.pool(), app.as_ref()).await {
        Ok(signer) => {
            // As on the validator: keygen-rs reads an empty keyid as tampering, so an answer
            // that concerns no account is signed under the nil UUID.
            let keyid = sign_as.account.unwrap_or_else(Uuid::nil).to_string();
            let signed = keygen_signature::sign_response(
                &signer,
                &keyid,
                &method,
                &target,
                &host,
                &body,
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
        // Unsigned rather than unanswered; the log says why.
        Err(e) => tracing::error!(error = %e, "no Ed25519 key to sign a Keygen answer"),
    }
    if let Ok(v) = HeaderValue::from_str(&version) {
        h.insert(HeaderName::from_static("keygen-version"), v);
    }
    if let Some(account) = sign_as.account {
        if let Ok(v) = HeaderValue::from_str(&account.to_string()) {
            h.insert(HeaderName::from_static("keygen-account"), v);
        }
    }
    h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    Response::from_parts(parts, Body::from(body))
}

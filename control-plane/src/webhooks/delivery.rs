//! One delivery: the Keygen document of the event, signed like a Keygen answer (Ed25519 over the
//! request target and host of the endpoint's URL, the date and the body's digest: what a
//! receiver rebuilds from the request it got), POSTed through the SSRF-guarded client.

use std::time::{Instant, SystemTime};

use chrono::Utc;
use keyward_shared::keygen_signature::sign_response;
use keyward_shared::outbound::{Outbound, OutboundRequest, Url};
use keyward_shared::store::apps;
use keyward_shared::store::webhook_events::Claimed;
use keyward_shared::StoreError;

use super::document;
use crate::AppState;

pub const CONTENT_TYPE: &str = "application/vnd.api+json";
const USER_AGENT: &str = concat!("Keyward-Webhooks/", env!("CARGO_PKG_VERSION"));

/// What one attempt got: the receiver's answer, or why there was none.
pub struct Sent {
    pub status: Option<u16>,
    pub body: Option<String>,
    pub error: Option<String>,
    pub took: std::time::Duration,
}

impl Sent {
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn failed(error: impl Into<String>, started: Instant) -> Sent {
        Sent {
            status: None,
            body: None,
            error: Some(error.into()),
            took: started.elapsed(),
        }
    }
}

/// The request target (`path?query`, as the receiver gets it) and the host (with a non-default
/// port, as the `Host` header carries it) that the signature covers.
fn signed_target(url: &Url) -> (String, String) {
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let host = url.host_str().unwrap_or_default();
    let host = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    (target, host)
}

pub async fn send(state: &AppState, outbound: &Outbound, allow_http: bool, c: &Claimed) -> Sent {
    let started = Instant::now();
    let url = match Url::parse(&c.url) {
        Ok(u) => u,
        Err(e) => return Sent::failed(format!("the endpoint's URL is invalid: {e}"), started),
    };
    if url.scheme() != "https" && !allow_http {
        return Sent::failed(
            "http endpoints are not allowed by the operator (https only)",
            started,
        );
    }
    let signer = match signer(state, c).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, event = %c.event.id, "no signing key for a webhook delivery");
            return Sent::failed(format!("no signing key: {e}"), started);
        }
    };
    let body = document::delivery(&c.event, &c.url, &c.api_version, Utc::now()).to_string();
    let (target, host) = signed_target(&url);
    let signed = sign_response(
        &signer,
        &c.event.account_id.to_string(),
        "post",
        &target,
        &host,
        body.as_bytes(),
        SystemTime::now(),
    );
    let headers = [
        ("date", signed.date.as_str()),
        ("keygen-date", signed.date.as_str()),
        ("digest", signed.digest.as_str()),
        ("keygen-digest", signed.digest.as_str()),
        ("keygen-signature", signed.signature.as_str()),
    ];
    let request = OutboundRequest {
        url: &c.url,
        body: Some(&body),
        content_type: Some(CONTENT_TYPE),
        user_agent: Some(USER_AGENT),
        authorization: None,
        headers: &headers,
    };
    match outbound.call(&request).await {
        Ok(resp) => Sent {
            status: Some(resp.status),
            body: Some(resp.body),
            error: None,
            took: started.elapsed(),
        },
        Err(e) => Sent::failed(e.to_string(), started),
    }
}

/// The key of the endpoint's app (an app pinned to an older key keeps it), else the primary.
async fn signer(
    state: &AppState,
    c: &Claimed,
) -> Result<std::sync::Arc<keyward_shared::signing::Ed25519Signer>, StoreError> {
    let app = match c.app_id {
        Some(id) => {
            let client = keyward_shared::db::checkout(state.pool()).await?;
            Some(apps::get(&**client, c.event.account_id, id).await?)
        }
        None => None,
    };
    state.signers().for_app(state.pool(), app.as_ref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_and_host_as_the_receiver_sees_them() {
        let t = |u: &str| Url::parse(u).map(|u| signed_target(&u)).ok();
        let s = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(
            t("https://example.com/hook?a=%2B&b"),
            s("/hook?a=%2B&b", "example.com")
        );
        assert_eq!(t("https://example.com"), s("/", "example.com"));
        assert_eq!(t("https://example.com:443/x?"), s("/x?", "example.com"));
        assert_eq!(t("http://127.0.0.1:8080/x"), s("/x", "127.0.0.1:8080"));
        assert_eq!(t("http://[::1]:81/"), s("/", "[::1]:81"));
    }
}

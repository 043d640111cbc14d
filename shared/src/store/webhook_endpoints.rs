//! Webhook endpoints' SQL: where an account's events are POSTed (Keygen's webhook endpoints),
//! which events each wants, and the checks of their URLs. The events themselves are in
//! [`super::webhook_events`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::model::present;
use crate::outbound;
use crate::write::WriteTx;

/// Every event an endpoint can subscribe to (Keygen's names, for the resources Keyward has). The
/// one list: subscriptions, list filters and the emitters are checked against it.
pub const EVENTS: &[&str] = &[
    "license.created",
    "license.updated",
    "license.deleted",
    "license.suspended",
    "license.reinstated",
    "license.renewed",
    "license.revoked",
    "license.expiring-soon",
    "license.expired",
    "license.checked-in",
    "license.check-in-required-soon",
    "license.check-in-overdue",
    "license.checked-out",
    "license.usage.incremented",
    "license.usage.decremented",
    "license.usage.reset",
    "license.validation.succeeded",
    "license.validation.failed",
    "license.policy.updated",
    "license.entitlements.attached",
    "license.entitlements.detached",
    "machine.created",
    "machine.updated",
    "machine.deleted",
    "machine.checked-out",
    "machine.heartbeat.ping",
    "machine.heartbeat.reset",
    "machine.heartbeat.dead",
    "machine.heartbeat.resurrected",
    "policy.created",
    "policy.updated",
    "policy.deleted",
    "policy.pool.popped",
    "policy.entitlements.attached",
    "policy.entitlements.detached",
    "product.created",
    "product.updated",
    "product.deleted",
    "user.created",
    "user.updated",
    "user.deleted",
    "user.banned",
    "user.unbanned",
    "user.password-reset",
    "entitlement.created",
    "entitlement.updated",
    "entitlement.deleted",
    "key.created",
    "key.updated",
    "key.deleted",
    "token.generated",
    "token.regenerated",
    "token.revoked",
];

/// The subscription that matches every event.
pub const ALL_EVENTS: &str = "*";

/// Endpoints per account: each event is written once per subscribed endpoint, in the
/// transaction of the change that caused it, so the fan-out is bounded.
pub const MAX_ENDPOINTS: i64 = 100;
const MAX_URL_LEN: usize = 2048;
const MAX_SUBSCRIPTIONS: usize = 100;

pub fn is_known_event(name: &str) -> bool {
    EVENTS.contains(&name)
}

/// The only signature algorithm served (deliveries are signed like Keygen answers, Ed25519).
pub const SIGNATURE_ALGORITHM: &str = "ed25519";
/// Keygen's API version stamped on new endpoints.
pub const DEFAULT_API_VERSION: &str = "1.8";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub account_id: Uuid,
    /// Product scope: only events of this app's resources; `None`: every event of the account.
    pub app_id: Option<Uuid>,
    pub url: String,
    /// Event names, or `*`.
    pub subscriptions: Vec<String>,
    pub signature_algorithm: String,
    pub api_version: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, account_id, app_id, url, subscriptions, signature_algorithm, \
                       api_version, enabled, created_at, updated_at";

fn from_row(r: &Row) -> StoreResult<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        app_id: r.try_get("app_id")?,
        url: r.try_get("url")?,
        subscriptions: r.try_get("subscriptions")?,
        signature_algorithm: r.try_get("signature_algorithm")?,
        api_version: r.try_get("api_version")?,
        enabled: r.try_get("enabled")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// What the operator allows as a webhook target (the control-plane's configuration).
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlPolicy {
    /// Plain-http URLs (off: deliveries carry the account's events, so https by default).
    pub allow_http: bool,
    /// Loopback, private and link-local targets (off: the SSRF guard refuses them).
    pub allow_private: bool,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    pub url: Option<String>,
    /// `null` removes the product scope.
    #[serde(default, deserialize_with = "present")]
    pub app_id: Option<Option<Uuid>>,
    pub subscriptions: Option<Vec<String>>,
    pub signature_algorithm: Option<String>,
    pub api_version: Option<String>,
    pub enabled: Option<bool>,
}

/// At most `max` characters of a caller's value, for error messages that echo it.
fn echo(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// The URL as it will be called (normalised by the same parser the HTTP client uses): absolute,
/// https unless the operator allows http, no credentials, and not an IP literal the SSRF guard
/// refuses (host names are checked again at every delivery, when they are resolved).
pub fn check_url(raw: &str, policy: UrlPolicy) -> StoreResult<String> {
    if raw.len() > MAX_URL_LEN {
        return Err(StoreError::Invalid(format!(
            "url must be at most {MAX_URL_LEN} bytes"
        )));
    }
    let url = outbound::check_target(raw, policy.allow_private).map_err(|e| match e {
        outbound::OutboundError::Forbidden { host, .. } => StoreError::Invalid(format!(
            "url: {} is a loopback, private or reserved address, which webhooks may not reach \
             (the operator can allow private targets)",
            echo(&host, 100)
        )),
        other => StoreError::Invalid(format!("url: {other}")),
    })?;
    if url.scheme() != "https" && !policy.allow_http {
        return Err(StoreError::Invalid(
            "url must use https (the operator has not allowed http webhooks)".into(),
        ));
    }
    let url = url.to_string();
    if url.len() > MAX_URL_LEN {
        return Err(StoreError::Invalid(format!(
            "url must be at most {MAX_URL_LEN} bytes"
        )));
    }
    Ok(url)
}

/// Known event names or `*`, at least one, without repeats (first occurrence kept).
pub fn check_subscriptions(names: &[String]) -> StoreResult<Vec<String>> {
    if names.is_empty() {
        return Err(StoreError::Invalid(
            "subscriptions must name at least one event (or \"*\" for all)".into(),
        ));
    }
    if names.len() > MAX_SUBSCRIPTIONS {
        return Err(StoreError::Invalid(format!(
            "subscriptions: at most {MAX_SUBSCRIPTIONS} entries"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if n != ALL_EVENTS && !is_known_event(n) {
            return Err(StoreError::Invalid(format!(
                "subscriptions: unknown event '{}'; known events: {}, or \"*\"",
                echo(n, 100),
                EVENTS.join(", ")
            )));
        }
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    Ok(out)
}

fn check_algorithm(a: &str) -> StoreResult<String> {
    if a != SIGNATURE_ALGORITHM {
        return Err(StoreError::Invalid(format!(
            "signature_algorithm must be \"{SIGNATURE_ALGORITHM}\" (the only one served)"
        )));
    }
    Ok(a.to_string())
}

/// `major.minor`, e.g. `1.8`.
fn check_api_version(v: &str) -> StoreResult<String> {
    let ok = v.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    });
    if !ok {
        return Err(StoreError::Invalid(
            "api_version must be major.minor, e.g. \"1.8\"".into(),
        ));
    }
    Ok(v.to_string())
}

/// The product scope must be one of the account's apps.
async fn check_app<C: GenericClient + Sync>(c: &C, account: Uuid, app: Uuid) -> StoreResult<()> {
    super::apps::get(c, account, app).await.map(|_| ())
}

pub async fn create(
    wtx: &mut WriteTx<'_>,
    p: &EndpointPatch,
    policy: UrlPolicy,
) -> StoreResult<WebhookEndpoint> {
    let account = wtx.account_id();
    let url = check_url(
        p.url
            .as_deref()
            .ok_or_else(|| StoreError::Invalid("url is required".into()))?,
        policy,
    )?;
    let subscriptions = match &p.subscriptions {
        Some(s) => check_subscriptions(s)?,
        None => vec![ALL_EVENTS.to_string()],
    };
    let algorithm = check_algorithm(
        p.signature_algorithm
            .as_deref()
            .unwrap_or(SIGNATURE_ALGORITHM),
    )?;
    let api_version = check_api_version(p.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION))?;
    let app_id = p.app_id.flatten();
    if let Some(app) = app_id {
        check_app(wtx.tx(), account, app).await?;
    }
    let count: i64 = wtx
        .tx()
        .query_one(
            "SELECT count(*) FROM webhook_endpoints WHERE account_id = $1",
            &[&account],
        )
        .await?
        .try_get(0)?;
    if count >= MAX_ENDPOINTS {
        return Err(StoreError::LimitReached(format!(
            "an account has at most {MAX_ENDPOINTS} webhook endpoints"
        )));
    }
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO webhook_endpoints
                    (id, account_id, app_id, url, subscriptions, signature_algorithm, api_version, enabled)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &account,
                &app_id,
                &url,
                &subscriptions,
                &algorithm,
                &api_version,
                &p.enabled.unwrap_or(true),
            ],
        )
        .await?;
    let e = from_row(&row)?;
    // Not the URL: its query may carry the receiver's secret.
    wtx.audit(
        "webhook_endpoint.create",
        "webhook_endpoint",
        Some(e.id.to_string()),
        json!({"subscriptions": e.subscriptions, "app_id": e.app_id}),
    );
    Ok(e)
}

pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account: Uuid,
    app: Option<Uuid>,
) -> StoreResult<Vec<WebhookEndpoint>> {
    c.query(
        &format!(
            "SELECT {COLUMNS} FROM webhook_endpoints
              WHERE account_id = $1 AND ($2::uuid IS NULL OR app_id = $2)
              ORDER BY created_at, id"
        ),
        &[&account, &app],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account: Uuid,
    id: Uuid,
) -> StoreResult<WebhookEndpoint> {
    let row = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1 AND account_id = $2"),
            &[&id, &account],
        )
        .await?
        .ok_or(StoreError::NotFound("webhook endpoint"))?;
    from_row(&row)
}

pub async fn update(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    p: &EndpointPatch,
    policy: UrlPolicy,
) -> StoreResult<WebhookEndpoint> {
    let account = wtx.account_id();
    let url = p.url.as_deref().map(|u| check_url(u, policy)).transpose()?;
    let subscriptions = p
        .subscriptions
        .as_deref()
        .map(check_subscriptions)
        .transpose()?;
    let algorithm = p
        .signature_algorithm
        .as_deref()
        .map(check_algorithm)
        .transpose()?;
    let api_version = p
        .api_version
        .as_deref()
        .map(check_api_version)
        .transpose()?;
    if let Some(Some(app)) = p.app_id {
        check_app(wtx.tx(), account, app).await?;
    }
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE webhook_endpoints SET
                    url = coalesce($3, url),
                    app_id = CASE WHEN $4 THEN $5 ELSE app_id END,
                    subscriptions = coalesce($6, subscriptions),
                    signature_algorithm = coalesce($7, signature_algorithm),
                    api_version = coalesce($8, api_version),
                    enabled = coalesce($9, enabled),
                    updated_at = now()
                  WHERE id = $1 AND account_id = $2
                 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &account,
                &url,
                &p.app_id.is_some(),
                &p.app_id.flatten(),
                &subscriptions,
                &algorithm,
                &api_version,
                &p.enabled,
            ],
        )
        .await?
        .ok_or(StoreError::NotFound("webhook endpoint"))?;
    let e = from_row(&row)?;
    wtx.audit(
        "webhook_endpoint.update",
        "webhook_endpoint",
        Some(e.id.to_string()),
        json!({"subscriptions": e.subscriptions, "app_id": e.app_id, "enabled": e.enabled}),
    );
    Ok(e)
}

/// Deletes the endpoint and, with it, its events (delivered or not).
pub async fn delete(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let n = wtx
        .tx()
        .execute(
            "DELETE FROM webhook_endpoints WHERE id = $1 AND account_id = $2",
            &[&id, &wtx.account_id()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("webhook endpoint"));
    }
    wtx.audit(
        "webhook_endpoint.delete",
        "webhook_endpoint",
        Some(id.to_string()),
        json!({}),
    );
    Ok(())
}

/// An enabled endpoint's scope and subscriptions: what decides whether an event reaches it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub app_id: Option<Uuid>,
    pub subscriptions: Vec<String>,
}

impl Subscriber {
    pub fn subscribes_to(&self, event: &str) -> bool {
        self.subscriptions
            .iter()
            .any(|s| s == event || s == ALL_EVENTS)
    }

    /// The same rule as the commit-time insert of [`super::webhook_events`].
    pub fn wants(&self, event: &str, app: Option<Uuid>) -> bool {
        self.app_id.is_none_or(|scope| Some(scope) == app) && self.subscribes_to(event)
    }
}

/// The account's enabled endpoints (usually none: one index probe).
pub async fn subscribers<C: GenericClient + Sync>(
    c: &C,
    account: Uuid,
) -> StoreResult<Vec<Subscriber>> {
    c.query(
        "SELECT app_id, subscriptions FROM webhook_endpoints WHERE account_id = $1 AND enabled",
        &[&account],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Subscriber {
            app_id: r.try_get("app_id")?,
            subscriptions: r.try_get("subscriptions")?,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy {
        allow_http: false,
        allow_private: false,
    };

    #[test]
    fn urls() {
        assert_eq!(
            check_url("https://example.com/hook?x=1", STRICT)
                .ok()
                .as_deref(),
            Some("https://example.com/hook?x=1")
        );
        for bad in [
            "http://example.com/hook",
            "https://user:pw@example.com/",
            "ftp://example.com/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://169.254.169.254/latest",
            "not a url",
            "",
        ] {
            assert!(check_url(bad, STRICT).is_err(), "{bad}");
        }
        let open = UrlPolicy {
            allow_http: true,
            allow_private: true,
        };
        assert!(check_url("http://127.0.0.1:9/h", open).is_ok());
        assert!(check_url(&format!("https://example.com/{}", "a".repeat(3000)), open).is_err());
    }

    #[test]
    fn subscriptions() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_subscriptions(&s(&["license.created", "*", "license.created"])).ok(),
            Some(s(&["license.created", "*"]))
        );
        assert!(check_subscriptions(&[]).is_err());
        let err = check_subscriptions(&s(&["license.exploded"]))
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|m| m.contains("license.exploded")));
    }

    #[test]
    fn scope_and_subscription_match() {
        let app = Uuid::new_v4();
        let sub = |app_id, subs: &[&str]| Subscriber {
            app_id,
            subscriptions: subs.iter().map(|s| s.to_string()).collect(),
        };
        assert!(sub(None, &["*"]).wants("license.created", None));
        assert!(sub(Some(app), &["license.created"]).wants("license.created", Some(app)));
        assert!(!sub(Some(app), &["*"]).wants("license.created", Some(Uuid::new_v4())));
        assert!(!sub(Some(app), &["*"]).wants("user.created", None));
        assert!(!sub(None, &["license.deleted"]).wants("license.created", None));
    }

    #[test]
    fn api_versions() {
        assert!(check_api_version("1.8").is_ok());
        for bad in ["1", "1.", ".8", "v1.8", "1.8.0", "1234.1"] {
            assert!(check_api_version(bad).is_err(), "{bad}");
        }
    }
}

//! Harness shared by the validator's integration tests: a tenant written through the core's
//! store, validators started in-process on port 0, and a small HTTP client.
#![allow(dead_code)]

pub mod hostile_values;
pub mod keygen_clients;
pub mod lua;
pub mod panda_py;
pub mod pip;

use std::net::SocketAddr;
use std::time::Duration;

use keyward_shared::model::License;
use keyward_shared::store::licenses;
#[allow(unused_imports)]
pub use keyward_shared::testing::{generate, tenant, Tenant};
use keyward_validator::{Config, Running};
use serde_json::Value;
use uuid::Uuid;

/// The account's 10-character public id: the `ownerid` KeyAuth clients send.
pub async fn owner_of(c: &tokio_postgres::Client, t: &Tenant) -> String {
    c.query_one(
        "SELECT public_id FROM accounts WHERE id = $1",
        &[&t.actor.account_id],
    )
    .await
    .expect("owner")
    .get(0)
}

pub async fn one_license(c: &mut tokio_postgres::Client, t: &Tenant, hwid_limit: i32) -> License {
    generate(
        c,
        t,
        licenses::GenerateSpec {
            hwid_limit: Some(hwid_limit),
            ..Default::default()
        },
    )
    .await
    .remove(0)
}

/// How many machines (bound HWIDs) a license has, as committed.
pub async fn machine_count(c: &tokio_postgres::Client, license: Uuid) -> i64 {
    c.query_one(
        "SELECT count(*) FROM machines WHERE license_id = $1",
        &[&license],
    )
    .await
    .expect("machine count")
    .get(0)
}

/// A validator for tests: no rate limit (tests poll quickly) and a quick epoch check.
pub async fn validator(url: &str, tweak: impl FnOnce(&mut Config)) -> Running {
    let mut cfg = Config::new(url);
    cfg.rate_limit_per_sec = 0;
    cfg.epoch_check_ms = 200;
    cfg.usage_flush_ms = 100;
    tweak(&mut cfg);
    let v = keyward_validator::start(cfg)
        .await
        .expect("start validator");
    v.wait_ready(Duration::from_secs(10))
        .await
        .expect("validator ready");
    v
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

pub async fn post_raw(
    http: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = http.post(format!("http://{addr}{path}")).body(body);
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    reply(resp).await
}

pub async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let retry_after = header("retry-after");
    let content_type = header("content-type");
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        body,
        retry_after,
        content_type,
    }
}

pub async fn validate(
    http: &reqwest::Client,
    addr: SocketAddr,
    app: Uuid,
    key: &str,
    hwid: Option<&str>,
) -> Reply {
    let mut body = serde_json::json!({"app": app, "key": key});
    if let Some(h) = hwid {
        body["hwid"] = h.into();
    }
    post_raw(http, addr, "/v1/validate", body.to_string(), &[]).await
}

/// The verdict code, or the transport error code with its status.
pub async fn code(
    http: &reqwest::Client,
    addr: SocketAddr,
    app: Uuid,
    key: &str,
    hwid: Option<&str>,
) -> String {
    let r = validate(http, addr, app, key, hwid).await;
    if r.status == 200 {
        r.code().to_string()
    } else {
        format!("{}:{}", r.status, r.code())
    }
}

/// One counter from the validator's `/metrics` (0 when it has not been created yet).
pub async fn metric(http: &reqwest::Client, addr: SocketAddr, series: &str) -> u64 {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

pub async fn license_cache_hits(http: &reqwest::Client, addr: SocketAddr) -> u64 {
    metric(http, addr, "keyward_validator_license_cache_hits_total").await
}

const ACTIVATIONS: &str = "keyward_validator_activations_total";
const LICENSE_INVALIDATIONS: &str = r#"keyward_validator_invalidations_total{kind="license"}"#;

/// Validates until the answer comes from the cache, so a test can rely on the key being cached.
/// A first use writes, and its own invalidation drops the entry again whenever it arrives: wait
/// for that invalidation before warming, or it may land after this returns.
pub async fn warm(
    http: &reqwest::Client,
    addr: SocketAddr,
    app: Uuid,
    key: &str,
    hwid: Option<&str>,
) {
    let activations = metric(http, addr, ACTIVATIONS).await;
    let invalidations = metric(http, addr, LICENSE_INVALIDATIONS).await;
    assert_eq!(code(http, addr, app, key, hwid).await, "VALID");
    let activated = metric(http, addr, ACTIVATIONS).await - activations;
    keyward_shared::testing::eventually(
        Duration::from_secs(5),
        "own activation's invalidation applied",
        || async move {
            (metric(http, addr, LICENSE_INVALIDATIONS).await - invalidations >= activated)
                .then_some(())
        },
    )
    .await;
    keyward_shared::testing::eventually(Duration::from_secs(5), "key cached", || async move {
        let before = license_cache_hits(http, addr).await;
        assert_eq!(code(http, addr, app, key, hwid).await, "VALID");
        (license_cache_hits(http, addr).await > before).then_some(())
    })
    .await;
}

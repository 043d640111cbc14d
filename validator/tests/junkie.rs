//! Junkie's public end-user calls on the validator over real HTTP against a real PostgreSQL:
//! `verifyOpen`'s exact shape and every code, HWIDs from the body, from a fingerprint header or
//! none at all, keyless services, one-time keys raced on two validators, `getKeyOpen`'s plain-text
//! link, the per-IP limit and the script download Keyward does not serve.

mod common;
mod key_system;

use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use common::*;
use key_system::*;
use keyward_shared::model::BlacklistKind;
use keyward_shared::store::{apps, blacklist, key_providers, licenses};
use keyward_shared::testing::{eventually, Tenant, TestDb};
use keyward_shared::write::WriteTx;
use serde_json::{json, Value};

const VERIFY: &str = "/api/v1/whitelist/verifyOpen";
const GET_KEY: &str = "/api/v1/whitelist/getKeyOpen";

fn small_pool(cfg: &mut keyward_validator::Config) {
    cfg.pool_size = 6;
}

/// `verifyOpen` with `body`, plus headers; checks the status and the exact key set.
async fn verify_with(
    http: &reqwest::Client,
    addr: SocketAddr,
    body: Value,
    headers: &[(&str, &str)],
) -> Value {
    let r = post_raw(http, addr, VERIFY, body.to_string(), headers).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        keys(&r.body),
        ["expires_at", "is_premium", "message", "valid"],
        "{}",
        r.body
    );
    assert!(r.body["expires_at"].is_null() || r.body["expires_at"].is_i64());
    assert_eq!(
        r.body["valid"],
        matches!(r.body["message"].as_str(), Some("KEY_VALID" | "KEYLESS"))
    );
    r.body
}

/// The SDK's call: `{key, service, identifier}` and nothing else.
struct Sdk<'a> {
    http: &'a reqwest::Client,
    identifier: String,
    service: String,
}

impl Sdk<'_> {
    fn body(&self, key: &str) -> Value {
        json!({"key": key, "service": self.service, "identifier": self.identifier})
    }

    async fn check(&self, addr: SocketAddr, key: &str) -> Value {
        verify_with(self.http, addr, self.body(key), &[]).await
    }

    async fn check_hwid(&self, addr: SocketAddr, key: &str, hwid: &str) -> Value {
        let mut body = self.body(key);
        body["hwid"] = hwid.into();
        verify_with(self.http, addr, body, &[]).await
    }

    async fn message(&self, addr: SocketAddr, key: &str, hwid: Option<&str>) -> String {
        let r = match hwid {
            Some(h) => self.check_hwid(addr, key, h).await,
            None => self.check(addr, key).await,
        };
        r["message"].as_str().unwrap_or("").to_string()
    }
}

async fn setup(c: &mut tokio_postgres::Client, patch: apps::AppPatch) -> (Tenant, String) {
    let t = service(
        c,
        apps::AppPatch {
            name: Some(format!("Svc {}", service_id("n"))),
            ..patch
        },
    )
    .await;
    let identifier = account_num(c, &t).await.to_string();
    (t, identifier)
}

#[tokio::test]
async fn verify_open_answers_every_code_in_its_exact_shape() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (t, identifier) = setup(&mut c, Default::default()).await;
    let v = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    let sdk = Sdk {
        http: &http,
        identifier: identifier.clone(),
        service: t.app.name.clone(),
    };

    // Valid, premium, expiring: the HWID from the body is bound on first use.
    let until = Utc::now() + chrono::Duration::days(5);
    let k = key(
        &mut c,
        &t,
        licenses::GenerateSpec {
            premium: true,
            expires_at: Some(until),
            ..Default::default()
        },
    )
    .await;
    let r = sdk.check_hwid(a, &k.key, "PC-1").await;
    assert_eq!(r["message"], "KEY_VALID");
    assert_eq!(r["is_premium"], true);
    assert_eq!(r["expires_at"], k.expires_at.unwrap().timestamp());
    assert_eq!(bound_hwids(&c, k.id).await, ["PC-1"]);
    assert_eq!(
        sdk.message(a, &k.key, Some("PC-2")).await,
        "KEY_HWID_MISMATCH"
    );
    // The SDK sends no HWID: nothing is checked or bound.
    let r = sdk.check(a, &k.key).await;
    assert_eq!(
        (&r["message"], &r["is_premium"]),
        (&json!("KEY_VALID"), &json!(true))
    );
    let plain = key(&mut c, &t, Default::default()).await;
    let r = sdk.check(a, &plain.key).await;
    assert_eq!(r["message"], "KEY_VALID");
    assert_eq!(
        (&r["is_premium"], &r["expires_at"]),
        (&json!(false), &Value::Null)
    );
    assert!(
        bound_hwids(&c, plain.id).await.is_empty(),
        "no HWID, no bind"
    );

    // The service by its integer id works as by its name; unknown ones are SERVICE_MISMATCH.
    let by_num = Sdk {
        http: &http,
        identifier: identifier.clone(),
        service: t.app.key_system.num_id.to_string(),
    };
    assert_eq!(by_num.message(a, &plain.key, None).await, "KEY_VALID");
    let r = verify_with(
        &http,
        a,
        json!({"key": plain.key, "service": t.app.key_system.num_id, "identifier": identifier.parse::<i64>().unwrap()}),
        &[],
    )
    .await;
    assert_eq!(r["message"], "KEY_VALID", "numbers as JSON numbers too");
    let unknown = Sdk {
        http: &http,
        identifier: identifier.clone(),
        service: "No Such Service".into(),
    };
    assert_eq!(
        unknown.message(a, &plain.key, None).await,
        "SERVICE_MISMATCH"
    );

    // An identifier that names no account (the SDK's "unknown" when unset) leaks nothing.
    for bad in ["unknown", "999999999", "-3", ""] {
        let wrong = Sdk {
            http: &http,
            identifier: bad.into(),
            service: t.app.name.clone(),
        };
        assert_eq!(
            wrong.message(a, &plain.key, None).await,
            "KEY_INVALID",
            "{bad}"
        );
    }
    // Another account's identifier does not reach this account's service.
    let (other, other_identifier) = setup(&mut c, Default::default()).await;
    let cross = Sdk {
        http: &http,
        identifier: other_identifier,
        service: t.app.key_system.num_id.to_string(),
    };
    assert_eq!(
        cross.message(a, &plain.key, None).await,
        "SERVICE_MISMATCH",
        "not a service of that account"
    );
    drop(other);

    // Unknown key, banned key.
    assert_eq!(sdk.message(a, "NOPE", None).await, "KEY_INVALID");
    assert_eq!(sdk.message(a, "", None).await, "KEY_INVALID");
    ban(&mut c, &t, plain.id).await;
    eventually(Duration::from_secs(5), "banned key", || {
        let (sdk, key) = (&sdk, plain.key.clone());
        async move { (sdk.message(a, &key, None).await == "KEY_INVALID").then_some(()) }
    })
    .await;

    // Expired, and a key whose validity starts at its first use.
    let soon = key(
        &mut c,
        &t,
        licenses::GenerateSpec {
            expires_at: Some(Utc::now() + chrono::Duration::seconds(1)),
            ..Default::default()
        },
    )
    .await;
    eventually(Duration::from_secs(5), "KEY_EXPIRED", || {
        let (sdk, key) = (&sdk, soon.key.clone());
        async move { (sdk.message(a, &key, None).await == "KEY_EXPIRED").then_some(()) }
    })
    .await;
    let later = key(
        &mut c,
        &t,
        licenses::GenerateSpec {
            expiry_on_first_use: true,
            duration_secs: Some(3600),
            ..Default::default()
        },
    )
    .await;
    let before = Utc::now().timestamp();
    let r = sdk.check(a, &later.key).await;
    let at = r["expires_at"].as_i64().unwrap();
    assert!(
        (before + 3600..=Utc::now().timestamp() + 3601).contains(&at),
        "an hour from the first use: {at}"
    );

    // A one-time key: the second verify is refused.
    let once = key(
        &mut c,
        &t,
        licenses::GenerateSpec {
            one_time_use: Some(true),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(sdk.message(a, &once.key, None).await, "KEY_VALID");
    assert_eq!(sdk.message(a, &once.key, None).await, "KEY_ALREADY_USED");

    // A blacklisted HWID.
    let fresh = key(&mut c, &t, Default::default()).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    blacklist::add(
        &mut w,
        t.app.id,
        &blacklist::NewEntry {
            kind: BlacklistKind::Hwid,
            value: "BANNED-PC".into(),
            note: None,
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    eventually(Duration::from_secs(5), "HWID_BANNED", || {
        let (sdk, key) = (&sdk, fresh.key.clone());
        async move {
            (sdk.message(a, &key, Some("BANNED-PC")).await == "HWID_BANNED").then_some(())
        }
    })
    .await;

    // Bad bodies are 400s that still say valid=false.
    let r = post_raw(&http, a, VERIFY, "[1,2]", &[]).await;
    assert_eq!((r.status, &r.body["valid"]), (400, &json!(false)));
    let r = get(&http, a, VERIFY).await;
    assert_eq!(r.status, 405);
    v.shutdown().await;
}

#[tokio::test]
async fn the_hwid_comes_from_a_fingerprint_header_when_the_body_has_none() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (t, identifier) = setup(&mut c, Default::default()).await;
    let v = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    let body = |key: &str| json!({"key": key, "service": t.app.name, "identifier": identifier});

    let k = key(&mut c, &t, Default::default()).await;
    let r = verify_with(&http, a, body(&k.key), &[("Syn-Fingerprint", "SYN-123")]).await;
    assert_eq!(r["message"], "KEY_VALID");
    assert_eq!(bound_hwids(&c, k.id).await, ["SYN-123"]);
    // Another executor's header names another machine; the body's `hwid` wins over headers.
    let r = verify_with(&http, a, body(&k.key), &[("Exploit-Guid", "OTHER")]).await;
    assert_eq!(r["message"], "KEY_HWID_MISMATCH");
    let mut with_hwid = body(&k.key);
    with_hwid["hwid"] = "SYN-123".into();
    let r = verify_with(&http, a, with_hwid, &[("Syn-Fingerprint", "OTHER")]).await;
    assert_eq!(r["message"], "KEY_VALID");
    // Headers in the configured order: the first present one counts.
    let r = verify_with(
        &http,
        a,
        body(&k.key),
        &[
            ("Sentinel-Fingerprint", "OTHER"),
            ("Syn-Fingerprint", "SYN-123"),
        ],
    )
    .await;
    assert_eq!(r["message"], "KEY_VALID");

    // A validator configured with its own header list ignores the default ones.
    let custom = validator(&db.url, |cfg| {
        small_pool(cfg);
        cfg.junkie_hwid_headers = vec!["X-My-Fingerprint".into()];
    })
    .await;
    let r = verify_with(
        &http,
        custom.addr(),
        body(&k.key),
        &[("X-My-Fingerprint", "OTHER")],
    )
    .await;
    assert_eq!(r["message"], "KEY_HWID_MISMATCH");
    let r = verify_with(
        &http,
        custom.addr(),
        body(&k.key),
        &[("Syn-Fingerprint", "OTHER")],
    )
    .await;
    assert_eq!(
        r["message"], "KEY_VALID",
        "not a configured header: no HWID"
    );
    custom.shutdown().await;
    v.shutdown().await;
}

#[tokio::test]
async fn keyless_services_let_any_key_in() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (t, identifier) = setup(
        &mut c,
        apps::AppPatch {
            keyless_mode: Some(true),
            ..Default::default()
        },
    )
    .await;
    let v = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let sdk = Sdk {
        http: &http,
        identifier,
        service: t.app.name.clone(),
    };
    for k in ["", "anything", "KEYLESS"] {
        let r = sdk.check(v.addr(), k).await;
        assert_eq!(
            (&r["valid"], &r["message"]),
            (&json!(true), &json!("KEYLESS")),
            "{k}"
        );
    }
    // With a HWID, its keyless entry is made.
    let r = sdk.check_hwid(v.addr(), "x", "KL-1").await;
    assert_eq!(r["message"], "KEYLESS");
    let made = stored_keyless(&c, t.app.id, "KL-1").await.expect("entry");
    assert_eq!(r["expires_at"], made.timestamp());

    // Keyless mode off again: keys count.
    update(
        &mut c,
        &t,
        apps::AppPatch {
            keyless_mode: Some(false),
            ..Default::default()
        },
    )
    .await;
    let a = v.addr();
    eventually(Duration::from_secs(5), "keyless off", || {
        let sdk = &sdk;
        async move { (sdk.message(a, "anything", None).await == "KEY_INVALID").then_some(()) }
    })
    .await;
    v.shutdown().await;
}

#[tokio::test]
async fn two_validators_racing_on_a_one_time_key_let_exactly_one_through() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (t, identifier) = setup(&mut c, Default::default()).await;
    let v1 = validator(&db.url, small_pool).await;
    let v2 = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let sdk = Sdk {
        http: &http,
        identifier,
        service: t.app.name.clone(),
    };
    for round in 0..3 {
        let once = key(
            &mut c,
            &t,
            licenses::GenerateSpec {
                one_time_use: Some(true),
                ..Default::default()
            },
        )
        .await;
        let addrs = [v1.addr(), v2.addr()];
        let answers = futures_util::future::join_all((0..50).map(|i| {
            let (sdk, key) = (&sdk, &once.key);
            async move { sdk.message(addrs[i % 2], key, None).await }
        }))
        .await;
        let valid = answers.iter().filter(|m| *m == "KEY_VALID").count();
        assert_eq!(valid, 1, "round {round}: {answers:?}");
        assert!(answers
            .iter()
            .all(|m| m == "KEY_VALID" || m == "KEY_ALREADY_USED"));
    }
    v1.shutdown().await;
    v2.shutdown().await;
}

#[tokio::test]
async fn get_key_open_answers_the_providers_link_as_plain_text() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (t, identifier) = setup(&mut c, Default::default()).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    let linked = key_providers::create(
        &mut w,
        &key_providers::NewProvider {
            name: "Linkvertise".into(),
            is_active: true,
            key_valid_minutes: Some(60),
            link_url: Some("https://link.example.com/get?svc=1".into()),
        },
    )
    .await
    .unwrap();
    key_providers::create(
        &mut w,
        &key_providers::NewProvider {
            name: "NoLink".into(),
            is_active: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    let v = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    let ask = |provider: Value, identifier: Value| {
        json!({"service": t.app.name, "provider": provider, "identifier": identifier}).to_string()
    };

    for provider in [
        json!("Linkvertise"),
        json!(linked.id),
        json!(linked.id.to_string()),
    ] {
        let r = post_raw(
            &http,
            a,
            GET_KEY,
            ask(provider.clone(), json!(identifier)),
            &[],
        )
        .await;
        assert_eq!(r.status, 200, "{provider}");
        assert_eq!(r.content_type.as_deref(), Some("text/plain; charset=utf-8"));
        assert_eq!(
            r.body,
            json!("https://link.example.com/get?svc=1"),
            "the body is the link"
        );
    }
    for (provider, ident) in [
        (json!("Unknown"), json!(identifier)),
        (json!("NoLink"), json!(identifier)),
        (json!("Linkvertise"), json!("unknown")),
        (json!("Linkvertise"), json!("999999999")),
    ] {
        let r = post_raw(&http, a, GET_KEY, ask(provider, ident), &[]).await;
        assert_eq!((r.status, &r.body), (404, &json!("PROVIDER_NOT_FOUND")));
    }

    // Scripts are not hosted here.
    let r = get(&http, a, "/api/v1/luascripts/public/abc123/download").await;
    assert_eq!(r.status, 404);
    v.shutdown().await;
}

#[tokio::test]
async fn both_open_routes_are_rate_limited_per_ip_with_retry_after() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (t, identifier) = setup(&mut c, Default::default()).await;
    let v = validator(&db.url, |cfg| {
        small_pool(cfg);
        cfg.rate_limit_per_sec = 1;
        cfg.rate_limit_burst = 3;
    })
    .await;
    let http = reqwest::Client::new();
    let a = v.addr();
    let verify = json!({"key": "K", "service": t.app.name, "identifier": identifier}).to_string();
    let get_key =
        json!({"service": t.app.name, "provider": "P", "identifier": identifier}).to_string();

    let mut statuses = Vec::new();
    let mut limited = Vec::new();
    for i in 0..6 {
        let (path, body) = if i % 2 == 0 {
            (VERIFY, verify.clone())
        } else {
            (GET_KEY, get_key.clone())
        };
        let r = post_raw(&http, a, path, body, &[]).await;
        statuses.push(r.status);
        if r.status == 429 {
            limited.push((path, r));
        }
    }
    assert_eq!(&statuses[..3], [200, 404, 200], "{statuses:?}");
    assert!(limited.len() >= 2, "{statuses:?}");
    for (path, r) in &limited {
        let secs: u64 = r
            .retry_after
            .as_deref()
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!(secs >= 1);
        if *path == GET_KEY {
            assert_eq!(r.body, json!("RATE_LIMITTED"));
        } else {
            assert_eq!(
                (&r.body["valid"], &r.body["message"]),
                (&json!(false), &json!("RATE_LIMITTED"))
            );
        }
    }
    assert!(
        limited.iter().any(|(p, _)| *p == GET_KEY) && limited.iter().any(|(p, _)| *p == VERIFY)
    );
    v.shutdown().await;
}

#[tokio::test]
async fn hostile_input_on_the_open_routes_never_answers_5xx() {
    use common::hostile_values::{hostile_json, hostile_strings};
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (t, identifier) = setup(&mut c, Default::default()).await;
    let k = key(&mut c, &t, Default::default()).await;
    let v = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    let mut values: Vec<(String, Value)> = hostile_strings()
        .into_iter()
        .map(|(l, s, _)| (l.to_string(), Value::String(s)))
        .collect();
    values.extend(hostile_json().into_iter().map(|(l, v)| (l.to_string(), v)));
    let bodies = [
        (
            VERIFY,
            json!({"key": k.key, "service": t.app.name, "identifier": identifier, "hwid": "HW"}),
        ),
        (
            GET_KEY,
            json!({"service": t.app.name, "provider": "P", "identifier": identifier}),
        ),
    ];
    for (label, value) in &values {
        for (path, body) in &bodies {
            for field in body.as_object().unwrap().keys() {
                let mut b = body.clone();
                b[field.as_str()] = value.clone();
                let r = post_raw(&http, a, path, b.to_string(), &[]).await;
                assert!(r.status < 500, "{path} {field}={label}: {}", r.status);
                // Any string is a HWID (the first binds); nothing else hostile passes.
                if *path == VERIFY && r.status == 200 && field != "hwid" {
                    assert_eq!(r.body["valid"], false, "{field}={label}");
                }
            }
        }
        // And as the fingerprint header, where a header can carry it.
        if let Value::String(s) = value {
            if let Ok(h) = reqwest::header::HeaderValue::from_str(s) {
                let body = json!({"key": k.key, "service": t.app.name, "identifier": identifier});
                let r = http
                    .post(format!("http://{a}{VERIFY}"))
                    .header("Syn-Fingerprint", h)
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("answered");
                assert!(r.status().as_u16() < 500, "header {label}");
            }
        }
    }
    v.shutdown().await;
}

//! The validator's answers over real HTTP against a real PostgreSQL: every verdict, bad input,
//! rate limiting, usage counters and the ops endpoints.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use keyward_shared::model::BlacklistKind;
use keyward_shared::store::{apps, blacklist, licenses};
use keyward_shared::testing::{eventually, TestDb};
use keyward_shared::write::WriteTx;

#[tokio::test]
async fn verdicts_for_every_rule() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let v = validator(&db.url, |_| {}).await;
    let http = reqwest::Client::new();
    let a = v.addr();

    // Valid, and the HWID is bound on first use.
    let l = one_license(&mut c, &t, 1).await;
    let r = validate(&http, a, t.app.id, &l.key, Some("m1")).await;
    assert_eq!((r.status, r.code()), (200, "VALID"), "{:?}", r.body);
    assert_eq!(r.body["valid"], true);
    assert_eq!(r.body["license"]["hwids_bound"], 1);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    // Same machine again: a pure cache hit; another machine: mismatch; no HWID: required.
    assert_eq!(code(&http, a, t.app.id, &l.key, Some("m1")).await, "VALID");
    assert_eq!(
        code(&http, a, t.app.id, &l.key, Some("m2")).await,
        "HWID_MISMATCH"
    );
    assert_eq!(
        code(&http, a, t.app.id, &l.key, None).await,
        "HWID_REQUIRED"
    );

    // Unknown key (and a second ask, served from the negative cache).
    assert_eq!(
        code(&http, a, t.app.id, "NOPE-NOPE", Some("m1")).await,
        "NOT_FOUND"
    );
    assert_eq!(
        code(&http, a, t.app.id, "NOPE-NOPE", Some("m1")).await,
        "NOT_FOUND"
    );

    // HWID limit 2.
    let two = one_license(&mut c, &t, 2).await;
    for m in ["a", "b", "a", "b"] {
        assert_eq!(code(&http, a, t.app.id, &two.key, Some(m)).await, "VALID");
    }
    let r = validate(&http, a, t.app.id, &two.key, Some("c")).await;
    assert_eq!(r.code(), "TOO_MANY_HWIDS");
    assert_eq!(r.body["valid"], false);
    assert!(
        r.body.get("license").is_none(),
        "no license details on a refusal"
    );

    // Fixed expiry in the past.
    let expired = generate(
        &mut c,
        &t,
        licenses::GenerateSpec {
            hwid_limit: Some(0),
            expires_at: Some(Utc::now() + chrono::Duration::seconds(1)),
            ..Default::default()
        },
    )
    .await
    .remove(0);
    eventually(Duration::from_secs(5), "fixed expiry", || {
        let (http, app, key) = (&http, t.app.id, expired.key.clone());
        async move { (code(http, a, app, &key, Some("m")).await == "EXPIRED").then_some(()) }
    })
    .await;

    // Expiry on first use: the clock starts at the first validation.
    let on_first_use = generate(
        &mut c,
        &t,
        licenses::GenerateSpec {
            hwid_limit: Some(0),
            duration_secs: Some(1),
            expiry_on_first_use: true,
            ..Default::default()
        },
    )
    .await
    .remove(0);
    assert!(on_first_use.expires_at.is_none());
    let r = validate(&http, a, t.app.id, &on_first_use.key, Some("m")).await;
    assert_eq!(r.code(), "VALID");
    let first_used: chrono::DateTime<Utc> =
        serde_json::from_value(r.body["license"]["first_used_at"].clone()).unwrap();
    let expires: chrono::DateTime<Utc> =
        serde_json::from_value(r.body["license"]["expires_at"].clone()).unwrap();
    assert_eq!((expires - first_used).num_seconds(), 1);
    eventually(Duration::from_secs(5), "expiry after first use", || {
        let (http, app, key) = (&http, t.app.id, on_first_use.key.clone());
        async move { (code(http, a, app, &key, Some("m")).await == "EXPIRED").then_some(()) }
    })
    .await;

    // Banned, with the reason in the detail.
    let banned = one_license(&mut c, &t, 0).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    licenses::ban(&mut w, banned.id, Some("chargeback"))
        .await
        .unwrap();
    w.commit().await.unwrap();
    let r = validate(&http, a, t.app.id, &banned.key, Some("m")).await;
    assert_eq!(r.code(), "BANNED");
    assert!(r.body["detail"].as_str().unwrap().contains("chargeback"));
    v.shutdown().await;
}

#[tokio::test]
async fn ip_limit_and_blacklists() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    // Loopback is a trusted proxy here, so tests can speak for any client address.
    let v = validator(&db.url, |cfg| {
        cfg.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let http = reqwest::Client::new();
    let a = v.addr();
    let from = |ip: &'static str, key: String, hwid: &'static str| {
        let http = http.clone();
        let app = t.app.id;
        async move {
            let body = serde_json::json!({"app": app, "key": key, "hwid": hwid}).to_string();
            post_raw(&http, a, "/v1/validate", body, &[("x-forwarded-for", ip)]).await
        }
    };

    let l = generate(
        &mut c,
        &t,
        licenses::GenerateSpec {
            hwid_limit: Some(0),
            ip_limit: Some(2),
            ..Default::default()
        },
    )
    .await
    .remove(0);
    assert_eq!(
        from("198.51.100.1", l.key.clone(), "m").await.code(),
        "VALID"
    );
    assert_eq!(
        from("198.51.100.2", l.key.clone(), "m").await.code(),
        "VALID"
    );
    assert_eq!(
        from("198.51.100.1", l.key.clone(), "m").await.code(),
        "VALID"
    );
    assert_eq!(
        from("198.51.100.3", l.key.clone(), "m").await.code(),
        "IP_LIMIT"
    );

    let free = one_license(&mut c, &t, 0).await;
    let add = |kind: BlacklistKind, value: &'static str| {
        let actor = t.actor.clone();
        let app = t.app.id;
        let url = db.url.clone();
        async move {
            let cfg = keyward_shared::db::pg_config(&url, "test").unwrap();
            let mut c = keyward_shared::db::connect(&cfg).await.unwrap();
            let mut w = WriteTx::begin(&mut c, actor).await.unwrap();
            let e = blacklist::add(
                &mut w,
                app,
                &blacklist::NewEntry {
                    kind,
                    value: value.into(),
                    note: None,
                },
            )
            .await
            .unwrap();
            w.commit().await.unwrap();
            e
        }
    };
    assert_eq!(
        from("203.0.113.9", free.key.clone(), "m").await.code(),
        "VALID"
    );
    let cidr = add(BlacklistKind::Ip, "203.0.113.0/24").await;
    let (_, took) = eventually(Duration::from_secs(2), "CIDR blacklist", || {
        let f = from("203.0.113.9", free.key.clone(), "m");
        async move { (f.await.code() == "BLACKLISTED").then_some(()) }
    })
    .await;
    println!("CIDR blacklist seen after {took:?}");
    assert_eq!(
        from("203.0.114.9", free.key.clone(), "m").await.code(),
        "VALID"
    );
    add(BlacklistKind::Ip, "192.0.2.77").await;
    eventually(Duration::from_secs(2), "IP blacklist", || {
        let f = from("192.0.2.77", free.key.clone(), "m");
        async move { (f.await.code() == "BLACKLISTED").then_some(()) }
    })
    .await;
    add(BlacklistKind::Hwid, "evil-machine").await;
    eventually(Duration::from_secs(2), "HWID blacklist", || {
        let f = from("192.0.2.1", free.key.clone(), "evil-machine");
        async move { (f.await.code() == "BLACKLISTED").then_some(()) }
    })
    .await;
    // Blacklists apply before the key is even looked at.
    assert_eq!(
        from("192.0.2.1", "NO-SUCH-KEY".into(), "evil-machine")
            .await
            .code(),
        "BLACKLISTED"
    );
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    blacklist::delete(&mut w, cidr.id).await.unwrap();
    w.commit().await.unwrap();
    eventually(Duration::from_secs(2), "CIDR removal", || {
        let f = from("203.0.113.9", free.key.clone(), "m");
        async move { (f.await.code() == "VALID").then_some(()) }
    })
    .await;
    v.shutdown().await;
}

#[tokio::test]
async fn paused_app_and_unknown_app() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let l = one_license(&mut c, &t, 0).await;
    let v = validator(&db.url, |_| {}).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    // hwid_lock off: no HWID needed.
    assert_eq!(code(&http, a, t.app.id, &l.key, None).await, "VALID");
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    apps::update(
        &mut w,
        t.app.id,
        &apps::AppPatch {
            paused: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    eventually(Duration::from_secs(2), "pause", || {
        let (http, app, key) = (&http, t.app.id, l.key.clone());
        async move { (code(http, a, app, &key, None).await == "APP_PAUSED").then_some(()) }
    })
    .await;

    let mut ghost = t.app.clone();
    ghost.id = uuid::Uuid::new_v4();
    let r = validate(&http, a, ghost.id, &l.key, None).await;
    assert_eq!((r.status, r.code()), (404, "APP_NOT_FOUND"));
    assert_eq!(r.body["success"], false);
    v.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_a_4xx_json_error() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let v = validator(&db.url, |_| {}).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    let app = t.app.id.to_string();
    let long_key = "K".repeat(200);
    let cases: Vec<(String, u16)> = vec![
        ("{".into(), 400),
        ("".into(), 400),
        ("[]".into(), 400),
        ("null".into(), 400),
        (r#"{"app": 5, "key": "k"}"#.into(), 400),
        (format!(r#"{{"app": "{app}", "key": 12}}"#), 400),
        (format!(r#"{{"app": "{app}"}}"#), 400),
        (
            format!(r#"{{"app": "{app}", "key": "k", "extra": 1}}"#),
            400,
        ),
        (
            format!(r#"{{"app": "{app}", "key": "k", "hwid": ["x"]}}"#),
            400,
        ),
        (r#"{"app": "not-a-uuid", "key": "k"}"#.into(), 400),
        (format!(r#"{{"app": "{app}", "key": ""}}"#), 400),
        (format!(r#"{{"app": "{app}", "key": "{long_key}"}}"#), 400),
        (
            format!(
                r#"{{"app": "{app}", "key": "k", "hwid": "{}"}}"#,
                "h".repeat(300)
            ),
            400,
        ),
        (
            format!(
                r#"{{"app": "{app}", "key": "k", "nonce": "{}"}}"#,
                "n".repeat(300)
            ),
            400,
        ),
        (format!(r#"{{"app": "{app}", "key": "k\u0000"}}"#), 400),
        (
            format!(r#"{{"app": "{app}", "key": "k", "hwid": "m\u0000"}}"#),
            400,
        ),
        (
            format!(r#"{{"app": "{app}", "key": "k", "hwid": "m"}}"#),
            200,
        ),
    ];
    for (body, status) in cases {
        let r = post_raw(&http, a, "/v1/validate", body.clone(), &[]).await;
        assert_eq!(r.status, status, "body {body:?} → {:?}", r.body);
        if status != 200 {
            assert_eq!(r.body["success"], false, "{body:?}");
            assert!(!r.body["message"].as_str().unwrap().is_empty());
        }
    }
    // Non-UTF-8 bytes.
    let r = post_raw(&http, a, "/v1/validate", vec![0xff, 0xfe, 0x7b], &[]).await;
    assert_eq!((r.status, r.code()), (400, "BAD_REQUEST"));
    // A body over the 16 KiB cap, declared and streamed.
    for size in [64 * 1024, 2 * 1024 * 1024] {
        let huge = format!(r#"{{"app": "{app}", "key": "{}"}}"#, "k".repeat(size));
        let r = post_raw(&http, a, "/v1/validate", huge, &[]).await;
        assert_eq!((r.status, r.code()), (413, "PAYLOAD_TOO_LARGE"));
    }
    // Wrong content type, route, method.
    let r = post_raw(
        &http,
        a,
        "/v1/validate",
        "app=x",
        &[("content-type", "application/x-www-form-urlencoded")],
    )
    .await;
    assert_eq!((r.status, r.code()), (415, "UNSUPPORTED_MEDIA_TYPE"));
    let r = post_raw(&http, a, "/v2/nothing", "{}", &[]).await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));
    let r = reply(
        http.get(format!("http://{a}/v1/validate"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.code()), (405, "METHOD_NOT_ALLOWED"));
    // The nonce is echoed for replay protection.
    let l = one_license(&mut c, &t, 0).await;
    let body = serde_json::json!({"app": app, "key": l.key, "hwid": "m", "nonce": "n-123"});
    let r = post_raw(&http, a, "/v1/validate", body.to_string(), &[]).await;
    assert_eq!(
        (r.code(), r.body["nonce"].as_str()),
        ("VALID", Some("n-123"))
    );
    v.shutdown().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 0).await;
    let v = validator(&db.url, |cfg| {
        cfg.rate_limit_per_sec = 1;
        cfg.rate_limit_burst = 3;
        cfg.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let http = reqwest::Client::new();
    let a = v.addr();
    let body = serde_json::json!({"app": t.app.id, "key": l.key, "hwid": "m"}).to_string();
    let hdr = [("x-forwarded-for", "198.51.100.50")];
    for _ in 0..3 {
        let r = post_raw(&http, a, "/v1/validate", body.clone(), &hdr).await;
        assert_eq!(r.status, 200);
    }
    let r = post_raw(&http, a, "/v1/validate", body.clone(), &hdr).await;
    assert_eq!((r.status, r.code()), (429, "RATE_LIMITED"));
    let wait: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    // Another client address has its own budget.
    let r = post_raw(
        &http,
        a,
        "/v1/validate",
        body,
        &[("x-forwarded-for", "198.51.100.51")],
    )
    .await;
    assert_eq!(r.status, 200);
    v.shutdown().await;
}

#[tokio::test]
async fn usage_is_written_behind_and_ops_endpoints_answer() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 0).await;
    let v = validator(&db.url, |cfg| cfg.usage_flush_ms = 60_000).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    for _ in 0..7 {
        assert_eq!(code(&http, a, t.app.id, &l.key, Some("m")).await, "VALID");
    }
    let get = |path: &'static str| {
        let http = http.clone();
        async move { http.get(format!("http://{a}{path}")).send().await.unwrap() }
    };
    assert_eq!(get("/healthz").await.status(), 200);
    assert_eq!(get("/readyz").await.status(), 200);
    let metrics = get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"keyward_validator_verdicts_total{code="VALID"} 7"#),
        "{metrics}"
    );
    assert!(metrics.contains("keyward_validator_listener_connected 1"));
    assert!(
        metrics.contains("keyward_validator_usage_backlog 1"),
        "one license's counts wait for the next flush: {metrics}"
    );
    // Counters reach the database at shutdown at the latest.
    v.shutdown().await;
    let row = c
        .query_one(
            "SELECT validation_count, last_validated_at IS NOT NULL FROM license_usage
              WHERE license_id = $1",
            &[&l.id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 7);
    assert!(row.get::<_, bool>(1));
}

#[tokio::test]
async fn the_query_pool_is_open_before_ready() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // Ready means the first burst of misses finds its connections open, not PostgreSQL forking,
    // and each has run the license lookup once (a new backend's first query loads the catalog
    // and plans: several times the cost of the lookup).
    let v = validator(&db.url, |cfg| cfg.pool_size = 5).await;
    let (open, primed): (i64, i64) = c
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE query LIKE '%FROM unnest(%JOIN licenses%')
               FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'keyward-validator'",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((open, primed), (5, 5));
    v.shutdown().await;
}

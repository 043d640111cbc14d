//! CyberLicense's `POST /api/license/validate` on the validator over real HTTP against a real
//! PostgreSQL (spec `cyberlicense.md` §3.2–§3.6): every row of the check order with its status
//! and message, the exact success shape, nothing written on a refusal, the IP/HWID rules (known
//! values, 0 = unlimited, absent, trimmed), HWIDs and credits raced over two validators, nonces,
//! the route's rate limit and its headers, an outage, and a key rotated on the control-plane.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use common::*;
use keyward_shared::model::{BlacklistKind, License, LicenseType};
use keyward_shared::store::{api_keys, apps, blacklist, licenses};
use keyward_shared::testing::{eventually, ChaosProxy, Tenant, TestDb};
use keyward_shared::write::WriteTx;
use keyward_validator::Config;
use serde_json::{json, Value};
use uuid::Uuid;

const VALIDATE: &str = "/api/license/validate";

/// The validators of these tests: no rate limit (unless a test sets one), a small pool.
fn unlimited(cfg: &mut Config) {
    cfg.cyberlicense_rate_limit = 0;
    cfg.pool_size = 8;
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

/// `POST /api/license/validate` with a raw body.
async fn post(http: &reqwest::Client, addr: SocketAddr, body: &str) -> Answer {
    send(
        http.post(format!("http://{addr}{VALIDATE}"))
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

async fn check(http: &reqwest::Client, addr: SocketAddr, body: Value) -> Answer {
    post(http, addr, &body.to_string()).await
}

#[track_caller]
fn assert_refused(a: &Answer, status: u16, error: &str) {
    assert_eq!(
        (a.status, &a.body),
        (
            status,
            &json!({"success": false, "valid": false, "error": error})
        ),
        "expected {status} {error:?}"
    );
}

/// A 200 `{success, valid, license}`; the license object.
#[track_caller]
fn assert_valid(a: &Answer) -> Value {
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (&a.body["success"], &a.body["valid"]),
        (&json!(true), &json!(true))
    );
    a.body["license"].clone()
}

async fn make(c: &mut tokio_postgres::Client, t: &Tenant, spec: licenses::GenerateSpec) -> License {
    generate(c, t, spec).await.remove(0)
}

fn limits(ip_limit: i32, hwid_limit: i32) -> licenses::GenerateSpec {
    licenses::GenerateSpec {
        ip_limit: Some(ip_limit),
        hwid_limit: Some(hwid_limit),
        ..Default::default()
    }
}

fn consumption(credits: i32) -> licenses::GenerateSpec {
    licenses::GenerateSpec {
        license_type: Some(LicenseType::Consumption),
        max_uses: Some(credits),
        hwid_limit: Some(0),
        ..Default::default()
    }
}

/// The committed IPs, HWIDs (in the order they were recorded) and uses.
async fn stored(
    c: &tokio_postgres::Client,
    t: &Tenant,
    id: Uuid,
) -> (Vec<String>, Vec<String>, i32) {
    let l = licenses::get(c, t.actor.account_id, id)
        .await
        .expect("license");
    (
        l.ips.iter().map(ToString::to_string).collect(),
        l.hwids.into_iter().map(|h| h.hwid).collect(),
        l.uses,
    )
}

async fn write<F>(c: &mut tokio_postgres::Client, t: &Tenant, f: F)
where
    F: for<'a, 'b> FnOnce(
        &'a mut WriteTx<'b>,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<(), keyward_shared::StoreError>> + Send + 'a>,
    >,
{
    let mut w = WriteTx::begin(c, t.actor.clone()).await.expect("begin");
    f(&mut w).await.expect("write");
    w.commit().await.expect("commit");
}

/// Polls until the validator gives this refusal (an admin change reaches it by invalidation).
async fn until_refused(
    http: &reqwest::Client,
    addr: SocketAddr,
    body: Value,
    status: u16,
    error: &str,
) {
    let want = json!({"success": false, "valid": false, "error": error});
    eventually(Duration::from_secs(5), error, || {
        let (http, body, want) = (http.clone(), body.clone(), want.clone());
        async move {
            let a = check(&http, addr, body).await;
            (a.status == status && a.body == want).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn every_row_of_the_order_answers_its_status_and_message_and_writes_nothing() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let v = validator(&db.url, unlimited).await;
    let (http, a) = (reqwest::Client::new(), v.addr());
    let l = make(&mut c, &t, limits(1, 1)).await;
    let k = l.key.clone();

    // Row 1: not a JSON object, or no usable key.
    for body in [
        "",
        "null",
        "[]",
        "[\"K\"]",
        "\"K\"",
        "{",
        "not json",
        "{}",
        r#"{"key":null}"#,
        r#"{"key":5}"#,
        r#"{"key":["K"]}"#,
        r#"{"key":"   "}"#,
        r#"{"ip":5}"#,
    ] {
        let r = post(&http, a, body).await;
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_refused(&r, 400, "License key is required");
    }
    // Row 2: ip or hwid present but not a string (or an ip that is no address), before the
    // key is even looked up.
    for body in [
        json!({"key": k, "ip": 5}),
        json!({"key": k, "hwid": false}),
        json!({"key": k, "hwid": {"id": 1}}),
        json!({"key": k, "ip": "not-an-ip"}),
        json!({"key": "NO-SUCH-KEY", "ip": ["1.2.3.4"]}),
    ] {
        assert_refused(&check(&http, a, body).await, 400, "Invalid request body");
    }
    // Row 3: no license has this key (exact, case-sensitive).
    for key in [
        "NO-SUCH-KEY".to_string(),
        k.to_lowercase(),
        format!("{k}X"),
        "K".repeat(300),
    ] {
        assert_refused(
            &check(&http, a, json!({"key": key})).await,
            400,
            "License not found",
        );
    }

    // Rows 9 and 10 on the live license: one IP and one HWID recorded, then the limits.
    let first = check(
        &http,
        a,
        json!({"key": k, "ip": "192.0.2.1", "hwid": "PC-1"}),
    )
    .await;
    assert_valid(&first);
    let r = check(
        &http,
        a,
        json!({"key": k, "ip": "192.0.2.2", "hwid": "PC-1"}),
    )
    .await;
    assert_refused(&r, 403, "IP limit exceeded");
    let r = check(
        &http,
        a,
        json!({"key": k, "ip": "192.0.2.1", "hwid": "PC-2"}),
    )
    .await;
    assert_refused(&r, 403, "HWID limit exceeded");
    // IP before HWID.
    let r = check(
        &http,
        a,
        json!({"key": k, "ip": "192.0.2.2", "hwid": "PC-2"}),
    )
    .await;
    assert_refused(&r, 403, "IP limit exceeded");

    // Row 8: a consumption license without credits.
    let metered = make(&mut c, &t, consumption(1)).await;
    assert_valid(&check(&http, a, json!({"key": metered.key})).await);
    let r = check(&http, a, json!({"key": metered.key, "hwid": "PC-NEW"})).await;
    assert_refused(&r, 403, "License expired");

    // Row 7: expired (a new IP and HWID are not recorded on a dead license).
    let soon = make(
        &mut c,
        &t,
        licenses::GenerateSpec {
            expires_at: Some(Utc::now() + chrono::Duration::seconds(1)),
            ..limits(0, 0)
        },
    )
    .await;
    // Waited out without asking (a valid answer would record its first use).
    let expiry = soon.expires_at.expect("expiry");
    eventually(Duration::from_secs(5), "expiry passed", || async move {
        (Utc::now() > expiry).then_some(())
    })
    .await;
    let dead = json!({"key": soon.key, "ip": "198.51.100.1", "hwid": "PC-9"});
    assert_refused(&check(&http, a, dead).await, 403, "License expired");

    // Rows 4–6: revoked, suspended (banned or blacklisted), not active (disabled or paused).
    let revoked = make(&mut c, &t, limits(0, 0)).await;
    let suspended = make(&mut c, &t, limits(0, 0)).await;
    let disabled = make(&mut c, &t, limits(0, 0)).await;
    let (r_id, s_id, d_id) = (revoked.id, suspended.id, disabled.id);
    write(&mut c, &t, |w| Box::pin(licenses::revoke(w, r_id))).await;
    write(&mut c, &t, |w| {
        Box::pin(licenses::ban(w, s_id, Some("chargeback")))
    })
    .await;
    write(&mut c, &t, |w| Box::pin(licenses::disable(w, d_id))).await;
    let hw = |key: &str| json!({"key": key, "ip": "198.51.100.2", "hwid": "PC-8"});
    until_refused(&http, a, hw(&revoked.key), 403, "License revoked").await;
    until_refused(&http, a, hw(&suspended.key), 403, "License suspended").await;
    until_refused(&http, a, hw(&disabled.key), 403, "License not active").await;
    let blacklisted = make(&mut c, &t, limits(0, 0)).await;
    let app_id = t.app.id;
    write(&mut c, &t, |w| {
        Box::pin(async move {
            blacklist::add(
                w,
                app_id,
                &blacklist::NewEntry {
                    kind: BlacklistKind::Hwid,
                    value: "STOLEN-PC".into(),
                    note: None,
                },
            )
            .await
            .map(|_| ())
        })
    })
    .await;
    let stolen = json!({"key": blacklisted.key, "hwid": "STOLEN-PC"});
    until_refused(&http, a, stolen, 403, "License suspended").await;
    assert_valid(&check(&http, a, json!({"key": blacklisted.key, "hwid": "OWN-PC"})).await);

    let paused_tenant = tenant(&mut c, false).await;
    let in_paused = make(&mut c, &paused_tenant, limits(0, 0)).await;
    let paused_app = paused_tenant.app.id;
    write(&mut c, &paused_tenant, |w| {
        Box::pin(async move {
            let patch = apps::AppPatch {
                paused: Some(true),
                ..Default::default()
            };
            apps::update(w, paused_app, &patch).await.map(|_| ())
        })
    })
    .await;
    until_refused(&http, a, hw(&in_paused.key), 403, "License not active").await;

    // Nothing was written by any refusal: only the first validation's IP, HWID and first use.
    assert_eq!(
        stored(&c, &t, l.id).await,
        (vec!["192.0.2.1".into()], vec!["PC-1".into()], 0)
    );
    for id in [soon.id, revoked.id, suspended.id, disabled.id] {
        assert_eq!(stored(&c, &t, id).await, (vec![], vec![], 0));
    }
    assert_eq!(stored(&c, &t, metered.id).await, (vec![], vec![], 1));
    let used: Vec<Option<chrono::DateTime<Utc>>> = c
        .query(
            "SELECT used_at FROM licenses WHERE id = ANY($1) ORDER BY id",
            &[&vec![soon.id, revoked.id, suspended.id, disabled.id]],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(used.iter().all(Option::is_none), "{used:?}");

    // The same key in two products: refused rather than guessed.
    let other = tenant(&mut c, false).await;
    make(
        &mut c,
        &other,
        licenses::GenerateSpec {
            key: Some(k.clone()),
            ..Default::default()
        },
    )
    .await;
    until_refused(&http, a, json!({"key": k}), 400, "License key is ambiguous").await;
    v.shutdown().await;
}

#[tokio::test]
async fn a_valid_answer_has_exactly_the_seeds_shape() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let v = validator(&db.url, unlimited).await;
    let (http, a) = (reqwest::Client::new(), v.addr());
    let expires = Utc::now() + chrono::Duration::days(30);
    let l = make(
        &mut c,
        &t,
        licenses::GenerateSpec {
            expires_at: Some(expires),
            license_type: Some(LicenseType::Enterprise),
            ..limits(3, 2)
        },
    )
    .await;
    let r = check(
        &http,
        a,
        json!({"key": l.key, "ip": "192.0.2.1", "hwid": "PC-1"}),
    )
    .await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let keys: Vec<&str> = r
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["success", "valid", "license"]);
    let lic = assert_valid(&r);
    let keys: Vec<&str> = lic
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "key",
            "active",
            "expiresAt",
            "ipLimit",
            "hwidLimit",
            "usedIps",
            "usedHwids",
            "licenseType"
        ]
    );
    let stored_expiry = licenses::get(&c, t.actor.account_id, l.id)
        .await
        .unwrap()
        .expires_at
        .unwrap();
    assert_eq!(
        lic,
        json!({
            "key": l.key,
            "active": true,
            "expiresAt": stored_expiry.to_rfc3339_opts(SecondsFormat::Millis, true),
            "ipLimit": 3,
            "hwidLimit": 2,
            "usedIps": ["192.0.2.1"],
            "usedHwids": ["PC-1"],
            "licenseType": "enterprise",
        })
    );
    // The arrays in the order the values were recorded, fresh from the write.
    let lic = assert_valid(
        &check(
            &http,
            a,
            json!({"key": l.key, "ip": "192.0.2.0", "hwid": "PC-0"}),
        )
        .await,
    );
    assert_eq!(lic["usedIps"], json!(["192.0.2.1", "192.0.2.0"]));
    assert_eq!(lic["usedHwids"], json!(["PC-1", "PC-0"]));
    // A known client: served from the cache, the same license.
    let lic = assert_valid(&check(&http, a, json!({"key": l.key, "hwid": "PC-1"})).await);
    assert_eq!(lic["usedHwids"], json!(["PC-1", "PC-0"]));

    // A license that never expires, of the default type.
    let plain = make(&mut c, &t, limits(0, 0)).await;
    let lic = assert_valid(&check(&http, a, json!({"key": plain.key})).await);
    assert_eq!(
        (
            &lic["expiresAt"],
            &lic["licenseType"],
            &lic["ipLimit"],
            &lic["usedIps"]
        ),
        (&Value::Null, &json!("fixed"), &json!(0), &json!([]))
    );
    v.shutdown().await;
}

#[tokio::test]
async fn ip_and_hwid_rules_known_values_unlimited_absent_and_trimmed() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let v = validator(&db.url, unlimited).await;
    let (http, a) = (reqwest::Client::new(), v.addr());

    // Trimmed values (the key too); an IPv4-mapped address is the IPv4 one.
    let l = make(&mut c, &t, limits(2, 1)).await;
    let padded =
        json!({"key": format!("  {} ", l.key), "ip": " ::ffff:192.0.2.9 ", "hwid": "\t PC \n"});
    assert_valid(&check(&http, a, padded).await);
    assert_valid(
        &check(
            &http,
            a,
            json!({"key": l.key, "ip": "192.0.2.9", "hwid": "PC"}),
        )
        .await,
    );
    assert_eq!(
        stored(&c, &t, l.id).await,
        (vec!["192.0.2.9".into()], vec!["PC".into()], 0)
    );
    // Absent (or blank, or null) skips the check.
    for body in [
        json!({"key": l.key}),
        json!({"key": l.key, "hwid": "  ", "ip": ""}),
        json!({"key": l.key, "hwid": null, "ip": null}),
    ] {
        assert_valid(&check(&http, a, body).await);
    }
    assert_refused(
        &check(&http, a, json!({"key": l.key, "hwid": "pc"})).await,
        403,
        "HWID limit exceeded",
    );

    // 0 means unlimited, and every value is still recorded.
    let open = make(&mut c, &t, limits(0, 0)).await;
    for i in 0..5 {
        let body =
            json!({"key": open.key, "ip": format!("198.51.100.{i}"), "hwid": format!("H{i}")});
        assert_valid(&check(&http, a, body).await);
    }
    let (ips, hwids, _) = stored(&c, &t, open.id).await;
    assert_eq!((ips.len(), hwids.len()), (5, 5));
    assert_eq!(hwids, ["H0", "H1", "H2", "H3", "H4"]);

    // A known value passes after the limit is lowered below the list; a new one does not.
    let lowered = make(&mut c, &t, limits(0, 3)).await;
    for h in ["A", "B"] {
        assert_valid(&check(&http, a, json!({"key": lowered.key, "hwid": h})).await);
    }
    let id = lowered.id;
    write(&mut c, &t, |w| {
        Box::pin(async move {
            let patch = licenses::LicensePatch {
                hwid_limit: Some(Some(1)),
                ..Default::default()
            };
            licenses::update(w, id, &patch).await.map(|_| ())
        })
    })
    .await;
    // Refused at once: a validator still holding limit 3 tries the write, whose re-check
    // under the row lock refuses it.
    let r = check(&http, a, json!({"key": lowered.key, "hwid": "C"})).await;
    assert_refused(&r, 403, "HWID limit exceeded");
    for h in ["A", "B"] {
        assert_valid(&check(&http, a, json!({"key": lowered.key, "hwid": h})).await);
    }
    assert_eq!(stored(&c, &t, id).await.1, ["A", "B"]);

    // A key with `hwid_check` off records and checks no HWID, whatever the app's lock.
    let no_hwid = make(
        &mut c,
        &t,
        licenses::GenerateSpec {
            hwid_check: Some(false),
            ..limits(0, 1)
        },
    )
    .await;
    for h in ["X", "Y", "Z"] {
        assert_valid(&check(&http, a, json!({"key": no_hwid.key, "hwid": h})).await);
    }
    assert!(stored(&c, &t, no_hwid.id).await.1.is_empty());
    v.shutdown().await;
}

#[tokio::test]
async fn distinct_hwids_racing_over_two_validators_bind_exactly_one() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let l = make(&mut c, &t, limits(0, 1)).await;
    let (v1, v2) = (
        validator(&db.url, unlimited).await,
        validator(&db.url, unlimited).await,
    );
    let http = reqwest::Client::new();
    let racers = (0..20).map(|i| {
        let addr = if i % 2 == 0 { v1.addr() } else { v2.addr() };
        let (http, key) = (http.clone(), l.key.clone());
        tokio::spawn(async move {
            check(&http, addr, json!({"key": key, "hwid": format!("PC-{i}")})).await
        })
    });
    let mut valid = 0;
    let mut refused = 0;
    for r in futures_util::future::join_all(racers).await {
        let r = r.expect("racer");
        if r.status == 200 {
            valid += 1;
        } else {
            assert_refused(&r, 403, "HWID limit exceeded");
            refused += 1;
        }
    }
    println!(
        "20 distinct HWIDs on hwidLimit 1 over two validators: {valid} valid, {refused} refused"
    );
    assert_eq!((valid, refused), (1, 19));
    assert_eq!(stored(&c, &t, l.id).await.1.len(), 1);
    v1.shutdown().await;
    v2.shutdown().await;
}

#[tokio::test]
async fn consumption_credits_are_spent_once_each_over_two_validators_and_nonces_replay() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let l = make(&mut c, &t, consumption(10)).await;
    let (v1, v2) = (
        validator(&db.url, unlimited).await,
        validator(&db.url, unlimited).await,
    );
    let http = reqwest::Client::new();
    let started = Instant::now();
    let racers = (0..100).map(|i| {
        let addr = if i % 2 == 0 { v1.addr() } else { v2.addr() };
        let (http, key) = (http.clone(), l.key.clone());
        tokio::spawn(async move { check(&http, addr, json!({"key": key})).await })
    });
    let mut valid = 0;
    let mut refused = 0;
    for r in futures_util::future::join_all(racers).await {
        let r = r.expect("racer");
        if r.status == 200 {
            valid += 1;
        } else {
            assert_refused(&r, 403, "License expired");
            refused += 1;
        }
    }
    println!(
        "100 concurrent validations of a 10-credit license over two validators: {valid} valid, \
         {refused} refused (\"License expired\"), in {:?}",
        started.elapsed()
    );
    assert_eq!((valid, refused), (10, 90));
    assert_eq!(stored(&c, &t, l.id).await.2, 10);
    for addr in [v1.addr(), v2.addr()] {
        assert_refused(
            &check(&http, addr, json!({"key": l.key})).await,
            403,
            "License expired",
        );
    }

    // A client's retry (same nonce, in the body or as Idempotency-Key) spends nothing.
    let l = make(&mut c, &t, consumption(3)).await;
    let a = v1.addr();
    assert_valid(&check(&http, a, json!({"key": l.key, "nonce": "order-1"})).await);
    assert_valid(&check(&http, v2.addr(), json!({"key": l.key, "nonce": "order-1"})).await);
    let by_header = send(
        http.post(format!("http://{a}{VALIDATE}"))
            .header("idempotency-key", "order-1")
            .json(&json!({"key": l.key})),
    )
    .await;
    assert_valid(&by_header);
    assert_eq!(stored(&c, &t, l.id).await.2, 1);
    assert_valid(&check(&http, a, json!({"key": l.key, "nonce": "order-2"})).await);
    assert_valid(&check(&http, a, json!({"key": l.key})).await);
    assert_eq!(stored(&c, &t, l.id).await.2, 3);
    // None left: refused, unless it is the retry of a spend.
    assert_refused(
        &check(&http, a, json!({"key": l.key})).await,
        403,
        "License expired",
    );
    assert_refused(
        &check(&http, a, json!({"key": l.key, "nonce": "order-3"})).await,
        403,
        "License expired",
    );
    assert_valid(&check(&http, a, json!({"key": l.key, "nonce": "order-2"})).await);
    assert_eq!(stored(&c, &t, l.id).await.2, 3);
    v1.shutdown().await;
    v2.shutdown().await;
}

#[tokio::test]
async fn the_route_is_rate_limited_per_ip_with_standard_headers_on_every_answer() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let l = make(&mut c, &t, limits(0, 0)).await;
    let v = validator(&db.url, |cfg| {
        cfg.cyberlicense_rate_limit = 3;
        cfg.cyberlicense_rate_window_secs = 900;
    })
    .await;
    let (http, a) = (reqwest::Client::new(), v.addr());
    let headers = |r: &Answer| {
        (
            r.header("ratelimit-limit").map(str::to_string),
            r.header("ratelimit-remaining").map(str::to_string),
        )
    };
    let some = |s: &str| Some(s.to_string());
    let r = check(&http, a, json!({"key": "NO-SUCH-KEY"})).await;
    assert_refused(&r, 400, "License not found");
    assert_eq!(headers(&r), (some("3"), some("2")));
    let r = check(&http, a, json!({"key": l.key})).await;
    assert_valid(&r);
    assert_eq!(headers(&r), (some("3"), some("1")));
    let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
    assert!((1..=900).contains(&reset), "{reset}");
    let r = send(http.get(format!("http://{a}{VALIDATE}"))).await;
    assert_eq!(r.status, 404);
    assert_eq!(headers(&r), (some("3"), some("0")));

    let r = check(&http, a, json!({"key": l.key})).await;
    assert_refused(&r, 429, "Too many requests, please try again later.");
    assert_eq!(headers(&r), (some("3"), some("0")));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
    // One request's share of the window comes back first (300 s); the whole budget later.
    assert!((1..=300).contains(&retry), "{retry}");
    assert!(reset >= retry && reset <= 900, "{reset}");
    println!("429 after 3 requests: Retry-After {retry} s, RateLimit-Reset {reset} s");
    // The native route is not limited by it.
    let native = validate(&http, a, t.app.id, &l.key, Some("m")).await;
    assert_eq!(native.status, 200);

    // Turned off (0): no headers.
    let off = validator(&db.url, unlimited).await;
    let r = check(&http, off.addr(), json!({"key": l.key})).await;
    assert_valid(&r);
    assert_eq!(headers(&r), (None, None));
    v.shutdown().await;
    off.shutdown().await;
}

#[tokio::test]
async fn other_methods_are_not_found_and_a_trailing_slash_is_the_route() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let l = make(&mut c, &t, limits(0, 0)).await;
    let v = validator(&db.url, unlimited).await;
    let (http, a) = (reqwest::Client::new(), v.addr());
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let r = send(http.request(method, format!("http://{a}{VALIDATE}"))).await;
        assert_eq!(
            (r.status, r.body),
            (404, json!({"success": false, "error": "Not found"}))
        );
    }
    let r = send(
        http.post(format!("http://{a}{VALIDATE}/"))
            .json(&json!({"key": l.key, "extra": {"ignored": true}})),
    )
    .await;
    assert_valid(&r);
    // Whatever the declared content type, the body is read as JSON.
    let r = send(
        http.post(format!("http://{a}{VALIDATE}"))
            .header("content-type", "text/plain")
            .body(json!({"key": l.key}).to_string()),
    )
    .await;
    assert_valid(&r);
    v.shutdown().await;
}

#[tokio::test]
async fn an_outage_answers_503_never_not_found() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let cached = make(&mut c, &t, limits(0, 0)).await;
    let proxy = ChaosProxy::start(db.socket_addr()).await;
    let v = validator(&db.url_via(&proxy), |cfg| {
        unlimited(cfg);
        cfg.outage_grace_secs = 30;
        cfg.listener_backoff_ms = 50;
    })
    .await;
    let (http, a) = (reqwest::Client::new(), v.addr());
    let body = json!({"key": cached.key, "hwid": "PC-1"});
    // The first use writes; once its own invalidation is back, the next read caches the license.
    const LICENSE_INVALIDATIONS: &str = r#"keyward_validator_invalidations_total{kind="license"}"#;
    let before = metric(&http, a, LICENSE_INVALIDATIONS).await;
    assert_valid(&check(&http, a, body.clone()).await);
    eventually(Duration::from_secs(5), "own invalidation applied", || {
        let http = http.clone();
        async move { (metric(&http, a, LICENSE_INVALIDATIONS).await > before).then_some(()) }
    })
    .await;
    assert_valid(&check(&http, a, body.clone()).await);

    proxy.break_networking();
    eventually(Duration::from_secs(5), "outage noticed", || {
        let http = http.clone();
        async move {
            (metric(&http, a, "keyward_validator_listener_connected").await == 0).then_some(())
        }
    })
    .await;
    let r = check(&http, a, json!({"key": "NOT-CACHED-KEY"})).await;
    assert_refused(&r, 503, "Service unavailable");
    // A cached license needing no write is still answered within the grace.
    assert_valid(&check(&http, a, body.clone()).await);
    // One needing a write cannot be answered.
    let r = check(&http, a, json!({"key": cached.key, "hwid": "PC-2"})).await;
    assert_refused(&r, 503, "Service unavailable");
    proxy.restore_networking();
    v.shutdown().await;
}

/// Polls both validators side by side until the old key is unknown on each; how long each took
/// after `since` (the rotate call's answer, which leaves after its commit).
async fn refused_by_both(
    http: &reqwest::Client,
    addrs: [SocketAddr; 2],
    key: &str,
    since: Instant,
) -> [Duration; 2] {
    let polls = addrs.map(|addr| {
        let (http, key) = (http.clone(), key.to_string());
        async move {
            eventually(Duration::from_secs(2), "old key refused", || {
                let (http, key) = (http.clone(), key.clone());
                async move {
                    let r = check(&http, addr, json!({"key": key})).await;
                    (r.status == 400 && r.body["error"] == "License not found")
                        .then(|| since.elapsed())
                }
            })
            .await
            .0
        }
    });
    let [p1, p2] = polls;
    let (d1, d2) = tokio::join!(p1, p2);
    [d1, d2]
}

#[tokio::test]
async fn a_key_rotated_on_the_control_plane_is_refused_by_both_validators_within_milliseconds() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let l = make(&mut c, &t, limits(0, 0)).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone())
        .await
        .expect("begin");
    let (_, bearer) = api_keys::create(
        &mut w,
        "cyberlicense admin",
        &["cyberlicense:admin".to_owned()],
    )
    .await
    .expect("api key");
    w.commit().await.expect("commit");
    let cp = keyward_control_plane::start(keyward_control_plane::Config::new(db.url.clone()))
        .await
        .expect("control-plane");
    let (v1, v2) = (
        validator(&db.url, unlimited).await,
        validator(&db.url, unlimited).await,
    );
    let addrs = [v1.addr(), v2.addr()];
    let http = reqwest::Client::new();
    // Known (and cached) on both.
    for addr in addrs {
        assert_valid(&check(&http, addr, json!({"key": l.key, "hwid": "PC-1"})).await);
    }
    for addr in addrs {
        assert_valid(&check(&http, addr, json!({"key": l.key, "hwid": "PC-1"})).await);
    }

    let rotated = send(
        http.post(format!("http://{}/api/license/rotate", cp.addr()))
            .bearer_auth(&bearer)
            .json(&json!({"key": l.key})),
    )
    .await;
    let answered = Instant::now();
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(rotated.body["success"], true);
    assert_eq!(rotated.body["oldKey"], json!(l.key));
    let new_key = rotated.body["newKey"].as_str().expect("newKey").to_string();
    let took = refused_by_both(&http, addrs, &l.key, answered).await;
    println!(
        "CyberLicense key rotated (control-plane): old key refused by validator 1 after {:?} \
         and validator 2 after {:?}",
        took[0], took[1]
    );
    // The new key keeps the license: its HWID, limits and type.
    for addr in addrs {
        let lic = assert_valid(&check(&http, addr, json!({"key": new_key, "hwid": "PC-1"})).await);
        assert_eq!(
            (&lic["key"], &lic["usedHwids"]),
            (&json!(new_key), &json!(["PC-1"]))
        );
    }
    v1.shutdown().await;
    v2.shutdown().await;
    cp.shutdown().await;
}

#[tokio::test]
async fn hostile_input_in_every_field_is_a_4xx_or_an_answer_never_a_5xx() {
    use common::hostile_values::{hostile_json, hostile_strings};
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let l = make(&mut c, &t, consumption(1_000_000)).await;
    let v = validator(&db.url, unlimited).await;
    let (http, a) = (reqwest::Client::new(), v.addr());
    let base = json!({"key": l.key, "ip": "192.0.2.1", "hwid": "PC-1", "nonce": "n-0"});
    let mut failures = Vec::new();
    let mut sent = 0;
    for field in ["key", "ip", "hwid", "nonce", "extra"] {
        let values: Vec<(String, Value, bool)> = hostile_strings()
            .into_iter()
            .map(|(l, s, nul)| (l.to_string(), Value::String(s), nul))
            .chain(
                hostile_json()
                    .into_iter()
                    .map(|(l, v)| (l.to_string(), v, false)),
            )
            .collect();
        for (label, value, nul) in values {
            let mut body = base.clone();
            body[field] = value;
            let r = check(&http, a, body).await;
            sent += 1;
            let what = format!("{field} = {label}: {} {}", r.status, r.body);
            let shaped = r.body["success"] == (r.status == 200)
                && (r.status == 200 || r.body["error"].is_string());
            if r.status >= 500 || !shaped {
                failures.push(what);
            } else if nul && field != "extra" && r.status != 400 {
                failures.push(format!("a NUL must be a 400: {what}"));
            }
        }
    }
    let mut nested = "[".repeat(100_000);
    nested.push_str(&"]".repeat(100_000));
    let mut nested_in_key = r#"{"key":"#.to_string() + &"[".repeat(10_000);
    nested_in_key.push_str(&"]".repeat(10_000));
    nested_in_key.push('}');
    for raw in [
        nested,
        nested_in_key,
        r#"{"\u0000":1}"#.to_string(),
        r#"{"key":"\ud800"}"#.to_string(),
        format!(r#"{{"key":"a","key":"{}"}}"#, l.key),
        " ".repeat(16_000),
    ] {
        let r = post(&http, a, &raw).await;
        sent += 1;
        if r.status >= 500 || r.body["success"] != false {
            failures.push(format!("raw body: {} {}", r.status, r.body));
        }
    }
    let r = send(
        http.post(format!("http://{a}{VALIDATE}"))
            .body(b"{\"key\":\"\xff\xfe\"}".to_vec()),
    )
    .await;
    assert_refused(&r, 400, "License key is required");
    println!("{sent} hostile requests, {} failures", failures.len());
    assert!(failures.is_empty(), "{failures:#?}");
    // The server still answers on a fresh connection.
    assert_valid(&check(&http, a, json!({"key": l.key})).await);
    v.shutdown().await;
}

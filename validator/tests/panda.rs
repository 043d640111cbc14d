//! Panda Auth's end-user calls on the validator over real HTTP against a real PostgreSQL: every
//! route's exact shape, the lenient unencoded query, the core's rules as Panda reports them,
//! keyless mode, the service config and get-key link, execution counts written behind across two
//! validators, the self-service HWID reset, and a ban seen by two validators.

mod common;
mod key_system;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use key_system::*;
use keyward_shared::model::BlacklistKind;
use keyward_shared::store::{api_keys, apps, blacklist, licenses, usage};
use keyward_shared::testing::{eventually, TestDb};
use keyward_shared::write::WriteTx;
use serde_json::{json, Value};

const LEGACY_KEYS: [&str; 5] = [
    "Authentication",
    "Key_Information",
    "OwnerSecretID",
    "Registered_ServiceID",
    "V2_Authentication",
];
const KEY_INFO_KEYS: [&str; 5] = [
    "Hardware_ID",
    "Notes",
    "NoKey_Requirement",
    "Premium_Mode",
    "expiresAt",
];

/// `GET /v2_validation` with the query concatenated unencoded, as Panda's clients build it.
async fn legacy(
    http: &reqwest::Client,
    addr: SocketAddr,
    service: &str,
    key: &str,
    hwid: &str,
) -> Value {
    let r = get(
        http,
        addr,
        &format!("/v2_validation?hwid={hwid}&service={service}&key={key}"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(keys(&r.body), sorted(LEGACY_KEYS.to_vec()), "{}", r.body);
    assert_eq!(
        keys(&r.body["Key_Information"]),
        sorted(KEY_INFO_KEYS.to_vec()),
        "{}",
        r.body
    );
    assert_eq!(r.body["Authentication"], r.body["V2_Authentication"]);
    assert_eq!(r.body["Registered_ServiceID"], service);
    r.body
}

fn passed(v: &Value) -> bool {
    v["V2_Authentication"] == "success"
}

fn notes(v: &Value) -> &str {
    v["Key_Information"]["Notes"].as_str().unwrap_or("")
}

/// Panda's `expiresAt`: `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`.
fn panda_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn is_panda_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

async fn post_json(http: &reqwest::Client, addr: SocketAddr, path: &str, body: Value) -> Reply {
    post_raw(http, addr, path, body.to_string(), &[]).await
}

fn small_pool(cfg: &mut keyward_validator::Config) {
    cfg.pool_size = 6;
}

#[tokio::test]
async fn legacy_validation_keeps_its_schema_binds_on_first_use_and_reads_unencoded_queries() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("legacy");
    let t = service(
        &mut c,
        apps::AppPatch {
            service_id: Some(Some(sid.clone())),
            ..Default::default()
        },
    )
    .await;
    let v = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let a = v.addr();

    // First use binds the HWID; the answer names it.
    let k = key(&mut c, &t, Default::default()).await;
    let r = legacy(&http, a, &sid, &k.key, "HW1").await;
    assert!(passed(&r), "{r}");
    assert_eq!(r["Authentication"], "success");
    let info = &r["Key_Information"];
    assert_eq!(info["Hardware_ID"], "HW1");
    assert_eq!(info["NoKey_Requirement"], false);
    assert_eq!(info["Premium_Mode"], false);
    assert_eq!(info["Notes"], "Key is valid");
    assert_eq!(info["expiresAt"], "", "no expiry");
    let owner = r["OwnerSecretID"].as_str().unwrap();
    assert!(
        owner.len() == 32 && owner.bytes().all(|b| b.is_ascii_hexdigit()),
        "opaque id: {owner}"
    );
    assert!(!owner.contains(&t.app.id.simple().to_string()) && owner != t.app.secret);
    assert_eq!(bound_hwids(&c, k.id).await, ["HW1"]);

    // Another machine: refused with the same schema, nothing about the bound HWID.
    let r = legacy(&http, a, &sid, &k.key, "HW2").await;
    assert!(!passed(&r));
    assert_eq!(r["V2_Authentication"], "failed");
    assert_eq!(notes(&r), "HWID mismatch");
    assert_eq!(r["Key_Information"]["Hardware_ID"], "");
    assert_eq!(r["Key_Information"]["expiresAt"], "");
    assert_eq!(
        r["OwnerSecretID"], owner,
        "the service's id on failures too"
    );
    assert!(passed(&legacy(&http, a, &sid, &k.key, "HW1").await));

    // Unknown key and unknown service.
    assert_eq!(
        notes(&legacy(&http, a, &sid, "NOPE123", "HW1").await),
        "Key not found"
    );
    let r = legacy(&http, a, "no-such-service", &k.key, "HW1").await;
    assert_eq!(notes(&r), "Service not found");
    assert_eq!(r["OwnerSecretID"], "");
    assert_eq!(
        notes(&legacy(&http, a, &sid, "", "HW1").await),
        "Key required"
    );
    let r = get(&http, a, "/v2_validation").await;
    assert_eq!((r.status, notes(&r.body)), (200, "Service not found"));

    // An unencoded HWID with '+', '/', '=' and ':' arrives as sent (split on the first '='),
    // and the same HWID percent-encoded is the same machine.
    let raw_hwid = "ab+cd/ef==:x";
    let k2 = key(&mut c, &t, Default::default()).await;
    let r = legacy(&http, a, &sid, &k2.key, raw_hwid).await;
    assert!(passed(&r), "{r}");
    assert_eq!(r["Key_Information"]["Hardware_ID"], raw_hwid);
    assert_eq!(bound_hwids(&c, k2.id).await, [raw_hwid]);
    let r = legacy(&http, a, &sid, &k2.key, "ab%2Bcd%2Fef%3D%3D%3Ax").await;
    assert!(passed(&r), "percent-encoded is tolerated: {r}");

    // expiresAt has three millisecond digits and a Z.
    let until = Utc::now() + chrono::Duration::days(10);
    let k3 = key(
        &mut c,
        &t,
        licenses::GenerateSpec {
            expires_at: Some(until),
            premium: true,
            ..Default::default()
        },
    )
    .await;
    let r = legacy(&http, a, &sid, &k3.key, "HW3").await;
    let at = r["Key_Information"]["expiresAt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(is_panda_time(&at), "{at}");
    assert_eq!(at, panda_time(k3.expires_at.unwrap()));
    assert_eq!(r["Key_Information"]["Premium_Mode"], true);
    v.shutdown().await;
}

#[tokio::test]
async fn new_newest_and_failsafe_routes_answer_their_exact_shapes() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("shapes");
    let t = service(
        &mut c,
        apps::AppPatch {
            service_id: Some(Some(sid.clone())),
            ..Default::default()
        },
    )
    .await;
    let v = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    let k = key(
        &mut c,
        &t,
        licenses::GenerateSpec {
            expires_at: Some(Utc::now() + chrono::Duration::days(3)),
            premium: true,
            ..Default::default()
        },
    )
    .await;
    let expires = k.expires_at.unwrap();

    // POST /api/v1/keys/validate (V2LoaderLib @ aacdee3).
    let body = |hwid: &str| json!({"ServiceID": sid, "HWID": hwid, "Key": k.key});
    let r = post_json(&http, a, "/api/v1/keys/validate", body("M1")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        keys(&r.body),
        ["Authenticated_Status", "Expire_Date", "Key_Premium", "Note"]
    );
    assert_eq!(r.body["Authenticated_Status"], "Success");
    assert_eq!(r.body["Key_Premium"], true);
    assert_eq!(
        r.body["Expire_Date"],
        expires.format("%Y-%m-%d %H:%M:%S").to_string()
    );
    let r = post_json(&http, a, "/api/v1/keys/validate", body("M2")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        keys(&r.body),
        ["Authenticated_Status", "Key_Premium", "Note"],
        "no Expire_Date on failure"
    );
    assert_eq!(r.body["Authenticated_Status"], "Failed");
    assert_eq!(r.body["Note"], "HWID mismatch");
    assert_eq!(r.body["Key_Premium"], false);

    // POST /v2_validation (V2LoaderLib @ HEAD): lower-case names.
    let body = |hwid: &str| json!({"serviceid": sid, "hwid": hwid, "key": k.key});
    let r = post_json(&http, a, "/v2_validation", body("M1")).await;
    assert_eq!(r.status, 200);
    assert_eq!(keys(&r.body), ["Is_Premium", "Note", "Status"]);
    assert_eq!(
        (&r.body["Status"], &r.body["Is_Premium"]),
        (&json!("Authenticate"), &json!(true))
    );
    let r = post_json(&http, a, "/v2_validation", body("M2")).await;
    assert_eq!(keys(&r.body), ["Is_Premium", "Note", "Status"]);
    assert_eq!(r.body["Status"], "Failed");
    assert_eq!(r.body["Note"], "HWID mismatch");
    let r = post_raw(&http, a, "/v2_validation", "{not json", &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(keys(&r.body), ["Is_Premium", "Note", "Status"]);
    assert!(r.body["Note"]
        .as_str()
        .unwrap()
        .starts_with("Invalid request body"));

    // GET /failsafeValidation (PelicanAuth's C#/C++ examples).
    let r = get(
        &http,
        a,
        &format!("/failsafeValidation?service={sid}&hwid=M1&key={}", k.key),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        keys(&r.body),
        ["dev_id", "expiresAt", "isPremium", "service", "status"]
    );
    assert_eq!(r.body["status"], "success");
    assert_eq!(r.body["isPremium"], true);
    assert_eq!(r.body["service"], sid.as_str());
    assert_eq!(r.body["expiresAt"], panda_time(expires));
    assert_eq!(r.body["dev_id"].as_str().unwrap().len(), 32);
    let r = get(
        &http,
        a,
        &format!("/failsafeValidation?service={sid}&hwid=M2&key={}", k.key),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        keys(&r.body),
        [
            "dev_id",
            "expiresAt",
            "isPremium",
            "message",
            "service",
            "status"
        ]
    );
    assert_eq!(
        (&r.body["status"], &r.body["message"], &r.body["expiresAt"]),
        (&json!("failed"), &json!("HWID mismatch"), &json!(""))
    );

    // Wrong methods and transport errors are `{"message"}` only.
    let r = get(&http, a, "/api/v1/keys/validate").await;
    assert_eq!(r.status, 405);
    assert_eq!(keys(&r.body), ["message"]);
    v.shutdown().await;
}

#[tokio::test]
async fn expiry_days_keys_bans_one_time_keys_blacklists_and_pauses_read_as_panda_notes() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("rules");
    let t = service(
        &mut c,
        apps::AppPatch {
            service_id: Some(Some(sid.clone())),
            ..Default::default()
        },
    )
    .await;
    let v = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let a = v.addr();

    // A fixed expiry passing.
    let soon = key(
        &mut c,
        &t,
        licenses::GenerateSpec {
            expires_at: Some(Utc::now() + chrono::Duration::seconds(1)),
            ..Default::default()
        },
    )
    .await;
    eventually(Duration::from_secs(5), "Key expired", || {
        let (http, sid, key) = (&http, &sid, soon.key.clone());
        async move { (notes(&legacy(http, a, sid, &key, "E").await) == "Key expired").then_some(()) }
    })
    .await;

    // A days key: the `expire` date holds until the first use, which sets now + 30 days.
    let provisional = Utc::now() + chrono::Duration::days(2);
    let days = key(
        &mut c,
        &t,
        licenses::GenerateSpec {
            expiry_on_first_use: true,
            duration_days: Some(30),
            expires_at_until_first_use: Some(provisional),
            ..Default::default()
        },
    )
    .await;
    let before = Utc::now();
    let r = legacy(&http, a, &sid, &days.key, "D").await;
    let after = Utc::now();
    assert!(passed(&r), "{r}");
    let at: DateTime<Utc> = r["Key_Information"]["expiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let month = chrono::Duration::days(30);
    assert!(
        at >= before + month - chrono::Duration::milliseconds(1)
            && at <= after + month + chrono::Duration::seconds(1),
        "expires 30 days from the first use: {at}"
    );

    // Banned (invalidated).
    let banned = key(&mut c, &t, Default::default()).await;
    assert!(passed(&legacy(&http, a, &sid, &banned.key, "B").await));
    ban(&mut c, &t, banned.id).await;
    eventually(Duration::from_secs(5), "Key banned", || {
        let (http, sid, key) = (&http, &sid, banned.key.clone());
        async move { (notes(&legacy(http, a, sid, &key, "B").await) == "Key banned").then_some(()) }
    })
    .await;

    // A one-time key: the second use is refused.
    let once = key(
        &mut c,
        &t,
        licenses::GenerateSpec {
            one_time_use: Some(true),
            ..Default::default()
        },
    )
    .await;
    assert!(passed(&legacy(&http, a, &sid, &once.key, "O").await));
    assert_eq!(
        notes(&legacy(&http, a, &sid, &once.key, "O").await),
        "Key already used"
    );

    // No HWID on a HWID-locked service.
    let fresh = key(&mut c, &t, Default::default()).await;
    assert_eq!(
        notes(&legacy(&http, a, &sid, &fresh.key, "").await),
        "HWID required"
    );

    // A blacklisted HWID, then the service paused.
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    blacklist::add(
        &mut w,
        t.app.id,
        &blacklist::NewEntry {
            kind: BlacklistKind::Hwid,
            value: "EVIL".into(),
            note: None,
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    eventually(Duration::from_secs(5), "HWID blacklisted", || {
        let (http, sid, key) = (&http, &sid, fresh.key.clone());
        async move {
            (notes(&legacy(http, a, sid, &key, "EVIL").await) == "HWID blacklisted").then_some(())
        }
    })
    .await;
    update(
        &mut c,
        &t,
        apps::AppPatch {
            paused: Some(true),
            ..Default::default()
        },
    )
    .await;
    eventually(Duration::from_secs(5), "Service paused", || {
        let (http, sid, key) = (&http, &sid, fresh.key.clone());
        async move { (notes(&legacy(http, a, sid, &key, "P").await) == "Service paused").then_some(()) }
    })
    .await;
    v.shutdown().await;
}

#[tokio::test]
async fn keyless_mode_makes_entries_and_admin_entries_work_without_it() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("keyless");
    let t = service(
        &mut c,
        apps::AppPatch {
            service_id: Some(Some(sid.clone())),
            keyless_ttl_secs: Some(3600),
            ..Default::default()
        },
    )
    .await;
    let v = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let a = v.addr();

    // Keyless mode off: refused, no entry made.
    let r = legacy(&http, a, &sid, "keyless", "K1").await;
    assert!(!passed(&r));
    assert_eq!(notes(&r), "Keyless mode disabled");
    assert_eq!(stored_keyless(&c, t.app.id, "K1").await, None);

    // An admin's entry lets its HWID in with mode off, premium from the entry.
    keyless_entry(&mut c, &t, "ADMIN", true).await;
    let r = legacy(&http, a, &sid, "keyless", "ADMIN").await;
    assert!(passed(&r), "{r}");
    assert_eq!(r["Key_Information"]["NoKey_Requirement"], true);
    assert_eq!(r["Key_Information"]["Premium_Mode"], true);
    assert!(is_panda_time(
        r["Key_Information"]["expiresAt"].as_str().unwrap()
    ));
    assert_eq!(
        notes(&legacy(&http, a, &sid, "keyless", "K1").await),
        "Keyless mode disabled"
    );

    // Mode on: anyone in, and the HWID's entry is made (once: a fresh entry is not rewritten).
    update(
        &mut c,
        &t,
        apps::AppPatch {
            keyless_mode: Some(true),
            ..Default::default()
        },
    )
    .await;
    let (r, _) = eventually(Duration::from_secs(5), "keyless mode on", || {
        let (http, sid) = (&http, &sid);
        async move { Some(legacy(http, a, sid, "keyless", "K1").await).filter(passed) }
    })
    .await;
    assert_eq!(r["Key_Information"]["NoKey_Requirement"], true);
    assert_eq!(r["Key_Information"]["Premium_Mode"], false);
    let made = stored_keyless(&c, t.app.id, "K1")
        .await
        .expect("entry made");
    assert!(made > Utc::now() + chrono::Duration::minutes(59));
    assert_eq!(r["Key_Information"]["expiresAt"], panda_time(made));
    assert!(passed(&legacy(&http, a, &sid, "keyless", "K1").await));
    assert_eq!(
        stored_keyless(&c, t.app.id, "K1").await,
        Some(made),
        "a fresh entry is not refreshed"
    );
    // The other validation routes take `keyless` too.
    let r = post_json(
        &http,
        a,
        "/v2_validation",
        json!({"serviceid": sid, "hwid": "K2", "key": "keyless"}),
    )
    .await;
    assert_eq!(r.body["Status"], "Authenticate");
    assert!(stored_keyless(&c, t.app.id, "K2").await.is_some());
    v.shutdown().await;
}

#[tokio::test]
async fn service_config_get_key_links_and_the_rate_limit() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("config");
    let t = service(
        &mut c,
        apps::AppPatch {
            service_id: Some(Some(sid.clone())),
            ..Default::default()
        },
    )
    .await;
    let v = validator(&db.url, small_pool).await;
    let http = no_redirects();
    let a = v.addr();

    let r = get(
        &http,
        a,
        &format!("/serviceapi?service={sid}&command=getconfig"),
    )
    .await;
    assert_eq!((r.status, &r.body), (200, &json!({"AuthMode": "hwidonly"})));
    let r = get(&http, a, "/serviceapi?service=nope&command=getconfig").await;
    assert_eq!(
        (r.status, &r.body),
        (404, &json!({"message": "Service not found"}))
    );
    let r = get(
        &http,
        a,
        &format!("/serviceapi?service={sid}&command=Hashed"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(keys(&r.body), ["message"]);

    // No get-key link yet: 404; once set, a 302 there from both forms.
    let r = get(&http, a, &format!("/getkey?service={sid}&hwid=H")).await;
    assert_eq!(r.status, 404);
    assert_eq!(keys(&r.body), ["message"]);
    update(
        &mut c,
        &t,
        apps::AppPatch {
            auth_mode: Some("playerid".into()),
            get_key_url: Some(Some("https://keys.example.com/get?x=1".into())),
            ..Default::default()
        },
    )
    .await;
    eventually(Duration::from_secs(5), "new config", || {
        let (http, sid) = (&http, &sid);
        async move {
            let r = get(
                http,
                a,
                &format!("/serviceapi?service={sid}&command=getconfig"),
            )
            .await;
            (r.body == json!({"AuthMode": "playerid"})).then_some(())
        }
    })
    .await;
    for path in [
        format!("/getkey?service={sid}&hwid=H"),
        format!("/getkey/{sid}?hwid=H"),
    ] {
        let resp = http.get(format!("http://{a}{path}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302, "{path}");
        assert_eq!(
            resp.headers()["location"].to_str().unwrap(),
            "https://keys.example.com/get?x=1"
        );
    }
    let r = get(&http, a, "/getkey/unknown-svc?hwid=H").await;
    assert_eq!(
        (r.status, &r.body),
        (404, &json!({"message": "Service not found"}))
    );

    // A tiny per-IP limit: 429 with Retry-After, in Panda's error shape.
    let limited = validator(&db.url, |cfg| {
        small_pool(cfg);
        cfg.rate_limit_per_sec = 1;
        cfg.rate_limit_burst = 2;
    })
    .await;
    let path = format!("/v2_validation?service={sid}&key=X&hwid=H");
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..4 {
        let r = get(&http, limited.addr(), &path).await;
        statuses.push(r.status);
        if r.status == 429 {
            refused = Some(r);
        }
    }
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    let r = refused.expect("a 429 after the burst");
    assert!(r.retry_after.as_deref().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(keys(&r.body), ["message"]);
    limited.shutdown().await;
    v.shutdown().await;
}

#[tokio::test]
async fn execution_counts_pushed_to_two_validators_are_all_written_behind() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = service(&mut c, Default::default()).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    let (service_key, plaintext) = api_keys::create_service_key(&mut w, t.app.id, "loader")
        .await
        .unwrap();
    w.commit().await.unwrap();
    let v1 = validator(&db.url, small_pool).await;
    let v2 = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();

    let r = post_raw(
        &http,
        v1.addr(),
        "/api/push-execution-count?apiKey=pkWRONG",
        "",
        &[],
    )
    .await;
    assert_eq!(
        (r.status, &r.body),
        (401, &json!({"message": "Invalid API key"}))
    );
    let r = post_raw(&http, v1.addr(), "/api/push-execution-count", "", &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(keys(&r.body), ["message"]);

    // 1000 pushes, split over both validators and the three ways of sending the key.
    const PUSHES: usize = 1000;
    let started = Instant::now();
    let results = futures_util::future::join_all((0..PUSHES).map(|i| {
        let (http, key) = (&http, plaintext.as_str());
        let addr = if i % 2 == 0 { v1.addr() } else { v2.addr() };
        async move {
            let r = match i % 3 {
                0 => {
                    post_raw(
                        http,
                        addr,
                        &format!("/api/push-execution-count?apiKey={key}"),
                        "",
                        &[],
                    )
                    .await
                }
                1 => {
                    post_raw(
                        http,
                        addr,
                        "/api/push-execution-count",
                        json!({"apiKey": key}).to_string(),
                        &[],
                    )
                    .await
                }
                _ => {
                    post_raw(
                        http,
                        addr,
                        "/api/push-execution-count",
                        "",
                        &[("apiKey", key)],
                    )
                    .await
                }
            };
            (r.status, r.body)
        }
    }))
    .await;
    let expected = json!({"success": true, "message": "Execution count incremented successfully"});
    for (status, body) in &results {
        assert_eq!((*status, body), (200, &expected));
    }
    println!("{PUSHES} pushes answered in {:?}", started.elapsed());
    let (_, took) = eventually(Duration::from_secs(10), "1000 executions stored", || {
        let (c, t) = (&c, &t);
        async move {
            let n = usage::execution_count(c, t.actor.account_id, t.app.id)
                .await
                .unwrap();
            assert!(n <= PUSHES as i64, "never more than were pushed: {n}");
            (n == PUSHES as i64).then_some(())
        }
    })
    .await;
    println!("all {PUSHES} executions written {took:?} after the last answer");
    for addr in [v1.addr(), v2.addr()] {
        eventually(Duration::from_secs(5), "no execution backlog", || {
            let http = &http;
            async move {
                let text = http
                    .get(format!("http://{addr}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                text.lines()
                    .any(|l| l == "keyward_validator_execution_backlog 0")
                    .then_some(())
            }
        })
        .await;
    }

    // A revoked key stops counting on every validator (the App invalidation drops it).
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    api_keys::revoke_service_key(&mut w, t.app.id, service_key.id)
        .await
        .unwrap();
    w.commit().await.unwrap();
    for addr in [v1.addr(), v2.addr()] {
        eventually(Duration::from_secs(5), "revoked key refused", || {
            let (http, key) = (&http, plaintext.clone());
            async move {
                let r = post_raw(
                    http,
                    addr,
                    &format!("/api/push-execution-count?apiKey={key}"),
                    "",
                    &[],
                )
                .await;
                (r.status == 401).then_some(())
            }
        })
        .await;
    }
    v1.shutdown().await;
    v2.shutdown().await;
}

#[tokio::test]
async fn self_service_hwid_reset_is_opt_in_and_obeys_the_cooldown() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("reset");
    let t = service(
        &mut c,
        apps::AppPatch {
            service_id: Some(Some(sid.clone())),
            ..Default::default()
        },
    )
    .await;
    let v = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    let k = key(&mut c, &t, Default::default()).await;
    assert!(passed(&legacy(&http, a, &sid, &k.key, "OLD").await));
    let native = |key: &str| json!({"app": t.app.id, "key": key}).to_string();
    let legacy_reset = format!(
        "/serviceapi/edit/hwid/?service={sid}&key={}&newhwid=NEW",
        k.key
    );

    // Off by default.
    let r = post_raw(&http, a, "/v1/reset-hwid", native(&k.key), &[]).await;
    assert_eq!((r.status, r.code()), (403, "SELF_RESET_DISABLED"));
    let r = post_raw(&http, a, &legacy_reset, "", &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(keys(&r.body), ["message"]);
    assert_eq!(bound_hwids(&c, k.id).await, ["OLD"]);

    update(
        &mut c,
        &t,
        apps::AppPatch {
            self_hwid_reset: Some(true),
            hwid_reset_cooldown_secs: Some(3600),
            ..Default::default()
        },
    )
    .await;
    let (r, _) = eventually(Duration::from_secs(5), "self reset on", || {
        let (http, body) = (&http, native(&k.key));
        async move {
            let r = post_raw(http, a, "/v1/reset-hwid", body, &[]).await;
            (r.status != 403).then_some(r)
        }
    })
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["success"], true);
    assert!(bound_hwids(&c, k.id).await.is_empty());
    // The next validation binds the machine it comes from.
    assert!(passed(&legacy(&http, a, &sid, &k.key, "NEW").await));
    assert_eq!(bound_hwids(&c, k.id).await, ["NEW"]);

    // Within the cooldown: 429 with Retry-After and when, on both routes.
    let r = post_raw(&http, a, "/v1/reset-hwid", native(&k.key), &[]).await;
    assert_eq!((r.status, r.code()), (429, "RESET_TOO_SOON"));
    let wait: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&wait), "{wait}");
    assert!(r.body["message"].as_str().unwrap().contains("UTC"));
    let r = post_raw(&http, a, &legacy_reset, "", &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(keys(&r.body), ["message"]);
    assert!(r.retry_after.is_some());
    assert_eq!(bound_hwids(&c, k.id).await, ["NEW"], "nothing reset");

    let r = post_raw(&http, a, "/v1/reset-hwid", native("NOPE"), &[]).await;
    assert_eq!((r.status, r.code()), (404, "KEY_NOT_FOUND"));
    let r = post_raw(&http, a, "/v1/reset-hwid", "{}", &[]).await;
    assert_eq!(r.status, 400);
    v.shutdown().await;
}

#[tokio::test]
async fn two_validators_race_on_a_one_time_key_and_see_a_ban_within_milliseconds() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("race");
    let t = service(
        &mut c,
        apps::AppPatch {
            service_id: Some(Some(sid.clone())),
            ..Default::default()
        },
    )
    .await;
    let v1 = validator(&db.url, small_pool).await;
    let v2 = validator(&db.url, small_pool).await;
    let http = reqwest::Client::new();
    let addrs = [v1.addr(), v2.addr()];

    // 40 requests at once, split across both: exactly one spends the key.
    let once = key(
        &mut c,
        &t,
        licenses::GenerateSpec {
            one_time_use: Some(true),
            ..Default::default()
        },
    )
    .await;
    let answers = futures_util::future::join_all((0..40).map(|i| {
        let (http, sid, key) = (&http, &sid, &once.key);
        async move { legacy(http, addrs[i % 2], sid, key, "RACER").await }
    }))
    .await;
    let winners = answers.iter().filter(|r| passed(r)).count();
    assert_eq!(winners, 1, "exactly one use");
    for r in answers.iter().filter(|r| !passed(r)) {
        assert_eq!(notes(r), "Key already used");
    }

    // A ban committed through the core reaches both validators' caches.
    let k = key(&mut c, &t, Default::default()).await;
    for addr in addrs {
        assert!(passed(&legacy(&http, addr, &sid, &k.key, "B").await));
    }
    let start = Instant::now();
    ban(&mut c, &t, k.id).await;
    let committed = start.elapsed();
    // Both polled side by side, each timed from the commit's end.
    let seen = futures_util::future::join_all(addrs.map(|addr| {
        let (http, sid, key) = (&http, &sid, &k.key);
        async move {
            let (_, took) = eventually(Duration::from_secs(1), "ban seen", || async move {
                (notes(&legacy(http, addr, sid, key, "B").await) == "Key banned").then_some(())
            })
            .await;
            took
        }
    }))
    .await;
    println!(
        "ban committed in {committed:?}; then seen by validator 1 after {:?} and validator 2 after {:?}",
        seen[0], seen[1]
    );
    v1.shutdown().await;
    v2.shutdown().await;
}

#[tokio::test]
async fn hostile_input_on_every_panda_route_never_answers_5xx() {
    use common::hostile_values::{encode, hostile_json, hostile_strings};
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("hostile");
    let t = service(
        &mut c,
        apps::AppPatch {
            service_id: Some(Some(sid.clone())),
            keyless_mode: Some(true),
            self_hwid_reset: Some(true),
            ..Default::default()
        },
    )
    .await;
    let k = key(&mut c, &t, Default::default()).await;
    let v = validator(&db.url, small_pool).await;
    let http = no_redirects();
    let a = v.addr();
    let sane = |status: u16, what: &str| {
        assert!(status < 500, "{what}: {status}");
    };

    // Query routes: each parameter in turn hostile, the others sane.
    let routes: [(&str, &str, &[&str]); 6] = [
        ("GET", "/v2_validation", &["service", "key", "hwid"]),
        ("GET", "/failsafeValidation", &["service", "key", "hwid"]),
        ("GET", "/serviceapi", &["service", "command"]),
        (
            "POST",
            "/serviceapi/edit/hwid/",
            &["service", "key", "newhwid"],
        ),
        ("GET", "/getkey", &["service", "hwid"]),
        ("POST", "/api/push-execution-count", &["apiKey"]),
    ];
    let base = |name: &str| match name {
        "service" => sid.clone(),
        "key" => k.key.clone(),
        "command" => "getconfig".into(),
        _ => "HW".into(),
    };
    for (label, value, _) in hostile_strings() {
        for (method, path, params) in routes {
            for hostile in params.iter() {
                let query: Vec<String> = params
                    .iter()
                    .map(|p| {
                        let v = if p == hostile {
                            encode(&value)
                        } else {
                            base(p)
                        };
                        format!("{p}={v}")
                    })
                    .collect();
                let url = format!("http://{a}{path}?{}", query.join("&"));
                // The http crate builds no URI of 64 KiB or more (a client could not send it).
                if url.len() >= 65_000 {
                    continue;
                }
                let req = if method == "GET" {
                    http.get(&url)
                } else {
                    http.post(&url)
                };
                let status = req.send().await.expect("answered").status().as_u16();
                sane(status, &format!("{method} {path} {hostile}={label}"));
                if path == "/v2_validation" && status != 414 {
                    assert_eq!(status, 200, "{hostile}={label}");
                }
            }
        }
        if value.len() * 3 >= 65_000 {
            continue;
        }
        let status = http
            .get(format!("http://{a}/getkey/{}", encode(&value)))
            .send()
            .await
            .expect("answered")
            .status()
            .as_u16();
        sane(status, &format!("/getkey/{label}"));
    }

    // JSON routes: each field a hostile string or a JSON value of another type.
    let mut values: Vec<(String, Value)> = hostile_strings()
        .into_iter()
        .map(|(l, s, _)| (l.to_string(), Value::String(s)))
        .collect();
    values.extend(hostile_json().into_iter().map(|(l, v)| (l.to_string(), v)));
    let bodies: [(&str, Value); 3] = [
        (
            "/v2_validation",
            json!({"serviceid": sid, "hwid": "HW", "key": k.key}),
        ),
        (
            "/api/v1/keys/validate",
            json!({"ServiceID": sid, "HWID": "HW", "Key": k.key}),
        ),
        ("/v1/reset-hwid", json!({"app": t.app.id, "key": k.key})),
    ];
    for (label, value) in &values {
        for (path, body) in &bodies {
            for field in body.as_object().unwrap().keys() {
                let mut b = body.clone();
                b[field.as_str()] = value.clone();
                let r = post_raw(&http, a, path, b.to_string(), &[]).await;
                sane(r.status, &format!("{path} {field}={label}"));
            }
        }
    }
    v.shutdown().await;
}

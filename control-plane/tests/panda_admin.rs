//! Panda Auth's admin API (`specs/roblox-key-systems.md` §1.2–1.4) over real HTTP: every
//! operation's effect and exact key sets, its documented errors, the days keys, the split of
//! redeemed and unredeemed keys, HWID resets under a cooldown, keyless entries, tenant
//! isolation, and the native routes of service keys and keyless entries.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::*;
use keyward_shared::store::{licenses, usage};
use keyward_shared::verdict::Activation;
use keyward_shared::write::{Actor, WriteTx};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// A tenant with one app as a Panda service: its admin JWT, app, service id and service key.
struct Service {
    jwt: String,
    app: String,
    service_id: String,
    api_key: String,
}

async fn service(cp: &Cp, admin: &str) -> Service {
    let jwt = cp.admin(admin).await;
    let app = cp.app(&jwt, &format!("{admin}-game")).await;
    service_in(cp, &jwt, &app).await
}

/// Makes `app` a Panda service with a fresh service id and key.
async fn service_in(cp: &Cp, jwt: &str, app: &str) -> Service {
    let service_id = format!("svc-{}", Uuid::new_v4().simple());
    cp.ok(
        Method::PATCH,
        &format!("/v1/apps/{app}"),
        jwt,
        Some(json!({"service_id": service_id})),
    )
    .await;
    let key = cp
        .ok(
            Method::POST,
            &format!("/v1/apps/{app}/service-keys"),
            jwt,
            Some(json!({"name": "discord bot"})),
        )
        .await;
    Service {
        jwt: jwt.to_string(),
        app: app.to_string(),
        service_id,
        api_key: key["key"].as_str().expect("plaintext").to_string(),
    }
}

/// A Panda call: `query` is appended as is, `body` sent as JSON.
async fn panda(cp: &Cp, method: Method, path_and_query: &str, body: Option<Value>) -> Resp {
    cp.call(method, path_and_query, None, body).await
}

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

/// A Panda error: the status, and `{"message"}` with nothing else.
fn assert_error(r: &Resp, status: u16, what: &str) -> String {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(keys_of(&r.body), set(&["message"]), "{what}: {}", r.body);
    let m = r.body["message"].as_str().unwrap().to_string();
    assert!(!m.is_empty(), "{what}");
    m
}

fn is_panda_time(s: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3fZ").is_ok()
        && s.len() == 24
        && s.ends_with('Z')
}

fn time(s: &Value) -> DateTime<Utc> {
    let s = s.as_str().expect("a time");
    assert!(is_panda_time(s), "{s}");
    DateTime::parse_from_rfc3339(s).expect("rfc3339").to_utc()
}

/// Generates keys over Panda and returns the `generatedKeys` items.
async fn generate(cp: &Cp, s: &Service, body: Value) -> Vec<Value> {
    let mut body = body;
    body["apiKey"] = json!(s.api_key);
    let r = panda(cp, Method::POST, "/api/generate-key/post", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["generatedKeys"].as_array().expect("items").clone()
}

async fn one_key(cp: &Cp, s: &Service, note: &str) -> String {
    let items = generate(
        cp,
        s,
        json!({"expire": "2031-01-01", "note": note, "count": 1, "isPremium": false}),
    )
    .await;
    items[0]["value"].as_str().unwrap().to_string()
}

/// The native view of the key `value` of the service's app.
async fn native(cp: &Cp, s: &Service, value: &str) -> Value {
    let page = cp
        .ok(
            Method::GET,
            &format!("/v1/licenses?app_id={}&limit=100", s.app),
            &s.jwt,
            None,
        )
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == value)
        .unwrap_or_else(|| panic!("no license {value}"))
        .clone()
}

/// The key's first validation (what a validator does), with `hwid` bound.
async fn redeem(cp: &Cp, s: &Service, value: &str, hwid: &str) {
    let lic = native(cp, s, value).await;
    let id: Uuid = lic["id"].as_str().unwrap().parse().unwrap();
    let account: Uuid = lic["account_id"].as_str().unwrap().parse().unwrap();
    let mut c = cp.db.client().await;
    let mut w = WriteTx::begin(
        &mut c,
        Actor {
            origin: Default::default(),
            account_id: account,
            label: "validator".into(),
        },
    )
    .await
    .unwrap();
    let act = Activation {
        bind_hwid: Some(hwid.to_string()),
        record_ip: None::<IpAddr>,
        first_use: true,
    };
    licenses::activate(&mut w, id, &act).await.unwrap().unwrap();
    w.commit().await.unwrap();
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn generate_answers_201_with_exact_items() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    // GET with everything as query text, as the seed's example and the Java client do.
    let r = panda(
        &cp,
        Method::GET,
        &format!(
            "/api/generate-key/get?apiKey={}&expire=2031-12-31&note=Test%20Key&count=3&isPremium=true",
            s.api_key
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(keys_of(&r.body), set(&["message", "generatedKeys"]));
    assert_eq!(r.body["message"], "Keys generated successfully ✅");
    let items = r.body["generatedKeys"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for it in items {
        assert_eq!(
            keys_of(it),
            set(&["expiresAt", "note", "value", "isPremium"])
        );
        assert_eq!(it["expiresAt"], "2031-12-31T00:00:00.000Z");
        assert_eq!(it["note"], "Test Key");
        assert_eq!(it["isPremium"], true);
        let v = it["value"].as_str().unwrap();
        assert!(
            v.len() >= 16 && v.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{v}"
        );
    }
    let lic = native(&cp, &s, items[0]["value"].as_str().unwrap()).await;
    assert_eq!(lic["hwid_limit"], 1, "Panda binds one HWID: {lic}");
    assert_eq!(lic["traits"]["premium"], true);
    // POST with strings for isPremium and count (the Java client's `"isPremium":"true"`).
    let items = generate(
        &cp,
        &s,
        json!({"expire": "2031-06-30", "count": "2", "isPremium": "false"}),
    )
    .await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["isPremium"], false);
    assert_eq!(items[0]["note"], "");
    assert_eq!(
        keys_of(&items[0]),
        set(&["expiresAt", "note", "value", "isPremium"])
    );
}

#[tokio::test]
async fn days_keys_show_their_pair_only_when_asked_and_start_at_first_use() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    let items = generate(
        &cp,
        &s,
        json!({"expire": "2031-01-01", "count": 1, "isPremium": true,
               "expiresByDaysKey": true, "daysKey": 30}),
    )
    .await;
    let it = &items[0];
    assert_eq!(
        keys_of(it),
        set(&[
            "expiresAt",
            "note",
            "value",
            "isPremium",
            "expiresByDaysKey",
            "daysKey"
        ])
    );
    assert_eq!(it["expiresByDaysKey"], true);
    assert_eq!(it["daysKey"], 30);
    // Until its first use the `expire` date holds.
    assert_eq!(it["expiresAt"], "2031-01-01T00:00:00.000Z");
    let value = it["value"].as_str().unwrap();
    let lic = native(&cp, &s, value).await;
    assert_eq!(lic["duration_secs"], 30 * 86_400);
    assert_eq!(lic["traits"]["restart_expiry_on_first_use"], true);
    // A daysKey without expiresByDaysKey=true is a plain key: four keys, the fixed date.
    let plain = generate(
        &cp,
        &s,
        json!({"expire": "2031-01-01", "count": 1, "isPremium": true, "daysKey": 30,
               "expiresByDaysKey": "false"}),
    )
    .await;
    assert_eq!(
        keys_of(&plain[0]),
        set(&["expiresAt", "note", "value", "isPremium"])
    );
    assert!(native(&cp, &s, plain[0]["value"].as_str().unwrap()).await["duration_secs"].is_null());
    // The first validation restarts the expiry at now + 30 days.
    let before = Utc::now();
    redeem(&cp, &s, value, "HW-days").await;
    let r = panda(
        &cp,
        Method::GET,
        &format!("/api/key/fetch?apiKey={}&fetch={value}", s.api_key),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = time(&r.body["key"]["expiresAt"]);
    assert!(
        at >= before + Duration::days(30) - Duration::seconds(1)
            && at <= Utc::now() + Duration::days(30),
        "{at}"
    );
}

#[tokio::test]
async fn generate_refuses_bad_parameters_with_a_message() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    let base = json!({"apiKey": s.api_key, "expire": "2031-01-01", "count": 1, "isPremium": true});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v;
        }
        b
    };
    let cases = [
        (with("count", json!(0)), "count must be between 1 and 100"),
        (with("count", json!(101)), "count must be between 1 and 100"),
        (with("count", json!("0")), "count must be between 1 and 100"),
        (
            with("count", json!("many")),
            "count must be between 1 and 100",
        ),
        (with("count", json!(1.5)), "count must be between 1 and 100"),
        (
            with("count", Value::Null),
            "count must be between 1 and 100",
        ),
        (with("expire", Value::Null), "expire is required"),
        (with("expire", json!("2031-13-01")), "expire must be a date"),
        (with("expire", json!("31-12-2031")), "expire must be a date"),
        (
            with("expire", json!("2020-01-01")),
            "expire must be a date in the future",
        ),
        (with("isPremium", Value::Null), "isPremium is required"),
        (
            with("isPremium", json!("yes")),
            "isPremium must be true or false",
        ),
        (with("note", json!({"a": 1})), "note must be a string"),
        (
            with("expiresByDaysKey", json!(true)),
            "daysKey is required when expiresByDaysKey is true",
        ),
        (
            json!({"apiKey": s.api_key, "expire": "2031-01-01", "count": 1, "isPremium": true,
                   "expiresByDaysKey": true, "daysKey": 0}),
            "daysKey must be between 1 and 999999",
        ),
        (
            json!({"apiKey": s.api_key, "expire": "2031-01-01", "count": 1, "isPremium": true,
                   "expiresByDaysKey": true, "daysKey": 1_000_000}),
            "daysKey must be between 1 and 999999",
        ),
    ];
    for (body, want) in cases {
        let r = panda(
            &cp,
            Method::POST,
            "/api/generate-key/post",
            Some(body.clone()),
        )
        .await;
        let m = assert_error(&r, 400, &body.to_string());
        assert!(m.starts_with(want), "{body}: {m}");
    }
    // The whole documented range is served: 999999 days is the sellers' "lifetime".
    let r = panda(
        &cp,
        Method::POST,
        "/api/generate-key/post",
        Some(
            json!({"apiKey": s.api_key, "expire": "2031-01-01", "count": 1,
                    "isPremium": true, "expiresByDaysKey": true, "daysKey": 999_999}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "daysKey 999999: {}", r.body);
    assert_eq!(r.body["generatedKeys"][0]["daysKey"], 999_999);
    // A body that is not a JSON object.
    for raw in ["[1]", "{", "\"x\""] {
        let r = cp
            .raw(
                Method::POST,
                &format!("/api/generate-key/post?apiKey={}", s.api_key),
                None,
                Some("application/json"),
                raw.as_bytes().to_vec(),
            )
            .await;
        assert!(assert_error(&r, 400, raw).starts_with("the request body"));
    }
    // Nothing was generated by any refusal: only the 999999-day key exists.
    let page = cp
        .ok(
            Method::GET,
            &format!("/v1/licenses?app_id={}", s.app),
            &s.jwt,
            None,
        )
        .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
}

#[tokio::test]
async fn the_api_key_comes_from_the_query_the_body_or_a_header() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    let url = |q: &str| format!("{}/api/execution-count{q}", cp.base);
    for (what, req) in [
        ("query", cp.http.get(url(&format!("?apiKey={}", s.api_key)))),
        (
            "body",
            cp.http.get(url("")).json(&json!({"apiKey": s.api_key})),
        ),
        (
            "apiKey header",
            cp.http.get(url("")).header("apiKey", &s.api_key),
        ),
        (
            "X-API-Key header",
            cp.http.get(url("")).header("X-API-Key", &s.api_key),
        ),
    ] {
        let r = into_resp(req.send().await.unwrap()).await;
        assert_eq!(r.status, 200, "{what}: {}", r.body);
        assert_eq!(r.body, json!({"executionCount": 0}), "{what}");
    }
    // Missing, unknown, another kind of key: 401, exactly "Invalid API key" for a wrong one.
    let r = panda(&cp, Method::GET, "/api/execution-count", None).await;
    assert!(assert_error(&r, 401, "none").starts_with("Invalid API key"));
    let alice_api_key = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &s.jwt,
            Some(json!({"name": "k", "scopes": ["*"]})),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    for wrong in [
        "pkNOPE",
        alice_api_key.as_str(),
        s.jwt.as_str(),
        &s.service_id,
    ] {
        let r = panda(
            &cp,
            Method::GET,
            &format!("/api/execution-count?apiKey={}", enc(wrong)),
            None,
        )
        .await;
        assert_eq!(assert_error(&r, 401, wrong), "Invalid API key");
    }
    let r = panda(
        &cp,
        Method::POST,
        "/api/key/delete",
        Some(json!({"apiKey": "pkNOPE", "keyValue": "X"})),
    )
    .await;
    assert_eq!(assert_error(&r, 401, "body"), "Invalid API key");
}

#[tokio::test]
async fn service_keys_are_shown_once_and_revocable() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    let base = format!("/v1/apps/{}/service-keys", s.app);
    let made = cp
        .call(
            Method::POST,
            &base,
            Some(&s.jwt),
            Some(json!({"name": "second"})),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let key = made.body["key"].as_str().unwrap().to_string();
    assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
    assert!(key.starts_with(made.body["prefix"].as_str().unwrap()));
    let list = cp.ok(Method::GET, &base, &s.jwt, None).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items.iter().all(|k| k.get("key").is_none()),
        "the plaintext is shown once: {list}"
    );
    assert!(!list.to_string().contains(&key));
    let count = format!("/api/execution-count?apiKey={key}");
    assert_eq!(panda(&cp, Method::GET, &count, None).await.status, 200);
    let id = made.body["id"].as_str().unwrap();
    let revoked = cp
        .ok(Method::DELETE, &format!("{base}/{id}"), &s.jwt, None)
        .await;
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let r = panda(&cp, Method::GET, &count, None).await;
    assert_eq!(assert_error(&r, 401, "revoked"), "Invalid API key");
    // The other key still works; bad names and unknown ids are refused.
    let other = format!("/api/execution-count?apiKey={}", s.api_key);
    assert_eq!(panda(&cp, Method::GET, &other, None).await.status, 200);
    let r = cp
        .call(
            Method::POST,
            &base,
            Some(&s.jwt),
            Some(json!({"name": " "})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = cp
        .call(
            Method::DELETE,
            &format!("{base}/{}", Uuid::new_v4()),
            Some(&s.jwt),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // The audit log names the service key's writes.
    one_key(&cp, &s, "audited").await;
    let log = cp
        .ok(
            Method::GET,
            "/v1/audit-log?action=license.generate",
            &s.jwt,
            None,
        )
        .await;
    let prefix: String = s.api_key.chars().take(8).collect();
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == format!("panda:{prefix}")),
        "{log}"
    );
}

#[tokio::test]
async fn fetch_splits_redeemed_from_generated_keys() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    let k = s.api_key.as_str();
    let value = one_key(&cp, &s, "order-17").await;
    let get = |path: &str, fetch: &str| format!("{path}?apiKey={k}&fetch={}", enc(fetch));
    // Unredeemed: found by value and note among generated keys, not among keys.
    for term in [value.as_str(), "order-17"] {
        let r = panda(
            &cp,
            Method::GET,
            &get("/api/generated-key/fetch", term),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(keys_of(&r.body), set(&["generatedKey"]));
        let g = &r.body["generatedKey"];
        assert_eq!(
            keys_of(g),
            set(&["id", "value", "note", "expiresAt", "isPremium"])
        );
        assert_eq!(g["value"], value.as_str());
        assert_eq!(g["note"], "order-17");
        assert_eq!(g["expiresAt"], "2031-01-01T00:00:00.000Z");
        assert_eq!(g["isPremium"], false);
        assert!(g["id"].as_str().unwrap().parse::<i64>().is_ok(), "{g}");
        let r = panda(&cp, Method::GET, &get("/api/key/fetch", term), None).await;
        assert_eq!(assert_error(&r, 404, term), "Key not found");
    }
    // Redeemed: the other way round, and found by its HWID too.
    redeem(&cp, &s, &value, "HWID-1").await;
    for term in [value.as_str(), "order-17", "HWID-1"] {
        let r = panda(&cp, Method::GET, &get("/api/key/fetch", term), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(keys_of(&r.body), set(&["key"]));
        let key = &r.body["key"];
        assert_eq!(
            keys_of(key),
            set(&["id", "value", "note", "hwid", "expiresAt", "isPremium"])
        );
        assert_eq!(key["value"], value.as_str());
        assert_eq!(key["hwid"], "HWID-1");
        assert!(is_panda_time(key["expiresAt"].as_str().unwrap()));
        let r = panda(
            &cp,
            Method::GET,
            &get("/api/generated-key/fetch", term),
            None,
        )
        .await;
        assert_eq!(assert_error(&r, 404, term), "Key not found");
    }
    // Several matches: the most recent.
    let newer = one_key(&cp, &s, "order-17").await;
    redeem(&cp, &s, &newer, "HWID-2").await;
    let r = panda(&cp, Method::GET, &get("/api/key/fetch", "order-17"), None).await;
    assert_eq!(r.body["key"]["value"], newer.as_str(), "{}", r.body);
    // `fetch` is required.
    let r = panda(
        &cp,
        Method::GET,
        &format!("/api/key/fetch?apiKey={k}"),
        None,
    )
    .await;
    assert!(assert_error(&r, 400, "no fetch").starts_with("fetch is required"));
    // generated-key/delete does not apply to a redeemed key; key/delete does.
    let del = |path: &str, v: &str| (path.to_string(), json!({"apiKey": k, "keyValue": v}));
    let (p, b) = del("/api/generated-key/delete", &value);
    let r = panda(&cp, Method::POST, &p, Some(b)).await;
    assert_error(&r, 404, "generated-key/delete of a redeemed key");
    let (p, b) = del("/api/key/delete", &value);
    let r = panda(&cp, Method::POST, &p, Some(b.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"message": "Key deleted successfully ✅"}));
    let r = panda(&cp, Method::GET, &get("/api/key/fetch", &value), None).await;
    assert_error(&r, 404, "deleted");
    let r = panda(&cp, Method::POST, &p, Some(b)).await;
    assert_eq!(assert_error(&r, 404, "deleted twice"), "Key not found");
    // An unredeemed key goes with generated-key/delete.
    let fresh = one_key(&cp, &s, "fresh").await;
    let (p, b) = del("/api/generated-key/delete", &fresh);
    let r = panda(&cp, Method::POST, &p, Some(b)).await;
    assert_eq!(
        r.body,
        json!({"message": "Generated key deleted successfully ✅"})
    );
    let r = panda(
        &cp,
        Method::GET,
        &get("/api/generated-key/fetch", &fresh),
        None,
    )
    .await;
    assert_error(&r, 404, "deleted generated key");
    let r = panda(
        &cp,
        Method::POST,
        "/api/key/delete",
        Some(json!({"apiKey": k})),
    )
    .await;
    assert!(assert_error(&r, 400, "no keyValue").starts_with("keyValue is required"));
}

#[tokio::test]
async fn expand_expiration_adds_days() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    let k = s.api_key.as_str();
    let value = one_key(&cp, &s, "x").await;
    // Query parameters.
    let r = panda(
        &cp,
        Method::POST,
        &format!("/api/key/expand-expiration?apiKey={k}&keyValue={value}&days=30"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"success": true, "message": "Key expiration extended successfully.",
               "newExpirationDate": "2031-01-31T00:00:00.000Z"})
    );
    // JSON body, days as text.
    let r = panda(
        &cp,
        Method::POST,
        "/api/key/expand-expiration",
        Some(json!({"apiKey": k, "keyValue": value, "days": "5"})),
    )
    .await;
    assert_eq!(r.body["newExpirationDate"], "2031-02-05T00:00:00.000Z");
    let fetched = panda(
        &cp,
        Method::GET,
        &format!("/api/generated-key/fetch?apiKey={k}&fetch={value}"),
        None,
    )
    .await;
    assert_eq!(
        fetched.body["generatedKey"]["expiresAt"],
        "2031-02-05T00:00:00.000Z"
    );
    for days in [
        json!(-1),
        json!(0),
        json!(1_000_000),
        json!("x"),
        json!(2.5),
    ] {
        let r = panda(
            &cp,
            Method::POST,
            "/api/key/expand-expiration",
            Some(json!({"apiKey": k, "keyValue": value, "days": days})),
        )
        .await;
        assert_eq!(
            assert_error(&r, 400, &days.to_string()),
            "days must be between 1 and 999999"
        );
    }
    let r = panda(
        &cp,
        Method::POST,
        "/api/key/expand-expiration",
        Some(json!({"apiKey": k, "keyValue": value})),
    )
    .await;
    assert!(assert_error(&r, 400, "no days").starts_with("days is required"));
    let r = panda(
        &cp,
        Method::POST,
        "/api/key/expand-expiration",
        Some(json!({"apiKey": k, "keyValue": "NOSUCHKEY", "days": 1})),
    )
    .await;
    assert_eq!(assert_error(&r, 404, "unknown"), "Key not found");
    // An expired key is extended from now (the core's rule).
    let c = cp.db.client().await;
    c.execute(
        "UPDATE licenses SET expires_at = now() - interval '3 days' WHERE key = $1",
        &[&value],
    )
    .await
    .unwrap();
    let before = Utc::now();
    let r = panda(
        &cp,
        Method::POST,
        "/api/key/expand-expiration",
        Some(json!({"apiKey": k, "keyValue": value, "days": 10})),
    )
    .await;
    let at = time(&r.body["newExpirationDate"]);
    assert!(
        at >= before + Duration::days(10) - Duration::seconds(1)
            && at <= Utc::now() + Duration::days(10),
        "{at}"
    );
}

#[tokio::test]
async fn reset_hwid_obeys_the_cooldown_unless_forced() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    let k = s.api_key.as_str();
    cp.ok(
        Method::PATCH,
        &format!("/v1/apps/{}", s.app),
        &s.jwt,
        Some(json!({"hwid_reset_cooldown_secs": 3600})),
    )
    .await;
    let value = one_key(&cp, &s, "x").await;
    redeem(&cp, &s, &value, "HW-A").await;
    let reset = |force: Option<Value>| {
        let mut b = json!({"apiKey": k, "keyValue": value});
        if let Some(f) = force {
            b["force"] = f;
        }
        b
    };
    let r = panda(&cp, Method::POST, "/api/reset-hwid", Some(reset(None))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"message": "HWID reset successfully ✅"}));
    let fetch = format!("/api/key/fetch?apiKey={k}&fetch={value}");
    let r = panda(&cp, Method::GET, &fetch, None).await;
    assert_eq!(r.body["key"]["hwid"], "", "{}", r.body);
    // Bound again by the next validation, then a second reset within the hour: 429.
    redeem(&cp, &s, &value, "HW-B").await;
    let r = panda(&cp, Method::POST, "/api/reset-hwid", Some(reset(None))).await;
    let m = assert_error(&r, 429, "within the cooldown");
    assert!(m.contains("seconds"), "{m}");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&wait), "{wait}");
    assert_eq!(
        panda(&cp, Method::GET, &fetch, None).await.body["key"]["hwid"],
        "HW-B",
        "a refused reset changes nothing"
    );
    // force=true (as text, as bots send it) passes the cooldown.
    let r = panda(
        &cp,
        Method::POST,
        "/api/reset-hwid",
        Some(reset(Some(json!("true")))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        panda(&cp, Method::GET, &fetch, None).await.body["key"]["hwid"],
        ""
    );
    let r = panda(
        &cp,
        Method::POST,
        "/api/reset-hwid",
        Some(json!({"apiKey": k, "keyValue": "NOSUCHKEY"})),
    )
    .await;
    assert_eq!(assert_error(&r, 404, "unknown"), "Key not found");
}

#[tokio::test]
async fn edits_change_note_premium_hwid_check_and_days() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    let k = s.api_key.as_str();
    let value = one_key(&cp, &s, "before").await;
    let edit = |path: &str, extra: Value| {
        let mut b = json!({"apiKey": k, "keyValue": value});
        for (f, v) in extra.as_object().unwrap() {
            b[f] = v.clone();
        }
        (path.to_string(), b)
    };
    let (p, b) = edit(
        "/api/generated-key/edit",
        json!({"note": "after", "isPremium": "true", "noHwidValidation": true}),
    );
    let r = panda(&cp, Method::POST, &p, Some(b)).await;
    assert_eq!(
        r.body,
        json!({"message": "Generated key updated successfully ✅"})
    );
    let lic = native(&cp, &s, &value).await;
    assert_eq!(lic["note"], "after");
    assert_eq!(lic["traits"]["premium"], true);
    assert_eq!(lic["traits"]["hwid_check"], false);
    // Made a days key: the date holds until the first use, which starts 10 days.
    let (p, b) = edit(
        "/api/key/edit",
        json!({"expiresByDaysKey": true, "daysKey": 10}),
    );
    let r = panda(&cp, Method::POST, &p, Some(b)).await;
    assert_eq!(r.body, json!({"message": "Key updated successfully ✅"}));
    let lic = native(&cp, &s, &value).await;
    assert_eq!(lic["duration_secs"], 10 * 86_400);
    assert_eq!(lic["traits"]["restart_expiry_on_first_use"], true);
    assert_eq!(time_of(&lic["expires_at"]).date_naive(), date(2031, 1, 1));
    // Refusals.
    for (extra, want) in [
        (json!({}), "nothing to edit"),
        (json!({"daysKey": 5}), "daysKey needs expiresByDaysKey=true"),
        (
            json!({"expiresByDaysKey": true}),
            "daysKey is required when expiresByDaysKey is true",
        ),
        (
            json!({"isPremium": "maybe"}),
            "isPremium must be true or false",
        ),
    ] {
        let (p, b) = edit("/api/key/edit", extra.clone());
        let r = panda(&cp, Method::POST, &p, Some(b)).await;
        let m = assert_error(&r, 400, &extra.to_string());
        assert!(m.starts_with(want), "{extra}: {m}");
    }
    // Redeemed: generated-key/edit no longer applies; a days edit counts from the first use.
    redeem(&cp, &s, &value, "HW").await;
    let (p, b) = edit("/api/generated-key/edit", json!({"note": "x"}));
    let r = panda(&cp, Method::POST, &p, Some(b)).await;
    assert_error(&r, 404, "generated-key/edit of a redeemed key");
    let used = time_of(&native(&cp, &s, &value).await["used_at"]);
    let (p, b) = edit(
        "/api/key/edit",
        json!({"expiresByDaysKey": "true", "daysKey": "3", "note": ""}),
    );
    let r = panda(&cp, Method::POST, &p, Some(b)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let lic = native(&cp, &s, &value).await;
    assert_eq!(time_of(&lic["expires_at"]), used + Duration::days(3));
    assert!(lic["note"].is_null(), "an empty note clears it: {lic}");
}

fn time_of(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
        .unwrap()
        .to_utc()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[tokio::test]
async fn keyless_entries_are_added_fetched_and_deleted() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    let k = s.api_key.as_str();
    let before = Utc::now();
    let r = panda(
        &cp,
        Method::POST,
        "/api/keyless/add",
        Some(json!({"apiKey": k, "hwid": "HW-1"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"message": "Keyless entry added successfully ✅"})
    );
    let fetch = |hwid: &str| format!("/api/keyless/fetch?apiKey={k}&fetch={hwid}");
    let r = panda(&cp, Method::GET, &fetch("HW-1"), None).await;
    assert_eq!(keys_of(&r.body), set(&["keyless"]));
    let e = &r.body["keyless"];
    assert_eq!(keys_of(e), set(&["id", "hwid", "expiresAt", "isPremium"]));
    assert_eq!(e["hwid"], "HW-1");
    assert_eq!(e["isPremium"], false);
    // The service's default lifetime (keyless_ttl_secs, 24 h).
    let at = time(&e["expiresAt"]);
    assert!(
        at >= before + Duration::hours(24) - Duration::seconds(1)
            && at <= Utc::now() + Duration::hours(24),
        "{at}"
    );
    // Replaced with a date and premium (as text).
    panda(
        &cp,
        Method::POST,
        "/api/keyless/add",
        Some(json!({"apiKey": k, "hwid": "HW-1", "expire": "2031-05-01", "isPremium": "true"})),
    )
    .await;
    let r = panda(&cp, Method::GET, &fetch("HW-1"), None).await;
    assert_eq!(r.body["keyless"]["expiresAt"], "2031-05-01T00:00:00.000Z");
    assert_eq!(r.body["keyless"]["isPremium"], true);
    // The native view agrees.
    let list = cp
        .ok(
            Method::GET,
            &format!("/v1/apps/{}/keyless", s.app),
            &s.jwt,
            None,
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["premium"], true);
    let del = json!({"apiKey": k, "hwid": "HW-1"});
    let r = panda(&cp, Method::POST, "/api/keyless/delete", Some(del.clone())).await;
    assert_eq!(
        r.body,
        json!({"message": "Keyless entry deleted successfully ✅"})
    );
    let r = panda(&cp, Method::GET, &fetch("HW-1"), None).await;
    assert_eq!(assert_error(&r, 404, "deleted"), "Keyless entry not found");
    let r = panda(&cp, Method::POST, "/api/keyless/delete", Some(del)).await;
    assert_eq!(
        assert_error(&r, 404, "deleted twice"),
        "Keyless entry not found"
    );
    let r = panda(
        &cp,
        Method::POST,
        "/api/keyless/add",
        Some(json!({"apiKey": k, "expire": "2031-05-01"})),
    )
    .await;
    assert!(assert_error(&r, 400, "no hwid").starts_with("hwid is required"));
    let r = panda(
        &cp,
        Method::POST,
        "/api/keyless/add",
        Some(json!({"apiKey": k, "hwid": "HW-2", "expire": "tomorrow"})),
    )
    .await;
    assert_eq!(
        assert_error(&r, 400, "bad expire"),
        "expire must be a date as YYYY-MM-DD"
    );
}

#[tokio::test]
async fn native_keyless_routes_put_list_and_delete() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    let base = format!("/v1/apps/{}/keyless", s.app);
    let e = cp
        .ok(
            Method::PUT,
            &base,
            &s.jwt,
            Some(json!({"hwid": "N-1", "expires_at": "2031-01-01T00:00:00Z", "premium": true})),
        )
        .await;
    assert_eq!(e["hwid"], "N-1");
    assert_eq!(e["premium"], true);
    let r = panda(
        &cp,
        Method::GET,
        &format!("/api/keyless/fetch?apiKey={}&fetch=N-1", s.api_key),
        None,
    )
    .await;
    assert_eq!(r.body["keyless"]["expiresAt"], "2031-01-01T00:00:00.000Z");
    let r = cp
        .call(Method::DELETE, &format!("{base}/N-1"), Some(&s.jwt), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = cp
        .call(Method::DELETE, &format!("{base}/N-1"), Some(&s.jwt), None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = cp
        .call(
            Method::PUT,
            &base,
            Some(&s.jwt),
            Some(json!({"hwid": "", "premium": true})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Another tenant's app is not found, for reads as for writes.
    let bob = cp.admin("bob").await;
    for (m, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"hwid": "B"}))),
    ] {
        let r = cp.call(m.clone(), &base, Some(&bob), body).await;
        assert_eq!(r.status, 404, "{m}: {}", r.body);
    }
    let r = cp
        .call(
            Method::GET,
            &format!("/v1/apps/{}/service-keys", s.app),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn identifier_check_sees_only_the_callers_account() {
    let cp = Cp::start().await;
    let alice = service(&cp, "alice").await;
    let bob = service(&cp, "bob").await;
    // A second service of Alice's account counts too.
    let other_app = cp.app(&alice.jwt, "second").await;
    let second = service_in(&cp, &alice.jwt, &other_app).await;
    let check = |id: &str| {
        format!(
            "/api/identifier-check?apiKey={}&identifier={}",
            alice.api_key,
            enc(id)
        )
    };
    for (id, exists) in [
        (alice.service_id.as_str(), true),
        (second.service_id.as_str(), true),
        (bob.service_id.as_str(), false),
        ("no-such-service", false),
    ] {
        let r = panda(&cp, Method::GET, &check(id), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let message = if exists {
            "Identifier exists in the system."
        } else {
            "Identifier does not exist."
        };
        assert_eq!(
            r.body,
            json!({"exists": exists, "message": message}),
            "{id}"
        );
    }
    let r = panda(
        &cp,
        Method::GET,
        &format!("/api/identifier-check?apiKey={}", alice.api_key),
        None,
    )
    .await;
    assert!(assert_error(&r, 400, "none").starts_with("identifier is required"));
}

#[tokio::test]
async fn execution_count_reads_the_written_behind_counter() {
    let cp = Cp::start().await;
    let s = service(&cp, "alice").await;
    let bob = service(&cp, "bob").await;
    let app: Uuid = s.app.parse().unwrap();
    let c = cp.db.client().await;
    usage::record_executions(&c, &[app], &[41]).await.unwrap();
    usage::record_executions(&c, &[app], &[1]).await.unwrap();
    let r = panda(
        &cp,
        Method::GET,
        &format!("/api/execution-count?apiKey={}", s.api_key),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"executionCount": 42}));
    let r = panda(
        &cp,
        Method::GET,
        &format!("/api/execution-count?apiKey={}", bob.api_key),
        None,
    )
    .await;
    assert_eq!(r.body, json!({"executionCount": 0}));
}

#[tokio::test]
async fn another_service_key_reaches_none_of_the_keys() {
    let cp = Cp::start().await;
    let alice = service(&cp, "alice").await;
    let bob = service(&cp, "bob").await;
    // Alice's other service (same account) is a different service too.
    let other_app = cp.app(&alice.jwt, "second").await;
    let sibling = service_in(&cp, &alice.jwt, &other_app).await;
    let redeemed = one_key(&cp, &alice, "red").await;
    redeem(&cp, &alice, &redeemed, "ALICE-HW").await;
    let unused = one_key(&cp, &alice, "unused").await;
    panda(
        &cp,
        Method::POST,
        "/api/keyless/add",
        Some(json!({"apiKey": alice.api_key, "hwid": "ALICE-KL"})),
    )
    .await;
    for intruder in [&bob, &sibling] {
        let k = intruder.api_key.as_str();
        let attempts = [
            (
                Method::GET,
                format!("/api/key/fetch?apiKey={k}&fetch={redeemed}"),
                None,
            ),
            (
                Method::GET,
                format!("/api/key/fetch?apiKey={k}&fetch=ALICE-HW"),
                None,
            ),
            (
                Method::GET,
                format!("/api/generated-key/fetch?apiKey={k}&fetch={unused}"),
                None,
            ),
            (
                Method::GET,
                format!("/api/keyless/fetch?apiKey={k}&fetch=ALICE-KL"),
                None,
            ),
            (
                Method::POST,
                "/api/key/delete".into(),
                Some(json!({"apiKey": k, "keyValue": redeemed})),
            ),
            (
                Method::POST,
                "/api/generated-key/delete".into(),
                Some(json!({"apiKey": k, "keyValue": unused})),
            ),
            (
                Method::POST,
                "/api/reset-hwid".into(),
                Some(json!({"apiKey": k, "keyValue": redeemed, "force": true})),
            ),
            (
                Method::POST,
                "/api/key/expand-expiration".into(),
                Some(json!({"apiKey": k, "keyValue": redeemed, "days": 5})),
            ),
            (
                Method::POST,
                "/api/key/edit".into(),
                Some(json!({"apiKey": k, "keyValue": redeemed, "note": "pwned"})),
            ),
            (
                Method::POST,
                "/api/generated-key/edit".into(),
                Some(json!({"apiKey": k, "keyValue": unused, "note": "pwned"})),
            ),
            (
                Method::POST,
                "/api/keyless/delete".into(),
                Some(json!({"apiKey": k, "hwid": "ALICE-KL"})),
            ),
        ];
        for (m, path, body) in attempts {
            let r = panda(&cp, m.clone(), &path, body).await;
            assert_error(&r, 404, &format!("{m} {path}"));
            assert!(!r.body.to_string().contains(&redeemed));
        }
    }
    // Everything of Alice's is as it was.
    let k = alice.api_key.as_str();
    let r = panda(
        &cp,
        Method::GET,
        &format!("/api/key/fetch?apiKey={k}&fetch={redeemed}"),
        None,
    )
    .await;
    assert_eq!(r.body["key"]["hwid"], "ALICE-HW");
    assert_eq!(r.body["key"]["note"], "red");
    assert_eq!(r.body["key"]["expiresAt"], "2031-01-01T00:00:00.000Z");
    let r = panda(
        &cp,
        Method::GET,
        &format!("/api/generated-key/fetch?apiKey={k}&fetch={unused}"),
        None,
    )
    .await;
    assert_eq!(r.body["generatedKey"]["note"], "unused");
    let r = panda(
        &cp,
        Method::GET,
        &format!("/api/keyless/fetch?apiKey={k}&fetch=ALICE-KL"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn refusals_before_the_handler_take_pandas_shape() {
    let cp = Cp::start_with(|c| c.max_body_bytes = 4096).await;
    let s = service(&cp, "alice").await;
    // The input guard: a NUL, named.
    let r = panda(
        &cp,
        Method::GET,
        &format!("/api/key/fetch?apiKey={}&fetch=a%00b", s.api_key),
        None,
    )
    .await;
    assert!(assert_error(&r, 400, "NUL").contains("'fetch'"));
    let r = panda(
        &cp,
        Method::POST,
        "/api/key/delete",
        Some(json!({"apiKey": s.api_key, "keyValue": "a\u{0}"})),
    )
    .await;
    assert!(assert_error(&r, 400, "NUL in the body").contains("'keyValue'"));
    // Too large, wrong method, and the validator's route reaching the control-plane.
    let r = panda(
        &cp,
        Method::POST,
        "/api/key/delete",
        Some(json!({"apiKey": s.api_key, "keyValue": "x".repeat(8000)})),
    )
    .await;
    assert_error(&r, 413, "too large");
    let r = panda(&cp, Method::GET, "/api/key/delete", None).await;
    assert_error(&r, 405, "GET of a POST route");
    let r = panda(&cp, Method::DELETE, "/api/key/fetch", None).await;
    assert_error(&r, 405, "DELETE of a GET route");
    let r = panda(&cp, Method::POST, "/api/push-execution-count", None).await;
    assert_error(&r, 404, "push-execution-count is the validator's");
}

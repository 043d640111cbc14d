//! The whole system end to end: everything is done through the control-plane's REST API and
//! observed on two validators, as an admin and a client fleet would.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use keyward_shared::testing::TestDb;
use serde_json::{json, Value};

/// Propagation must beat this; the measured time is printed.
const PROPAGATION_DEADLINE: Duration = Duration::from_secs(1);

struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = reply(req.send().await.expect("control-plane request")).await;
        (r.status, r.body)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(matches!(status, 200 | 201), "POST {path} → {status} {body}");
        body
    }
}

/// Polls both validators until each gives `expected`; returns the slowest one's delay.
async fn on_both(
    http: &reqwest::Client,
    validators: [SocketAddr; 2],
    app: uuid::Uuid,
    key: &str,
    hwid: &str,
    expected: &str,
    what: &str,
) -> Duration {
    let start = Instant::now();
    let mut pending: Vec<SocketAddr> = validators.to_vec();
    let mut last = String::new();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for addr in pending {
            last = code(http, addr, app, key, Some(hwid)).await;
            if last != expected {
                still.push(addr);
            }
        }
        pending = still;
        if !pending.is_empty() {
            assert!(
                start.elapsed() < PROPAGATION_DEADLINE,
                "{what}: validators {pending:?} still say {last}, expected {expected}, after {:?}",
                start.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let took = start.elapsed();
    println!("{what}: both validators say {expected} after {took:?}");
    took
}

#[tokio::test]
async fn control_plane_changes_reach_every_validator_within_a_second() {
    let db = TestDb::new().await;
    keyward_control_plane::create_admin(&db.url, "alice", "correct horse battery")
        .await
        .expect("admin");
    let cp = keyward_control_plane::start(keyward_control_plane::Config::new(db.url.clone()))
        .await
        .expect("control-plane");
    let v1 = validator(&db.url, |_| {}).await;
    let v2 = validator(&db.url, |_| {}).await;
    let validators = [v1.addr(), v2.addr()];
    let http = reqwest::Client::new();
    let base = format!("http://{}", cp.addr());
    let login = reply(
        http.post(format!("{base}/v1/auth/login"))
            .json(&json!({"username": "alice", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let admin = Admin {
        http: http.clone(),
        base,
        token: login.body["token"].as_str().unwrap().to_string(),
    };

    // App and licenses, created over REST.
    let app_json = admin.post("/v1/apps", json!({"name": "E2E Tool"})).await;
    let app: uuid::Uuid = app_json["id"].as_str().unwrap().parse().unwrap();
    let generated = admin
        .post(
            &format!("/v1/apps/{}/licenses", app),
            json!({"count": 3, "mask": "E2E-XXXX-XXXX-XXXX", "hwid_limit": 1, "duration_days": 30}),
        )
        .await;
    let licenses = generated["licenses"].as_array().expect("licenses").clone();
    assert_eq!(licenses.len(), 3);
    let key = |i: usize| licenses[i]["key"].as_str().unwrap().to_string();
    let id = |i: usize| licenses[i]["id"].as_str().unwrap().to_string();
    assert!(key(0).starts_with("E2E-"));

    for addr in validators {
        assert_eq!(code(&http, addr, app, &key(0), Some("pc-1")).await, "VALID");
    }
    let mut timings = Vec::new();

    // Ban → BANNED on both; unban → VALID again.
    admin
        .post(
            &format!("/v1/licenses/{}/ban", id(0)),
            json!({"reason": "chargeback"}),
        )
        .await;
    timings.push(on_both(&http, validators, app, &key(0), "pc-1", "BANNED", "ban").await);
    admin
        .post(&format!("/v1/licenses/{}/unban", id(0)), json!({}))
        .await;
    timings.push(on_both(&http, validators, app, &key(0), "pc-1", "VALID", "unban").await);

    // Delete → NOT_FOUND on both.
    for addr in validators {
        assert_eq!(code(&http, addr, app, &key(1), Some("pc-2")).await, "VALID");
    }
    let (status, _) = admin
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/licenses/{}", id(1)),
            None,
        )
        .await;
    assert_eq!(status, 204);
    timings.push(
        on_both(
            &http,
            validators,
            app,
            &key(1),
            "pc-2",
            "NOT_FOUND",
            "delete",
        )
        .await,
    );

    // Extend: an expired license becomes valid again.
    let short = admin
        .post(
            &format!("/v1/apps/{}/licenses", app),
            json!({"count": 1, "hwid_limit": 0, "duration_secs": 1}),
        )
        .await;
    let short_key = short["licenses"][0]["key"].as_str().unwrap().to_string();
    let short_id = short["licenses"][0]["id"].as_str().unwrap().to_string();
    keyward_shared::testing::eventually(Duration::from_secs(5), "license expires", || {
        let (http, app, k) = (http.clone(), app, short_key.clone());
        async move {
            let mut all = true;
            for addr in validators {
                all &= code(&http, addr, app, &k, Some("pc-3")).await == "EXPIRED";
            }
            all.then_some(())
        }
    })
    .await;
    admin
        .post(
            &format!("/v1/licenses/{short_id}/extend"),
            json!({"days": 1}),
        )
        .await;
    timings.push(
        on_both(
            &http, validators, app, &short_key, "pc-3", "VALID", "extend",
        )
        .await,
    );

    // Blacklist add/remove (the HWID of a working license).
    let entry = admin
        .post(
            &format!("/v1/apps/{}/blacklist", app),
            json!({"kind": "hwid", "value": "pc-1"}),
        )
        .await;
    timings.push(
        on_both(
            &http,
            validators,
            app,
            &key(0),
            "pc-1",
            "BLACKLISTED",
            "blacklist add",
        )
        .await,
    );
    let (status, _) = admin
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/blacklist/{}", entry["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    timings.push(
        on_both(
            &http,
            validators,
            app,
            &key(0),
            "pc-1",
            "VALID",
            "blacklist remove",
        )
        .await,
    );

    // Machines: the validators' first-use binding is a machine over REST; deactivating it frees
    // the slot on both validators, and an admin activation counts against the same limit.
    for addr in validators {
        assert_eq!(code(&http, addr, app, &key(2), Some("pc-a")).await, "VALID");
    }
    let (status, machines) = admin
        .call(
            reqwest::Method::GET,
            &format!("/v1/licenses/{}/machines", id(2)),
            None,
        )
        .await;
    assert_eq!(status, 200, "{machines}");
    let bound = machines["items"].as_array().expect("items").clone();
    assert_eq!(bound.len(), 1, "{machines}");
    assert_eq!(bound[0]["fingerprint"], "pc-a");
    assert_eq!(bound[0]["bound_by"], "validate");
    for addr in validators {
        assert_eq!(
            code(&http, addr, app, &key(2), Some("pc-b")).await,
            "HWID_MISMATCH"
        );
    }
    let (status, body) = admin
        .call(
            reqwest::Method::POST,
            &format!("/v1/licenses/{}/machines", id(2)),
            Some(json!({"fingerprint": "pc-c"})),
        )
        .await;
    assert_eq!(status, 409, "activation past the limit: {body}");
    let (status, _) = admin
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/machines/{}", bound[0]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    timings.push(
        on_both(
            &http,
            validators,
            app,
            &key(2),
            "pc-b",
            "VALID",
            "machine deactivation",
        )
        .await,
    );

    // Policies: a license that follows a floating policy gets its machine limit, and raising
    // the policy's limit reaches both validators without touching the license.
    let team = admin
        .post(
            &format!("/v1/apps/{app}/policies"),
            json!({"name": "Team", "floating": true, "max_machines": 2}),
        )
        .await;
    let (status, body) = admin
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/licenses/{}", id(2)),
            Some(json!({"policy_id": team["id"], "hwid_limit": null})),
        )
        .await;
    assert_eq!(
        (status, body["hwid_limit"].clone()),
        (200, json!(2)),
        "{body}"
    );
    timings.push(
        on_both(
            &http,
            validators,
            app,
            &key(2),
            "pc-c",
            "VALID",
            "license moved to a policy",
        )
        .await,
    );
    for addr in validators {
        assert_eq!(
            code(&http, addr, app, &key(2), Some("pc-d")).await,
            "TOO_MANY_HWIDS"
        );
    }
    let (status, body) = admin
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/policies/{}", team["id"].as_str().unwrap()),
            Some(json!({"max_machines": 3})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    timings.push(
        on_both(
            &http,
            validators,
            app,
            &key(2),
            "pc-d",
            "VALID",
            "policy limit raised",
        )
        .await,
    );

    // Pausing the app.
    let (status, body) = admin
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/apps/{}", app),
            Some(json!({"paused": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    timings.push(
        on_both(
            &http,
            validators,
            app,
            &key(0),
            "pc-1",
            "APP_PAUSED",
            "pause",
        )
        .await,
    );

    let max = timings.iter().max().copied().unwrap_or_default();
    println!("slowest propagation to both validators: {max:?}");
    v1.shutdown().await;
    v2.shutdown().await;
    cp.shutdown().await;
}

#[tokio::test]
async fn keyaux_dashboard_and_seller_bans_reach_validators_within_a_second() {
    let db = TestDb::new().await;
    let cp = keyward_control_plane::start(keyward_control_plane::Config::new(db.url.clone()))
        .await
        .expect("control-plane");
    let v1 = validator(&db.url, |_| {}).await;
    let v2 = validator(&db.url, |_| {}).await;
    let validators = [v1.addr(), v2.addr()];
    let http = reqwest::Client::new();
    let base = format!("http://{}", cp.addr());
    let reg = reply(
        http.post(format!("{base}/api/auth/register"))
            .json(&json!({"username": "vendor", "email": "v@example.com", "password": "secret123"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let admin = Admin {
        http: http.clone(),
        base,
        token: reg.body["token"].as_str().unwrap().to_string(),
    };
    let app = admin
        .post("/api/dashboard/apps", json!({"name": "KA"}))
        .await;
    let app: uuid::Uuid = app["application"]["id"].as_str().unwrap().parse().unwrap();
    let made = admin
        .post(
            &format!("/api/dashboard/licenses/{app}"),
            json!({"count": 1, "mask": "XXXX-XXXX-XXXX"}),
        )
        .await;
    let key = made["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_string();
    let id = made["licenses"][0]["id"].as_str().unwrap().to_string();
    for addr in validators {
        assert_eq!(code(&http, addr, app, &key, Some("pc")).await, "VALID");
    }
    admin
        .post(
            &format!("/api/dashboard/licenses/{app}/{id}/ban"),
            json!({}),
        )
        .await;
    on_both(
        &http,
        validators,
        app,
        &key,
        "pc",
        "BANNED",
        "dashboard ban",
    )
    .await;

    // The seller API, with the key every new account gets… created fresh here to read it once.
    let created = admin.post("/api/dashboard/seller-keys", json!({})).await;
    let seller = created["key"].as_str().unwrap();
    let unban = http
        .get(format!(
            "{}/api/seller/?type=unban&appname=KA&key={key}",
            admin.base
        ))
        .header("x-api-key", seller)
        .send()
        .await
        .unwrap();
    assert_eq!(unban.status(), 200);
    on_both(&http, validators, app, &key, "pc", "VALID", "seller unban").await;
    let del = http
        .get(format!(
            "{}/api/seller/?type=del&appname=KA&key={key}&sellerkey={seller}",
            admin.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    on_both(
        &http,
        validators,
        app,
        &key,
        "pc",
        "NOT_FOUND",
        "seller delete",
    )
    .await;
    v1.shutdown().await;
    v2.shutdown().await;
    cp.shutdown().await;
}

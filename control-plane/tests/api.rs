//! The REST API's happy paths and their effects, over HTTP against a real PostgreSQL.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use keyward_shared::invalidation::{self, Invalidation};
use keyward_shared::keygen::Mask;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_postgres::{AsyncMessage, NoTls};

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn login_account_and_bad_credentials() {
    let cp = Cp::start().await;
    let token = cp.admin("alice").await;
    let me = cp.ok(Method::GET, "/v1/account", &token, None).await;
    assert_eq!(me["username"], "alice");
    assert_eq!(me["public_id"].as_str().unwrap().len(), 10);
    assert!(me.get("password_hash").is_none());
    for (user, pw) in [("alice", "wrong password"), ("nobody", PASSWORD)] {
        let r = cp
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"username": user, "password": pw})),
            )
            .await;
        assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"));
    }
    for bad in [
        "",
        "Bearer",
        "Bearer garbage",
        "Basic abc",
        "Bearer kw_notakey",
    ] {
        let r = cp
            .http
            .get(format!("{}/v1/account", cp.base))
            .header("authorization", bad)
            .send()
            .await
            .unwrap();
        let r = into_resp(r).await;
        assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"), "{bad:?}");
    }
    let r = cp.call(Method::GET, "/v1/apps", None, None).await;
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"));
}

#[tokio::test]
async fn apps_crud() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let created = cp
        .call(
            Method::POST,
            "/v1/apps",
            Some(&t),
            Some(json!({"name": "Tool", "version": "2.1", "hwid_lock": false})),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_string();
    let secret = created.body["secret"].as_str().unwrap().to_string();
    assert_eq!(created.body["version"], "2.1");
    assert_eq!(created.body["hwid_lock"], false);
    let dup = cp
        .call(
            Method::POST,
            "/v1/apps",
            Some(&t),
            Some(json!({"name": "Tool"})),
        )
        .await;
    assert_eq!((dup.status, dup.code()), (409, "CONFLICT"));

    let list = cp.ok(Method::GET, "/v1/apps", &t, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let patched = cp
        .ok(
            Method::PATCH,
            &format!("/v1/apps/{id}"),
            &t,
            Some(json!({"paused": true, "version": "2.2"})),
        )
        .await;
    assert_eq!(
        (patched["paused"].as_bool(), patched["version"].as_str()),
        (Some(true), Some("2.2"))
    );
    assert_eq!(patched["name"], "Tool");
    let got = cp
        .ok(Method::GET, &format!("/v1/apps/{id}"), &t, None)
        .await;
    assert_eq!(got["paused"], true);
    // Client-API settings: messages by KeyAuth name, session length, download link, hashes.
    let client = json!({
        "messages": {"keynotfound": "No such key"},
        "session_secs": 120,
        "download_url": "https://example.com/new",
        "program_hashes": ["abc"],
        "force_hwid": false,
        "min_hwid_len": 8
    });
    let patched = cp
        .ok(Method::PATCH, &format!("/v1/apps/{id}"), &t, Some(client))
        .await;
    assert_eq!(patched["messages"]["keynotfound"], "No such key");
    assert_eq!(patched["session_secs"], 120);
    assert_eq!(patched["download_url"], "https://example.com/new");
    assert_eq!(patched["program_hashes"], json!(["abc"]));
    assert_eq!(
        (
            patched["force_hwid"].as_bool(),
            patched["min_hwid_len"].as_i64()
        ),
        (Some(false), Some(8))
    );
    for (bad, says) in [
        (json!({"messages": {"nosuch": "x"}}), "nosuch"),
        (json!({"session_secs": 0}), "session_secs"),
        (json!({"download_url": "ftp://x"}), "download_url"),
        (
            json!({"signing_key_id": "00000000-0000-0000-0000-000000000000"}),
            "signing_key_id",
        ),
    ] {
        let r = cp
            .call(
                Method::PATCH,
                &format!("/v1/apps/{id}"),
                Some(&t),
                Some(bad),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(
            r.body["message"].as_str().unwrap().contains(says),
            "{}",
            r.body
        );
    }
    let cleared = cp
        .ok(
            Method::PATCH,
            &format!("/v1/apps/{id}"),
            &t,
            Some(json!({"download_url": ""})),
        )
        .await;
    assert_eq!(cleared["download_url"], Value::Null);
    let reset = cp
        .ok(
            Method::POST,
            &format!("/v1/apps/{id}/reset-secret"),
            &t,
            None,
        )
        .await;
    assert_ne!(reset["secret"].as_str().unwrap(), secret);
    let del = cp
        .call(Method::DELETE, &format!("/v1/apps/{id}"), Some(&t), None)
        .await;
    assert_eq!(del.status, 204);
    let gone = cp
        .call(Method::GET, &format!("/v1/apps/{id}"), Some(&t), None)
        .await;
    assert_eq!((gone.status, gone.code()), (404, "NOT_FOUND"));
}

#[tokio::test]
async fn licenses_generate_list_and_lifecycle() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let app = cp.app(&t, "Tool").await;
    let keys = cp
        .licenses(
            &t,
            &app,
            json!({"count": 25, "mask": "ABCD-XXXX-XXXX", "duration_days": 30, "level": 3, "note": "batch one", "hwid_limit": 2}),
        )
        .await;
    assert_eq!(keys.len(), 25);
    let mask = Mask::parse("ABCD-XXXX-XXXX", None).unwrap();
    for k in &keys {
        assert!(mask.matches(k["key"].as_str().unwrap()), "{}", k["key"]);
        assert_eq!(k["level"], 3);
        assert_eq!(k["hwid_limit"], 2);
        assert!(k["expires_at"].is_string());
    }
    cp.licenses(
        &t,
        &app,
        json!({"count": 5, "prefix": "VIP-", "duration_days": 7, "expiry_on_first_use": true}),
    )
    .await;

    // Pagination with the cursor walks every license exactly once.
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/licenses?app_id={app}&limit=7&cursor={c}"),
            None => format!("/v1/licenses?app_id={app}&limit=7"),
        };
        let page = cp.ok(Method::GET, &path, &t, None).await;
        for item in page["items"].as_array().unwrap() {
            assert!(seen.insert(item["id"].as_str().unwrap().to_string()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30);
    // Search by key fragment and note; status filter.
    let vip = cp
        .ok(Method::GET, "/v1/licenses?search=vip-", &t, None)
        .await;
    assert_eq!(vip["items"].as_array().unwrap().len(), 5);
    let batch = cp
        .ok(
            Method::GET,
            "/v1/licenses?search=batch%20one&limit=100",
            &t,
            None,
        )
        .await;
    assert_eq!(batch["items"].as_array().unwrap().len(), 25);

    let id = keys[0]["id"].as_str().unwrap();
    let banned = cp
        .ok(
            Method::POST,
            &format!("/v1/licenses/{id}/ban"),
            &t,
            Some(json!({"reason": "fraud"})),
        )
        .await;
    assert_eq!(
        (banned["status"].as_str(), banned["ban_reason"].as_str()),
        (Some("banned"), Some("fraud"))
    );
    let only_banned = cp
        .ok(Method::GET, "/v1/licenses?status=banned", &t, None)
        .await;
    assert_eq!(only_banned["items"].as_array().unwrap().len(), 1);
    let unbanned = cp
        .ok(Method::POST, &format!("/v1/licenses/{id}/unban"), &t, None)
        .await;
    assert_eq!(unbanned["status"], "active");
    let before: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(unbanned["expires_at"].clone()).unwrap();
    let extended = cp
        .ok(
            Method::POST,
            &format!("/v1/licenses/{id}/extend"),
            &t,
            Some(json!({"days": 10})),
        )
        .await;
    let after: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(extended["expires_at"].clone()).unwrap();
    assert_eq!((after - before).num_days(), 10);
    let patched = cp
        .ok(
            Method::PATCH,
            &format!("/v1/licenses/{id}"),
            &t,
            Some(json!({"note": "vip", "hwid_limit": 5})),
        )
        .await;
    assert_eq!(
        (patched["note"].as_str(), patched["hwid_limit"].as_i64()),
        (Some("vip"), Some(5))
    );
    let reset = cp
        .ok(
            Method::POST,
            &format!("/v1/licenses/{id}/reset-hwids"),
            &t,
            None,
        )
        .await;
    assert_eq!(reset["hwids"].as_array().unwrap().len(), 0);
    let got = cp
        .ok(Method::GET, &format!("/v1/licenses/{id}"), &t, None)
        .await;
    assert_eq!(got["note"], "vip");
    let del = cp
        .call(
            Method::DELETE,
            &format!("/v1/licenses/{id}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    let gone = cp
        .call(Method::GET, &format!("/v1/licenses/{id}"), Some(&t), None)
        .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn blacklist_api_keys_and_audit_log() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let app = cp.app(&t, "Tool").await;
    let e = cp
        .ok(
            Method::POST,
            &format!("/v1/apps/{app}/blacklist"),
            &t,
            Some(json!({"kind": "ip", "value": "10.1.2.3/8", "note": "abuse"})),
        )
        .await;
    assert_eq!(e["value"], "10.0.0.0/8");
    cp.ok(
        Method::POST,
        &format!("/v1/apps/{app}/blacklist"),
        &t,
        Some(json!({"kind": "hwid", "value": "BAD"})),
    )
    .await;
    let dup = cp
        .call(
            Method::POST,
            &format!("/v1/apps/{app}/blacklist"),
            Some(&t),
            Some(json!({"kind": "hwid", "value": "BAD"})),
        )
        .await;
    assert_eq!(dup.status, 409);
    let list = cp
        .ok(Method::GET, &format!("/v1/apps/{app}/blacklist"), &t, None)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let del = cp
        .call(
            Method::DELETE,
            &format!("/v1/blacklist/{}", e["id"].as_str().unwrap()),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(del.status, 204);

    // An API key with a read-only scope: works for reads, 403 for writes, 401 once revoked.
    let created = cp
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&t),
            Some(json!({"name": "bot", "scopes": ["licenses:read"]})),
        )
        .await;
    assert_eq!(created.status, 201);
    let key = created.body["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("kw_"));
    let keys = cp.ok(Method::GET, "/v1/api-keys", &t, None).await;
    assert!(
        keys["items"][0].get("key").is_none(),
        "the key is shown once only"
    );
    let r = cp.call(Method::GET, "/v1/licenses", Some(&key), None).await;
    assert_eq!(r.status, 200);
    let r = cp
        .call(
            Method::POST,
            "/v1/apps",
            Some(&key),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
    let kid = created.body["id"].as_str().unwrap();
    cp.ok(Method::DELETE, &format!("/v1/api-keys/{kid}"), &t, None)
        .await;
    let r = cp.call(Method::GET, "/v1/licenses", Some(&key), None).await;
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"));

    // The audit log saw all of it, filterable by action prefix and target.
    let all = cp.ok(Method::GET, "/v1/audit-log", &t, None).await;
    let actions: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "app.create",
        "blacklist.add",
        "blacklist.delete",
        "api_key.create",
        "api_key.revoke",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let bl = cp
        .ok(Method::GET, "/v1/audit-log?action=blacklist.", &t, None)
        .await;
    assert_eq!(bl["items"].as_array().unwrap().len(), 3);
    assert!(bl["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] == "admin:alice"));
    // By target: the revoked key's create and revoke.
    let by_target = cp
        .ok(
            Method::GET,
            &format!("/v1/audit-log?target_type=api_key&target_id={kid}"),
            &t,
            None,
        )
        .await;
    let actions: Vec<&str> = by_target["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["api_key.revoke", "api_key.create"]);
    // By actor: a write made with an API key is labelled with its prefix.
    let writer = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &t,
            Some(json!({"name": "writer", "scopes": ["apps:write"]})),
        )
        .await;
    let writer_key = writer["key"].as_str().unwrap();
    let r = cp
        .call(
            Method::POST,
            "/v1/apps",
            Some(writer_key),
            Some(json!({"name": "Bot App"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let actor = format!("api_key:{}", writer["prefix"].as_str().unwrap());
    let by_actor = cp
        .ok(
            Method::GET,
            &format!("/v1/audit-log?actor={actor}"),
            &t,
            None,
        )
        .await;
    let items = by_actor["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{by_actor}");
    assert_eq!(items[0]["action"], "app.create");
    // By time: nothing after tomorrow or before yesterday; everything in between.
    let day = chrono::Duration::days(1);
    let (past, future) = (chrono::Utc::now() - day, chrono::Utc::now() + day);
    for (q, expect_empty) in [
        (format!("since={}", rfc3339(future)), true),
        (format!("until={}", rfc3339(past)), true),
        (
            format!("since={}&until={}", rfc3339(past), rfc3339(future)),
            false,
        ),
    ] {
        let r = cp
            .ok(Method::GET, &format!("/v1/audit-log?{q}"), &t, None)
            .await;
        assert_eq!(
            r["items"].as_array().unwrap().is_empty(),
            expect_empty,
            "{q}"
        );
    }
    let page = cp.ok(Method::GET, "/v1/audit-log?limit=2", &t, None).await;
    let before = page["next_before"].as_i64().unwrap();
    let older = cp
        .ok(
            Method::GET,
            &format!("/v1/audit-log?limit=2&before={before}"),
            &t,
            None,
        )
        .await;
    assert!(older["items"][0]["id"].as_i64().unwrap() < before);
}

#[tokio::test]
async fn api_key_scopes_are_listed() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let listed = cp.ok(Method::GET, "/v1/api-keys/scopes", &t, None).await;
    let want: Vec<Value> = keyward_shared::store::api_keys::SCOPES
        .iter()
        .map(|s| json!(s))
        .collect();
    assert_eq!(listed["items"], Value::Array(want));
    // Every listed scope is accepted by a new key.
    let created = cp
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&t),
            Some(json!({"name": "all", "scopes": listed["items"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["scopes"], listed["items"]);
    // Listed for those who may make keys only.
    let reader = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &t,
            Some(json!({"name": "reader", "scopes": ["licenses:read"]})),
        )
        .await;
    let r = cp
        .call(
            Method::GET,
            "/v1/api-keys/scopes",
            reader["key"].as_str(),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
    let r = cp
        .call(Method::GET, "/v1/api-keys/scopes", None, None)
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn a_ban_over_rest_notifies_validators() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let app = cp.app(&t, "Tool").await;
    let lic = cp.licenses(&t, &app, json!({"count": 1})).await.remove(0);

    let cfg: tokio_postgres::Config = cp.db.url.parse().unwrap();
    let (client, mut conn) = cfg.connect(NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut s = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = s.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", invalidation::CHANNEL))
        .await
        .unwrap();

    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{}/ban", lic["id"].as_str().unwrap()),
        &t,
        Some(json!({})),
    )
    .await;
    let payload = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a notification")
        .unwrap();
    let decoded = invalidation::decode(&payload).unwrap();
    assert_eq!(
        decoded.i,
        vec![Invalidation::License {
            app: app.parse().unwrap(),
            key: lic["key"].as_str().unwrap().to_string()
        }]
    );
}

#[tokio::test]
async fn login_is_rate_limited_per_address() {
    let cp = Cp::start_with(|cfg| cfg.login_rate_per_minute = 3).await;
    keyward_control_plane::create_admin(&cp.db.url, "alice", PASSWORD)
        .await
        .unwrap();
    let attempt = || {
        cp.call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": "nope nope"})),
        )
    };
    for _ in 0..3 {
        assert_eq!(attempt().await.status, 401);
    }
    let r = attempt().await;
    assert_eq!((r.status, r.code()), (429, "RATE_LIMITED"));
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "Retry-After {wait}");
}

#[tokio::test]
async fn ops_endpoints() {
    let cp = Cp::start().await;
    for p in ["/healthz", "/readyz"] {
        assert_eq!(cp.call(Method::GET, p, None, None).await.status, 200);
    }
    let m = cp
        .http
        .get(format!("{}/metrics", cp.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("keyward_control_plane_responses_total"), "{m}");
    assert!(m.contains(r#"route="/readyz""#), "{m}");
}

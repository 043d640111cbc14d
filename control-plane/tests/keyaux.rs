//! The KeyAux dashboard and seller APIs as stores, bots and dashboards call them: documented paths,
//! parameters, defaults, status codes and body shapes, against a real PostgreSQL.

mod common;

use common::*;
use keyward_shared::keygen::Mask;
use reqwest::Method;
use serde_json::{json, Value};

/// Registers an account; returns (JWT, user object).
async fn register(cp: &Cp, name: &str) -> (String, Value) {
    let r = cp
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"username": name, "email": format!("{name}@example.com"), "password": "secret123"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["success"], true);
    (
        r.body["token"].as_str().unwrap().to_string(),
        r.body["user"].clone(),
    )
}

fn err(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["success"], false, "{}", r.body);
    assert!(
        r.body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.body
    );
}

async fn seller(cp: &Cp, key: &str, query: &str) -> Resp {
    let r = cp
        .http
        .get(format!("{}/api/seller/?sellerkey={key}&{query}", cp.base))
        .send()
        .await
        .unwrap();
    into_resp(r).await
}

async fn seller_key(cp: &Cp, jwt: &str) -> String {
    let r = cp
        .call(
            Method::POST,
            "/api/dashboard/seller-keys",
            Some(jwt),
            Some(json!({"name": "bot"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn accounts_register_login_me_password_stats() {
    let cp = Cp::start().await;
    let (jwt, user) = register(&cp, "vendor").await;
    assert_eq!(
        user["id"].as_str().unwrap().len(),
        10,
        "the ownerid KeyAuth clients send"
    );
    assert_eq!(user["plan"], "free");
    // A default seller key came with the account.
    let keys = cp
        .call(Method::GET, "/api/dashboard/seller-keys", Some(&jwt), None)
        .await;
    assert_eq!(keys.body["keys"].as_array().unwrap().len(), 1);
    assert!(keys.body["keys"][0]["prefix"]
        .as_str()
        .unwrap()
        .starts_with("ka_"));
    // Duplicates, missing fields, short password.
    let dup = cp
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"username": "vendor", "email": "x@example.com", "password": "secret123"})),
        )
        .await;
    err(&dup, 409);
    let dup = cp.call(Method::POST, "/api/auth/register", None, Some(json!({"username": "other", "email": "vendor@example.com", "password": "secret123"}))).await;
    err(&dup, 409);
    err(
        &cp.call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"username": "x1"})),
        )
        .await,
        400,
    );
    err(
        &cp.call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"username": "abc", "email": "a@b.c", "password": "123"})),
        )
        .await,
        400,
    );
    // Login by username or email.
    for login in ["vendor", "vendor@example.com"] {
        let r = cp
            .call(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"username": login, "password": "secret123"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["user"]["role"], "user");
    }
    err(
        &cp.call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "vendor", "password": "nope"})),
        )
        .await,
        401,
    );
    let me = cp
        .call(Method::GET, "/api/dashboard/auth/me", Some(&jwt), None)
        .await;
    assert_eq!(
        (me.status, me.body["user"]["username"].as_str()),
        (200, Some("vendor"))
    );
    assert!(me.body["user"]["created_at"].is_string());
    err(
        &cp.call(Method::GET, "/api/dashboard/auth/me", Some("garbage"), None)
            .await,
        401,
    );
    err(
        &cp.call(Method::GET, "/api/dashboard/auth/me", None, None)
            .await,
        401,
    );
    // Password change.
    err(
        &cp.call(
            Method::PUT,
            "/api/dashboard/auth/password",
            Some(&jwt),
            Some(json!({"current_password": "wrong", "new_password": "newpass123"})),
        )
        .await,
        401,
    );
    let r = cp
        .call(
            Method::PUT,
            "/api/dashboard/auth/password",
            Some(&jwt),
            Some(json!({"current_password": "secret123", "new_password": "newpass123"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = cp
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "vendor", "password": "newpass123"})),
        )
        .await;
    assert_eq!(r.status, 200);
    // Stats.
    let app = cp
        .call(
            Method::POST,
            "/api/dashboard/apps",
            Some(&jwt),
            Some(json!({"name": "A"})),
        )
        .await;
    let app = app.body["application"]["id"].as_str().unwrap().to_string();
    cp.call(
        Method::POST,
        &format!("/api/dashboard/licenses/{app}"),
        Some(&jwt),
        Some(json!({"count": 3})),
    )
    .await;
    let s = cp
        .call(Method::GET, "/api/dashboard/stats", Some(&jwt), None)
        .await;
    assert_eq!(
        s.body["stats"],
        json!({"applications": 1, "users": 0, "licenses": 3, "logs": 0})
    );
}

#[tokio::test]
async fn applications() {
    let cp = Cp::start().await;
    let (jwt, _) = register(&cp, "vendor").await;
    let r = cp
        .call(
            Method::POST,
            "/api/dashboard/apps",
            Some(&jwt),
            Some(json!({"name": "My App"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let app = r.body["application"].clone();
    assert_eq!(
        (
            app["version"].as_str(),
            app["hwid_lock"].as_i64(),
            app["paused"].as_i64()
        ),
        (Some("1.0"), Some(1), Some(0))
    );
    let id = app["id"].as_str().unwrap();
    err(
        &cp.call(
            Method::POST,
            "/api/dashboard/apps",
            Some(&jwt),
            Some(json!({"name": "My App"})),
        )
        .await,
        409,
    );
    err(
        &cp.call(
            Method::POST,
            "/api/dashboard/apps",
            Some(&jwt),
            Some(json!({"version": "2"})),
        )
        .await,
        400,
    );
    // A default subscription was created.
    let subs = cp
        .call(
            Method::GET,
            &format!("/api/dashboard/subscriptions/{id}"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(subs.body["subscriptions"][0]["name"], "default");
    let list = cp
        .call(Method::GET, "/api/dashboard/apps", Some(&jwt), None)
        .await;
    assert_eq!(list.body["applications"].as_array().unwrap().len(), 1);
    let r = cp.call(Method::PUT, &format!("/api/dashboard/apps/{id}"), Some(&jwt),
        Some(json!({"version": "2.0", "hwid_lock": false, "anti_vpn": true, "hash_check": true, "paused": true}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = cp
        .call(
            Method::GET,
            &format!("/api/dashboard/apps/{id}"),
            Some(&jwt),
            None,
        )
        .await;
    let a = &got.body["application"];
    assert_eq!(
        (
            a["version"].as_str(),
            a["hwid_lock"].as_i64(),
            a["anti_vpn"].as_i64(),
            a["hash_check"].as_i64(),
            a["paused"].as_i64()
        ),
        (Some("2.0"), Some(0), Some(1), Some(1), Some(1))
    );
    assert_eq!(
        a["stats"],
        json!({"users": 0, "licenses": 0, "active_sessions": 0, "logs": 0})
    );
    let r = cp
        .call(
            Method::POST,
            &format!("/api/dashboard/apps/{id}/reset-secret"),
            Some(&jwt),
            None,
        )
        .await;
    assert_ne!(r.body["secret"], app["secret"]);
    err(
        &cp.call(
            Method::PUT,
            &format!("/api/dashboard/apps/{id}"),
            Some(&jwt),
            Some(json!({"paused": "yes"})),
        )
        .await,
        400,
    );
    let r = cp
        .call(
            Method::DELETE,
            &format!("/api/dashboard/apps/{id}"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    err(
        &cp.call(
            Method::GET,
            &format!("/api/dashboard/apps/{id}"),
            Some(&jwt),
            None,
        )
        .await,
        404,
    );
    err(
        &cp.call(
            Method::GET,
            "/api/dashboard/apps/not-an-id",
            Some(&jwt),
            None,
        )
        .await,
        404,
    );
}

#[tokio::test]
async fn licenses() {
    let cp = Cp::start().await;
    let (jwt, _) = register(&cp, "vendor").await;
    let app = cp
        .call(
            Method::POST,
            "/api/dashboard/apps",
            Some(&jwt),
            Some(json!({"name": "A"})),
        )
        .await;
    let app = app.body["application"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/dashboard/licenses/{app}");
    let r = cp
        .call(
            Method::POST,
            &path,
            Some(&jwt),
            Some(json!({"count": 5, "duration_days": 30, "mask": "XXXX-XXXX", "note": "Batch #1"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["count"], 5);
    let mask = Mask::parse("XXXX-XXXX", None).unwrap();
    for l in r.body["licenses"].as_array().unwrap() {
        assert!(mask.matches(l["license_key"].as_str().unwrap()));
        assert!(l["id"].is_string());
    }
    // Defaults: one key, the default mask.
    let r = cp
        .call(Method::POST, &path, Some(&jwt), Some(json!({})))
        .await;
    assert_eq!(r.body["count"], 1);
    assert!(Mask::parse("XXXXX-XXXXX-XXXXX-XXXXX-XXXXX", None)
        .unwrap()
        .matches(r.body["licenses"][0]["license_key"].as_str().unwrap()));
    err(
        &cp.call(Method::POST, &path, Some(&jwt), Some(json!({"count": 501})))
            .await,
        400,
    );
    err(
        &cp.call(Method::POST, &path, Some(&jwt), Some(json!({"count": "x"})))
            .await,
        400,
    );

    let list = cp
        .call(
            Method::GET,
            &format!("{path}?page=1&limit=4"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(
        (
            list.body["total"].as_i64(),
            list.body["licenses"].as_array().unwrap().len()
        ),
        (Some(6), 4)
    );
    let page2 = cp
        .call(
            Method::GET,
            &format!("{path}?page=2&limit=4"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(page2.body["licenses"].as_array().unwrap().len(), 2);
    let found = cp
        .call(
            Method::GET,
            &format!("{path}?search=batch"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(found.body["total"], 5);
    let first = list.body["licenses"][0].clone();
    let lid = first["id"].as_str().unwrap();
    assert_eq!(first["status"], "active");
    let r = cp
        .call(Method::POST, &format!("{path}/{lid}/ban"), Some(&jwt), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let banned = cp
        .call(
            Method::GET,
            &format!("{path}?status=banned"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(banned.body["licenses"][0]["id"], first["id"]);
    err(
        &cp.call(
            Method::GET,
            &format!("{path}?status=whatever"),
            Some(&jwt),
            None,
        )
        .await,
        400,
    );
    // A used key (redeemed once) and the bulk deletes.
    let second = list.body["licenses"][1]["id"].as_str().unwrap();
    let c = cp.db.client().await;
    c.execute(
        "UPDATE licenses SET uses = 1, used_by = 'player1' WHERE id = $1::text::uuid",
        &[&second],
    )
    .await
    .unwrap();
    let used = cp
        .call(
            Method::GET,
            &format!("{path}?status=used"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(used.body["total"], 1);
    let by_user = cp
        .call(
            Method::GET,
            &format!("{path}?search=player1"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(by_user.body["licenses"][0]["used_by"], "player1");
    let r = cp
        .call(
            Method::DELETE,
            &format!("{path}/used/all"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(r.body["deleted"], 1);
    let r = cp
        .call(
            Method::DELETE,
            &format!("{path}/unused/all"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(
        r.body["deleted"], 4,
        "banned keys are not unused: {}",
        r.body
    );
    let r = cp
        .call(Method::DELETE, &format!("{path}/{lid}"), Some(&jwt), None)
        .await;
    assert_eq!(r.status, 200);
    err(
        &cp.call(Method::DELETE, &format!("{path}/{lid}"), Some(&jwt), None)
            .await,
        404,
    );
}

#[tokio::test]
async fn users_subscriptions_variables_webhooks_blacklist_logs() {
    let cp = Cp::start().await;
    let (jwt, _) = register(&cp, "vendor").await;
    let app = cp
        .call(
            Method::POST,
            "/api/dashboard/apps",
            Some(&jwt),
            Some(json!({"name": "A"})),
        )
        .await;
    let app = app.body["application"]["id"].as_str().unwrap().to_string();
    let j = Some(jwt.as_str());

    // Subscriptions.
    let r = cp
        .call(
            Method::POST,
            &format!("/api/dashboard/subscriptions/{app}"),
            j,
            Some(json!({"name": "Premium", "level": 5, "duration_days": 60})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let premium = r.body["subscription"]["id"].as_str().unwrap().to_string();
    err(
        &cp.call(
            Method::POST,
            &format!("/api/dashboard/subscriptions/{app}"),
            j,
            Some(json!({"name": "Premium"})),
        )
        .await,
        409,
    );

    // Users.
    let users = format!("/api/dashboard/users/{app}");
    let r = cp.call(Method::POST, &users, j, Some(json!({"username": "player1", "password": "pw", "email": "p1@example.com", "subscription_name": "Premium"}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let u = r.body["user"].clone();
    assert_eq!(u["subscriptions"][0]["subscription"], "Premium");
    assert_eq!(u["subscriptions"][0]["level"], "5");
    assert!((59..=60).contains(&u["subscriptions"][0]["timeleft"].as_i64().unwrap()));
    let uid = u["id"].as_str().unwrap().to_string();
    err(
        &cp.call(
            Method::POST,
            &users,
            j,
            Some(json!({"username": "player1", "password": "pw"})),
        )
        .await,
        409,
    );
    err(
        &cp.call(
            Method::POST,
            &users,
            j,
            Some(json!({"username": "player2"})),
        )
        .await,
        400,
    );
    cp.call(
        Method::POST,
        &users,
        j,
        Some(json!({"username": "player2", "password": "pw", "subscription_days": 3})),
    )
    .await;
    let c = cp.db.client().await;
    c.execute(
        "UPDATE app_users SET hwid = 'HW-777', ip = '203.0.113.4' WHERE id = $1::text::uuid",
        &[&uid],
    )
    .await
    .unwrap();
    for q in ["player1", "p1@example", "HW-777", "203.0.113"] {
        let r = cp
            .call(Method::GET, &format!("{users}?search={q}"), j, None)
            .await;
        assert_eq!(r.body["total"], 1, "search {q}: {}", r.body);
    }
    let all = cp
        .call(Method::GET, &format!("{users}?page=1&limit=1"), j, None)
        .await;
    assert_eq!(
        (
            all.body["total"].as_i64(),
            all.body["users"].as_array().unwrap().len()
        ),
        (Some(2), 1)
    );

    // Variables, global and per user.
    let gv = format!("/api/dashboard/variables/{app}/global");
    let r = cp
        .call(
            Method::POST,
            &gv,
            j,
            Some(json!({"key": "motd", "value": "hello"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    cp.call(
        Method::POST,
        &gv,
        j,
        Some(json!({"key": "motd", "value": "updated"})),
    )
    .await;
    let r = cp.call(Method::GET, &gv, j, None).await;
    assert_eq!(
        (
            r.body["variables"].as_array().unwrap().len(),
            r.body["variables"][0]["value"].as_str()
        ),
        (1, Some("updated"))
    );
    let gvid = r.body["variables"][0]["id"].as_str().unwrap().to_string();
    err(
        &cp.call(Method::POST, &gv, j, Some(json!({"value": "no key"})))
            .await,
        400,
    );
    let uv = format!("/api/dashboard/variables/{app}/user");
    let r = cp
        .call(
            Method::POST,
            &uv,
            j,
            Some(json!({"user_id": uid, "key": "rank", "value": "gold"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    err(
        &cp.call(
            Method::POST,
            &uv,
            j,
            Some(json!({"user_id": uuid::Uuid::new_v4(), "key": "rank"})),
        )
        .await,
        404,
    );
    let r = cp
        .call(Method::GET, &format!("{uv}?user_id={uid}"), j, None)
        .await;
    assert_eq!(r.body["variables"][0]["value"], "gold");
    let uvid = r.body["variables"][0]["id"].as_str().unwrap().to_string();
    let got = cp
        .call(Method::GET, &format!("{users}/{uid}"), j, None)
        .await;
    assert_eq!(got.body["user"]["variables"][0]["key"], "rank");

    // User actions.
    for (action, body) in [
        ("ban", json!({"reason": "cheating"})),
        ("unban", json!({})),
        ("reset-hwid", json!({})),
        (
            "extend",
            json!({"days": 10, "subscription_name": "Premium"}),
        ),
    ] {
        let r = cp
            .call(
                Method::POST,
                &format!("{users}/{uid}/{action}"),
                j,
                Some(body),
            )
            .await;
        assert_eq!(r.status, 200, "{action}: {}", r.body);
    }
    let got = cp
        .call(Method::GET, &format!("{users}/{uid}"), j, None)
        .await;
    let u = &got.body["user"];
    assert_eq!((u["banned"].as_i64(), u["hwid"].is_null()), (Some(0), true));
    assert!(
        (69..=70).contains(&u["subscriptions"][0]["timeleft"].as_i64().unwrap()),
        "{u}"
    );
    let r = cp
        .call(Method::POST, &format!("{users}/{uid}/ban"), j, None)
        .await;
    assert_eq!(r.status, 200, "ban without a body: {}", r.body);

    // Webhooks.
    let wh = format!("/api/dashboard/webhooks/{app}");
    let r = cp.call(Method::POST, &wh, j, Some(json!({"name": "discord", "url": "https://example.com/hook", "auth_header": "Bearer x"}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        r.body["webhook"].get("auth_header").is_none(),
        "the credential is not echoed"
    );
    let hid = r.body["webhook"]["id"].as_str().unwrap().to_string();
    err(
        &cp.call(
            Method::POST,
            &wh,
            j,
            Some(json!({"name": "x", "url": "ftp://nope"})),
        )
        .await,
        400,
    );
    assert_eq!(
        cp.call(Method::GET, &wh, j, None).await.body["webhooks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Blacklist.
    let bl = format!("/api/dashboard/blacklist/{app}");
    let r = cp
        .call(
            Method::POST,
            &bl,
            j,
            Some(json!({"type": "ip", "value": "198.51.100.0/24", "note": "abuse"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let eid = r.body["entry"]["id"].as_str().unwrap().to_string();
    cp.call(
        Method::POST,
        &bl,
        j,
        Some(json!({"type": "hwid", "value": "BAD"})),
    )
    .await;
    err(
        &cp.call(
            Method::POST,
            &bl,
            j,
            Some(json!({"type": "mac", "value": "x"})),
        )
        .await,
        400,
    );
    err(
        &cp.call(
            Method::POST,
            &bl,
            j,
            Some(json!({"type": "hwid", "value": "BAD"})),
        )
        .await,
        409,
    );
    let r = cp.call(Method::GET, &bl, j, None).await;
    assert_eq!(r.body["blacklist"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["blacklist"][0]["type"], "ip");

    // Logs (written by clients through the validator; inserted directly here).
    let app_uuid: uuid::Uuid = app.parse().unwrap();
    let account: uuid::Uuid = c
        .query_one("SELECT account_id FROM apps WHERE id = $1", &[&app_uuid])
        .await
        .unwrap()
        .get(0);
    for (action, user, data) in [
        ("login", "player1", "ok"),
        ("log", "player2", "crashed at boot"),
        ("login", "player2", "ok"),
    ] {
        keyward_shared::store::client_logs::append(
            &c,
            account,
            app_uuid,
            action,
            Some(user),
            Some("203.0.113.9"),
            Some(data),
        )
        .await
        .unwrap();
    }
    let logs = format!("/api/dashboard/logs/{app}");
    assert_eq!(cp.call(Method::GET, &logs, j, None).await.body["total"], 3);
    assert_eq!(
        cp.call(Method::GET, &format!("{logs}?action=login"), j, None)
            .await
            .body["total"],
        2
    );
    assert_eq!(
        cp.call(Method::GET, &format!("{logs}?search=crashed"), j, None)
            .await
            .body["total"],
        1
    );
    assert_eq!(
        cp.call(Method::GET, &format!("{logs}?page=2&limit=2"), j, None)
            .await
            .body["logs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        cp.call(Method::DELETE, &logs, j, None).await.body["deleted"],
        3
    );

    // Deletions.
    for path in [
        format!("{gv}/{gvid}"),
        format!("{uv}/{uvid}"),
        format!("{wh}/{hid}"),
        format!("{bl}/{eid}"),
        format!("/api/dashboard/subscriptions/{app}/{premium}"),
        format!("{users}/{uid}"),
    ] {
        let r = cp.call(Method::DELETE, &path, j, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        err(&cp.call(Method::DELETE, &path, j, None).await, 404);
    }
    let r = cp
        .call(Method::DELETE, &format!("{users}/all/users"), j, None)
        .await;
    assert_eq!(r.body["deleted"], 1);
}

#[tokio::test]
async fn seller_api() {
    let cp = Cp::start().await;
    let (jwt, _) = register(&cp, "vendor").await;
    cp.call(
        Method::POST,
        "/api/dashboard/apps",
        Some(&jwt),
        Some(json!({"name": "MyApp"})),
    )
    .await;
    let key = seller_key(&cp, &jwt).await;
    assert!(key.starts_with("ka_"));

    // Authentication and parameters.
    err(&seller(&cp, "", "type=add&appname=MyApp").await, 401);
    err(
        &seller(&cp, "ka_wrong", "type=add&appname=MyApp").await,
        401,
    );
    let via_header = into_resp(
        cp.http
            .get(format!(
                "{}/api/seller/?type=fetchallkeys&appname=MyApp",
                cp.base
            ))
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(via_header.status, 200, "{}", via_header.body);
    err(&seller(&cp, &key, "type=add").await, 400);
    err(&seller(&cp, &key, "appname=MyApp").await, 400);
    err(&seller(&cp, &key, "type=add&appname=Nope").await, 404);
    err(
        &seller(&cp, &key, "type=frobnicate&appname=MyApp").await,
        400,
    );
    err(
        &seller(&cp, &key, "type=add&appname=MyApp&amount=lots").await,
        400,
    );
    err(
        &seller(&cp, &key, "type=add&appname=MyApp&amount=501").await,
        400,
    );

    // Licenses.
    let r = seller(
        &cp,
        &key,
        "type=add&appname=MyApp&expiry=30&amount=5&mask=SELL-XXXX-XXXX&level=2&note=store",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["message"], "License(s) created");
    let keys: Vec<String> = r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 5);
    assert_eq!(r.body["key"], keys[0]);
    assert!(keys
        .iter()
        .all(|k| Mask::parse("SELL-XXXX-XXXX", None).unwrap().matches(k)));
    let one = seller(&cp, &key, "type=add&appname=MyApp").await;
    assert_eq!(one.body["keys"].as_array().unwrap().len(), 1);
    let v = seller(
        &cp,
        &key,
        &format!("type=verify&appname=MyApp&key={}", keys[0]),
    )
    .await;
    assert_eq!(
        (v.status, v.body["license"]["level"].as_i64()),
        (200, Some(2))
    );
    err(
        &seller(&cp, &key, "type=verify&appname=MyApp&key=NOPE").await,
        404,
    );
    assert_eq!(
        seller(
            &cp,
            &key,
            &format!("type=ban&appname=MyApp&key={}", keys[0])
        )
        .await
        .status,
        200
    );
    let v = seller(
        &cp,
        &key,
        &format!("type=verify&appname=MyApp&key={}", keys[0]),
    )
    .await;
    assert_eq!(v.body["license"]["status"], "banned");
    assert_eq!(
        seller(
            &cp,
            &key,
            &format!("type=unban&appname=MyApp&key={}", keys[0])
        )
        .await
        .status,
        200
    );
    assert_eq!(
        seller(
            &cp,
            &key,
            &format!("type=del&appname=MyApp&key={}", keys[1])
        )
        .await
        .status,
        200
    );
    err(
        &seller(
            &cp,
            &key,
            &format!("type=del&appname=MyApp&key={}", keys[1]),
        )
        .await,
        404,
    );
    let all = seller(&cp, &key, "type=fetchallkeys&appname=MyApp").await;
    assert_eq!(all.body["keys"].as_array().unwrap().len(), 5);
    let c = cp.db.client().await;
    c.execute("UPDATE licenses SET uses = 1 WHERE key = $1", &[&keys[2]])
        .await
        .unwrap();
    assert_eq!(
        seller(&cp, &key, "type=delused&appname=MyApp").await.body["deleted"],
        1
    );
    assert_eq!(
        seller(&cp, &key, "type=delunused&appname=MyApp").await.body["deleted"],
        4
    );
    seller(&cp, &key, "type=add&appname=MyApp&amount=3").await;
    assert_eq!(
        seller(&cp, &key, "type=delalllicenses&appname=MyApp")
            .await
            .body["deleted"],
        3
    );

    // Users.
    let r = seller(
        &cp,
        &key,
        "type=adduser&appname=MyApp&user=alice&pass=pw1&sub=default&expiry=10",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    err(
        &seller(&cp, &key, "type=adduser&appname=MyApp&user=alice").await,
        409,
    );
    err(&seller(&cp, &key, "type=adduser&appname=MyApp").await, 400);
    seller(&cp, &key, "type=adduser&appname=MyApp&user=bob").await;
    let d = seller(&cp, &key, "type=userdata&appname=MyApp&user=alice").await;
    assert_eq!(
        (d.status, d.body["username"].as_str()),
        (200, Some("alice"))
    );
    assert!((9..=10).contains(&d.body["subscriptions"][0]["timeleft"].as_i64().unwrap()));
    err(
        &seller(&cp, &key, "type=userdata&appname=MyApp&user=nobody").await,
        404,
    );
    assert_eq!(
        seller(
            &cp,
            &key,
            "type=extend&appname=MyApp&user=alice&sub=default&expiry=5"
        )
        .await
        .status,
        200
    );
    let d = seller(&cp, &key, "type=userdata&appname=MyApp&user=alice").await;
    assert!(
        (14..=15).contains(&d.body["subscriptions"][0]["timeleft"].as_i64().unwrap()),
        "{}",
        d.body
    );
    assert_eq!(
        seller(
            &cp,
            &key,
            "type=subtract&appname=MyApp&user=alice&seconds=86400"
        )
        .await
        .status,
        200
    );
    err(
        &seller(&cp, &key, "type=subtract&appname=MyApp&user=alice").await,
        400,
    );
    assert_eq!(
        seller(
            &cp,
            &key,
            "type=setvar&appname=MyApp&user=alice&var=rank&data=gold"
        )
        .await
        .status,
        200
    );
    let g = seller(&cp, &key, "type=getvar&appname=MyApp&user=alice&var=rank").await;
    assert_eq!(g.body["response"], "gold");
    err(
        &seller(&cp, &key, "type=getvar&appname=MyApp&user=alice&var=none").await,
        404,
    );
    for t in ["banuser&reason=chargeback", "unbanuser", "resetuser"] {
        assert_eq!(
            seller(&cp, &key, &format!("type={t}&appname=MyApp&user=alice"))
                .await
                .status,
            200,
            "{t}"
        );
    }
    let all = seller(&cp, &key, "type=fetchallusers&appname=MyApp").await;
    assert_eq!(all.body["users"].as_array().unwrap().len(), 2);
    c.execute("UPDATE user_subscriptions SET expires_at = now() - interval '1 day' WHERE user_id = (SELECT id FROM app_users WHERE username = 'bob')", &[]).await.unwrap();
    assert_eq!(
        seller(&cp, &key, "type=delexpusers&appname=MyApp")
            .await
            .body["deleted"],
        1
    );
    assert_eq!(
        seller(&cp, &key, "type=deleteuser&appname=MyApp&user=alice")
            .await
            .status,
        200
    );
    err(
        &seller(&cp, &key, "type=deleteuser&appname=MyApp&user=alice").await,
        404,
    );
}

#[tokio::test]
async fn resetapp_keeps_the_app_and_nothing_else() {
    let cp = Cp::start().await;
    let (jwt, _) = register(&cp, "vendor").await;
    let app = cp
        .call(
            Method::POST,
            "/api/dashboard/apps",
            Some(&jwt),
            Some(json!({"name": "MyApp", "version": "3.1"})),
        )
        .await;
    let app = app.body["application"]["id"].as_str().unwrap().to_string();
    let key = seller_key(&cp, &jwt).await;
    seller(&cp, &key, "type=add&appname=MyApp&amount=4").await;
    seller(&cp, &key, "type=adduser&appname=MyApp&user=alice").await;
    seller(
        &cp,
        &key,
        "type=setvar&appname=MyApp&user=alice&var=a&data=b",
    )
    .await;
    let j = Some(jwt.as_str());
    cp.call(
        Method::POST,
        &format!("/api/dashboard/variables/{app}/global"),
        j,
        Some(json!({"key": "k", "value": "v"})),
    )
    .await;
    cp.call(
        Method::POST,
        &format!("/api/dashboard/blacklist/{app}"),
        j,
        Some(json!({"type": "hwid", "value": "X"})),
    )
    .await;
    let c = cp.db.client().await;
    let app_uuid: uuid::Uuid = app.parse().unwrap();
    let account: uuid::Uuid = c
        .query_one("SELECT account_id FROM apps WHERE id = $1", &[&app_uuid])
        .await
        .unwrap()
        .get(0);
    keyward_shared::store::client_logs::append(&c, account, app_uuid, "log", None, None, Some("x"))
        .await
        .unwrap();

    let r = seller(&cp, &key, "type=resetapp&appname=MyApp").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let counts = c
        .query_one(
            "SELECT (SELECT count(*) FROM apps WHERE id = $1), (SELECT count(*) FROM app_users WHERE app_id = $1),
                    (SELECT count(*) FROM licenses WHERE app_id = $1), (SELECT count(*) FROM client_logs WHERE app_id = $1),
                    (SELECT count(*) FROM app_vars WHERE app_id = $1), (SELECT count(*) FROM user_vars),
                    (SELECT count(*) FROM blacklist WHERE app_id = $1), (SELECT count(*) FROM sessions WHERE app_id = $1)",
            &[&app_uuid],
        )
        .await
        .unwrap();
    let n: Vec<i64> = (0..8).map(|i| counts.get(i)).collect();
    assert_eq!(n, vec![1, 0, 0, 0, 0, 0, 0, 0]);
    let got = cp
        .call(Method::GET, &format!("/api/dashboard/apps/{app}"), j, None)
        .await;
    assert_eq!(got.body["application"]["version"], "3.1");
}

#[tokio::test]
async fn one_account_touches_nothing_of_another() {
    let cp = Cp::start().await;
    let (a, _) = register(&cp, "alice").await;
    let (b, _) = register(&cp, "bobby").await;
    let app = cp
        .call(
            Method::POST,
            "/api/dashboard/apps",
            Some(&a),
            Some(json!({"name": "Shared Name"})),
        )
        .await;
    let app = app.body["application"]["id"].as_str().unwrap().to_string();
    let lic = cp
        .call(
            Method::POST,
            &format!("/api/dashboard/licenses/{app}"),
            Some(&a),
            Some(json!({"count": 1})),
        )
        .await;
    let lid = lic.body["licenses"][0]["id"].as_str().unwrap().to_string();
    let lkey = lic.body["licenses"][0]["license_key"]
        .as_str()
        .unwrap()
        .to_string();
    let user = cp
        .call(
            Method::POST,
            &format!("/api/dashboard/users/{app}"),
            Some(&a),
            Some(json!({"username": "p", "password": "pw"})),
        )
        .await;
    let uid = user.body["user"]["id"].as_str().unwrap().to_string();
    let sid = cp
        .call(
            Method::GET,
            &format!("/api/dashboard/subscriptions/{app}"),
            Some(&a),
            None,
        )
        .await
        .body["subscriptions"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a_seller = seller_key(&cp, &a).await;
    let a_keys = cp
        .call(Method::GET, "/api/dashboard/seller-keys", Some(&a), None)
        .await;
    let a_key_id = a_keys.body["keys"][0]["id"].as_str().unwrap().to_string();

    let j = Some(b.as_str());
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/dashboard/apps/{app}"), None),
        (
            Method::PUT,
            format!("/api/dashboard/apps/{app}"),
            Some(json!({"paused": true})),
        ),
        (
            Method::POST,
            format!("/api/dashboard/apps/{app}/reset-secret"),
            None,
        ),
        (Method::DELETE, format!("/api/dashboard/apps/{app}"), None),
        (Method::GET, format!("/api/dashboard/licenses/{app}"), None),
        (
            Method::POST,
            format!("/api/dashboard/licenses/{app}"),
            Some(json!({"count": 1})),
        ),
        (
            Method::POST,
            format!("/api/dashboard/licenses/{app}/{lid}/ban"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/dashboard/licenses/{app}/{lid}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/dashboard/licenses/{app}/unused/all"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/dashboard/licenses/{app}/used/all"),
            None,
        ),
        (Method::GET, format!("/api/dashboard/users/{app}"), None),
        (
            Method::GET,
            format!("/api/dashboard/users/{app}/{uid}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/dashboard/users/{app}"),
            Some(json!({"username": "x", "password": "y"})),
        ),
        (
            Method::POST,
            format!("/api/dashboard/users/{app}/{uid}/ban"),
            None,
        ),
        (
            Method::POST,
            format!("/api/dashboard/users/{app}/{uid}/extend"),
            Some(json!({"days": 1})),
        ),
        (
            Method::DELETE,
            format!("/api/dashboard/users/{app}/{uid}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/dashboard/users/{app}/all/users"),
            None,
        ),
        (
            Method::GET,
            format!("/api/dashboard/subscriptions/{app}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/dashboard/subscriptions/{app}/{sid}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/dashboard/variables/{app}/global"),
            None,
        ),
        (
            Method::POST,
            format!("/api/dashboard/variables/{app}/global"),
            Some(json!({"key": "k"})),
        ),
        (
            Method::POST,
            format!("/api/dashboard/variables/{app}/user"),
            Some(json!({"user_id": uid, "key": "k"})),
        ),
        (Method::GET, format!("/api/dashboard/webhooks/{app}"), None),
        (
            Method::POST,
            format!("/api/dashboard/webhooks/{app}"),
            Some(json!({"name": "n", "url": "https://example.com"})),
        ),
        (Method::GET, format!("/api/dashboard/blacklist/{app}"), None),
        (
            Method::POST,
            format!("/api/dashboard/blacklist/{app}"),
            Some(json!({"type": "ip", "value": "1.2.3.4"})),
        ),
        (Method::GET, format!("/api/dashboard/logs/{app}"), None),
        (Method::DELETE, format!("/api/dashboard/logs/{app}"), None),
        (
            Method::DELETE,
            format!("/api/dashboard/seller-keys/{a_key_id}"),
            None,
        ),
    ];
    for (method, path, body) in &attempts {
        let r = cp.call(method.clone(), path, j, body.clone()).await;
        err(&r, 404);
    }
    // Bob's seller key cannot address Alice's app, even by the same name.
    let b_seller = seller_key(&cp, &b).await;
    for q in [
        "type=fetchallkeys",
        "type=add",
        &format!("type=verify&key={lkey}"),
        &format!("type=del&key={lkey}"),
        "type=resetapp",
        "type=userdata&user=p",
    ] {
        err(
            &seller(&cp, &b_seller, &format!("{q}&appname=Shared%20Name")).await,
            404,
        );
    }
    // Everything of Alice's is intact.
    assert_eq!(
        seller(
            &cp,
            &a_seller,
            &format!("type=verify&appname=Shared%20Name&key={lkey}")
        )
        .await
        .body["license"]["status"],
        "active"
    );
    assert_eq!(
        seller(&cp, &a_seller, "type=userdata&appname=Shared%20Name&user=p")
            .await
            .status,
        200
    );
    assert_eq!(
        cp.call(
            Method::GET,
            &format!("/api/dashboard/apps/{app}"),
            Some(&a),
            None
        )
        .await
        .body["application"]["paused"],
        0
    );
}

#[tokio::test]
async fn malformed_input_on_compat_routes_is_a_4xx_never_a_500() {
    let cp = Cp::start().await;
    let (jwt, _) = register(&cp, "vendor").await;
    let app = cp
        .call(
            Method::POST,
            "/api/dashboard/apps",
            Some(&jwt),
            Some(json!({"name": "A"})),
        )
        .await;
    let app = app.body["application"]["id"].as_str().unwrap().to_string();
    let user = cp
        .call(
            Method::POST,
            &format!("/api/dashboard/users/{app}"),
            Some(&jwt),
            Some(json!({"username": "p", "password": "pw"})),
        )
        .await;
    let uid = user.body["user"]["id"].as_str().unwrap().to_string();
    let json_routes: Vec<(Method, String)> = vec![
        (Method::POST, "/api/auth/register".into()),
        (Method::POST, "/api/auth/login".into()),
        (Method::PUT, "/api/dashboard/auth/password".into()),
        (Method::POST, "/api/dashboard/apps".into()),
        (Method::PUT, format!("/api/dashboard/apps/{app}")),
        (Method::POST, format!("/api/dashboard/licenses/{app}")),
        (Method::POST, format!("/api/dashboard/users/{app}")),
        (
            Method::POST,
            format!("/api/dashboard/users/{app}/{uid}/ban"),
        ),
        (
            Method::POST,
            format!("/api/dashboard/users/{app}/{uid}/extend"),
        ),
        (Method::POST, format!("/api/dashboard/subscriptions/{app}")),
        (
            Method::POST,
            format!("/api/dashboard/variables/{app}/global"),
        ),
        (Method::POST, format!("/api/dashboard/variables/{app}/user")),
        (Method::POST, format!("/api/dashboard/webhooks/{app}")),
        (Method::POST, format!("/api/dashboard/blacklist/{app}")),
        (Method::POST, "/api/dashboard/seller-keys".into()),
    ];
    let huge = vec![b'x'; 2 * 1024 * 1024];
    for (method, path) in &json_routes {
        for (body, status) in [
            (b"{".to_vec(), 400),
            (b"[1]".to_vec(), 400),
            (vec![0xff, 0xfe], 400),
            (br#"{"name": 1, "username": 2, "days": "x", "count": "x", "key": 3, "type": 4, "current_password": 5}"#.to_vec(), 400),
            (br#"{"unexpected_field": true}"#.to_vec(), 400),
            (huge.clone(), 413),
        ] {
            let r = cp.raw(method.clone(), path, Some(&jwt), Some("application/json"), body).await;
            assert_eq!(r.status, status, "{method} {path}: {}", r.body);
            assert_eq!(r.body["success"], false, "{method} {path}");
        }
    }
    // Hostile values through the seller API's query string.
    let key = seller_key(&cp, &jwt).await;
    for q in [
        "type=add&appname=A&expiry=-5",
        "type=add&appname=A&expiry=99999999999999999999",
        "type=add&appname=A&level=99999999999",
        "type=add&appname=A&mask=%00%00",
        "type=adduser&appname=A&user=%01bad",
        "type=extend&appname=A&user=p&expiry=0",
        "type=subtract&appname=A&user=p&seconds=-1",
        "type=setvar&appname=A&user=p&var=",
    ] {
        let r = seller(&cp, &key, q).await;
        assert!(
            (400..500).contains(&r.status),
            "{q}: {} {}",
            r.status,
            r.body
        );
    }
}

#[tokio::test]
async fn expired_or_forged_tokens_are_401() {
    const SECRET: &str = "a test secret that is at least thirty-two bytes long";
    let cp = Cp::start_with(|cfg| cfg.jwt_secret = Some(SECRET.into())).await;
    let (jwt, _) = register(&cp, "vendor").await;
    assert_eq!(
        cp.call(Method::GET, "/api/dashboard/apps", Some(&jwt), None)
            .await
            .status,
        200
    );
    let me = cp.call(Method::GET, "/v1/account", Some(&jwt), None).await;
    let sub = me.body["id"].as_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    let sign = |secret: &str, exp: i64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub": sub, "username": "vendor", "iat": now - 100_000, "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let fresh = sign(SECRET, now + 3600);
    assert_eq!(
        cp.call(Method::GET, "/api/dashboard/apps", Some(&fresh), None)
            .await
            .status,
        200
    );
    for (what, token) in [
        ("expired", sign(SECRET, now - 3600)),
        (
            "forged",
            sign("some other secret of enough length!!", now + 3600),
        ),
    ] {
        let r = cp
            .call(Method::GET, "/api/dashboard/apps", Some(&token), None)
            .await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert_eq!(r.body["success"], false);
    }
}

//! KeyAuth's data over the native API (`/v1`): end users (create, list in keyset pages, change,
//! ban, reset the HWID, extend and shorten subscriptions, delete), their variables, subscription
//! tiers, global variables, client sessions (list, kill), client logs and seller keys; and which
//! apps sign with which 1.3 key. Over HTTP against a real PostgreSQL; the invalidations that tell
//! validators are observed on the notification channel itself.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use keyward_shared::invalidation::Invalidation;
use keyward_shared::store::{client_logs, sessions, signing_keys};
use keyward_shared::write::{Actor, WriteTx};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use uuid::Uuid;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no string {k} in {v}"))
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .expect("RFC 3339")
}

/// Waits (up to 5 s) for a notification carrying `want`; earlier ones are skipped.
async fn notified(rx: &mut UnboundedReceiver<Vec<Invalidation>>, want: Invalidation) {
    notified_all(rx, vec![want]).await
}

/// Waits (up to 5 s) until notifications have carried every one of `wants`.
async fn notified_all(rx: &mut UnboundedReceiver<Vec<Invalidation>>, mut wants: Vec<Invalidation>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !wants.is_empty() {
        let got = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no notification of {wants:?} within 5 s"))
            .expect("the listener is alive");
        wants.retain(|w| !got.contains(w));
    }
}

fn user_inv(app: &str, username: &str) -> Invalidation {
    Invalidation::User {
        app: app.parse().unwrap(),
        username: username.into(),
    }
}

async fn account_id(cp: &Cp, jwt: &str) -> Uuid {
    s(&cp.ok(Method::GET, "/v1/account", jwt, None).await, "id")
        .parse()
        .unwrap()
}

async fn new_user(cp: &Cp, jwt: &str, app: &str, body: Value) -> Value {
    let r = cp
        .call(
            Method::POST,
            &format!("/v1/apps/{app}/users"),
            Some(jwt),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

/// A 4xx whose message names what is wrong.
async fn refused(
    cp: &Cp,
    jwt: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    says: &str,
) {
    let r = cp.call(method.clone(), path, Some(jwt), body).await;
    assert_eq!(r.status, status, "{method} {path} → {}", r.body);
    let m = r.body["message"].as_str().unwrap_or("");
    assert!(
        m.contains(says),
        "{method} {path}: '{m}' should say '{says}'"
    );
}

#[tokio::test]
async fn end_users_are_created_searched_and_paged() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let app = cp.app(&jwt, "Tool").await;
    let users = format!("/v1/apps/{app}/users");
    cp.ok(
        Method::POST,
        &format!("/v1/apps/{app}/subscriptions"),
        &jwt,
        Some(json!({"name": "Premium", "level": 3, "duration_days": 10})),
    )
    .await;

    let before = Utc::now();
    let neo = new_user(
        &cp,
        &jwt,
        &app,
        json!({"username": "neo", "password": "red pill", "email": "neo@example.com", "subscription": "Premium"}),
    )
    .await;
    assert_eq!(neo["username"], "neo");
    assert_eq!(neo["email"], "neo@example.com");
    assert_eq!(neo["banned"], false);
    assert!(neo.get("password_hash").is_none(), "{neo}");
    let subs = neo["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{neo}");
    assert_eq!(
        (&subs[0]["name"], &subs[0]["level"]),
        (&json!("Premium"), &json!(3))
    );
    let expiry = at(&subs[0]["expires_at"]);
    let ten_days = chrono::Duration::days(10);
    assert!(
        expiry >= before + ten_days && expiry <= Utc::now() + ten_days,
        "{expiry}"
    );
    assert_eq!(at(&neo["expires_at"]), expiry);
    // Without a tier named, the app's lowest: the `default` tier every app has.
    let trinity = new_user(
        &cp,
        &jwt,
        &app,
        json!({"username": "trinity", "password": "x", "days": 2}),
    )
    .await;
    assert_eq!(trinity["subscriptions"][0]["name"], "default");
    let morpheus = new_user(
        &cp,
        &jwt,
        &app,
        json!({"username": "morpheus", "password": "x", "email": "captain@nebuchadnezzar.example"}),
    )
    .await;

    // Bad input names what is wrong; nothing is made.
    refused(
        &cp,
        &jwt,
        Method::POST,
        &users,
        Some(json!({"username": "neo", "password": "x"})),
        409,
        "already exists",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &users,
        Some(json!({"username": "  ", "password": "x"})),
        400,
        "username",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &users,
        Some(json!({"username": "a", "password": ""})),
        400,
        "password",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &users,
        Some(json!({"username": "a", "password": "x", "days": 0})),
        400,
        "days",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &users,
        Some(json!({"username": "a", "password": "x", "subscription": ""})),
        400,
        "subscription",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &users,
        Some(json!({"username": "a", "password": "x", "admin": true})),
        400,
        "admin",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::GET,
        &format!("{users}?cursor=nonsense"),
        None,
        400,
        "cursor",
    )
    .await;

    // Newest first, two to a page, every user once.
    let p1 = cp
        .ok(Method::GET, &format!("{users}?limit=2"), &jwt, None)
        .await;
    let ids = |p: &Value| -> Vec<String> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| s(u, "id").to_string())
            .collect()
    };
    assert_eq!(ids(&p1), vec![s(&morpheus, "id"), s(&trinity, "id")]);
    assert!(
        p1["items"][0].get("variables").is_none(),
        "lists carry no variables"
    );
    let cursor = s(&p1, "next_cursor");
    let p2 = cp
        .ok(
            Method::GET,
            &format!("{users}?limit=2&cursor={cursor}"),
            &jwt,
            None,
        )
        .await;
    assert_eq!(ids(&p2), vec![s(&neo, "id")]);
    assert_eq!(p2["next_cursor"], Value::Null);

    // Search: username, e-mail.
    for (q, who) in [("TRIN", &trinity), ("nebuchadnezzar", &morpheus)] {
        let found = cp
            .ok(Method::GET, &format!("{users}?search={q}"), &jwt, None)
            .await;
        assert_eq!(ids(&found), vec![s(who, "id")], "search {q}");
    }

    // The user alone: subscriptions and (no) variables.
    let one = cp
        .ok(
            Method::GET,
            &format!("/v1/users/{}", s(&neo, "id")),
            &jwt,
            None,
        )
        .await;
    assert_eq!(one["subscriptions"], neo["subscriptions"]);
    assert_eq!(one["variables"], json!([]));

    // Another tenant reaches none of it.
    let bob = cp.admin("bob").await;
    let user = format!("/v1/users/{}", s(&neo, "id"));
    cp.all_not_found(
        &bob,
        vec![
            (Method::GET, users.clone(), None),
            (
                Method::POST,
                users.clone(),
                Some(json!({"username": "x", "password": "x"})),
            ),
            (Method::DELETE, format!("{users}?which=all"), None),
            (Method::GET, user.clone(), None),
            (
                Method::PATCH,
                user.clone(),
                Some(json!({"email": "bob@example.com"})),
            ),
            (
                Method::POST,
                format!("{user}/ban"),
                Some(json!({"reason": "bob"})),
            ),
            (Method::POST, format!("{user}/unban"), None),
            (Method::POST, format!("{user}/reset-hwid"), None),
            (
                Method::POST,
                format!("{user}/extend"),
                Some(json!({"days": 1})),
            ),
            (
                Method::POST,
                format!("{user}/subtract"),
                Some(json!({"days": 1})),
            ),
            (Method::GET, format!("{user}/variables"), None),
            (
                Method::PUT,
                format!("{user}/variables"),
                Some(json!({"key": "k", "value": "v"})),
            ),
            (Method::DELETE, user.clone(), None),
        ],
    )
    .await;
    let still = cp.ok(Method::GET, &user, &jwt, None).await;
    assert_eq!(
        (&still["banned"], &still["email"]),
        (&json!(false), &json!("neo@example.com"))
    );
    // An account user (a customer) is no end user.
    let customer = cp
        .ok(
            Method::POST,
            "/v1/customers",
            &jwt,
            Some(json!({"email": "c@example.com"})),
        )
        .await;
    cp.all_not_found(
        &jwt,
        vec![(
            Method::GET,
            format!("/v1/users/{}", s(&customer, "id")),
            None,
        )],
    )
    .await;
}

#[tokio::test]
async fn end_user_changes_reach_the_validators_and_the_audit_log() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let app = cp.app(&jwt, "Tool").await;
    cp.ok(
        Method::POST,
        &format!("/v1/apps/{app}/subscriptions"),
        &jwt,
        Some(json!({"name": "Premium", "level": 3, "duration_days": 10})),
    )
    .await;
    let u = new_user(
        &cp,
        &jwt,
        &app,
        json!({"username": "neo", "password": "red pill", "subscription": "Premium"}),
    )
    .await;
    let user = format!("/v1/users/{}", s(&u, "id"));
    let (_conn, mut rx) = listening(&cp).await;
    let db = cp.db.client().await;
    let hash_of = |id: String| {
        let db = &db;
        async move {
            let id: Uuid = id.parse().unwrap();
            let h: String = db
                .query_one("SELECT password_hash FROM app_users WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get(0);
            h
        }
    };

    // PATCH: e-mail, password and name together; the old and new names are both dropped.
    let changed = cp
        .ok(
            Method::PATCH,
            &user,
            &jwt,
            Some(json!({"email": "the.one@example.com", "password": "blue pill", "username": "thomas"})),
        )
        .await;
    assert_eq!(
        (&changed["username"], &changed["email"]),
        (&json!("thomas"), &json!("the.one@example.com"))
    );
    notified(&mut rx, user_inv(&app, "neo")).await;
    let h = hash_of(s(&u, "id").to_string()).await;
    assert!(keyward_shared::secrets::verify_password("blue pill", &h));
    assert!(!keyward_shared::secrets::verify_password("red pill", &h));
    let cleared = cp
        .ok(Method::PATCH, &user, &jwt, Some(json!({"email": null})))
        .await;
    assert_eq!(cleared["email"], Value::Null);
    refused(
        &cp,
        &jwt,
        Method::PATCH,
        &user,
        Some(json!({"password": ""})),
        400,
        "password",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::PATCH,
        &user,
        Some(json!({"email": "e".repeat(300)})),
        400,
        "email",
    )
    .await;
    // A taken name is refused; the user keeps its own.
    new_user(
        &cp,
        &jwt,
        &app,
        json!({"username": "agent", "password": "x"}),
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::PATCH,
        &user,
        Some(json!({"username": "agent"})),
        409,
        "already",
    )
    .await;
    assert_eq!(
        cp.ok(Method::GET, &user, &jwt, None).await["username"],
        "thomas"
    );

    // Ban with a reason, unban.
    let banned = cp
        .ok(
            Method::POST,
            &format!("{user}/ban"),
            &jwt,
            Some(json!({"reason": "glitch in the matrix"})),
        )
        .await;
    assert_eq!(
        (&banned["banned"], &banned["ban_reason"]),
        (&json!(true), &json!("glitch in the matrix"))
    );
    notified(&mut rx, user_inv(&app, "thomas")).await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &format!("{user}/ban"),
        Some(json!({"reason": "r".repeat(501)})),
        400,
        "reason",
    )
    .await;
    let unbanned = cp
        .ok(Method::POST, &format!("{user}/unban"), &jwt, None)
        .await;
    assert_eq!(
        (&unbanned["banned"], &unbanned["ban_reason"]),
        (&json!(false), &Value::Null)
    );
    notified(&mut rx, user_inv(&app, "thomas")).await;

    // A login bound a HWID (as the validator does); the reset frees it.
    db.execute(
        "UPDATE app_users SET hwid = 'HWID-1' WHERE id = $1",
        &[&s(&u, "id").parse::<Uuid>().unwrap()],
    )
    .await
    .unwrap();
    assert_eq!(
        cp.ok(Method::GET, &user, &jwt, None).await["hwid"],
        "HWID-1"
    );
    let reset = cp
        .ok(Method::POST, &format!("{user}/reset-hwid"), &jwt, None)
        .await;
    assert_eq!(reset["hwid"], Value::Null);
    notified(&mut rx, user_inv(&app, "thomas")).await;

    // Extend by days, take off days or seconds.
    let expiry = |v: &Value| at(&v["subscriptions"][0]["expires_at"]);
    let start = expiry(&reset);
    let longer = cp
        .ok(
            Method::POST,
            &format!("{user}/extend"),
            &jwt,
            Some(json!({"days": 5, "subscription": "Premium"})),
        )
        .await;
    assert_eq!(expiry(&longer) - start, chrono::Duration::days(5));
    let shorter = cp
        .ok(
            Method::POST,
            &format!("{user}/subtract"),
            &jwt,
            Some(json!({"days": 2})),
        )
        .await;
    assert_eq!(expiry(&shorter) - start, chrono::Duration::days(3));
    let shorter = cp
        .ok(
            Method::POST,
            &format!("{user}/subtract"),
            &jwt,
            Some(json!({"seconds": 3600})),
        )
        .await;
    assert_eq!(
        expiry(&shorter) - start,
        chrono::Duration::days(3) - chrono::Duration::hours(1)
    );
    notified(&mut rx, user_inv(&app, "thomas")).await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &format!("{user}/extend"),
        Some(json!({"days": 0})),
        400,
        "days",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &format!("{user}/extend"),
        Some(json!({})),
        400,
        "days",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &format!("{user}/subtract"),
        Some(json!({"days": 1, "seconds": 1})),
        400,
        "exactly one",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &format!("{user}/subtract"),
        Some(json!({})),
        400,
        "exactly one",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &format!("{user}/subtract"),
        Some(json!({"days": 1, "subscription": "Gold"})),
        404,
        "subscription",
    )
    .await;
    assert_eq!(
        expiry(&cp.ok(Method::GET, &user, &jwt, None).await),
        expiry(&shorter)
    );

    // Every write is in the audit log, as the caller.
    let audit = cp
        .ok(
            Method::GET,
            "/v1/audit-log?action=user.&limit=100",
            &jwt,
            None,
        )
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(e, "action"))
        .collect();
    for a in [
        "user.create",
        "user.rename",
        "user.set_password",
        "user.set_email",
        "user.ban",
        "user.unban",
        "user.reset_hwid",
        "user.extend",
        "user.subtract",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }

    // Delete: gone for good, validators told.
    let r = cp.call(Method::DELETE, &user, Some(&jwt), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    notified(&mut rx, user_inv(&app, "thomas")).await;
    cp.all_not_found(
        &jwt,
        vec![
            (Method::GET, user.clone(), None),
            (Method::DELETE, user.clone(), None),
        ],
    )
    .await;
}

#[tokio::test]
async fn expired_users_are_deleted_in_bulk() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let app = cp.app(&jwt, "Tool").await;
    let users = format!("/v1/apps/{app}/users");
    let gone = new_user(
        &cp,
        &jwt,
        &app,
        json!({"username": "old", "password": "x", "days": 1}),
    )
    .await;
    cp.ok(
        Method::POST,
        &format!("/v1/users/{}/subtract", s(&gone, "id")),
        &jwt,
        Some(json!({"days": 2})),
    )
    .await;
    new_user(
        &cp,
        &jwt,
        &app,
        json!({"username": "current", "password": "x"}),
    )
    .await;
    refused(&cp, &jwt, Method::DELETE, &users, None, 400, "which").await;
    refused(
        &cp,
        &jwt,
        Method::DELETE,
        &format!("{users}?which=some"),
        None,
        400,
        "which",
    )
    .await;
    let r = cp
        .ok(
            Method::DELETE,
            &format!("{users}?which=expired"),
            &jwt,
            None,
        )
        .await;
    assert_eq!(r["deleted"], 1);
    let left = cp.ok(Method::GET, &users, &jwt, None).await;
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
    assert_eq!(left["items"][0]["username"], "current");
    let r = cp
        .ok(Method::DELETE, &format!("{users}?which=all"), &jwt, None)
        .await;
    assert_eq!(r["deleted"], 1);
}

#[tokio::test]
async fn user_variables_are_set_listed_and_deleted() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let app = cp.app(&jwt, "Tool").await;
    let neo = new_user(&cp, &jwt, &app, json!({"username": "neo", "password": "x"})).await;
    let smith = new_user(
        &cp,
        &jwt,
        &app,
        json!({"username": "smith", "password": "x"}),
    )
    .await;
    let vars = format!("/v1/users/{}/variables", s(&neo, "id"));
    let (_conn, mut rx) = listening(&cp).await;

    let v1 = cp
        .ok(
            Method::PUT,
            &vars,
            &jwt,
            Some(json!({"key": "rank", "value": "one"})),
        )
        .await;
    notified(&mut rx, user_inv(&app, "neo")).await;
    let v2 = cp
        .ok(
            Method::PUT,
            &vars,
            &jwt,
            Some(json!({"key": "rank", "value": "the one"})),
        )
        .await;
    assert_eq!(v1["id"], v2["id"], "set replaces by key");
    assert_eq!(
        (&v2["value"], &v2["user_id"]),
        (&json!("the one"), &neo["id"])
    );
    cp.ok(
        Method::PUT,
        &vars,
        &jwt,
        Some(json!({"key": "ship", "value": ""})),
    )
    .await;
    let list = cp.ok(Method::GET, &vars, &jwt, None).await;
    let keys: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| s(v, "key"))
        .collect();
    assert_eq!(keys, ["rank", "ship"]);
    let alone = cp
        .ok(
            Method::GET,
            &format!("/v1/users/{}", s(&neo, "id")),
            &jwt,
            None,
        )
        .await;
    assert_eq!(alone["variables"], list["items"]);

    refused(
        &cp,
        &jwt,
        Method::PUT,
        &vars,
        Some(json!({"key": " ", "value": "x"})),
        400,
        "key",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::PUT,
        &vars,
        Some(json!({"key": "big", "value": "x".repeat(70_000)})),
        400,
        "value",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::PUT,
        &vars,
        Some(json!({"key": "k"})),
        400,
        "value",
    )
    .await;

    // Addressed through another user, a variable is not found.
    let one = format!("{vars}/{}", s(&v2, "id"));
    let wrong = format!("/v1/users/{}/variables/{}", s(&smith, "id"), s(&v2, "id"));
    cp.all_not_found(&jwt, vec![(Method::DELETE, wrong, None)])
        .await;
    let bob = cp.admin("bob").await;
    cp.all_not_found(
        &bob,
        vec![
            (Method::DELETE, one.clone(), None),
            (Method::GET, vars.clone(), None),
        ],
    )
    .await;
    let r = cp.call(Method::DELETE, &one, Some(&jwt), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    notified(&mut rx, user_inv(&app, "neo")).await;
    let list = cp.ok(Method::GET, &vars, &jwt, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    cp.all_not_found(&jwt, vec![(Method::DELETE, one, None)])
        .await;
}

#[tokio::test]
async fn subscription_tiers_are_managed() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let app = cp.app(&jwt, "Tool").await;
    let tiers = format!("/v1/apps/{app}/subscriptions");
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| s(t, "name").to_string())
            .collect()
    };
    assert_eq!(
        names(&cp.ok(Method::GET, &tiers, &jwt, None).await),
        ["default"]
    );
    let (_conn, mut rx) = listening(&cp).await;
    let r = cp
        .call(
            Method::POST,
            &tiers,
            Some(&jwt),
            Some(json!({"name": "Gold", "level": 5, "duration_days": 7})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let gold = r.body;
    notified(
        &mut rx,
        Invalidation::App {
            app: app.parse().unwrap(),
        },
    )
    .await;
    assert_eq!(
        (&gold["level"], &gold["duration_days"]),
        (&json!(5), &json!(7))
    );
    assert_eq!(
        names(&cp.ok(Method::GET, &tiers, &jwt, None).await),
        ["default", "Gold"]
    );
    refused(
        &cp,
        &jwt,
        Method::POST,
        &tiers,
        Some(json!({"name": "Gold"})),
        409,
        "already exists",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &tiers,
        Some(json!({"name": ""})),
        400,
        "name",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &tiers,
        Some(json!({"name": "x", "duration_days": 0})),
        400,
        "duration_days",
    )
    .await;

    let tier = format!("/v1/subscriptions/{}", s(&gold, "id"));
    let patched = cp
        .ok(Method::PATCH, &tier, &jwt, Some(json!({"level": 0})))
        .await;
    assert_eq!(
        (&patched["level"], &patched["duration_days"]),
        (&json!(0), &json!(7))
    );
    notified(
        &mut rx,
        Invalidation::App {
            app: app.parse().unwrap(),
        },
    )
    .await;
    assert_eq!(
        names(&cp.ok(Method::GET, &tiers, &jwt, None).await),
        ["Gold", "default"]
    );
    refused(
        &cp,
        &jwt,
        Method::PATCH,
        &tier,
        Some(json!({"level": -1})),
        400,
        "level",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::PATCH,
        &tier,
        Some(json!({"duration_days": 40000})),
        400,
        "duration_days",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::PATCH,
        &tier,
        Some(json!({"name": "Platinum"})),
        400,
        "name",
    )
    .await;
    assert_eq!(cp.ok(Method::GET, &tier, &jwt, None).await, patched);

    let bob = cp.admin("bob").await;
    cp.all_not_found(
        &bob,
        vec![
            (Method::GET, tiers.clone(), None),
            (Method::POST, tiers.clone(), Some(json!({"name": "Bob"}))),
            (Method::GET, tier.clone(), None),
            (Method::PATCH, tier.clone(), Some(json!({"level": 9}))),
            (Method::DELETE, tier.clone(), None),
        ],
    )
    .await;
    let r = cp.call(Method::DELETE, &tier, Some(&jwt), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    cp.all_not_found(
        &jwt,
        vec![
            (Method::GET, tier.clone(), None),
            (Method::DELETE, tier, None),
        ],
    )
    .await;
    assert_eq!(
        names(&cp.ok(Method::GET, &tiers, &jwt, None).await),
        ["default"]
    );
}

#[tokio::test]
async fn global_variables_are_upserted_and_deleted() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let app = cp.app(&jwt, "Tool").await;
    let vars = format!("/v1/apps/{app}/variables");
    let (_conn, mut rx) = listening(&cp).await;
    let v1 = cp
        .ok(
            Method::POST,
            &vars,
            &jwt,
            Some(json!({"key": "motd", "value": "hello"})),
        )
        .await;
    notified(
        &mut rx,
        Invalidation::Vars {
            app: app.parse().unwrap(),
        },
    )
    .await;
    let v2 = cp
        .ok(
            Method::POST,
            &vars,
            &jwt,
            Some(json!({"key": "motd", "value": "hello again"})),
        )
        .await;
    assert_eq!(v1["id"], v2["id"]);
    assert!(v2.get("user_id").is_none(), "{v2}");
    cp.ok(
        Method::POST,
        &vars,
        &jwt,
        Some(json!({"key": "download", "value": "https://example.com"})),
    )
    .await;
    let list = cp.ok(Method::GET, &vars, &jwt, None).await;
    let kv: Vec<(&str, &str)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (s(v, "key"), s(v, "value")))
        .collect();
    assert_eq!(
        kv,
        [("download", "https://example.com"), ("motd", "hello again")]
    );
    refused(
        &cp,
        &jwt,
        Method::POST,
        &vars,
        Some(json!({"key": "", "value": "x"})),
        400,
        "key",
    )
    .await;
    refused(
        &cp,
        &jwt,
        Method::POST,
        &vars,
        Some(json!({"key": "k", "value": 1})),
        400,
        "value",
    )
    .await;

    let one = format!("/v1/variables/{}", s(&v2, "id"));
    let bob = cp.admin("bob").await;
    cp.all_not_found(
        &bob,
        vec![
            (Method::GET, vars.clone(), None),
            (
                Method::POST,
                vars.clone(),
                Some(json!({"key": "motd", "value": "bob"})),
            ),
            (Method::DELETE, one.clone(), None),
        ],
    )
    .await;
    let r = cp.call(Method::DELETE, &one, Some(&jwt), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    notified(
        &mut rx,
        Invalidation::Vars {
            app: app.parse().unwrap(),
        },
    )
    .await;
    cp.all_not_found(&jwt, vec![(Method::DELETE, one, None)])
        .await;
    let list = cp.ok(Method::GET, &vars, &jwt, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // A user's variable is no global one.
    let neo = new_user(&cp, &jwt, &app, json!({"username": "neo", "password": "x"})).await;
    let uv = cp
        .ok(
            Method::PUT,
            &format!("/v1/users/{}/variables", s(&neo, "id")),
            &jwt,
            Some(json!({"key": "k", "value": "v"})),
        )
        .await;
    cp.all_not_found(
        &jwt,
        vec![(
            Method::DELETE,
            format!("/v1/variables/{}", s(&uv, "id")),
            None,
        )],
    )
    .await;
}

/// A session as a validator's `init` makes it (the store's own insert).
async fn session(cp: &Cp, account: Uuid, app: &str, ip: &str) -> String {
    sessions::create(
        &cp.db.client().await,
        &sessions::NewSession {
            account_id: account,
            app_id: app.parse().unwrap(),
            ip: Some(ip),
            enckey: Some("client-enckey"),
            lifetime_secs: 3600,
        },
    )
    .await
    .expect("session")
    .id
}

#[tokio::test]
async fn sessions_are_listed_and_killed() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let account = account_id(&cp, &jwt).await;
    let app = cp.app(&jwt, "Tool").await;
    let neo = new_user(&cp, &jwt, &app, json!({"username": "neo", "password": "x"})).await;
    let a = session(&cp, account, &app, "198.51.100.1").await;
    let b = session(&cp, account, &app, "198.51.100.2").await;
    let c = session(&cp, account, &app, "198.51.100.3").await;
    // `b` logs in (as `login` does).
    let mut db = cp.db.client().await;
    let actor = Actor {
        origin: Default::default(),
        account_id: account,
        label: "validator".into(),
    };
    let mut w = WriteTx::begin(&mut db, actor).await.unwrap();
    sessions::validate(
        &mut w,
        app.parse().unwrap(),
        &b,
        s(&neo, "id").parse().unwrap(),
        "neo",
        Some("HWID-B"),
    )
    .await
    .unwrap();
    w.commit().await.unwrap();

    let list = format!("/v1/apps/{app}/sessions");
    let all = cp.ok(Method::GET, &list, &jwt, None).await;
    let items = all["items"].as_array().unwrap();
    let mut ids: Vec<&str> = items.iter().map(|x| s(x, "id")).collect();
    ids.sort();
    let mut want = vec![a.as_str(), b.as_str(), c.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert!(items.iter().all(|x| x.get("enckey").is_none()), "{all}");
    let logged = cp
        .ok(Method::GET, &format!("{list}?validated=true"), &jwt, None)
        .await;
    assert_eq!(logged["items"].as_array().unwrap().len(), 1, "{logged}");
    let one = &logged["items"][0];
    assert_eq!(
        (
            s(one, "id"),
            &one["username"],
            &one["user_id"],
            &one["hwid"],
            &one["validated"]
        ),
        (
            b.as_str(),
            &json!("neo"),
            &neo["id"],
            &json!("HWID-B"),
            &json!(true)
        )
    );
    let p1 = cp
        .ok(Method::GET, &format!("{list}?limit=2"), &jwt, None)
        .await;
    let p2 = cp
        .ok(
            Method::GET,
            &format!("{list}?limit=2&cursor={}", s(&p1, "next_cursor")),
            &jwt,
            None,
        )
        .await;
    assert_eq!(
        p1["items"].as_array().unwrap().len() + p2["items"].as_array().unwrap().len(),
        3
    );
    assert_eq!(p2["next_cursor"], Value::Null);
    refused(
        &cp,
        &jwt,
        Method::GET,
        &format!("{list}?cursor=1_a-b"),
        None,
        400,
        "cursor",
    )
    .await;

    // Another tenant can neither see nor end them.
    let bob = cp.admin("bob").await;
    cp.all_not_found(
        &bob,
        vec![
            (Method::GET, list.clone(), None),
            (Method::DELETE, list.clone(), None),
            (Method::DELETE, format!("/v1/sessions/{b}"), None),
        ],
    )
    .await;

    // Kill one: validators are told, the list no longer has it.
    let (_conn, mut rx) = listening(&cp).await;
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/sessions/{b}"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    notified(
        &mut rx,
        Invalidation::Session {
            app: app.parse().unwrap(),
            id: b.clone(),
        },
    )
    .await;
    let left = cp.ok(Method::GET, &list, &jwt, None).await;
    assert!(
        left["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["id"] != json!(b)),
        "{left}"
    );
    cp.all_not_found(
        &jwt,
        vec![(Method::DELETE, format!("/v1/sessions/{b}"), None)],
    )
    .await;

    // Kill all: each one is told.
    let r = cp.ok(Method::DELETE, &list, &jwt, None).await;
    assert_eq!(r["deleted"], 2);
    let app_id: Uuid = app.parse().unwrap();
    notified_all(
        &mut rx,
        [a, c]
            .into_iter()
            .map(|id| Invalidation::Session { app: app_id, id })
            .collect(),
    )
    .await;
    assert_eq!(
        cp.ok(Method::GET, &list, &jwt, None).await["items"],
        json!([])
    );
    let audit = cp
        .ok(
            Method::GET,
            "/v1/audit-log?action=session.&limit=10",
            &jwt,
            None,
        )
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(e, "action"))
        .collect();
    assert!(
        actions.contains(&"session.kill") && actions.contains(&"session.kill_all"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn client_logs_are_paged_filtered_and_cleared() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let account = account_id(&cp, &jwt).await;
    let app = cp.app(&jwt, "Tool").await;
    let app_id: Uuid = app.parse().unwrap();
    let db = cp.db.client().await;
    for i in 0..5 {
        let (action, user) = if i % 2 == 0 {
            ("log", "neo")
        } else {
            ("login", "smith")
        };
        client_logs::append(
            &db,
            account,
            app_id,
            action,
            Some(user),
            Some("198.51.100.7"),
            Some(&format!("line {i}")),
        )
        .await
        .unwrap();
    }
    let logs = format!("/v1/apps/{app}/logs");
    let p1 = cp
        .ok(Method::GET, &format!("{logs}?limit=2"), &jwt, None)
        .await;
    let data = |p: &Value| -> Vec<String> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| s(l, "data").to_string())
            .collect()
    };
    assert_eq!(data(&p1), ["line 4", "line 3"]);
    let p2 = cp
        .ok(
            Method::GET,
            &format!("{logs}?limit=2&cursor={}", s(&p1, "next_cursor")),
            &jwt,
            None,
        )
        .await;
    assert_eq!(data(&p2), ["line 2", "line 1"]);
    let p3 = cp
        .ok(
            Method::GET,
            &format!("{logs}?limit=2&cursor={}", s(&p2, "next_cursor")),
            &jwt,
            None,
        )
        .await;
    assert_eq!(
        (data(&p3), &p3["next_cursor"]),
        (vec!["line 0".to_string()], &Value::Null)
    );
    let only_log = cp
        .ok(Method::GET, &format!("{logs}?action=log"), &jwt, None)
        .await;
    assert_eq!(data(&only_log), ["line 4", "line 2", "line 0"]);
    let searched = cp
        .ok(Method::GET, &format!("{logs}?search=SMITH"), &jwt, None)
        .await;
    assert_eq!(data(&searched), ["line 3", "line 1"]);
    refused(
        &cp,
        &jwt,
        Method::GET,
        &format!("{logs}?cursor=-3"),
        None,
        400,
        "cursor",
    )
    .await;

    let bob = cp.admin("bob").await;
    cp.all_not_found(
        &bob,
        vec![
            (Method::GET, logs.clone(), None),
            (Method::DELETE, logs.clone(), None),
        ],
    )
    .await;
    let r = cp.ok(Method::DELETE, &logs, &jwt, None).await;
    assert_eq!(r["deleted"], 5);
    assert_eq!(
        cp.ok(Method::GET, &logs, &jwt, None).await["items"],
        json!([])
    );
    let audit = cp
        .ok(Method::GET, "/v1/audit-log?action=logs.clear", &jwt, None)
        .await;
    assert_eq!(audit["items"][0]["details"]["deleted"], 5, "{audit}");
}

#[tokio::test]
async fn seller_keys_are_shown_once_and_revoked() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    cp.app(&jwt, "Tool").await;
    let r = cp
        .call(
            Method::POST,
            "/v1/seller-keys",
            Some(&jwt),
            Some(json!({"name": "discord bot"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let made = r.body;
    let key = s(&made, "key").to_string();
    assert!(key.starts_with(s(&made, "prefix")), "{made}");
    let list = cp.ok(Method::GET, "/v1/seller-keys", &jwt, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["name"], "discord bot");
    assert!(
        !list.to_string().contains(&key),
        "the secret is shown once: {list}"
    );
    refused(
        &cp,
        &jwt,
        Method::POST,
        "/v1/seller-keys",
        Some(json!({"name": " "})),
        400,
        "name",
    )
    .await;

    // The key opens the seller API, until deleted.
    let seller = format!("/api/seller/?sellerkey={key}&type=fetchallusers&appname=Tool");
    let r = cp.call(Method::GET, &seller, None, None).await;
    assert_eq!(
        (r.status, &r.body["success"]),
        (200, &json!(true)),
        "{}",
        r.body
    );
    let one = format!("/v1/seller-keys/{}", s(&made, "id"));
    let bob = cp.admin("bob").await;
    cp.all_not_found(&bob, vec![(Method::DELETE, one.clone(), None)])
        .await;
    let mine_only = cp.ok(Method::GET, "/v1/seller-keys", &bob, None).await;
    assert_eq!(mine_only["items"], json!([]));
    let r = cp.call(Method::DELETE, &one, Some(&jwt), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(cp.call(Method::GET, &seller, None, None).await.status, 401);
    cp.all_not_found(&jwt, vec![(Method::DELETE, one, None)])
        .await;

    // Scopes: a key without api_keys:write cannot touch them.
    let ro = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &jwt,
            Some(json!({"name": "ro", "scopes": ["users:read"]})),
        )
        .await;
    let r = cp
        .call(Method::GET, "/v1/seller-keys", ro["key"].as_str(), None)
        .await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
}

#[tokio::test]
async fn scopes_guard_every_kind() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let app = cp.app(&jwt, "Tool").await;
    let neo = new_user(&cp, &jwt, &app, json!({"username": "neo", "password": "x"})).await;
    let key = |scopes: Value| {
        let cp = &cp;
        let jwt = &jwt;
        async move {
            let k = cp
                .ok(
                    Method::POST,
                    "/v1/api-keys",
                    jwt,
                    Some(json!({"name": "k", "scopes": scopes})),
                )
                .await;
            s(&k, "key").to_string()
        }
    };
    let reader = key(json!(["users:read", "apps:read", "audit:read"])).await;
    let user = format!("/v1/users/{}", s(&neo, "id"));
    for path in [
        format!("/v1/apps/{app}/users"),
        user.clone(),
        format!("/v1/apps/{app}/subscriptions"),
        format!("/v1/apps/{app}/variables"),
        format!("/v1/apps/{app}/sessions"),
        format!("/v1/apps/{app}/logs"),
    ] {
        cp.ok(Method::GET, &path, &reader, None).await;
    }
    for (method, path, body) in [
        (Method::POST, format!("{user}/ban"), Some(json!({}))),
        (Method::DELETE, format!("/v1/apps/{app}/sessions"), None),
        (
            Method::POST,
            format!("/v1/apps/{app}/variables"),
            Some(json!({"key": "k", "value": "v"})),
        ),
        (Method::DELETE, format!("/v1/apps/{app}/logs"), None),
    ] {
        let r = cp.call(method.clone(), &path, Some(&reader), body).await;
        assert_eq!((r.status, r.code()), (403, "FORBIDDEN"), "{method} {path}");
    }
    let nothing = key(json!(["licenses:read"])).await;
    let r = cp.call(Method::GET, &user, Some(&nothing), None).await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
}

#[tokio::test]
async fn signing_keys_say_which_apps_use_which_key() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let one = cp.app(&jwt, "One").await;
    let two = cp.app(&jwt, "Two").await;
    let body = cp.ok(Method::GET, "/v1/signing-keys", &jwt, None).await;
    assert_eq!(body["scope"], "deployment");
    let primary = &body["primary"];
    let used: Vec<(&str, &Value)> = primary["used_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (s(a, "app_id"), &a["pinned"]))
        .collect();
    assert_eq!(
        used,
        [(one.as_str(), &json!(false)), (two.as_str(), &json!(false))]
    );
    for a in body["apps"].as_array().unwrap() {
        assert_eq!(
            (&a["key_id"], &a["public_key"], &a["pinned"]),
            (&primary["id"], &primary["public_key"], &json!(false))
        );
    }

    // A rotation pins both apps to the old key; a new app follows the new primary.
    let old = s(primary, "id").to_string();
    let mut db = cp.db.client().await;
    signing_keys::rotate(&mut db).await.unwrap();
    let three = cp.app(&jwt, "Three").await;
    let body = cp.ok(Method::GET, "/v1/signing-keys", &jwt, None).await;
    let by_id = |id: &str| -> Value {
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == json!(id))
            .cloned()
            .unwrap()
    };
    let old_key = by_id(&old);
    let pinned: Vec<(&str, &Value)> = old_key["used_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (s(a, "app_id"), &a["pinned"]))
        .collect();
    assert_eq!(
        pinned,
        [(one.as_str(), &json!(true)), (two.as_str(), &json!(true))]
    );
    assert_eq!(old_key["apps_pinned"], 2);
    let new_used: Vec<&str> = body["primary"]["used_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| s(a, "app_id"))
        .collect();
    assert_eq!(new_used, [three.as_str()]);
    // Another tenant sees the same keys, none of these apps.
    let bob = cp.admin("bob").await;
    let theirs = cp.ok(Method::GET, "/v1/signing-keys", &bob, None).await;
    assert!(
        theirs["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["used_by"] == json!([])),
        "{theirs}"
    );
}

//! CyberLicense's admin API (`/api/license/rotate|clear`, `/api/products`, `/api/audit`) and the
//! core it needs over native REST (revoked and disabled licenses, license types, key rotation,
//! clearing, products' prefixes, audit origins), over HTTP against a real PostgreSQL.

mod common;

use std::time::Duration;

use common::*;
use keyward_shared::invalidation::Invalidation;
use keyward_shared::store::{account_users, licenses, tokens};
use keyward_shared::testing::eventually;
use keyward_shared::verdict::Activation;
use keyward_shared::write::{Actor, WriteTx};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const UA: &str = "cl-admin-test/1.0 (+https://example.com)";

/// A request with an optional bearer, JSON body and User-Agent.
async fn send(
    cp: &Cp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut req = cp
        .http
        .request(method, format!("{}{path}", cp.base))
        .header("user-agent", UA);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    into_resp(req.send().await.expect("request")).await
}

/// The answer is CyberLicense's error exactly.
#[track_caller]
fn is_error(r: &Resp, status: u16, error: &str) {
    assert_eq!(
        (r.status, &r.body),
        (status, &json!({"success": false, "error": error})),
    );
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no string {k} in {v}"))
}

async fn account_id(cp: &Cp, jwt: &str) -> Uuid {
    s(&cp.ok(Method::GET, "/v1/account", jwt, None).await, "id")
        .parse()
        .expect("account id")
}

fn actor(account_id: Uuid) -> Actor {
    Actor {
        account_id,
        label: "test".into(),
        origin: Default::default(),
    }
}

/// A customer (a user of the account) and a user token of theirs.
async fn customer(cp: &Cp, account: Uuid, email: &str) -> (Uuid, String) {
    let mut c = cp.db.client().await;
    let mut w = WriteTx::begin(&mut c, actor(account)).await.unwrap();
    let user = account_users::create(
        &mut w,
        &account_users::UserPatch {
            email: Some(email.into()),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    let (_, token) = tokens::create(&mut w, tokens::Bearer::User(user.id), None, None)
        .await
        .unwrap();
    w.commit().await.unwrap();
    (user.id, token)
}

/// Binds a HWID and records an IP as a validator's first use does.
async fn use_license(cp: &Cp, account: Uuid, id: &str, hwid: &str, ip: &str) {
    let mut c = cp.db.client().await;
    let mut w = WriteTx::begin(&mut c, actor(account)).await.unwrap();
    let done = licenses::activate(
        &mut w,
        id.parse().unwrap(),
        &Activation {
            bind_hwid: Some(hwid.into()),
            record_ip: Some(ip.parse().unwrap()),
            first_use: true,
        },
    )
    .await
    .unwrap()
    .expect("the license");
    w.commit().await.unwrap();
    assert!(done.license.has_hwid(hwid));
}

/// The six admin routes, each as (method, path, body).
fn admin_routes(key: &str, app: &str, audit_id: i64) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/api/license/rotate".into(),
            Some(json!({"key": key})),
        ),
        (
            Method::POST,
            "/api/license/clear".into(),
            Some(json!({"key": key})),
        ),
        (Method::GET, "/api/products".into(), None),
        (Method::GET, format!("/api/products/{app}"), None),
        (Method::GET, "/api/audit".into(), None),
        (Method::GET, format!("/api/audit/{audit_id}"), None),
    ]
}

async fn newest_audit_id(cp: &Cp, jwt: &str) -> i64 {
    cp.ok(Method::GET, "/v1/audit-log?limit=1", jwt, None).await["items"][0]["id"]
        .as_i64()
        .expect("an audit entry")
}

#[tokio::test]
async fn only_admins_reach_the_admin_routes() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let account = account_id(&cp, &jwt).await;
    let app = cp.app(&jwt, "Tool").await;
    let lic = cp.licenses(&jwt, &app, json!({})).await.remove(0);
    let audit_id = newest_audit_id(&cp, &jwt).await;
    let read_only = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &jwt,
            Some(json!({"name": "ro", "scopes": ["licenses:read", "audit:read", "apps:read"]})),
        )
        .await;
    let (_, user_token) = customer(&cp, account, "buyer@example.com").await;
    let routes = admin_routes(s(&lic, "key"), &app, audit_id);
    for (method, path, body) in &routes {
        for (label, token) in [
            ("no token", None),
            ("garbage", Some("garbage")),
            (
                "an unknown API key",
                Some("kw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ),
            ("an API key without the scope", Some(s(&read_only, "key"))),
            ("a customer's token", Some(user_token.as_str())),
        ] {
            let r = send(&cp, method.clone(), path, token, body.clone()).await;
            assert_eq!(r.status, 401, "{method} {path} with {label}: {}", r.body);
            is_error(&r, 401, "Unauthorized");
        }
        // The seed's curl examples send a session cookie: not a credential here.
        let r = cp
            .http
            .request(method.clone(), format!("{}{path}", cp.base))
            .header("cookie", "connect.sid=s%3Aabc.def")
            .send()
            .await
            .unwrap();
        is_error(&into_resp(r).await, 401, "Unauthorized");
    }
    // The scope (or `*`) opens them; reads only here, so the license keeps its key.
    for scopes in [json!(["cyberlicense:admin"]), json!(["*"])] {
        let k = cp
            .ok(
                Method::POST,
                "/v1/api-keys",
                &jwt,
                Some(json!({"name": "cl", "scopes": scopes})),
            )
            .await;
        for (method, path, body) in routes.iter().filter(|r| r.0 == Method::GET) {
            let r = send(&cp, method.clone(), path, Some(s(&k, "key")), body.clone()).await;
            assert_eq!(r.status, 200, "{path} with {scopes}: {}", r.body);
            assert_eq!(r.body["success"], true);
        }
    }
    // Unknown routes under the facade's prefixes answer in its shape.
    let r = send(&cp, Method::GET, "/api/products/x/y", Some(&jwt), None).await;
    is_error(&r, 404, "Not found");
    let r = send(&cp, Method::DELETE, "/api/products", Some(&jwt), None).await;
    assert_eq!(r.body["success"], false, "{}", r.body);
}

#[tokio::test]
async fn rotate_gives_a_new_key_and_the_old_one_is_gone() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let account = account_id(&cp, &jwt).await;
    let app = cp.app(&jwt, "Tool").await;
    let patched = cp
        .ok(
            Method::PATCH,
            &format!("/v1/apps/{app}"),
            &jwt,
            Some(json!({"license_prefix": "ACME"})),
        )
        .await;
    assert_eq!(patched["license_prefix"], "ACME");
    let lic = cp
        .licenses(
            &jwt,
            &app,
            json!({"hwid_limit": 2, "ip_limit": 3, "duration_days": 5, "license_type": "enterprise"}),
        )
        .await
        .remove(0);
    let (id, old) = (s(&lic, "id"), s(&lic, "key").to_string());
    use_license(&cp, account, id, "HWID-1", "192.0.2.7").await;
    let before = cp
        .ok(Method::GET, &format!("/v1/licenses/{id}"), &jwt, None)
        .await;
    let (_listener, mut inv) = listening(&cp).await;

    let r = send(
        &cp,
        Method::POST,
        "/api/license/rotate",
        Some(&jwt),
        Some(json!({"key": format!("  {old} ")})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(keys(&r.body), ["success", "oldKey", "newKey"]);
    assert_eq!(
        (&r.body["success"], s(&r.body, "oldKey")),
        (&json!(true), old.as_str())
    );
    let new = s(&r.body, "newKey").to_string();
    let (prefix, rest) = new.split_once('-').unwrap();
    assert_eq!(prefix, "ACME", "{new}");
    let parts: Vec<&str> = rest.split('-').collect();
    assert!(
        parts.len() == 2
            && parts.iter().all(|p| p.len() == 6
                && p.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())),
        "{new}"
    );
    // The old key was invalidated by the rotation's own commit.
    let got = tokio::time::timeout(Duration::from_secs(5), inv.recv())
        .await
        .expect("a notification")
        .unwrap();
    let app_id: Uuid = app.parse().unwrap();
    assert!(
        got.contains(&Invalidation::License {
            app: app_id,
            key: old.clone()
        }),
        "{got:?}"
    );

    // Only the key changed.
    let after = cp
        .ok(Method::GET, &format!("/v1/licenses/{id}"), &jwt, None)
        .await;
    assert_eq!(after["key"], new.as_str());
    for k in [
        "hwid_limit",
        "ip_limit",
        "expires_at",
        "license_type",
        "hwids",
        "ips",
        "status",
    ] {
        assert_eq!(after[k], before[k], "{k}");
    }
    assert_eq!(after["ips"], json!(["192.0.2.7"]));
    // The old key names nothing any more; the new one does.
    let again = send(
        &cp,
        Method::POST,
        "/api/license/rotate",
        Some(&jwt),
        Some(json!({"key": old})),
    )
    .await;
    is_error(&again, 404, "License not found");
    let found = cp
        .ok(
            Method::GET,
            &format!("/v1/licenses?search={old}"),
            &jwt,
            None,
        )
        .await;
    assert_eq!(found["items"], json!([]));

    // Audited with before/after, where it came from and how.
    let logs = cp
        .ok(
            Method::GET,
            &format!("/api/audit?resourceId={id}&limit=1"),
            &jwt,
            None,
        )
        .await;
    let entry = &logs["auditLogs"][0];
    assert_eq!(entry["action"], "update");
    assert_eq!(entry["resourceType"], "license");
    assert_eq!(entry["userId"], "admin:alice");
    assert_eq!(
        entry["changes"],
        json!({"before": {"key": old}, "after": {"key": new}})
    );
    assert_eq!(entry["ip"], "127.0.0.1");
    assert_eq!(entry["userAgent"], UA);
    assert_eq!(entry["success"], true);
    let native = cp
        .ok(
            Method::GET,
            &format!("/v1/audit-log?action=license.rotate&target_id={id}"),
            &jwt,
            None,
        )
        .await;
    let n = &native["items"][0];
    assert_eq!(
        (&n["ip"], &n["user_agent"], &n["success"]),
        (&json!("127.0.0.1"), &json!(UA), &json!(true))
    );

    // Native rotation: the license with its new key, of the default prefix on another app.
    let app2 = cp.app(&jwt, "Other").await;
    let l2 = cp.licenses(&jwt, &app2, json!({})).await.remove(0);
    let rotated = cp
        .ok(
            Method::POST,
            &format!("/v1/licenses/{}/rotate", s(&l2, "id")),
            &jwt,
            None,
        )
        .await;
    assert!(s(&rotated, "key").starts_with("LIC-"), "{rotated}");
    assert_ne!(rotated["key"], l2["key"]);
    assert_eq!(s(&rotated, "key").len(), "LIC-ABC123-XYZ789".len());
}

#[tokio::test]
async fn clear_empties_both_lists_and_both_routes_check_the_key() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let account = account_id(&cp, &jwt).await;
    let app = cp.app(&jwt, "Tool").await;
    let lic = cp
        .licenses(&jwt, &app, json!({"hwid_limit": 1, "ip_limit": 1}))
        .await
        .remove(0);
    let id = s(&lic, "id");
    use_license(&cp, account, id, "HWID-A", "198.51.100.1").await;
    let used = cp
        .ok(Method::GET, &format!("/v1/licenses/{id}"), &jwt, None)
        .await;
    assert_eq!(used["ips"], json!(["198.51.100.1"]));
    assert_eq!(used["hwids"][0]["hwid"], "HWID-A");

    let r = send(
        &cp,
        Method::POST,
        "/api/license/clear",
        Some(&jwt),
        Some(json!({"key": lic["key"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"success": true, "message": "License restrictions cleared"})
    );
    assert_eq!(keys(&r.body), ["success", "message"]);
    let cleared = cp
        .ok(Method::GET, &format!("/v1/licenses/{id}"), &jwt, None)
        .await;
    assert_eq!(
        (&cleared["ips"], &cleared["hwids"]),
        (&json!([]), &json!([]))
    );
    assert_eq!(cleared["key"], lic["key"]);
    let audit = cp
        .ok(
            Method::GET,
            &format!("/v1/audit-log?action=license.clear&target_id={id}"),
            &jwt,
            None,
        )
        .await;
    assert_eq!(
        audit["items"][0]["details"]["before"],
        json!({"hwids": ["HWID-A"], "ips": ["198.51.100.1"]})
    );
    assert_eq!(
        audit["items"][0]["details"]["after"],
        json!({"hwids": [], "ips": []})
    );
    // Usable again from a new device and address.
    use_license(&cp, account, id, "HWID-B", "198.51.100.2").await;

    // Native: the same, answering the license.
    let native = cp
        .ok(
            Method::POST,
            &format!("/v1/licenses/{id}/clear"),
            &jwt,
            None,
        )
        .await;
    assert_eq!((&native["ips"], &native["hwids"]), (&json!([]), &json!([])));

    // The key: required, a string, not blank; malformed bodies; unknown and ambiguous keys.
    for path in ["/api/license/rotate", "/api/license/clear"] {
        for body in [
            json!({}),
            json!({"key": null}),
            json!({"key": 5}),
            json!({"key": ["k"]}),
            json!({"key": ""}),
            json!({"key": "   "}),
            json!({"other": "x"}),
        ] {
            let r = send(&cp, Method::POST, path, Some(&jwt), Some(body.clone())).await;
            assert_eq!(r.status, 400, "{path} {body}");
            is_error(&r, 400, "License key is required");
        }
        for raw in ["{", "[1]", "\"key\"", "null"] {
            let r = cp
                .raw(
                    Method::POST,
                    path,
                    Some(&jwt),
                    Some("application/json"),
                    raw.into(),
                )
                .await;
            is_error(&r, 400, "Invalid request body");
        }
        let r = send(
            &cp,
            Method::POST,
            path,
            Some(&jwt),
            Some(json!({"key": "NO-SUCH-KEY"})),
        )
        .await;
        is_error(&r, 404, "License not found");
        // Exact and case-sensitive.
        let lower = s(&lic, "key").to_lowercase();
        let r = send(
            &cp,
            Method::POST,
            path,
            Some(&jwt),
            Some(json!({"key": lower})),
        )
        .await;
        is_error(&r, 404, "License not found");
    }
    let other = cp.app(&jwt, "Other").await;
    for a in [&app, &other] {
        cp.licenses(&jwt, a, json!({"key": "SHARED-KEY-0001"}))
            .await;
    }
    for path in ["/api/license/rotate", "/api/license/clear"] {
        let r = send(
            &cp,
            Method::POST,
            path,
            Some(&jwt),
            Some(json!({"key": "SHARED-KEY-0001"})),
        )
        .await;
        is_error(&r, 400, "License key is ambiguous");
    }
}

#[tokio::test]
async fn products_are_the_apps_with_their_counts() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let a = cp.app(&jwt, "Alpha").await;
    let b = cp.app(&jwt, "Beta").await;
    let made = cp
        .ok(
            Method::PATCH,
            &format!("/v1/apps/{a}"),
            &jwt,
            Some(json!({"description": "  The alpha tool  ", "license_prefix": "ALPHA"})),
        )
        .await;
    assert_eq!(
        (&made["description"], &made["license_prefix"]),
        (&json!("The alpha tool"), &json!("ALPHA"))
    );
    cp.ok(
        Method::PATCH,
        &format!("/v1/apps/{b}"),
        &jwt,
        Some(json!({"paused": true})),
    )
    .await;
    for bad in [
        json!({"license_prefix": "AC-ME"}),
        json!({"license_prefix": ""}),
        json!({"license_prefix": "X".repeat(17)}),
        json!({"description": "d".repeat(2001)}),
    ] {
        let r = cp
            .call(
                Method::PATCH,
                &format!("/v1/apps/{a}"),
                Some(&jwt),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let created = cp
        .ok(
            Method::POST,
            "/v1/apps",
            &jwt,
            Some(json!({"name": "Gamma", "description": "g", "license_prefix": "GAM"})),
        )
        .await;
    assert_eq!(
        (&created["description"], &created["license_prefix"]),
        (&json!("g"), &json!("GAM"))
    );
    let gamma = s(&created, "id").to_string();
    // Alpha: three licenses, one banned and one revoked.
    let ls = cp.licenses(&jwt, &a, json!({"count": 3})).await;
    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{}/ban", s(&ls[0], "id")),
        &jwt,
        Some(json!({})),
    )
    .await;
    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{}/revoke", s(&ls[1], "id")),
        &jwt,
        None,
    )
    .await;
    cp.licenses(&jwt, &b, json!({"count": 2})).await;
    // Another tenant's product is not listed.
    let bob = cp.admin("bob").await;
    let bobs = cp.app(&bob, "Bob's").await;

    let all = cp.ok(Method::GET, "/api/products", &jwt, None).await;
    assert_eq!(keys(&all), ["success", "products", "count"]);
    assert_eq!(all["count"], 3);
    let products = all["products"].as_array().unwrap();
    let ids: Vec<&str> = products.iter().map(|p| s(p, "_id")).collect();
    assert_eq!(ids, [a.as_str(), b.as_str(), gamma.as_str()]);
    let alpha = &products[0];
    assert_eq!(
        keys(alpha),
        [
            "_id",
            "name",
            "description",
            "isActive",
            "licensePrefix",
            "createdAt",
            "updatedAt"
        ]
    );
    assert_eq!(alpha["name"], "Alpha");
    assert_eq!(alpha["description"], "The alpha tool");
    assert_eq!(alpha["isActive"], true);
    assert_eq!(alpha["licensePrefix"], "ALPHA");
    assert_eq!(products[1]["isActive"], false);
    assert_eq!(products[1]["description"], Value::Null);
    assert_eq!(products[1]["licensePrefix"], "LIC");
    for t in ["createdAt", "updatedAt"] {
        let v = s(alpha, t);
        assert!(
            v.len() == 24 && v.ends_with('Z') && v.as_bytes()[19] == b'.',
            "{t}: {v}"
        );
    }

    let counted = cp
        .ok(Method::GET, "/api/products?includeCounts=true", &jwt, None)
        .await;
    let alpha = &counted["products"][0];
    assert_eq!(
        keys(alpha),
        [
            "_id",
            "name",
            "description",
            "isActive",
            "licensePrefix",
            "licenseCount",
            "activeLicenseCount",
            "createdAt",
            "updatedAt"
        ]
    );
    assert_eq!(
        (&alpha["licenseCount"], &alpha["activeLicenseCount"]),
        (&json!(3), &json!(1))
    );
    let beta = &counted["products"][1];
    assert_eq!(
        (&beta["licenseCount"], &beta["activeLicenseCount"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(counted["products"][2]["licenseCount"], 0);

    let active = cp
        .ok(
            Method::GET,
            "/api/products?activeOnly=1&includeCounts=0",
            &jwt,
            None,
        )
        .await;
    assert_eq!(active["count"], 2);
    let ids: Vec<&str> = active["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| s(p, "_id"))
        .collect();
    assert_eq!(ids, [a.as_str(), gamma.as_str()]);
    assert!(active["products"][0].get("licenseCount").is_none());
    let none = cp
        .ok(Method::GET, "/api/products?activeOnly=false", &jwt, None)
        .await;
    assert_eq!(none["count"], 3);
    for q in ["activeOnly=yes", "includeCounts=TRUE", "includeCounts=2"] {
        let r = send(
            &cp,
            Method::GET,
            &format!("/api/products?{q}"),
            Some(&jwt),
            None,
        )
        .await;
        let name = q.split('=').next().unwrap();
        is_error(&r, 400, &format!("Invalid query parameter: {name}"));
    }

    // One product.
    let one = cp
        .ok(Method::GET, &format!("/api/products/{a}"), &jwt, None)
        .await;
    assert_eq!(keys(&one), ["success", "product"]);
    assert_eq!(one["product"], all["products"][0]);
    let one = cp
        .ok(
            Method::GET,
            &format!("/api/products/{a}?includeCounts=true"),
            &jwt,
            None,
        )
        .await;
    assert_eq!(one["product"], counted["products"][0]);
    let r = send(
        &cp,
        Method::GET,
        &format!("/api/products/{a}?includeCounts=maybe"),
        Some(&jwt),
        None,
    )
    .await;
    is_error(&r, 400, "Invalid query parameter: includeCounts");
    for missing in [
        Uuid::new_v4().to_string(),
        "507f1f77bcf86cd799439011".into(),
        "not-an-id".into(),
        "%FF%FE".into(),
        bobs.clone(),
    ] {
        let r = send(
            &cp,
            Method::GET,
            &format!("/api/products/{missing}"),
            Some(&jwt),
            None,
        )
        .await;
        is_error(&r, 404, "Product not found");
    }
    // Bob sees his own only.
    let his = cp.ok(Method::GET, "/api/products", &bob, None).await;
    assert_eq!(his["count"], 1);
    assert_eq!(his["products"][0]["_id"], bobs.as_str());
}

#[tokio::test]
async fn audit_log_filters_pages_and_entries() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let account = account_id(&cp, &jwt).await;
    let app = cp.app(&jwt, "Tool").await;
    let ls = cp.licenses(&jwt, &app, json!({"count": 2})).await;
    let (l0, l1) = (s(&ls[0], "id"), s(&ls[1], "id"));
    let key = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &jwt,
            Some(json!({"name": "bot", "scopes": ["*"]})),
        )
        .await;
    let bot = s(&key, "key");
    let bot_label = format!("api_key:{}", s(&key, "prefix"));
    send(
        &cp,
        Method::POST,
        &format!("/v1/licenses/{l0}/ban"),
        Some(bot),
        Some(json!({"reason": "chargeback"})),
    )
    .await;
    send(
        &cp,
        Method::POST,
        &format!("/v1/licenses/{l0}/unban"),
        Some(&jwt),
        None,
    )
    .await;
    send(
        &cp,
        Method::POST,
        &format!("/v1/licenses/{l1}/revoke"),
        Some(&jwt),
        None,
    )
    .await;
    send(
        &cp,
        Method::DELETE,
        &format!("/v1/licenses/{l0}"),
        Some(&jwt),
        None,
    )
    .await;
    // A refused login is recorded (behind the answer), a successful one too.
    let r = send(
        &cp,
        Method::POST,
        "/v1/auth/login",
        None,
        Some(json!({"username": "alice", "password": "wrong"})),
    )
    .await;
    assert_eq!(r.status, 401);
    let (failed, _) = eventually(
        Duration::from_secs(5),
        "the refused login's entry",
        || async {
            let r = cp
                .ok(
                    Method::GET,
                    "/api/audit?action=login&success=false",
                    &jwt,
                    None,
                )
                .await;
            (r["total"] == 1).then_some(r)
        },
    )
    .await;
    let f = &failed["auditLogs"][0];
    assert_eq!(
        (
            &f["userId"],
            &f["resourceType"],
            &f["success"],
            &f["ip"],
            &f["userAgent"]
        ),
        (
            &json!("admin:alice"),
            &json!("admin"),
            &json!(false),
            &json!("127.0.0.1"),
            &json!(UA)
        )
    );
    assert_eq!(f["resourceId"], account.to_string());
    let logins = cp
        .ok(
            Method::GET,
            "/api/audit?action=login&success=true",
            &jwt,
            None,
        )
        .await;
    // `Cp::admin`'s own login.
    assert_eq!(logins["total"], 1, "{logins}");

    let all = cp.ok(Method::GET, "/api/audit", &jwt, None).await;
    assert_eq!(keys(&all), ["success", "auditLogs", "count", "total"]);
    let logs = all["auditLogs"].as_array().unwrap();
    assert_eq!(all["count"], logs.len());
    assert_eq!(all["total"], logs.len());
    let ids: Vec<i64> = logs.iter().map(|l| s(l, "_id").parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let native = cp
        .ok(Method::GET, "/v1/audit-log?limit=500", &jwt, None)
        .await;
    assert_eq!(native["items"].as_array().unwrap().len(), logs.len());
    for l in logs {
        assert_eq!(
            keys(l),
            [
                "_id",
                "userId",
                "action",
                "resourceType",
                "resourceId",
                "changes",
                "ip",
                "userAgent",
                "success",
                "createdAt"
            ]
        );
        assert_eq!(keys(&l["changes"]), ["before", "after"]);
    }
    let by =
        |action: &str| {
            logs.iter()
                .find(|l| {
                    native["items"].as_array().unwrap().iter().any(|n| {
                        n["action"] == action && n["id"].as_i64() == s(l, "_id").parse().ok()
                    })
                })
                .unwrap_or_else(|| panic!("no {action}"))
                .clone()
        };
    let ban = by("license.ban");
    assert_eq!(
        (
            &ban["action"],
            &ban["resourceType"],
            &ban["resourceId"],
            &ban["userId"]
        ),
        (
            &json!("suspend"),
            &json!("license"),
            &json!(l0),
            &json!(bot_label)
        )
    );
    assert_eq!(
        ban["changes"],
        json!({"before": {"status": "active", "ban_reason": null},
               "after": {"status": "banned", "ban_reason": "chargeback"}})
    );
    assert_eq!(
        (&ban["ip"], &ban["userAgent"]),
        (&json!("127.0.0.1"), &json!(UA))
    );
    let unban = by("license.unban");
    assert_eq!(unban["action"], "activate");
    assert_eq!(unban["changes"]["after"]["status"], "active");
    let revoke = by("license.revoke");
    assert_eq!(revoke["action"], "revoke");
    assert_eq!(
        revoke["changes"],
        json!({"before": {"status": "active"}, "after": {"status": "revoked"}})
    );
    let delete = by("license.delete");
    assert_eq!(delete["action"], "delete");
    assert_eq!(delete["changes"]["before"]["key"], ls[0]["key"]);
    assert_eq!(delete["changes"]["after"], json!({}));
    // An entry without before/after: its details are what it made.
    let create = by("app.create");
    assert_eq!(
        (
            &create["action"],
            &create["resourceType"],
            &create["resourceId"]
        ),
        (&json!("create"), &json!("product"), &json!(app))
    );
    assert_eq!(
        create["changes"],
        json!({"before": {}, "after": {"name": "Tool"}})
    );
    assert_eq!(by("api_key.create")["resourceType"], "admin");
    let generate = by("license.generate");
    assert_eq!(
        (&generate["action"], &generate["resourceType"]),
        (&json!("create"), &json!("product"))
    );
    assert_eq!(s(&generate, "createdAt").len(), 24);

    // Each filter.
    let count = |q: &'static str| {
        let cp = &cp;
        let jwt = &jwt;
        async move {
            let r = cp
                .ok(Method::GET, &format!("/api/audit?{q}"), jwt, None)
                .await;
            assert_eq!(r["count"], r["auditLogs"].as_array().unwrap().len());
            r
        }
    };
    let r = count("action=suspend").await;
    assert_eq!(r["total"], 1);
    assert_eq!(r["auditLogs"][0]["_id"], ban["_id"]);
    let r = count("resourceType=product").await;
    assert!(r["auditLogs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["resourceType"] == "product"));
    assert_eq!(r["total"], 2, "{r}");
    let r = cp
        .ok(
            Method::GET,
            &format!("/api/audit?resourceId={l0}"),
            &jwt,
            None,
        )
        .await;
    let actions: Vec<&str> = r["auditLogs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| s(l, "action"))
        .collect();
    assert_eq!(actions, ["delete", "activate", "suspend"]);
    let r = cp
        .ok(
            Method::GET,
            &format!("/api/audit?userId={}", bot_label),
            &jwt,
            None,
        )
        .await;
    assert_eq!(r["total"], 1);
    let r = cp
        .ok(
            Method::GET,
            &format!("/api/audit?userId={bot_label}&action=create"),
            &jwt,
            None,
        )
        .await;
    assert_eq!(r["total"], 0);
    let r = count("success=0").await;
    assert_eq!(r["total"], 1);
    let day = chrono::Duration::days(1);
    let (past, future) = (chrono::Utc::now() - day, chrono::Utc::now() + day);
    let iso = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    for (q, n) in [
        (format!("startDate={}", iso(future)), json!(0)),
        (format!("endDate={}", iso(past)), json!(0)),
        (
            format!("startDate={}&endDate={}", iso(past), iso(future)),
            all["total"].clone(),
        ),
        (
            format!("startDate={}", past.format("%Y-%m-%d")),
            all["total"].clone(),
        ),
    ] {
        let r = cp
            .ok(Method::GET, &format!("/api/audit?{q}"), &jwt, None)
            .await;
        assert_eq!(r["total"], n, "{q}");
    }

    // Pages: limit, skip, total.
    let r = count("limit=2").await;
    assert_eq!((&r["count"], &r["total"]), (&json!(2), &all["total"]));
    assert_eq!(r["auditLogs"][0], all["auditLogs"][0]);
    let r = count("limit=2&skip=1").await;
    assert_eq!(r["auditLogs"][0], all["auditLogs"][1]);
    assert_eq!(r["auditLogs"][1], all["auditLogs"][2]);
    let r = count("limit=0").await;
    assert_eq!(r["count"], 1);
    let r = count("limit=-5").await;
    assert_eq!(r["count"], 1);
    let r = count("skip=100000").await;
    assert_eq!((&r["count"], &r["total"]), (&json!(0), &all["total"]));
    assert_eq!(r["auditLogs"], json!([]));
    for (q, name) in [
        ("action=hack", "action"),
        ("action=Create", "action"),
        ("resourceType=licenses", "resourceType"),
        ("success=yes", "success"),
        ("startDate=yesterday", "startDate"),
        ("endDate=2024-13-01", "endDate"),
        ("limit=ten", "limit"),
        ("limit=1.5", "limit"),
        ("skip=-1", "skip"),
        ("skip=x", "skip"),
        ("limit=99999999999999999999", "limit"),
    ] {
        let r = send(
            &cp,
            Method::GET,
            &format!("/api/audit?{q}"),
            Some(&jwt),
            None,
        )
        .await;
        is_error(&r, 400, &format!("Invalid query parameter: {name}"));
    }

    // One entry.
    let one = cp
        .ok(
            Method::GET,
            &format!("/api/audit/{}", s(&ban, "_id")),
            &jwt,
            None,
        )
        .await;
    assert_eq!(keys(&one), ["success", "auditLog"]);
    assert_eq!(one["auditLog"], ban);
    let bob = cp.admin("bob").await;
    let bobs = newest_audit_id(&cp, &bob).await;
    for missing in [
        "999999999".to_string(),
        "abc".into(),
        "-1".into(),
        "1.5".into(),
        bobs.to_string(),
    ] {
        let r = send(
            &cp,
            Method::GET,
            &format!("/api/audit/{missing}"),
            Some(&jwt),
            None,
        )
        .await;
        is_error(&r, 404, "Audit log not found");
    }
    // Bob's log holds none of Alice's entries.
    let his = cp.ok(Method::GET, "/api/audit", &bob, None).await;
    assert!(
        his["auditLogs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["userId"] == "admin:bob"),
        "{his}"
    );
    let r = send(
        &cp,
        Method::GET,
        &format!("/api/audit/{}", s(&ban, "_id")),
        Some(&bob),
        None,
    )
    .await;
    is_error(&r, 404, "Audit log not found");
}

#[tokio::test]
async fn audit_limit_is_clamped_at_1000() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let account = account_id(&cp, &jwt).await;
    // 1 100 entries, written through the one write path.
    let mut c = cp.db.client().await;
    let mut w = WriteTx::begin(&mut c, actor(account)).await.unwrap();
    for i in 0..1100 {
        w.audit(
            "license.update",
            "license",
            Some(format!("bulk-{i}")),
            json!({}),
        );
    }
    w.commit().await.unwrap();
    let all = cp
        .ok(Method::GET, "/api/audit?userId=test", &jwt, None)
        .await;
    assert_eq!((&all["count"], &all["total"]), (&json!(100), &json!(1100)));
    let big = cp
        .ok(Method::GET, "/api/audit?userId=test&limit=5000", &jwt, None)
        .await;
    assert_eq!((&big["count"], &big["total"]), (&json!(1000), &json!(1100)));
    assert_eq!(big["auditLogs"][0]["resourceId"], "bulk-1099");
    assert_eq!(big["auditLogs"][999]["resourceId"], "bulk-100");
    let rest = cp
        .ok(
            Method::GET,
            "/api/audit?userId=test&limit=1000&skip=1000",
            &jwt,
            None,
        )
        .await;
    assert_eq!(rest["count"], 100);
    assert_eq!(rest["auditLogs"][99]["resourceId"], "bulk-0");
}

#[tokio::test]
async fn license_states_types_and_owners_over_native_rest() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let account = account_id(&cp, &jwt).await;
    let app = cp.app(&jwt, "Tool").await;
    let lic = |spec: Value| {
        let (cp, jwt, app) = (&cp, &jwt, &app);
        async move { cp.licenses(jwt, app, spec).await.remove(0) }
    };
    let path = |id: &str, action: &str| format!("/v1/licenses/{id}/{action}");

    // Revoked is permanent.
    let l = lic(json!({})).await;
    let id = s(&l, "id");
    let r = cp.ok(Method::POST, &path(id, "revoke"), &jwt, None).await;
    assert_eq!(r["status"], "revoked");
    for action in ["enable", "unban", "disable", "ban"] {
        let r = cp
            .call(Method::POST, &path(id, action), Some(&jwt), Some(json!({})))
            .await;
        assert_eq!(r.status, 409, "{action} after revoke: {}", r.body);
    }
    let r = cp.ok(Method::POST, &path(id, "revoke"), &jwt, None).await;
    assert_eq!(r["status"], "revoked");
    let got = cp
        .ok(Method::GET, &format!("/v1/licenses/{id}"), &jwt, None)
        .await;
    assert_eq!(got["status"], "revoked");

    // Disabled is reversible; enable does not lift a ban, unban does.
    let l = lic(json!({})).await;
    let id = s(&l, "id");
    let (_listener, mut inv) = listening(&cp).await;
    assert_eq!(
        cp.ok(Method::POST, &path(id, "disable"), &jwt, None).await["status"],
        "disabled"
    );
    let got = tokio::time::timeout(Duration::from_secs(5), inv.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(
        got,
        vec![Invalidation::License {
            app: app.parse().unwrap(),
            key: s(&l, "key").into()
        }]
    );
    assert_eq!(
        cp.ok(Method::POST, &path(id, "enable"), &jwt, None).await["status"],
        "active"
    );
    cp.ok(
        Method::POST,
        &path(id, "ban"),
        &jwt,
        Some(json!({"reason": "x"})),
    )
    .await;
    let r = cp
        .call(Method::POST, &path(id, "enable"), Some(&jwt), None)
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        cp.ok(Method::POST, &path(id, "unban"), &jwt, Some(json!({})))
            .await["status"],
        "active"
    );
    // Unban does not switch a disabled license on.
    cp.ok(Method::POST, &path(id, "disable"), &jwt, None).await;
    assert_eq!(
        cp.ok(Method::POST, &path(id, "unban"), &jwt, Some(json!({})))
            .await["status"],
        "disabled"
    );
    let audit = cp
        .ok(
            Method::GET,
            &format!("/v1/audit-log?target_id={id}&action=license."),
            &jwt,
            None,
        )
        .await;
    let entries = audit["items"].as_array().unwrap();
    let find = |a: &str| {
        entries
            .iter()
            .find(|e| e["action"] == a)
            .unwrap_or_else(|| panic!("no {a}"))
    };
    assert_eq!(
        find("license.enable")["details"]["before"],
        json!({"status": "disabled"})
    );
    assert_eq!(
        find("license.enable")["details"]["after"],
        json!({"status": "active"})
    );
    assert_eq!(
        find("license.disable")["details"]["after"],
        json!({"status": "disabled"})
    );
    for r in [
        cp.call(
            Method::POST,
            &path(&Uuid::new_v4().to_string(), "revoke"),
            Some(&jwt),
            None,
        )
        .await,
        cp.call(Method::POST, &path("nope", "disable"), Some(&jwt), None)
            .await,
    ] {
        assert!(matches!(r.status, 400 | 404), "{}", r.body);
    }
    // Status filters.
    let revoked = cp
        .ok(Method::GET, "/v1/licenses?status=revoked", &jwt, None)
        .await;
    assert_eq!(revoked["items"].as_array().unwrap().len(), 1);
    let disabled = cp
        .ok(Method::GET, "/v1/licenses?status=disabled", &jwt, None)
        .await;
    assert_eq!(disabled["items"][0]["id"], id);

    // Types: a trial must expire, a consumption license needs credits.
    assert_eq!(lic(json!({})).await["license_type"], "fixed");
    let r = cp
        .call(
            Method::POST,
            &format!("/v1/apps/{app}/licenses"),
            Some(&jwt),
            Some(json!({"license_type": "trial"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["message"].as_str().unwrap().contains("trial"),
        "{}",
        r.body
    );
    let r = cp
        .call(
            Method::POST,
            &format!("/v1/apps/{app}/licenses"),
            Some(&jwt),
            Some(json!({"license_type": "consumption"})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["message"],
        "a consumption license needs max_uses (its credits)"
    );
    let r = cp
        .call(
            Method::POST,
            &format!("/v1/apps/{app}/licenses"),
            Some(&jwt),
            Some(json!({"license_type": "gold"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let trial = lic(json!({"license_type": "trial", "duration_days": 7})).await;
    assert_eq!(trial["license_type"], "trial");
    let first_use =
        lic(json!({"license_type": "trial", "duration_days": 7, "expiry_on_first_use": true}))
            .await;
    assert_eq!(first_use["license_type"], "trial");
    let metered = lic(json!({"license_type": "consumption", "max_uses": 10})).await;
    assert_eq!(
        (&metered["license_type"], &metered["max_uses"]),
        (&json!("consumption"), &json!(10))
    );
    let ent = lic(json!({"license_type": "enterprise"})).await;
    // PATCH keeps the rules on the result, and rolls back when broken.
    let plain = lic(json!({})).await;
    for (l, patch) in [
        (&plain, json!({"license_type": "consumption"})),
        (&plain, json!({"license_type": "trial"})),
        (&trial, json!({"expires_at": null})),
        (&metered, json!({"max_uses": null})),
    ] {
        let r = cp
            .call(
                Method::PATCH,
                &format!("/v1/licenses/{}", s(l, "id")),
                Some(&jwt),
                Some(patch.clone()),
            )
            .await;
        assert_eq!(r.status, 400, "{patch}: {}", r.body);
        let now = cp
            .ok(
                Method::GET,
                &format!("/v1/licenses/{}", s(l, "id")),
                &jwt,
                None,
            )
            .await;
        assert_eq!(now["license_type"], l["license_type"]);
        assert_eq!(
            (&now["expires_at"], &now["max_uses"]),
            (&l["expires_at"], &l["max_uses"])
        );
    }
    let r = cp
        .ok(
            Method::PATCH,
            &format!("/v1/licenses/{}", s(&plain, "id")),
            &jwt,
            Some(json!({"license_type": "consumption", "max_uses": 5})),
        )
        .await;
    assert_eq!(
        (&r["license_type"], &r["max_uses"]),
        (&json!("consumption"), &json!(5))
    );
    let patched = cp
        .ok(
            Method::GET,
            &format!(
                "/v1/audit-log?action=license.update&target_id={}",
                s(&plain, "id")
            ),
            &jwt,
            None,
        )
        .await;
    assert_eq!(
        patched["items"][0]["details"]["before"],
        json!({"license_type": "fixed", "max_uses": null})
    );
    assert_eq!(
        patched["items"][0]["details"]["after"],
        json!({"license_type": "consumption", "max_uses": 5})
    );
    // The type filter.
    for (t, want) in [("trial", 2), ("consumption", 2), ("enterprise", 1)] {
        let r = cp
            .ok(
                Method::GET,
                &format!("/v1/licenses?license_type={t}"),
                &jwt,
                None,
            )
            .await;
        let items = r["items"].as_array().unwrap();
        assert_eq!(items.len(), want, "{t}");
        assert!(items.iter().all(|l| l["license_type"] == t));
    }
    assert_eq!(ent["license_type"], "enterprise");
    let r = cp
        .call(
            Method::GET,
            "/v1/licenses?license_type=gold",
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(r.status, 400);

    // Extend: before/after of the expiry.
    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{}/extend", s(&trial, "id")),
        &jwt,
        Some(json!({"days": 1})),
    )
    .await;
    let ext = cp
        .ok(
            Method::GET,
            &format!(
                "/v1/audit-log?action=license.extend&target_id={}",
                s(&trial, "id")
            ),
            &jwt,
            None,
        )
        .await;
    let d = &ext["items"][0]["details"];
    assert_eq!(d["seconds"], 86_400);
    assert_ne!(d["before"]["expires_at"], d["after"]["expires_at"]);

    // Owners: a customer of the account, on creation and by PATCH; not another account's.
    let (buyer, _) = customer(&cp, account, "buyer@example.com").await;
    let owned = lic(json!({"owner_id": buyer})).await;
    assert_eq!(owned["owner_id"], buyer.to_string());
    let r = cp
        .ok(
            Method::PATCH,
            &format!("/v1/licenses/{}", s(&ent, "id")),
            &jwt,
            Some(json!({"owner_id": buyer})),
        )
        .await;
    assert_eq!(r["owner_id"], buyer.to_string());
    let bob = cp.admin("bob").await;
    let bob_account = account_id(&cp, &bob).await;
    let (strangers, _) = customer(&cp, bob_account, "stranger@example.com").await;
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/licenses/{}", s(&ent, "id")),
            Some(&jwt),
            Some(json!({"owner_id": strangers})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Bob reaches none of Alice's licenses' new actions.
    for action in ["revoke", "disable", "enable", "rotate", "clear"] {
        let r = cp
            .call(Method::POST, &path(s(&ent, "id"), action), Some(&bob), None)
            .await;
        assert_eq!(r.status, 404, "{action}: {}", r.body);
    }
    let still = cp
        .ok(
            Method::GET,
            &format!("/v1/licenses/{}", s(&ent, "id")),
            &jwt,
            None,
        )
        .await;
    assert_eq!(
        (&still["status"], &still["key"]),
        (&json!("active"), &ent["key"])
    );
}

#[tokio::test]
async fn another_tenant_reaches_nothing() {
    let cp = Cp::start().await;
    let alice = cp.admin("alice").await;
    let app = cp.app(&alice, "Tool").await;
    let lic = cp.licenses(&alice, &app, json!({})).await.remove(0);
    let entry = newest_audit_id(&cp, &alice).await;
    let bob = cp.admin("bob").await;
    let bob_key = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &bob,
            Some(json!({"name": "cl", "scopes": ["cyberlicense:admin"]})),
        )
        .await;
    for token in [bob.as_str(), s(&bob_key, "key")] {
        for (method, path, body) in admin_routes(s(&lic, "key"), &app, entry) {
            let r = send(&cp, method.clone(), &path, Some(token), body).await;
            match path.as_str() {
                "/api/license/rotate" | "/api/license/clear" => {
                    is_error(&r, 404, "License not found")
                }
                p if p.starts_with("/api/products/") => is_error(&r, 404, "Product not found"),
                p if p.starts_with("/api/audit/") => is_error(&r, 404, "Audit log not found"),
                _ => {
                    assert_eq!(r.status, 200);
                    let text = r.body.to_string();
                    for mark in [s(&lic, "key"), s(&lic, "id"), app.as_str(), "admin:alice"] {
                        assert!(!text.contains(mark), "{path} revealed {mark}: {text}");
                    }
                }
            }
        }
    }
    let still = cp
        .ok(
            Method::GET,
            &format!("/v1/licenses/{}", s(&lic, "id")),
            &alice,
            None,
        )
        .await;
    assert_eq!(still["key"], lic["key"]);
}

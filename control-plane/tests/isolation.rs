//! Tenant isolation: a second account's token reaches nothing of the first's (404 everywhere),
//! and the first account's data is unchanged afterwards.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn another_account_gets_404_on_every_resource() {
    let cp = Cp::start().await;
    let a = cp.admin("alice").await;
    let b = cp.admin("bob").await;
    let app = cp.app(&a, "Alice Tool").await;
    let lic = cp
        .licenses(&a, &app, json!({"count": 1, "duration_days": 5}))
        .await
        .remove(0);
    let lic_id = lic["id"].as_str().unwrap().to_string();
    let entry = cp
        .ok(
            Method::POST,
            &format!("/v1/apps/{app}/blacklist"),
            &a,
            Some(json!({"kind": "hwid", "value": "X"})),
        )
        .await;
    let entry_id = entry["id"].as_str().unwrap().to_string();
    let key = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &a,
            Some(json!({"name": "k", "scopes": ["*"]})),
        )
        .await;
    let key_id = key["id"].as_str().unwrap().to_string();
    let before_app = cp
        .ok(Method::GET, &format!("/v1/apps/{app}"), &a, None)
        .await;
    let before_lic = cp
        .ok(Method::GET, &format!("/v1/licenses/{lic_id}"), &a, None)
        .await;

    // Bob, by JWT and by his own API key.
    let bob_key = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &b,
            Some(json!({"name": "k", "scopes": ["*"]})),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let attempts: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/v1/apps/{app}"), None),
        (
            Method::PATCH,
            format!("/v1/apps/{app}"),
            Some(json!({"paused": true})),
        ),
        (Method::DELETE, format!("/v1/apps/{app}"), None),
        (Method::POST, format!("/v1/apps/{app}/reset-secret"), None),
        (
            Method::POST,
            format!("/v1/apps/{app}/licenses"),
            Some(json!({"count": 1})),
        ),
        (Method::GET, format!("/v1/apps/{app}/blacklist"), None),
        (
            Method::POST,
            format!("/v1/apps/{app}/blacklist"),
            Some(json!({"kind": "ip", "value": "1.2.3.4"})),
        ),
        (Method::DELETE, format!("/v1/blacklist/{entry_id}"), None),
        (Method::GET, format!("/v1/licenses/{lic_id}"), None),
        (
            Method::PATCH,
            format!("/v1/licenses/{lic_id}"),
            Some(json!({"note": "mine"})),
        ),
        (Method::DELETE, format!("/v1/licenses/{lic_id}"), None),
        (
            Method::POST,
            format!("/v1/licenses/{lic_id}/ban"),
            Some(json!({"reason": "x"})),
        ),
        (Method::POST, format!("/v1/licenses/{lic_id}/unban"), None),
        (
            Method::POST,
            format!("/v1/licenses/{lic_id}/extend"),
            Some(json!({"days": 1})),
        ),
        (
            Method::POST,
            format!("/v1/licenses/{lic_id}/reset-hwids"),
            None,
        ),
        (Method::DELETE, format!("/v1/api-keys/{key_id}"), None),
    ];
    for token in [&b, &bob_key] {
        for (method, path, body) in &attempts {
            let r = cp
                .call(method.clone(), path, Some(token), body.clone())
                .await;
            assert_eq!(
                (r.status, r.code()),
                (404, "NOT_FOUND"),
                "{method} {path}: {}",
                r.body
            );
        }
        // Lists are scoped: Bob sees none of Alice's things.
        let apps = cp.ok(Method::GET, "/v1/apps", token, None).await;
        assert!(apps["items"].as_array().unwrap().is_empty());
        let lics = cp
            .ok(
                Method::GET,
                &format!("/v1/licenses?app_id={app}"),
                token,
                None,
            )
            .await;
        assert!(lics["items"].as_array().unwrap().is_empty());
        let found = cp
            .ok(
                Method::GET,
                &format!("/v1/licenses?search={}", lic["key"].as_str().unwrap()),
                token,
                None,
            )
            .await;
        assert!(found["items"].as_array().unwrap().is_empty());
        let audit = cp
            .ok(Method::GET, "/v1/audit-log?limit=500", token, None)
            .await;
        assert!(audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !e.to_string().contains(&app)));
        let keys = cp.ok(Method::GET, "/v1/api-keys", token, None).await;
        assert!(keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["id"] != key_id.as_str()));
    }

    // Alice's things are untouched.
    assert_eq!(
        cp.ok(Method::GET, &format!("/v1/apps/{app}"), &a, None)
            .await,
        before_app
    );
    assert_eq!(
        cp.ok(Method::GET, &format!("/v1/licenses/{lic_id}"), &a, None)
            .await,
        before_lic
    );
    let bl = cp
        .ok(Method::GET, &format!("/v1/apps/{app}/blacklist"), &a, None)
        .await;
    assert_eq!(bl["items"].as_array().unwrap().len(), 1);
    let alice_key = key["key"].as_str().unwrap();
    assert_eq!(
        cp.call(Method::GET, "/v1/apps", Some(alice_key), None)
            .await
            .status,
        200
    );
}

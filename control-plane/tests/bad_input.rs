//! Bad input on every route is a 4xx JSON error that says what is wrong, never a 500.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn assert_json_error(r: &Resp, expected: u16, what: &str) {
    assert_eq!(r.status, expected, "{what}: {}", r.body);
    assert_eq!(r.body["success"], false, "{what}: {}", r.body);
    assert!(
        !r.body["message"].as_str().unwrap_or("").is_empty(),
        "{what}: no message in {}",
        r.body
    );
}

#[tokio::test]
async fn every_json_route_rejects_malformed_bodies() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let app = cp.app(&t, "Tool").await;
    let lic = cp
        .licenses(&t, &app, json!({"count": 1, "duration_days": 1}))
        .await
        .remove(0);
    let lic = lic["id"].as_str().unwrap();
    let routes: Vec<(Method, String, Value, Value)> = vec![
        // (method, path, a body with a wrong type, a body with an unknown field)
        (
            Method::POST,
            "/v1/auth/login".into(),
            json!({"username": 1, "password": "x"}),
            json!({"username": "a", "password": "b", "otp": 1}),
        ),
        (
            Method::POST,
            "/v1/api-keys".into(),
            json!({"name": "k", "scopes": "*"}),
            json!({"name": "k", "scopes": ["*"], "admin": true}),
        ),
        (
            Method::POST,
            "/v1/apps".into(),
            json!({"name": ["x"]}),
            json!({"name": "x", "secret": "mine"}),
        ),
        (
            Method::PATCH,
            format!("/v1/apps/{app}"),
            json!({"paused": "yes"}),
            json!({"owner": "bob"}),
        ),
        (
            Method::POST,
            format!("/v1/apps/{app}/licenses"),
            json!({"count": "ten"}),
            json!({"count": 1, "colour": "red"}),
        ),
        (
            Method::POST,
            format!("/v1/apps/{app}/blacklist"),
            json!({"kind": "mac", "value": "x"}),
            json!({"kind": "ip", "value": "1.2.3.4", "ttl": 5}),
        ),
        (
            Method::PATCH,
            format!("/v1/licenses/{lic}"),
            json!({"level": "high"}),
            json!({"status": "active"}),
        ),
        (
            Method::POST,
            format!("/v1/licenses/{lic}/ban"),
            json!({"reason": 5}),
            json!({"reason": "x", "notify": true}),
        ),
        (
            Method::POST,
            format!("/v1/licenses/{lic}/extend"),
            json!({"days": "many"}),
            json!({"days": 1, "hours": 2}),
        ),
    ];
    let huge = vec![b'x'; 2 * 1024 * 1024];
    for (method, path, wrong_type, unknown_field) in &routes {
        let what = format!("{method} {path}");
        let send = |ct: Option<&'static str>, body: Vec<u8>| {
            cp.raw(method.clone(), path, Some(&t), ct, body)
        };
        assert_json_error(
            &send(Some("application/json"), b"{".to_vec()).await,
            400,
            &format!("{what} truncated"),
        );
        assert_json_error(
            &send(Some("application/json"), b"[1,2]".to_vec()).await,
            400,
            &format!("{what} array"),
        );
        assert_json_error(
            &send(Some("application/json"), vec![0xff, 0xfe]).await,
            400,
            &format!("{what} non-UTF-8"),
        );
        assert_json_error(
            &send(
                Some("application/json"),
                wrong_type.to_string().into_bytes(),
            )
            .await,
            400,
            &format!("{what} wrong type"),
        );
        assert_json_error(
            &send(
                Some("application/json"),
                unknown_field.to_string().into_bytes(),
            )
            .await,
            400,
            &format!("{what} unknown field"),
        );
        assert_json_error(
            &send(Some("text/plain"), b"{}".to_vec()).await,
            415,
            &format!("{what} content type"),
        );
        assert_json_error(
            &send(Some("application/json"), huge.clone()).await,
            413,
            &format!("{what} 2 MB"),
        );
    }
}

#[tokio::test]
async fn invalid_values_paths_and_queries() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let app = cp.app(&t, "Tool").await;
    let gen = format!("/v1/apps/{app}/licenses");
    let bad_values: Vec<(Method, String, Value)> = vec![
        (Method::POST, gen.clone(), json!({"count": 0})),
        (Method::POST, gen.clone(), json!({"count": 501})),
        (Method::POST, gen.clone(), json!({"mask": "AB"})),
        (Method::POST, gen.clone(), json!({"mask": "X".repeat(300)})),
        (Method::POST, gen.clone(), json!({"duration_days": -1})),
        (
            Method::POST,
            gen.clone(),
            json!({"duration_days": 1, "duration_secs": 5}),
        ),
        (
            Method::POST,
            gen.clone(),
            json!({"expiry_on_first_use": true}),
        ),
        (
            Method::POST,
            gen.clone(),
            json!({"expires_at": "2001-01-01T00:00:00Z"}),
        ),
        (Method::POST, gen.clone(), json!({"expires_at": "tomorrow"})),
        (Method::POST, gen.clone(), json!({"hwid_limit": -3})),
        (
            Method::POST,
            gen.clone(),
            json!({"level": 4_000_000_000u64}),
        ),
        (
            Method::POST,
            format!("/v1/apps/{app}/blacklist"),
            json!({"kind": "ip", "value": "10.0.0.0/33"}),
        ),
        (
            Method::POST,
            format!("/v1/apps/{app}/blacklist"),
            json!({"kind": "ip", "value": "example.com"}),
        ),
        (
            Method::POST,
            format!("/v1/apps/{app}/blacklist"),
            json!({"kind": "hwid", "value": "   "}),
        ),
        (Method::POST, "/v1/apps".into(), json!({"name": ""})),
        (
            Method::POST,
            "/v1/apps".into(),
            json!({"name": "n".repeat(101)}),
        ),
        (
            Method::PATCH,
            format!("/v1/apps/{app}"),
            json!({"version": ""}),
        ),
        (
            Method::POST,
            "/v1/api-keys".into(),
            json!({"name": "k", "scopes": []}),
        ),
        (
            Method::POST,
            "/v1/api-keys".into(),
            json!({"name": "k", "scopes": ["root"]}),
        ),
        (
            Method::POST,
            "/v1/auth/login".into(),
            json!({"username": "a".repeat(5000), "password": "x"}),
        ),
    ];
    for (method, path, body) in bad_values {
        let r = cp
            .call(method.clone(), &path, Some(&t), Some(body.clone()))
            .await;
        assert_json_error(&r, 400, &format!("{method} {path} {body}"));
    }
    let lic = cp.licenses(&t, &app, json!({"count": 1})).await.remove(0);
    let lic = lic["id"].as_str().unwrap();
    // Extending by nothing, or a license that never expires (a conflict with its state).
    for (body, status) in [
        (json!({}), 400),
        (json!({"days": 1, "seconds": 1}), 400),
        (json!({"days": 1}), 409),
    ] {
        let r = cp
            .call(
                Method::POST,
                &format!("/v1/licenses/{lic}/extend"),
                Some(&t),
                Some(body.clone()),
            )
            .await;
        assert_json_error(&r, status, &format!("extend {body}"));
    }
    // Malformed ids in paths.
    for path in [
        "/v1/apps/not-a-uuid",
        "/v1/licenses/123",
        "/v1/licenses/xyz/ban",
        "/v1/blacklist/%20",
        "/v1/api-keys/zz",
    ] {
        let method = if path.contains("ban") {
            Method::POST
        } else if path.contains("blacklist") || path.contains("api-keys") {
            Method::DELETE
        } else {
            Method::GET
        };
        let r = cp.call(method, path, Some(&t), Some(json!({}))).await;
        assert_json_error(&r, 400, path);
    }
    // Malformed queries.
    for q in [
        "limit=abc",
        "status=bogus",
        "app_id=nope",
        "cursor=garbage",
        "unknown=1",
    ] {
        let r = cp
            .call(Method::GET, &format!("/v1/licenses?{q}"), Some(&t), None)
            .await;
        assert_json_error(&r, 400, q);
    }
    for q in ["before=x", "since=yesterday", "limit=-5x"] {
        let r = cp
            .call(Method::GET, &format!("/v1/audit-log?{q}"), Some(&t), None)
            .await;
        assert_json_error(&r, 400, q);
    }
    // A body declared too large is refused on routes that take no body as well.
    let huge = vec![b'x'; 2 * 1024 * 1024];
    for (method, path) in [
        (Method::POST, format!("/v1/licenses/{lic}/unban")),
        (Method::POST, format!("/v1/licenses/{lic}/reset-hwids")),
        (Method::POST, format!("/v1/apps/{app}/reset-secret")),
        (Method::GET, "/v1/apps".to_string()),
    ] {
        let r = cp
            .raw(
                method.clone(),
                &path,
                Some(&t),
                Some("application/json"),
                huge.clone(),
            )
            .await;
        assert_json_error(&r, 413, &format!("{method} {path} 2 MB"));
        assert_eq!(r.code(), "PAYLOAD_TOO_LARGE");
    }
    // Unknown routes and methods.
    let r = cp.call(Method::GET, "/v1/nothing", Some(&t), None).await;
    assert_json_error(&r, 404, "unknown route");
    let r = cp.call(Method::PUT, "/v1/apps", Some(&t), None).await;
    assert_json_error(&r, 405, "wrong method");
    // None of it left a trace: the app still has exactly one license.
    let list = cp.ok(Method::GET, "/v1/licenses", &t, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

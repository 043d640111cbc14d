//! `control-plane demo` is idempotent: re-runs reuse the app and keys, refresh the credentials,
//! and repair whatever would stop the printed `curl` from validating.

mod common;

use common::*;
use keyward_control_plane::demo;
use keyward_shared::model::LicenseStatus;
use reqwest::Method;
use serde_json::json;

fn keys(d: &demo::Demo) -> Vec<String> {
    d.licenses.iter().map(|l| l.key.clone()).collect()
}

#[tokio::test]
async fn demo_is_idempotent_and_always_prints_a_valid_open_key() {
    let cp = Cp::start().await;
    let first = demo::create(&cp.db.url).await.expect("first demo run");
    assert_eq!(first.licenses.len(), 5);
    assert!(first.licenses.iter().all(|l| l.key.starts_with("DEMO-")));
    let open = &first.licenses[0];
    assert_eq!((open.hwid_limit, open.ip_limit), (0, 0));
    assert!(open.expires_at.is_none() && open.duration_secs.is_none());
    assert_eq!(first.curl_key(), open.key);

    let out = first.render("http://cp.test", "http://validator.test");
    let expected = format!(
        r#"curl -s -X POST http://validator.test/v1/validate -H 'content-type: application/json' -d '{{"app":"{}","key":"{}","hwid":"demo-machine"}}'"#,
        first.app.id, open.key
    );
    let last = out.lines().last().unwrap();
    assert_eq!(last, format!("KEYWARD_DEMO_CURL={expected}"));
    assert!(out.lines().any(|l| l.trim() == expected), "{out}");
    for needle in [
        first.password.clone(),
        first.api_key.clone(),
        first.app.secret.clone(),
        first.app.id.to_string(),
        "http://cp.test/v1/auth/login".to_string(),
        "admin UI        http://cp.test/ui/".to_string(),
    ] {
        assert!(out.contains(&needle), "{needle} missing from {out}");
    }

    // A re-run: same app and keys, a new password and API key; the old password stops working.
    let second = demo::create(&cp.db.url).await.expect("second demo run");
    assert_eq!(second.app.id, first.app.id);
    assert_eq!(keys(&second), keys(&first));
    assert_ne!(second.password, first.password);
    assert_ne!(second.api_key, first.api_key);
    let login = |password: String| {
        cp.call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"username": "demo", "password": password})),
        )
    };
    assert_eq!(login(first.password.clone()).await.status, 401);
    assert_eq!(login(second.password.clone()).await.status, 200);

    // Someone pauses the app, bans the open key and deletes another: the next run repairs it.
    let key = second.api_key.as_str();
    let app = second.app.id;
    cp.ok(
        Method::PATCH,
        &format!("/v1/apps/{app}"),
        key,
        Some(json!({"paused": true})),
    )
    .await;
    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{}/ban", second.licenses[0].id),
        key,
        Some(json!({})),
    )
    .await;
    let deleted = cp
        .call(
            Method::DELETE,
            &format!("/v1/licenses/{}", second.licenses[4].id),
            Some(key),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    let third = demo::create(&cp.db.url).await.expect("third demo run");
    assert!(!third.app.paused);
    assert_eq!(third.licenses.len(), 5);
    assert_ne!(third.curl_key(), second.curl_key());
    assert_eq!(third.licenses[0].status, LicenseStatus::Active);
    assert_eq!(keys(&third)[1..4], keys(&second)[1..4]);
    let active = cp
        .ok(
            Method::GET,
            &format!("/v1/licenses?app_id={app}&status=active&limit=100"),
            &third.api_key,
            None,
        )
        .await;
    assert_eq!(active["items"].as_array().unwrap().len(), 5);
}

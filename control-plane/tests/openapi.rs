//! The served OpenAPI document is valid JSON of OpenAPI 3.1, and every operation it documents is
//! routed (no operation answers the router's "no such route" or 405).

mod common;

use common::*;
use reqwest::Method;
use serde_json::Value;

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let doc: Value = cp
        .http
        .get(format!("{}/openapi.json", cp.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .expect("the document is JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 50);
    let mut checked = 0;
    for (path, ops) in paths {
        let concrete: String = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    seg.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, _) in ops.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let r = cp.call(method.clone(), &concrete, Some(&jwt), None).await;
            assert_ne!(
                r.status, 405,
                "{method} {path} is documented but not routed"
            );
            assert_ne!(
                r.body["message"], "no such route",
                "{method} {path} is documented but not routed"
            );
            // CyberLicense's shape for the router's own 404.
            assert_ne!(
                r.body["error"], "Not found",
                "{method} {path} is documented but not routed"
            );
            assert!(r.status < 500, "{method} {path} → {}", r.status);
            checked += 1;
        }
    }
    assert!(checked >= 75, "{checked}");
}

//! Entitlements over the native REST API: CRUD, attach to and detach from policies and licenses,
//! the errors, and another tenant's reach.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn codes(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn entitlements_crud_and_attachments() {
    let cp = Cp::start().await;
    let a = cp.admin("alice").await;
    let app = cp.app(&a, "Alice Tool").await;
    let policy = cp
        .ok(
            Method::POST,
            &format!("/v1/apps/{app}/policies"),
            &a,
            Some(json!({"name": "Pro"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lic = cp.licenses(&a, &app, json!({"count": 1})).await.remove(0)["id"]
        .as_str()
        .unwrap()
        .to_string();

    let export = cp
        .ok(
            Method::POST,
            "/v1/entitlements",
            &a,
            Some(json!({"name": "Export", "code": "FEATURE_EXPORT", "metadata": {"since": "2.0"}})),
        )
        .await;
    assert_eq!(export["code"], "FEATURE_EXPORT");
    let export_id = export["id"].as_str().unwrap().to_string();
    let sync = cp
        .ok(
            Method::POST,
            "/v1/entitlements",
            &a,
            Some(json!({"name": "Sync", "code": "sync.cloud"})),
        )
        .await;
    let sync_id = sync["id"].as_str().unwrap().to_string();
    let got = cp
        .ok(
            Method::GET,
            &format!("/v1/entitlements/{export_id}"),
            &a,
            None,
        )
        .await;
    assert_eq!(got, export);
    let all = cp.ok(Method::GET, "/v1/entitlements", &a, None).await;
    assert_eq!(codes(&all), ["FEATURE_EXPORT", "sync.cloud"]);

    let r = cp
        .call(
            Method::POST,
            "/v1/entitlements",
            Some(&a),
            Some(json!({"name": "Again", "code": "FEATURE_EXPORT"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    for (body, says) in [
        (json!({"name": "x"}), "code is required"),
        (json!({"code": "X"}), "name must be"),
        (json!({"name": "x", "code": "has space"}), "code must be"),
        (json!({"name": "x", "code": "-lead"}), "code must be"),
        (json!({"name": "x", "code": "c".repeat(65)}), "code must be"),
        (json!({"name": "x", "code": "ok", "colour": 1}), "colour"),
    ] {
        let r = cp
            .call(
                Method::POST,
                "/v1/entitlements",
                Some(&a),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 400, "{body} → {}", r.body);
        assert!(
            r.body["message"].as_str().unwrap_or("").contains(says),
            "{body} → {}",
            r.body
        );
    }
    let renamed = cp
        .ok(
            Method::PATCH,
            &format!("/v1/entitlements/{sync_id}"),
            &a,
            Some(json!({"name": "Cloud sync"})),
        )
        .await;
    assert_eq!(renamed["name"], "Cloud sync");
    assert_eq!(renamed["code"], "sync.cloud");

    // Attach to the policy and the license; attaching twice changes nothing.
    for holder in [
        format!("/v1/policies/{policy}"),
        format!("/v1/licenses/{lic}"),
    ] {
        let path = format!("{holder}/entitlements");
        let list = cp
            .ok(
                Method::POST,
                &path,
                &a,
                Some(json!({"entitlement_ids": [export_id, export_id]})),
            )
            .await;
        assert_eq!(codes(&list), ["FEATURE_EXPORT"]);
        let list = cp
            .ok(
                Method::POST,
                &path,
                &a,
                Some(json!({"entitlement_ids": [sync_id, export_id]})),
            )
            .await;
        assert_eq!(codes(&list), ["FEATURE_EXPORT", "sync.cloud"]);
        let r = cp
            .call(
                Method::POST,
                &path,
                Some(&a),
                Some(json!({"entitlement_ids": []})),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        let r = cp
            .call(
                Method::POST,
                &path,
                Some(&a),
                Some(json!({"entitlement_ids": [uuid::Uuid::new_v4()]})),
            )
            .await;
        assert_eq!(r.status, 404, "{}", r.body);
        let r = cp
            .call(Method::DELETE, &format!("{path}/{sync_id}"), Some(&a), None)
            .await;
        assert_eq!(r.status, 204);
        let r = cp
            .call(Method::DELETE, &format!("{path}/{sync_id}"), Some(&a), None)
            .await;
        assert_eq!(r.status, 404, "detached twice: {}", r.body);
        let list = cp.ok(Method::GET, &path, &a, None).await;
        assert_eq!(codes(&list), ["FEATURE_EXPORT"]);
    }

    // Deleting an entitlement takes it off every holder.
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/entitlements/{export_id}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    for holder in [
        format!("/v1/policies/{policy}"),
        format!("/v1/licenses/{lic}"),
    ] {
        let list = cp
            .ok(Method::GET, &format!("{holder}/entitlements"), &a, None)
            .await;
        assert_eq!(list["items"], json!([]));
    }
    let missing = uuid::Uuid::new_v4();
    for (m, p) in [
        (Method::GET, format!("/v1/entitlements/{missing}")),
        (Method::PATCH, format!("/v1/entitlements/{missing}")),
        (Method::DELETE, format!("/v1/entitlements/{missing}")),
        (Method::GET, format!("/v1/policies/{missing}/entitlements")),
        (Method::GET, format!("/v1/licenses/{missing}/entitlements")),
    ] {
        let r = cp
            .call(m.clone(), &p, Some(&a), Some(json!({"name": "n"})))
            .await;
        assert_eq!(r.status, 404, "{m} {p} → {}", r.body);
    }
}

#[tokio::test]
async fn another_tenant_reaches_no_entitlement() {
    let cp = Cp::start().await;
    let a = cp.admin("alice").await;
    let b = cp.admin("bob").await;
    let app = cp.app(&a, "Alice Tool").await;
    let lic = cp.licenses(&a, &app, json!({"count": 1})).await.remove(0)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ent = cp
        .ok(
            Method::POST,
            "/v1/entitlements",
            &a,
            Some(json!({"name": "Export", "code": "EXPORT"})),
        )
        .await;
    let id = ent["id"].as_str().unwrap().to_string();
    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{lic}/entitlements"),
        &a,
        Some(json!({"entitlement_ids": [id]})),
    )
    .await;
    // Bob's own entitlement with the same code is fine (codes are per account), but he cannot
    // attach it to Alice's license, nor Alice's to his.
    let bobs = cp
        .ok(
            Method::POST,
            "/v1/entitlements",
            &b,
            Some(json!({"name": "Export", "code": "EXPORT"})),
        )
        .await;
    let bob_app = cp.app(&b, "Bob Tool").await;
    let bob_lic = cp
        .licenses(&b, &bob_app, json!({"count": 1}))
        .await
        .remove(0)["id"]
        .as_str()
        .unwrap()
        .to_string();
    cp.all_not_found(
        &b,
        vec![
            (Method::GET, format!("/v1/entitlements/{id}"), None),
            (
                Method::PATCH,
                format!("/v1/entitlements/{id}"),
                Some(json!({"name": "bob's"})),
            ),
            (Method::DELETE, format!("/v1/entitlements/{id}"), None),
            (
                Method::GET,
                format!("/v1/licenses/{lic}/entitlements"),
                None,
            ),
            (
                Method::POST,
                format!("/v1/licenses/{lic}/entitlements"),
                Some(json!({"entitlement_ids": [bobs["id"]]})),
            ),
            (
                Method::DELETE,
                format!("/v1/licenses/{lic}/entitlements/{id}"),
                None,
            ),
            (
                Method::POST,
                format!("/v1/licenses/{bob_lic}/entitlements"),
                Some(json!({"entitlement_ids": [id]})),
            ),
        ],
    )
    .await;
    let still = cp
        .ok(
            Method::GET,
            &format!("/v1/licenses/{lic}/entitlements"),
            &a,
            None,
        )
        .await;
    assert_eq!(codes(&still), ["EXPORT"]);
    let own = cp.ok(Method::GET, "/v1/entitlements", &b, None).await;
    assert_eq!(own["items"].as_array().unwrap().len(), 1);
}

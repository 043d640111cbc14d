//! Machines over the native REST API: activation within the license's limit (also when many
//! race), description, deactivation, the errors each gives, and another tenant's reach.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

async fn license(cp: &Cp, token: &str, hwid_limit: i32) -> (String, String) {
    let app = cp
        .app(token, &format!("Tool {}", uuid::Uuid::new_v4()))
        .await;
    let lic = cp
        .licenses(
            token,
            &app,
            json!({"count": 1, "duration_days": 30, "hwid_limit": hwid_limit}),
        )
        .await
        .remove(0);
    (app, lic["id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn activate_describe_and_deactivate_within_the_limit() {
    let cp = Cp::start().await;
    let a = cp.admin("alice").await;
    let (app, lic) = license(&cp, &a, 2).await;
    let path = format!("/v1/licenses/{lic}/machines");

    let m1 = cp
        .ok(
            Method::POST,
            &path,
            &a,
            Some(json!({
                "fingerprint": "fp-1", "name": "Office PC", "hostname": "office-1",
                "platform": "linux/x86_64", "ip": "198.51.100.4", "cores": 8,
                "memory": 17_179_869_184_i64, "metadata": {"seat": 12}
            })),
        )
        .await;
    assert_eq!(m1["fingerprint"], "fp-1");
    assert_eq!(m1["license_id"], lic);
    assert_eq!(m1["app_id"], app);
    assert_eq!(m1["bound_by"], "api");
    assert_eq!(m1["memory"], 17_179_869_184_i64);
    assert_eq!(m1["ip"], "198.51.100.4");
    let m1_id = m1["id"].as_str().unwrap().to_string();
    let got = cp
        .ok(Method::GET, &format!("/v1/machines/{m1_id}"), &a, None)
        .await;
    assert_eq!(got, m1);
    // The license shows it as a bound HWID, as the validators see it.
    let l = cp
        .ok(Method::GET, &format!("/v1/licenses/{lic}"), &a, None)
        .await;
    assert_eq!(l["hwids"][0]["hwid"], "fp-1");
    assert_eq!(l["hwids"][0]["bound_by"], "api");

    let r = cp
        .call(
            Method::POST,
            &path,
            Some(&a),
            Some(json!({"fingerprint": "fp-1"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("already activated"));
    cp.ok(
        Method::POST,
        &path,
        &a,
        Some(json!({"fingerprint": "fp-2"})),
    )
    .await;
    let r = cp
        .call(
            Method::POST,
            &path,
            Some(&a),
            Some(json!({"fingerprint": "fp-3"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("allows 2"),
        "{}",
        r.body
    );

    // Describe: absent fields stay, null clears.
    let patched = cp
        .ok(
            Method::PATCH,
            &format!("/v1/machines/{m1_id}"),
            &a,
            Some(json!({"name": "Reception PC", "hostname": null})),
        )
        .await;
    assert_eq!(patched["name"], "Reception PC");
    assert_eq!(patched["hostname"], json!(null));
    assert_eq!(patched["platform"], "linux/x86_64");
    assert_eq!(patched["fingerprint"], "fp-1");

    let listed = cp.ok(Method::GET, &path, &a, None).await;
    let fps: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(fps, ["fp-1", "fp-2"]);

    // Deactivate: the slot is free again.
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/machines/{m1_id}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = cp
        .call(
            Method::GET,
            &format!("/v1/machines/{m1_id}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    cp.ok(
        Method::POST,
        &path,
        &a,
        Some(json!({"fingerprint": "fp-3"})),
    )
    .await;

    // Errors.
    let bad = [
        (json!({}), "fingerprint"),
        (json!({"fingerprint": ""}), "fingerprint must be"),
        (
            json!({"fingerprint": "x".repeat(257)}),
            "fingerprint must be",
        ),
        (json!({"fingerprint": 7}), "fingerprint must be a string"),
        (json!({"fingerprint": "f", "ip": "not-an-ip"}), "address"),
        (json!({"fingerprint": "f", "cores": 0}), "cores"),
        (json!({"fingerprint": "f", "name": "n".repeat(256)}), "name"),
        (json!({"fingerprint": "f", "colour": "red"}), "colour"),
        (
            json!({"fingerprint": "f", "metadata": {"a": {"b": {"c": {"d": {"e": 1}}}}}}),
            "nest",
        ),
    ];
    for (body, says) in bad {
        let r = cp
            .call(Method::POST, &path, Some(&a), Some(body.clone()))
            .await;
        assert_eq!(r.status, 400, "{body} → {}", r.body);
        let msg = r.body["message"].as_str().unwrap_or("");
        assert!(msg.contains(says), "{body} → {msg}");
    }
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/machines/{m1_id}"),
            Some(&a),
            Some(json!({"fingerprint": "fp-9"})),
        )
        .await;
    assert_eq!(r.status, 400, "the fingerprint is not editable: {}", r.body);
    let missing = uuid::Uuid::new_v4();
    for (m, p) in [
        (Method::GET, format!("/v1/machines/{missing}")),
        (Method::PATCH, format!("/v1/machines/{missing}")),
        (Method::DELETE, format!("/v1/machines/{missing}")),
        (Method::GET, format!("/v1/licenses/{missing}/machines")),
        (Method::POST, format!("/v1/licenses/{missing}/machines")),
    ] {
        let body = if m == Method::PATCH {
            json!({"name": "n"})
        } else {
            json!({"fingerprint": "f"})
        };
        let r = cp.call(m.clone(), &p, Some(&a), Some(body)).await;
        assert_eq!(r.status, 404, "{m} {p} → {}", r.body);
    }

    let audit = cp.ok(Method::GET, "/v1/audit-log", &a, None).await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["machine.activate", "machine.update", "machine.deactivate"] {
        assert!(actions.contains(&action), "{actions:?}");
    }
}

#[tokio::test]
async fn concurrent_activations_never_exceed_the_limit() {
    let cp = Cp::start().await;
    let a = cp.admin("alice").await;
    let (_, lic) = license(&cp, &a, 3).await;
    let path = format!("/v1/licenses/{lic}/machines");
    let attempts = (0..24).map(|i| {
        let (cp, a, path) = (&cp, &a, &path);
        async move {
            cp.call(
                Method::POST,
                path,
                Some(a),
                Some(json!({"fingerprint": format!("racer-{i}")})),
            )
            .await
            .status
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let created = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((created, refused), (3, 21), "{statuses:?}");
    let listed = cp.ok(Method::GET, &path, &a, None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn another_tenant_reaches_no_machine() {
    let cp = Cp::start().await;
    let a = cp.admin("alice").await;
    let b = cp.admin("bob").await;
    let (_, lic) = license(&cp, &a, 0).await;
    let m = cp
        .ok(
            Method::POST,
            &format!("/v1/licenses/{lic}/machines"),
            &a,
            Some(json!({"fingerprint": "alice-pc"})),
        )
        .await;
    let id = m["id"].as_str().unwrap().to_string();
    cp.all_not_found(
        &b,
        vec![
            (Method::GET, format!("/v1/machines/{id}"), None),
            (
                Method::PATCH,
                format!("/v1/machines/{id}"),
                Some(json!({"name": "bob's"})),
            ),
            (Method::DELETE, format!("/v1/machines/{id}"), None),
            (Method::GET, format!("/v1/licenses/{lic}/machines"), None),
            (
                Method::POST,
                format!("/v1/licenses/{lic}/machines"),
                Some(json!({"fingerprint": "bob-pc"})),
            ),
        ],
    )
    .await;
    let after = cp
        .ok(Method::GET, &format!("/v1/machines/{id}"), &a, None)
        .await;
    assert_eq!(after, m);
    let listed = cp
        .ok(
            Method::GET,
            &format!("/v1/licenses/{lic}/machines"),
            &a,
            None,
        )
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

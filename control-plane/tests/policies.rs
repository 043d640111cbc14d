//! Policies over the native REST API: create with defaults, read, list, patch (rules checked on
//! the result), delete; the errors each gives; the audit trail; another tenant sees none of it.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn policy_crud_with_keygens_defaults_and_whole_policy_rules() {
    let cp = Cp::start().await;
    let a = cp.admin("alice").await;
    let app = cp.app(&a, "Alice Tool").await;
    let path = format!("/v1/apps/{app}/policies");

    // Created with only a name: the defaults a Keygen policy has.
    let basic = cp
        .ok(Method::POST, &path, &a, Some(json!({"name": " Basic "})))
        .await;
    assert_eq!(basic["name"], "Basic");
    assert_eq!(basic["app_id"], app);
    assert_eq!(basic["floating"], false);
    assert_eq!(basic["max_machines"], 1);
    assert_eq!(basic["duration_secs"], json!(null));
    assert_eq!(basic["expiration_strategy"], "restrict_access");
    assert_eq!(basic["authentication_strategy"], "token");
    assert_eq!(basic["heartbeat_duration_secs"], 600);
    assert_eq!(basic["required_scopes"], json!([]));
    assert_eq!(basic["metadata"], json!({}));
    let basic_id = basic["id"].as_str().unwrap().to_string();

    let pro = cp
        .ok(
            Method::POST,
            &path,
            &a,
            Some(json!({
                "name": "Pro", "floating": true, "max_machines": 8, "strict": true,
                "duration_secs": 2_592_000, "expiration_basis": "from_first_validation",
                "overage_strategy": "allow_1_25x_overage", "require_heartbeat": true,
                "heartbeat_duration_secs": 300, "heartbeat_resurrection_strategy": "5_minute_revive",
                "required_scopes": ["fingerprint", "product"], "metadata": {"tier": 2},
                "authentication_strategy": "license"
            })),
        )
        .await;
    let pro_id = pro["id"].as_str().unwrap().to_string();
    assert_eq!(pro["max_machines"], 8);
    assert_eq!(pro["required_scopes"], json!(["fingerprint", "product"]));
    let got = cp
        .ok(Method::GET, &format!("/v1/policies/{pro_id}"), &a, None)
        .await;
    assert_eq!(got, pro);

    // Lists: per app, per account, filtered by app.
    let listed = cp.ok(Method::GET, &path, &a, None).await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Basic", "Pro"]);
    let other_app = cp.app(&a, "Other").await;
    cp.ok(
        Method::POST,
        &format!("/v1/apps/{other_app}/policies"),
        &a,
        Some(json!({"name": "Basic"})),
    )
    .await;
    let all = cp.ok(Method::GET, "/v1/policies", &a, None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    let filtered = cp
        .ok(Method::GET, &format!("/v1/policies?app_id={app}"), &a, None)
        .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 2);

    // Patch: absent fields stay, null clears, the whole result is checked.
    let patched = cp
        .ok(
            Method::PATCH,
            &format!("/v1/policies/{pro_id}"),
            &a,
            Some(json!({"duration_secs": null, "max_uses": 100})),
        )
        .await;
    assert_eq!(patched["duration_secs"], json!(null));
    assert_eq!(patched["max_uses"], 100);
    assert_eq!(patched["max_machines"], 8);
    assert_eq!(patched["expiration_basis"], "from_first_validation");
    // Alone fine, wrong on what it lands on: 1.25× overage of 8 machines, node-locked.
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/policies/{pro_id}"),
            Some(&a),
            Some(json!({"floating": false})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("floating"),
        "{}",
        r.body
    );
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/policies/{pro_id}"),
            Some(&a),
            Some(json!({"max_machines": 6})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("divisible by 4"));
    let unchanged = cp
        .ok(Method::GET, &format!("/v1/policies/{pro_id}"), &a, None)
        .await;
    assert_eq!(unchanged["max_machines"], 8);
    assert_eq!(unchanged["floating"], true);

    // Errors.
    let bad: &[(serde_json::Value, &str)] = &[
        (json!({}), "name is required"),
        (json!({"name": ""}), "name must be"),
        (json!({"name": "x", "duration_secs": 10}), "duration_secs"),
        (json!({"name": "x", "max_machines": 2}), "node-locked"),
        (
            json!({"name": "x", "expiration_strategy": "RESTRICT_ACCESS"}),
            "restrict_access",
        ),
        (
            json!({"name": "x", "required_scopes": ["galaxy"]}),
            "galaxy",
        ),
        (json!({"name": "x", "colour": "red"}), "colour"),
        (
            json!({"name": "x", "require_check_in": true}),
            "check_in_interval",
        ),
        (
            json!({"name": "x", "max_cores": 2_147_483_648_i64}),
            "max_cores",
        ),
        (json!({"name": "x", "metadata": [1]}), "metadata"),
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
        .call(Method::POST, &path, Some(&a), Some(json!({"name": "Pro"})))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/policies/{basic_id}"),
            Some(&a),
            Some(json!({"name": "Pro"})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let missing = uuid::Uuid::new_v4();
    for (m, p) in [
        (Method::GET, format!("/v1/policies/{missing}")),
        (Method::PATCH, format!("/v1/policies/{missing}")),
        (Method::DELETE, format!("/v1/policies/{missing}")),
        (Method::GET, format!("/v1/apps/{missing}/policies")),
        (Method::POST, format!("/v1/apps/{missing}/policies")),
    ] {
        let r = cp
            .call(m.clone(), &p, Some(&a), Some(json!({"name": "n"})))
            .await;
        assert_eq!(r.status, 404, "{m} {p} → {}", r.body);
    }
    let r = cp.call(Method::GET, "/v1/policies", None, None).await;
    assert_eq!(r.status, 401);

    // Delete, then it is gone; every write is in the audit log.
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/policies/{basic_id}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = cp
        .call(
            Method::GET,
            &format!("/v1/policies/{basic_id}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let audit = cp.ok(Method::GET, "/v1/audit-log", &a, None).await;
    let actions: Vec<String> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_string))
        .filter(|a| a.starts_with("policy."))
        .collect();
    for action in ["policy.create", "policy.update", "policy.delete"] {
        assert!(actions.iter().any(|a| a == action), "{actions:?}");
    }

    // Deleting the app takes its policies with it.
    cp.ok(Method::DELETE, &format!("/v1/apps/{app}"), &a, None)
        .await;
    let r = cp
        .call(
            Method::GET,
            &format!("/v1/policies/{pro_id}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn another_tenant_reaches_no_policy_and_scoped_keys_are_enforced() {
    let cp = Cp::start().await;
    let a = cp.admin("alice").await;
    let b = cp.admin("bob").await;
    let app = cp.app(&a, "Alice Tool").await;
    let policy = cp
        .ok(
            Method::POST,
            &format!("/v1/apps/{app}/policies"),
            &a,
            Some(json!({"name": "Alice Pro"})),
        )
        .await;
    let id = policy["id"].as_str().unwrap().to_string();
    cp.all_not_found(
        &b,
        vec![
            (Method::GET, format!("/v1/policies/{id}"), None),
            (
                Method::PATCH,
                format!("/v1/policies/{id}"),
                Some(json!({"name": "Bob's now"})),
            ),
            (Method::DELETE, format!("/v1/policies/{id}"), None),
            (Method::GET, format!("/v1/apps/{app}/policies"), None),
            (
                Method::POST,
                format!("/v1/apps/{app}/policies"),
                Some(json!({"name": "Bob's"})),
            ),
        ],
    )
    .await;
    let bobs = cp.ok(Method::GET, "/v1/policies", &b, None).await;
    assert_eq!(bobs["items"], json!([]));
    let bobs = cp
        .ok(Method::GET, &format!("/v1/policies?app_id={app}"), &b, None)
        .await;
    assert_eq!(bobs["items"], json!([]));
    let after = cp
        .ok(Method::GET, &format!("/v1/policies/{id}"), &a, None)
        .await;
    assert_eq!(after, policy);

    // An API key with read scope only reads.
    let key = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &a,
            Some(json!({"name": "reader", "scopes": ["policies:read"]})),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    cp.ok(Method::GET, &format!("/v1/policies/{id}"), &key, None)
        .await;
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/policies/{id}"),
            Some(&key),
            Some(json!({"strict": true})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
}

//! Policies over the native REST API: create with defaults, read, list, patch (rules checked on
//! the result), delete; the errors each gives; the audit trail; another tenant sees none of it;
//! licenses following their policy's limits unless they override them.

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
    // Every app has its default policy first.
    assert_eq!(names, ["Default", "Basic", "Pro"]);
    let other_app = cp.app(&a, "Other").await;
    cp.ok(
        Method::POST,
        &format!("/v1/apps/{other_app}/policies"),
        &a,
        Some(json!({"name": "Basic"})),
    )
    .await;
    let all = cp.ok(Method::GET, "/v1/policies", &a, None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 5);
    let filtered = cp
        .ok(Method::GET, &format!("/v1/policies?app_id={app}"), &a, None)
        .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 3);

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
    // Nor can Bob's licenses follow Alice's policy.
    let bobs_app = cp.app(&b, "Bob Tool").await;
    let r = cp
        .call(
            Method::POST,
            &format!("/v1/apps/{bobs_app}/licenses"),
            Some(&b),
            Some(json!({"policy_id": id})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let bobs_license = &cp.licenses(&b, &bobs_app, json!({})).await[0];
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/licenses/{}", bobs_license["id"].as_str().unwrap()),
            Some(&b),
            Some(json!({"policy_id": id})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
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

#[tokio::test]
async fn licenses_follow_their_policy_unless_they_override_it() {
    let cp = Cp::start().await;
    let a = cp.admin("alice").await;
    let app = cp.app(&a, "Alice Tool").await;
    let policies = cp
        .ok(Method::GET, &format!("/v1/apps/{app}/policies"), &a, None)
        .await;
    let default = &policies["items"][0];
    assert_eq!(default["is_default"], true);
    assert_eq!(default["name"], "Default");
    assert_eq!(default["authentication_strategy"], "license");
    assert_eq!(default["max_machines"], 1);
    assert_eq!(default["max_uses"], 1);
    let default_id = default["id"].as_str().unwrap().to_string();

    // Without a policy: the default's limits, as a KeyAuth key always had.
    let plain = &cp.licenses(&a, &app, json!({})).await[0];
    assert_eq!(plain["policy_id"], default_id.as_str());
    assert_eq!(plain["hwid_limit"], 1);
    assert_eq!(plain["ip_limit"], 0);
    assert_eq!(plain["max_uses"], 1);
    assert_eq!(plain["expires_at"], json!(null));

    // A floating policy with a duration from creation, another from first validation.
    let floating = cp
        .ok(
            Method::POST,
            &format!("/v1/apps/{app}/policies"),
            &a,
            Some(json!({"name": "Team", "floating": true, "max_machines": 3,
                        "ip_limit": 4, "duration_secs": 86_400})),
        )
        .await;
    let floating_id = floating["id"].as_str().unwrap().to_string();
    assert_eq!(floating["is_default"], false);
    let first_use = cp
        .ok(
            Method::POST,
            &format!("/v1/apps/{app}/policies"),
            &a,
            Some(json!({"name": "Trial", "duration_secs": 3_600,
                        "expiration_basis": "from_first_validation"})),
        )
        .await;
    let team = cp
        .licenses(&a, &app, json!({"policy_id": floating_id, "count": 2}))
        .await;
    for l in &team {
        assert_eq!(l["policy_id"], floating_id.as_str());
        assert_eq!(l["hwid_limit"], 3);
        assert_eq!(l["ip_limit"], 4);
        assert_eq!(l["max_uses"], json!(null), "no limit");
        let expires: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(l["expires_at"].clone()).unwrap();
        let in_secs = (expires - chrono::Utc::now()).num_seconds();
        assert!((86_300..=86_400).contains(&in_secs), "{in_secs}");
    }
    let trial = &cp
        .licenses(&a, &app, json!({"policy_id": first_use["id"]}))
        .await[0];
    assert_eq!(trial["expires_at"], json!(null));
    assert_eq!(trial["duration_secs"], 3_600);
    // An explicit duration wins over the policy's.
    let explicit = &cp
        .licenses(
            &a,
            &app,
            json!({"policy_id": floating_id, "duration_days": 7}),
        )
        .await[0];
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(explicit["expires_at"].clone()).unwrap();
    assert!((expires - chrono::Utc::now()).num_days() >= 6);

    let license = |l: &serde_json::Value| format!("/v1/licenses/{}", l["id"].as_str().unwrap());
    let (one, two) = (license(&team[0]), license(&team[1]));

    // An override stays when the policy changes; the others follow the policy.
    let r = cp
        .ok(Method::PATCH, &one, &a, Some(json!({"hwid_limit": 2})))
        .await;
    assert_eq!(r["hwid_limit"], 2);
    cp.ok(
        Method::PATCH,
        &format!("/v1/policies/{floating_id}"),
        &a,
        Some(json!({"max_machines": 5, "max_uses": 10})),
    )
    .await;
    let got = cp.ok(Method::GET, &one, &a, None).await;
    assert_eq!(
        (got["hwid_limit"].clone(), got["max_uses"].clone()),
        (json!(2), json!(10))
    );
    let got = cp.ok(Method::GET, &two, &a, None).await;
    assert_eq!(got["hwid_limit"], 5);
    // null gives the limit back to the policy.
    let got = cp
        .ok(Method::PATCH, &one, &a, Some(json!({"hwid_limit": null})))
        .await;
    assert_eq!(got["hwid_limit"], 5);
    let r = cp
        .call(Method::PATCH, &one, Some(&a), Some(json!({"max_uses": 0})))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // A policy with licenses cannot go, nor can the default; move them and it can.
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/policies/{floating_id}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("3 licenses"),
        "{}",
        r.body
    );
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/policies/{default_id}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    for l in [&one, &two, &license(explicit)] {
        let moved = cp
            .ok(Method::PATCH, l, &a, Some(json!({"policy_id": default_id})))
            .await;
        assert_eq!(moved["policy_id"], default_id.as_str());
        assert_eq!(moved["hwid_limit"], 1);
    }
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/policies/{floating_id}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);

    // Only a policy of the license's own app.
    let other_app = cp.app(&a, "Other").await;
    let others = cp
        .ok(
            Method::GET,
            &format!("/v1/apps/{other_app}/policies"),
            &a,
            None,
        )
        .await;
    let others_default = others["items"][0]["id"].as_str().unwrap();
    let r = cp
        .call(
            Method::PATCH,
            &one,
            Some(&a),
            Some(json!({"policy_id": others_default})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = cp
        .call(
            Method::POST,
            &format!("/v1/apps/{app}/licenses"),
            Some(&a),
            Some(json!({"policy_id": others_default})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains("policy_id"),
        "{}",
        r.body
    );
}

//! Event webhooks over real PostgreSQL and a real local receiver: endpoints' CRUD and checks,
//! deliveries signed like Keygen answers, retries with growing delays, the retry route, and the
//! outbox's promise: an event committed while no worker runs is delivered once afterwards, and a
//! worker that dies between claiming and recording costs at most a repeat.

mod common;

use std::time::Duration;

use common::receiver::{Got, Receiver, PATIENCE};
use common::*;
use keyward_control_plane::Config;
use keyward_shared::keygen_signature;
use keyward_shared::store::webhook_endpoints::EVENTS;
use keyward_shared::store::webhook_events::{self, Attempt, Outcome};
use keyward_shared::testing::eventually;
use reqwest::Method;
use serde_json::{json, Value};

/// Loopback receivers over http, and quick retries.
fn local(c: &mut Config) {
    c.webhooks.allow_private = true;
    c.webhooks.allow_http = true;
    c.webhooks.backoff_base_ms = 200;
}

async fn endpoint(cp: &Cp, token: &str, body: Value) -> Value {
    cp.ok(Method::POST, "/v1/webhook-endpoints", token, Some(body))
        .await
}

async fn event_with_status(cp: &Cp, token: &str, id: &str, status: &str) -> Value {
    eventually(PATIENCE, &format!("event {id} {status}"), || async {
        let e = cp
            .ok(
                Method::GET,
                &format!("/v1/webhook-events/{id}"),
                token,
                None,
            )
            .await;
        (e["status"] == status).then_some(e)
    })
    .await
    .0
}

async fn events_of(cp: &Cp, token: &str, endpoint: &str) -> Vec<Value> {
    cp.ok(
        Method::GET,
        &format!("/v1/webhook-events?endpoint_id={endpoint}&limit=100"),
        token,
        None,
    )
    .await["items"]
        .as_array()
        .expect("items")
        .clone()
}

async fn one_license(cp: &Cp, token: &str, app: &str) -> Value {
    cp.licenses(token, app, json!({"count": 1, "duration_days": 5}))
        .await
        .remove(0)
}

#[tokio::test]
async fn endpoints_crud_and_checks() {
    let cp = Cp::start().await;
    let alice = cp.admin("alice").await;
    let bob = cp.admin("bob").await;
    let app = cp.app(&alice, "Tool").await;

    let e = endpoint(&cp, &alice, json!({"url": "https://example.com/hooks?k=1"})).await;
    let id = e["id"].as_str().expect("id").to_string();
    assert_eq!(e["url"], "https://example.com/hooks?k=1");
    assert_eq!(e["subscriptions"], json!(["*"]));
    assert_eq!(e["signature_algorithm"], "ed25519");
    assert_eq!(e["api_version"], "1.8");
    assert_eq!(
        (e["enabled"].clone(), e["app_id"].clone()),
        (json!(true), Value::Null)
    );

    // Refusals, each a 400 that says why.
    for (body, says) in [
        (json!({"url": "http://example.com/h"}), "https"),
        (json!({"url": "https://127.0.0.1/h"}), "private"),
        (json!({"url": "https://[::1]:8443/h"}), "private"),
        (json!({"url": "https://169.254.169.254/latest"}), "private"),
        (
            json!({"url": "https://user:pw@example.com/h"}),
            "credentials",
        ),
        (json!({"url": "ftp://example.com/h"}), "scheme"),
        (json!({"url": "not a url"}), "url"),
        (json!({}), "url is required"),
        (
            json!({"url": "https://example.com", "subscriptions": ["license.exploded"]}),
            "license.exploded",
        ),
        (
            json!({"url": "https://example.com", "subscriptions": []}),
            "at least one",
        ),
        (
            json!({"url": "https://example.com", "signature_algorithm": "rsa-sha256"}),
            "ed25519",
        ),
        (
            json!({"url": "https://example.com", "api_version": "latest"}),
            "api_version",
        ),
        (
            json!({"url": "https://example.com", "secret": "x"}),
            "unknown field",
        ),
    ] {
        let r = cp
            .call(
                Method::POST,
                "/v1/webhook-endpoints",
                Some(&alice),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 400, "{body} → {}", r.body);
        let m = r.body["message"].as_str().unwrap_or("");
        assert!(m.contains(says), "{body} → {m}");
    }

    // Read, list, update.
    let got = cp
        .ok(
            Method::GET,
            &format!("/v1/webhook-endpoints/{id}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(got, e);
    let patched = cp
        .ok(
            Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            &alice,
            Some(json!({"subscriptions": ["license.created", "machine.deleted"], "app_id": app, "enabled": false})),
        )
        .await;
    assert_eq!(
        patched["subscriptions"],
        json!(["license.created", "machine.deleted"])
    );
    assert_eq!(
        (patched["app_id"].as_str(), patched["enabled"].as_bool()),
        (Some(app.as_str()), Some(false))
    );
    let cleared = cp
        .ok(
            Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            &alice,
            Some(json!({"app_id": null})),
        )
        .await;
    assert_eq!(cleared["app_id"], Value::Null);
    assert_eq!(cleared["subscriptions"], patched["subscriptions"]);
    let list = cp
        .ok(Method::GET, "/v1/webhook-endpoints", &alice, None)
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));

    // Another tenant: not found, not listed, and not a product scope of theirs.
    let bob_app = cp.app(&bob, "BobTool").await;
    cp.all_not_found(
        &bob,
        vec![
            (Method::GET, format!("/v1/webhook-endpoints/{id}"), None),
            (
                Method::PATCH,
                format!("/v1/webhook-endpoints/{id}"),
                Some(json!({"enabled": true})),
            ),
            (Method::DELETE, format!("/v1/webhook-endpoints/{id}"), None),
        ],
    )
    .await;
    assert_eq!(
        cp.ok(Method::GET, "/v1/webhook-endpoints", &bob, None)
            .await["items"],
        json!([])
    );
    let r = cp
        .call(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(&alice),
            Some(json!({"url": "https://example.com", "app_id": bob_app})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (404, Some("app not found"))
    );

    // Scopes: reading needs webhooks:read, writing webhooks:write.
    let key = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &alice,
            Some(json!({"name": "reader", "scopes": ["webhooks:read"]})),
        )
        .await["key"]
        .as_str()
        .expect("key")
        .to_string();
    let r = cp
        .call(Method::GET, "/v1/webhook-endpoints", Some(&key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = cp
        .call(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(&key),
            Some(json!({"url": "https://example.com"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Delete.
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/webhook-endpoints/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = cp
        .call(
            Method::GET,
            &format!("/v1/webhook-endpoints/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 404);

    // An operator who allows http and private targets.
    let open = Cp::start_with(local).await;
    let carol = open.admin("carol").await;
    endpoint(&open, &carol, json!({"url": "http://127.0.0.1:9/hook"})).await;
}

#[tokio::test]
async fn events_are_delivered_signed_like_keygen_answers() {
    let cp = Cp::start_with(local).await;
    let alice = cp.admin("alice").await;
    let app = cp.app(&alice, "Tool").await;
    let other_app = cp.app(&alice, "Other").await;
    let rx = Receiver::start(&[]).await;
    // %2B must stay as sent: the signature covers the request target byte for byte.
    let url = rx.url("/hooks/keyward?tenant=a%2Bb");
    let hook = endpoint(
        &cp,
        &alice,
        json!({"url": url, "subscriptions": ["license.created"]}),
    )
    .await;
    // Subscribed to something else, or scoped to another product: gets nothing.
    let quiet_rx = Receiver::start(&[]).await;
    endpoint(
        &cp,
        &alice,
        json!({"url": quiet_rx.url("/a"), "subscriptions": ["machine.created"]}),
    )
    .await;
    endpoint(
        &cp,
        &alice,
        json!({"url": quiet_rx.url("/b"), "app_id": other_app}),
    )
    .await;

    let lic = one_license(&cp, &alice, &app).await;
    let got = rx.wait_for(1).await.remove(0);

    assert_eq!(got.target, "/hooks/keyward?tenant=a%2Bb");
    assert_eq!(got.header("content-type"), "application/vnd.api+json");
    let doc = got.json();
    let data = &doc["data"];
    assert_eq!(data["type"], "webhook-events");
    assert_eq!(data["attributes"]["event"], "license.created");
    assert_eq!(data["attributes"]["endpoint"], url.as_str());
    assert_eq!(data["attributes"]["status"], "DELIVERING");
    assert_eq!(data["attributes"]["idempotencyToken"], data["id"]);
    let account = cp.ok(Method::GET, "/v1/account", &alice, None).await["id"].clone();
    assert_eq!(
        data["relationships"]["account"]["data"],
        json!({"type": "accounts", "id": account})
    );
    let payload = got.payload();
    assert_eq!(payload["data"]["type"], "licenses");
    assert_eq!(payload["data"]["id"], lic["id"]);
    assert_eq!(payload["data"]["attributes"]["key"], lic["key"]);

    // Signed with the deployment's key, over what the receiver got.
    let public_key = cp.ok(Method::GET, "/v1/signing-keys", &alice, None).await["primary"]
        ["public_key"]
        .as_str()
        .expect("public key")
        .to_string();
    assert_eq!(got.header("keygen-date"), got.header("date"));
    assert_eq!(got.header("keygen-digest"), got.header("digest"));
    let signature = got.header("keygen-signature");
    assert!(
        signature.contains(&format!("keyid=\"{}\"", account.as_str().unwrap_or(""))),
        "{signature}"
    );
    let host = got.header("host").to_string();
    assert_eq!(host, rx.addr.to_string());
    keygen_signature::verify_response(
        &public_key,
        "post",
        &got.target,
        &host,
        got.header("date"),
        got.header("digest"),
        signature,
        &got.body,
    )
    .expect("the delivery's signature verifies");
    // A tampered body does not.
    let mut forged = got.body.clone();
    forged.push(b' ');
    assert!(keygen_signature::verify_response(
        &public_key,
        "post",
        &got.target,
        &host,
        got.header("date"),
        got.header("digest"),
        signature,
        &forged,
    )
    .is_err());

    // The log: delivered once, with the receiver's answer.
    let id = data["id"].as_str().expect("event id");
    let e = event_with_status(&cp, &alice, id, "delivered").await;
    assert_eq!(e["attempts"], 1);
    assert_eq!(e["endpoint_id"], hook["id"]);
    assert_eq!(e["last_response_code"], 200);
    assert_eq!(e["last_response_body"], "thanks");
    assert!(e["delivered_at"].is_string());
    assert_eq!(e["attempt_log"].as_array().map(Vec::len), Some(1));
    assert!(quiet_rx.got().is_empty());
    assert_eq!(rx.got().len(), 1);
}

#[tokio::test]
async fn native_writes_emit_their_events() {
    let cp = Cp::start_with(local).await;
    let alice = cp.admin("alice").await;
    let app = cp.app(&alice, "Tool").await;
    let rx = Receiver::start(&[]).await;
    let hook = endpoint(&cp, &alice, json!({"url": rx.url("/all"), "app_id": app})).await;
    let hook_id = hook["id"].as_str().expect("id").to_string();

    let lic = one_license(&cp, &alice, &app).await;
    let lid = lic["id"].as_str().expect("id").to_string();
    let l = |rest: &str| format!("/v1/licenses/{lid}{rest}");
    cp.ok(
        Method::PATCH,
        &l(""),
        &alice,
        Some(json!({"note": "renamed"})),
    )
    .await;
    cp.ok(
        Method::POST,
        &l("/ban"),
        &alice,
        Some(json!({"reason": "chargeback"})),
    )
    .await;
    cp.ok(Method::POST, &l("/unban"), &alice, None).await;
    cp.ok(
        Method::POST,
        &l("/extend"),
        &alice,
        Some(json!({"days": 3})),
    )
    .await;
    let m = cp
        .ok(
            Method::POST,
            &l("/machines"),
            &alice,
            Some(json!({"fingerprint": "fp-1"})),
        )
        .await;
    let mid = m["id"].as_str().expect("machine id");
    cp.ok(
        Method::PATCH,
        &format!("/v1/machines/{mid}"),
        &alice,
        Some(json!({"name": "box"})),
    )
    .await;
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/machines/{mid}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = cp.call(Method::DELETE, &l(""), Some(&alice), None).await;
    assert_eq!(r.status, 204);

    let expected = [
        "license.created",
        "license.updated",
        "license.suspended",
        "license.reinstated",
        "license.renewed",
        "machine.created",
        "machine.updated",
        "machine.deleted",
        "license.deleted",
    ];
    let got = rx.wait_for(expected.len()).await;
    let mut names: Vec<String> = got.iter().map(Got::event).collect();
    names.sort();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
    for g in &got {
        let p = g.payload();
        let ty = if g.event().starts_with("machine.") {
            "machines"
        } else {
            "licenses"
        };
        assert_eq!(p["data"]["type"], ty, "{}", g.event());
        assert_eq!(
            p["data"]["relationships"]["product"]["data"]["id"],
            app.as_str()
        );
    }
    let suspended = got
        .iter()
        .find(|g| g.event() == "license.suspended")
        .expect("suspended");
    assert_eq!(
        suspended.payload()["data"]["attributes"]["status"],
        "SUSPENDED"
    );
    let deleted = got
        .iter()
        .find(|g| g.event() == "license.deleted")
        .expect("deleted");
    assert_eq!(deleted.payload()["data"]["id"], lid.as_str());

    // The log lists them all, filters and pages.
    let events = events_of(&cp, &alice, &hook_id).await;
    assert_eq!(events.len(), expected.len());
    let page = cp
        .ok(Method::GET, "/v1/webhook-events?limit=4", &alice, None)
        .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(4));
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let rest = cp
        .ok(
            Method::GET,
            &format!("/v1/webhook-events?limit=100&cursor={cursor}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(
        rest["items"].as_array().map(Vec::len),
        Some(expected.len() - 4)
    );
    assert_eq!(rest["next_cursor"], Value::Null);
    let only = cp
        .ok(
            Method::GET,
            "/v1/webhook-events?event=machine.created",
            &alice,
            None,
        )
        .await;
    assert_eq!(only["items"].as_array().map(Vec::len), Some(1));
    for bad in [
        "event=machine.exploded",
        "status=lost",
        "cursor=abc",
        "limit=x",
        "colour=red",
    ] {
        let r = cp
            .call(
                Method::GET,
                &format!("/v1/webhook-events?{bad}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.status, 400, "{bad} → {}", r.body);
    }

    // A tenant without endpoints writes no event rows at all.
    let bob = cp.admin("bob").await;
    let bob_app = cp.app(&bob, "BobTool").await;
    one_license(&cp, &bob, &bob_app).await;
    let rows: i64 = cp
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM webhook_events e JOIN accounts a ON a.id = e.account_id
              WHERE a.username = 'bob'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_growing_delays() {
    let cp = Cp::start_with(local).await;
    let alice = cp.admin("alice").await;
    let app = cp.app(&alice, "Tool").await;
    let rx = Receiver::start(&[500, 500]).await;
    endpoint(&cp, &alice, json!({"url": rx.url("/flaky")})).await;

    one_license(&cp, &alice, &app).await;
    let got = rx.wait_for(3).await;
    let ids: Vec<Value> = got.iter().map(|g| g.json()["data"]["id"].clone()).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one event, three attempts: {ids:?}"
    );
    let gaps = [got[1].at - got[0].at, got[2].at - got[1].at];
    println!("retry delays: {gaps:?}");
    // Base 200 ms, doubled per failure, plus at most a quarter of jitter.
    assert!(gaps[0] >= Duration::from_millis(200), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(400), "{gaps:?}");
    assert!(gaps[1] > gaps[0], "{gaps:?}");
    // The second attempt shows what the first got.
    let second = got[1].json();
    assert_eq!(second["data"]["attributes"]["lastResponseCode"], 500);

    let id = ids[0].as_str().expect("id");
    let e = event_with_status(&cp, &alice, id, "delivered").await;
    assert_eq!(e["attempts"], 3);
    let log = e["attempt_log"].as_array().expect("attempt log");
    let codes: Vec<Value> = log.iter().map(|a| a["code"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(500), json!(200)]);
    assert_eq!(e["last_response_code"], 200);
    assert_eq!(rx.got().len(), 3);
}

#[tokio::test]
async fn retry_requeues_a_failed_event() {
    let cp = Cp::start_with(|c| {
        local(c);
        c.webhooks.backoff_base_ms = 50;
        c.webhooks.max_attempts = 2;
    })
    .await;
    let alice = cp.admin("alice").await;
    let bob = cp.admin("bob").await;
    let app = cp.app(&alice, "Tool").await;
    let rx = Receiver::start(&[500, 502]).await;
    let hook = endpoint(&cp, &alice, json!({"url": rx.url("/down")})).await;

    one_license(&cp, &alice, &app).await;
    rx.wait_for(2).await;
    let id = events_of(&cp, &alice, hook["id"].as_str().expect("id")).await[0]["id"]
        .as_str()
        .expect("event id")
        .to_string();
    let e = event_with_status(&cp, &alice, &id, "failed").await;
    assert_eq!(e["attempts"], 2);
    assert_eq!(e["last_response_code"], 502);
    // The log keeps the start of the answer only.
    assert_eq!(e["last_response_body"].as_str().map(str::len), Some(4096));
    assert_eq!(rx.got().len(), 2);

    // Not another tenant's to retry, read or delete.
    cp.all_not_found(
        &bob,
        vec![
            (Method::POST, format!("/v1/webhook-events/{id}/retry"), None),
            (Method::GET, format!("/v1/webhook-events/{id}"), None),
            (Method::DELETE, format!("/v1/webhook-events/{id}"), None),
        ],
    )
    .await;
    assert_eq!(
        cp.ok(Method::GET, "/v1/webhook-events", &bob, None).await["items"],
        json!([])
    );

    // Retried: queued at once, delivered now that the receiver answers 200.
    let r = cp
        .ok(
            Method::POST,
            &format!("/v1/webhook-events/{id}/retry"),
            &alice,
            None,
        )
        .await;
    assert!(
        matches!(
            r["status"].as_str(),
            Some("queued" | "delivering" | "delivered")
        ),
        "{r}"
    );
    let e = event_with_status(&cp, &alice, &id, "delivered").await;
    assert_eq!(e["attempts"], 3);
    assert_eq!(rx.got().len(), 3);

    // Deleted: gone from the log.
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/webhook-events/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = cp
        .call(
            Method::GET,
            &format!("/v1/webhook-events/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_test_event_reaches_only_its_endpoint() {
    let cp = Cp::start_with(local).await;
    let alice = cp.admin("alice").await;
    let bob = cp.admin("bob").await;
    let rx = Receiver::start(&[]).await;
    // Subscribed to something else: a test is sent whatever the endpoint subscribes to.
    let hook = endpoint(
        &cp,
        &alice,
        json!({"url": rx.url("/hooks"), "subscriptions": ["machine.created"]}),
    )
    .await;
    let id = hook["id"].as_str().expect("id").to_string();
    // Subscribed to everything, but the test is not its.
    let quiet_rx = Receiver::start(&[]).await;
    let quiet = endpoint(&cp, &alice, json!({"url": quiet_rx.url("/all")})).await;

    let r = cp
        .call(
            Method::POST,
            &format!("/v1/webhook-endpoints/{id}/test"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["event"], "webhook.test");
    assert_eq!(r.body["endpoint_id"], id.as_str());
    let event_id = r.body["id"].as_str().expect("event id").to_string();

    let got = rx.wait_for(1).await.remove(0);
    assert_eq!(got.event(), "webhook.test");
    assert_eq!(got.json()["data"]["id"], event_id.as_str());
    let payload = got.payload();
    assert_eq!(payload["data"]["type"], "webhook-endpoints");
    assert_eq!(payload["data"]["id"], id.as_str());
    assert_eq!(payload["data"]["attributes"]["test"], true);
    let e = event_with_status(&cp, &alice, &event_id, "delivered").await;
    assert_eq!(
        (e["attempts"].clone(), e["last_response_code"].clone()),
        (json!(1), json!(200))
    );
    // Written for this endpoint alone, and listed under its name.
    assert!(events_of(&cp, &alice, quiet["id"].as_str().expect("id"))
        .await
        .is_empty());
    let listed = cp
        .ok(
            Method::GET,
            "/v1/webhook-events?event=webhook.test",
            &alice,
            None,
        )
        .await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["items"][0]["id"], event_id.as_str());
    // Audited on the endpoint.
    let audit = cp
        .ok(
            Method::GET,
            &format!("/v1/audit-log?action=webhook_endpoint.test&target_id={id}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(audit["items"][0]["details"]["event_id"], event_id.as_str());

    // Another tenant's endpoint is not found; a malformed id is a 400.
    cp.all_not_found(
        &bob,
        vec![(
            Method::POST,
            format!("/v1/webhook-endpoints/{id}/test"),
            None,
        )],
    )
    .await;
    let r = cp
        .call(
            Method::POST,
            "/v1/webhook-endpoints/nope/test",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A read-only key may not send one.
    let reader = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &alice,
            Some(json!({"name": "reader", "scopes": ["webhooks:read"]})),
        )
        .await;
    let reader = reader["key"].as_str().expect("key");
    let r = cp
        .call(
            Method::POST,
            &format!("/v1/webhook-endpoints/{id}/test"),
            Some(reader),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // A disabled endpoint is refused with the reason, and gets nothing more.
    cp.ok(
        Method::PATCH,
        &format!("/v1/webhook-endpoints/{id}"),
        &alice,
        Some(json!({"enabled": false})),
    )
    .await;
    let r = cp
        .call(
            Method::POST,
            &format!("/v1/webhook-endpoints/{id}/test"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("disabled"),
        "{}",
        r.body
    );
    assert_eq!(events_of(&cp, &alice, &id).await.len(), 1);
    assert!(events_of(&cp, &alice, quiet["id"].as_str().expect("id"))
        .await
        .is_empty());
    assert!(quiet_rx.got().is_empty());
}

#[tokio::test]
async fn the_subscribable_events_are_listed() {
    let cp = Cp::start().await;
    let alice = cp.admin("alice").await;
    let listed = cp
        .ok(Method::GET, "/v1/webhook-endpoints/events", &alice, None)
        .await;
    let want: Vec<Value> = EVENTS.iter().map(|e| json!(e)).collect();
    assert_eq!(listed["items"], Value::Array(want));
    // Each one is accepted as a subscription.
    let e = endpoint(
        &cp,
        &alice,
        json!({"url": "https://example.com/h", "subscriptions": listed["items"]}),
    )
    .await;
    assert_eq!(e["subscriptions"], listed["items"]);
    let r = cp
        .call(Method::GET, "/v1/webhook-endpoints/events", None, None)
        .await;
    assert_eq!(r.status, 401);
}

/// Starts another control-plane on `cp`'s database (the same tenants and tokens).
async fn restart(cp: Cp, tweak: impl FnOnce(&mut Config)) -> Cp {
    let Cp {
        db, running, http, ..
    } = cp;
    running.shutdown().await;
    let mut cfg = Config::new(db.url.clone());
    cfg.login_rate_per_minute = 1000;
    tweak(&mut cfg);
    let running = keyward_control_plane::start(cfg).await.expect("restart");
    let base = format!("http://{}", running.addr());
    Cp {
        db,
        running,
        http,
        base,
    }
}

#[tokio::test]
async fn an_event_survives_a_restart_and_is_delivered_once() {
    // The change commits while no worker runs; then the control-plane stops.
    let cp = Cp::start_with(|c| {
        local(c);
        c.webhooks.worker = false;
    })
    .await;
    let alice = cp.admin("alice").await;
    let app = cp.app(&alice, "Tool").await;
    let rx = Receiver::start(&[]).await;
    let hook = endpoint(&cp, &alice, json!({"url": rx.url("/after-restart")})).await;
    let hook_id = hook["id"].as_str().expect("id").to_string();
    let first = one_license(&cp, &alice, &app).await;
    let queued = events_of(&cp, &alice, &hook_id).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["status"], "queued");

    // Started again, with the worker: the committed event goes out.
    let cp = restart(cp, local).await;
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].payload()["data"]["id"], first["id"]);
    let id = queued[0]["id"].as_str().expect("id");
    event_with_status(&cp, &alice, id, "delivered").await;

    // Once: after another restart, a newer event is delivered, and the first is not again
    // (claims go oldest first, so a repeat would have come before it).
    let cp = restart(cp, local).await;
    let second = one_license(&cp, &alice, &app).await;
    let got = rx.wait_for(2).await;
    assert_eq!(got[1].payload()["data"]["id"], second["id"]);
    let newest = events_of(&cp, &alice, &hook_id).await;
    event_with_status(
        &cp,
        &alice,
        newest[0]["id"].as_str().expect("id"),
        "delivered",
    )
    .await;
    assert_eq!(rx.got().len(), 2, "each event exactly once");
    assert_eq!(
        events_of(&cp, &alice, &hook_id)
            .await
            .iter()
            .map(|e| e["attempts"].clone())
            .collect::<Vec<_>>(),
        [json!(1), json!(1)]
    );
}

#[tokio::test]
async fn a_worker_lost_between_claim_and_record_costs_at_most_a_repeat() {
    let cp = Cp::start_with(|c| {
        local(c);
        c.webhooks.worker = false;
    })
    .await;
    let alice = cp.admin("alice").await;
    let app = cp.app(&alice, "Tool").await;
    let rx = Receiver::start(&[]).await;
    let hook = endpoint(&cp, &alice, json!({"url": rx.url("/lost")})).await;
    one_license(&cp, &alice, &app).await;

    // A worker claims the event and dies before recording anything.
    let db = cp.db.client().await;
    let claimed = webhook_events::claim_due(&db, 10, Duration::from_millis(300))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.status, webhook_events::Status::Delivering);
    let again = webhook_events::claim_due(&db, 10, Duration::from_secs(60))
        .await
        .expect("claim");
    assert!(again.is_empty(), "a leased event is not claimed twice");

    // Once its lease runs out, a live worker claims and delivers it.
    let cp = restart(cp, local).await;
    let got = rx.wait_for(1).await;
    let id = got[0].json()["data"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(id, claimed[0].event.id.to_string());
    let e = event_with_status(&cp, &alice, &id, "delivered").await;
    assert_eq!(e["attempts"], 1);

    // The dead worker's late record changes nothing: its claim is no longer current.
    let stale = webhook_events::record_attempt(
        &db,
        &claimed[0],
        &Attempt {
            outcome: Outcome::RetryAfter(Duration::from_secs(1)),
            response_code: Some(500),
            response_body: None,
            error: Some("late"),
            duration: Duration::ZERO,
        },
    )
    .await
    .expect("record");
    assert!(!stale);
    let e = cp
        .ok(
            Method::GET,
            &format!("/v1/webhook-events/{id}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(
        (e["status"].as_str(), e["attempts"].as_i64()),
        (Some("delivered"), Some(1))
    );
    assert_eq!(rx.got().len(), 1);
    assert_eq!(
        events_of(&cp, &alice, hook["id"].as_str().expect("id"))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_event() {
    let cp = Cp::start().await;
    let doc: Value = cp
        .http
        .get(format!("{}/openapi.json", cp.base))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("JSON");
    let listed = &doc["paths"]["/v1/webhook-endpoints"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["properties"]["subscriptions"]["items"]["enum"];
    let mut want = vec![json!("*")];
    want.extend(EVENTS.iter().map(|e| json!(e)));
    assert_eq!(listed, &Value::Array(want));
}

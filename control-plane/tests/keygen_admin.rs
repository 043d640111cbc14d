//! Keygen's admin API on the control-plane (`/keygen/v1/…`): tokens from email and password,
//! products, policies, licenses and their actions, machines, entitlements, pagination, and the
//! bearer's reach (product tokens, other tenants). Every answer's signature is checked as the
//! SDKs check it. Real PostgreSQL, real HTTP.

mod common;

use base64::Engine;
use common::*;
use keyward_shared::keygen_signature;
use reqwest::Method;
use serde_json::{json, Value};

/// One signed answer, its signature already checked.
struct Signed {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Signed {
    fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("")
    }

    fn attr(&self, name: &str) -> &Value {
        &self.body["data"]["attributes"][name]
    }

    fn id(&self) -> String {
        self.body["data"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

struct Kg<'a> {
    cp: &'a Cp,
    public_key: String,
}

impl<'a> Kg<'a> {
    async fn new(cp: &'a Cp, jwt: &str) -> Kg<'a> {
        let keys = cp.ok(Method::GET, "/v1/signing-keys", jwt, None).await;
        let public_key = keys["primary"]["public_key"]
            .as_str()
            .expect("primary public key")
            .to_owned();
        Kg { cp, public_key }
    }

    /// Sends a request with `authorization` as given and checks the answer's signature over
    /// exactly what was sent.
    async fn send(
        &self,
        method: Method,
        target: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Signed {
        let mut req = self
            .cp
            .http
            .request(method.clone(), format!("{}{target}", self.cp.base))
            .header("accept", "application/vnd.api+json")
            .header("keygen-version", "1.7");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/vnd.api+json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let raw = resp.bytes().await.expect("body").to_vec();
        let h = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{method} {target} answered {status} without {name}"))
                .to_owned()
        };
        assert_eq!(h("date"), h("keygen-date"));
        assert_eq!(h("digest"), h("keygen-digest"));
        assert_eq!(h("keygen-version"), "1.7");
        let host = self.cp.base.trim_start_matches("http://");
        keygen_signature::verify_response(
            &self.public_key,
            method.as_str(),
            target,
            host,
            &h("date"),
            &h("digest"),
            &h("keygen-signature"),
            &raw,
        )
        .unwrap_or_else(|e| panic!("{method} {target} ({status}): signature: {e}"));
        Signed {
            status,
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            headers,
        }
    }

    async fn call(&self, method: Method, target: &str, token: &str, body: Option<Value>) -> Signed {
        self.send(method, target, Some(&format!("Bearer {token}")), body)
            .await
    }

    /// A call that must succeed with `status`.
    async fn ok(
        &self,
        method: Method,
        target: &str,
        token: &str,
        body: Option<Value>,
        status: u16,
    ) -> Signed {
        let r = self.call(method.clone(), target, token, body).await;
        assert_eq!(r.status, status, "{method} {target} → {}", r.body);
        r
    }

    /// A `GET` that must answer 200.
    async fn get(&self, target: &str, token: &str) -> Signed {
        self.ok(Method::GET, target, token, None, 200).await
    }

    async fn admin_token(&self, login: &str, password: &str) -> Signed {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
        self.send(
            Method::POST,
            "/keygen/v1/tokens",
            Some(&format!("Basic {basic}")),
            None,
        )
        .await
    }

    async fn product(&self, token: &str, name: &str) -> String {
        let doc = json!({"data": {"type": "products", "attributes": {"name": name}}});
        self.ok(Method::POST, "/keygen/v1/products", token, Some(doc), 201)
            .await
            .id()
    }

    async fn policy(&self, token: &str, product: &str, attributes: Value) -> Signed {
        let doc = json!({"data": {"type": "policies", "attributes": attributes,
            "relationships": {"product": {"data": {"type": "products", "id": product}}}}});
        self.call(Method::POST, "/keygen/v1/policies", token, Some(doc))
            .await
    }

    async fn license(&self, token: &str, policy: &str, attributes: Value) -> Signed {
        let doc = json!({"data": {"type": "licenses", "attributes": attributes,
            "relationships": {"policy": {"data": {"type": "policies", "id": policy}}}}});
        self.call(Method::POST, "/keygen/v1/licenses", token, Some(doc))
            .await
    }
}

/// A control-plane with one admin, its Keygen admin token and a product with a policy.
async fn setup(cp: &Cp) -> (Kg<'_>, String, String, String) {
    let jwt = cp.admin("alice").await;
    let kg = Kg::new(cp, &jwt).await;
    let r = kg.admin_token("alice", PASSWORD).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.attr("token").as_str().expect("token").to_owned();
    let product = kg.product(&token, "Desktop").await;
    let policy = kg
        .policy(
            &token,
            &product,
            json!({"name": "Pro", "floating": true, "maxMachines": 2, "maxUses": 3,
            "duration": 86_400, "authenticationStrategy": "LICENSE"}),
        )
        .await;
    assert_eq!(policy.status, 201, "{}", policy.body);
    (kg, token, product, policy.id())
}

#[tokio::test]
async fn tokens_come_from_email_and_password_and_can_be_regenerated_and_revoked() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let kg = Kg::new(&cp, &jwt).await;

    let r = kg.admin_token("alice", PASSWORD).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.attr("kind"), "admin-token");
    let token = r.attr("token").as_str().expect("token").to_owned();
    assert!(
        token.starts_with("admin-") && token.ends_with("v3"),
        "{token}"
    );
    let token_id = r.id();
    let account = r.body["data"]["relationships"]["account"]["data"]["id"]
        .as_str()
        .expect("account")
        .to_owned();
    assert_eq!(r.headers["keygen-account"], account.as_str());

    // The token is the admin: `me` is the account's admin user, under both path forms.
    let me = kg.get("/keygen/v1/me", &token).await;
    assert_eq!(
        (me.body["data"]["type"].as_str(), me.attr("role").as_str()),
        (Some("users"), Some("admin"))
    );
    kg.get(&format!("/keygen/v1/accounts/{account}/me"), &token)
        .await;
    let r = kg
        .call(
            Method::GET,
            "/keygen/v1/accounts/00000000-0000-0000-0000-000000000000/me",
            &token,
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));

    // Wrong credentials: 401 naming the header, with the challenge, and no token.
    for (login, password) in [("alice", "wrong password"), ("nobody", PASSWORD)] {
        let r = kg.admin_token(login, password).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "CREDENTIALS_INVALID"),
            "{}",
            r.body
        );
        assert_eq!(r.body["errors"][0]["source"]["header"], "Authorization");
        assert!(r.headers.contains_key("www-authenticate"));
    }
    let r = kg.send(Method::POST, "/keygen/v1/tokens", None, None).await;
    assert_eq!((r.status, r.code()), (401, "EMAIL_REQUIRED"));

    // No or bad bearer on the admin routes.
    let r = kg
        .send(Method::GET, "/keygen/v1/licenses", None, None)
        .await;
    assert_eq!((r.status, r.code()), (401, "TOKEN_MISSING"));
    assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"keygen\"");
    let r = kg
        .call(Method::GET, "/keygen/v1/licenses", "admin-00v3", None)
        .await;
    assert_eq!((r.status, r.code()), (401, "TOKEN_INVALID"));
    let r = kg
        .send(
            Method::GET,
            "/keygen/v1/licenses",
            Some("License ABC"),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "LICENSE_NOT_ALLOWED"));

    // A named token with an expiry in the past is refused; in the future it is kept.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let past =
        json!({"data": {"type": "tokens", "attributes": {"expiry": "2020-01-01T00:00:00Z"}}});
    let r = kg
        .send(
            Method::POST,
            "/keygen/v1/tokens",
            Some(&format!("Basic {basic}")),
            Some(past),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let future = json!({"data": {"type": "token", "attributes": {"name": "ci", "expiry": "2099-01-01T00:00:00.000Z"}}});
    let r = kg
        .send(
            Method::POST,
            "/keygen/v1/tokens",
            Some(&format!("Basic {basic}")),
            Some(future),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        (r.attr("name").as_str(), r.attr("expiry").as_str()),
        (Some("ci"), Some("2099-01-01T00:00:00.000Z"))
    );
    let expiring = r.id();

    // Listed without their secrets; shown by id.
    let list = kg.get("/keygen/v1/tokens", &token).await;
    let items = list.body["data"].as_array().expect("tokens");
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|t| t["attributes"]["token"].is_null()));
    kg.get(&format!("/keygen/v1/tokens/{token_id}"), &token)
        .await;

    // Regenerating: a new secret, the old one dead; an expiring token gets two more weeks.
    let r = kg
        .ok(
            Method::PUT,
            &format!("/keygen/v1/tokens/{expiring}"),
            &token,
            None,
            200,
        )
        .await;
    let expiry = r.attr("expiry").as_str().expect("expiry");
    assert!(expiry.starts_with("20") && expiry < "2099", "{expiry}");
    let r = kg
        .ok(Method::PUT, "/keygen/v1/tokens", &token, None, 200)
        .await;
    let renewed = r.attr("token").as_str().expect("token").to_owned();
    assert_ne!(renewed, token);
    let r = kg.call(Method::GET, "/keygen/v1/me", &token, None).await;
    assert_eq!((r.status, r.code()), (401, "TOKEN_INVALID"));
    kg.get("/keygen/v1/me", &renewed).await;

    // Revoking: 204, then the token is unknown.
    kg.ok(
        Method::DELETE,
        &format!("/keygen/v1/tokens/{token_id}"),
        &renewed,
        None,
        204,
    )
    .await;
    let r = kg.call(Method::GET, "/keygen/v1/me", &renewed, None).await;
    assert_eq!((r.status, r.code()), (401, "TOKEN_INVALID"));
}

#[tokio::test]
async fn products_and_policies_speak_keygens_attributes() {
    let cp = Cp::start().await;
    let (kg, token, product, _) = setup(&cp).await;
    let r = kg
        .get(&format!("/keygen/v1/products/{product}"), &token)
        .await;
    assert_eq!(r.attr("name"), "Desktop");
    let patch = json!({"data": {"type": "products", "attributes": {"name": "Desktop 2",
        "code": "desktop", "url": "https://example.com/desktop", "platforms": ["linux", "macos"],
        "metadata": {"team": "apps"}}}});
    let r = kg
        .ok(
            Method::PATCH,
            &format!("/keygen/v1/products/{product}"),
            &token,
            Some(patch),
            200,
        )
        .await;
    assert_eq!(r.attr("name"), "Desktop 2");
    assert_eq!(
        (
            r.attr("code"),
            r.attr("url"),
            r.attr("platforms"),
            r.attr("metadata")
        ),
        (
            &json!("desktop"),
            &json!("https://example.com/desktop"),
            &json!(["linux", "macos"]),
            &json!({"team": "apps"})
        )
    );
    let bad = json!({"data": {"type": "products", "attributes": {"url": "ftp://nope"}}});
    let r = kg
        .call(
            Method::PATCH,
            &format!("/keygen/v1/products/{product}"),
            &token,
            Some(bad),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/products",
            &token,
            Some(json!({"data": {"type": "products", "attributes": {}}})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "NAME_MISSING"));
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/products",
            &token,
            Some(json!({"data": {"type": "licenses", "attributes": {"name": "x"}}})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);

    let r = kg
        .policy(&token, &product, json!({
            "name": "Floating", "floating": true, "maxMachines": 8, "strict": true,
            "expirationStrategy": "MAINTAIN_ACCESS", "expirationBasis": "FROM_FIRST_ACTIVATION",
            "duration": 3600, "requireHeartbeat": true, "heartbeatDuration": 120,
            "heartbeatResurrectionStrategy": "5_MINUTE_REVIVE", "overageStrategy": "ALLOW_1_25X_OVERAGE",
            "requireFingerprintScope": true, "metadata": {"tier": "gold"}, "someFutureAttribute": 1,
        }))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.headers["location"]
        .to_str()
        .unwrap_or("")
        .ends_with(&r.id()));
    for (name, want) in [
        ("floating", json!(true)),
        ("maxMachines", json!(8)),
        ("expirationStrategy", json!("MAINTAIN_ACCESS")),
        ("expirationBasis", json!("FROM_FIRST_ACTIVATION")),
        ("heartbeatDuration", json!(120)),
        ("heartbeatResurrectionStrategy", json!("5_MINUTE_REVIVE")),
        ("overageStrategy", json!("ALLOW_1_25X_OVERAGE")),
        ("requireFingerprintScope", json!(true)),
        ("requireProductScope", json!(false)),
        ("authenticationStrategy", json!("TOKEN")),
        ("metadata", json!({"tier": "gold"})),
    ] {
        assert_eq!(r.attr(name), &want, "{name}: {}", r.body);
    }
    let id = r.id();
    let patch = json!({"data": {"type": "policies", "attributes": {"requireFingerprintScope": false, "requireProductScope": true, "maxMachines": 12}}});
    let r = kg
        .ok(
            Method::PATCH,
            &format!("/keygen/v1/policies/{id}"),
            &token,
            Some(patch),
            200,
        )
        .await;
    assert_eq!(
        (
            r.attr("requireFingerprintScope"),
            r.attr("requireProductScope"),
            r.attr("maxMachines")
        ),
        (&json!(false), &json!(true), &json!(12))
    );

    // The core's checks, in Keygen's words.
    let r = kg
        .policy(
            &token,
            &product,
            json!({"name": "Bad", "expirationStrategy": "NEVER"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["errors"][0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("expirationStrategy"),
        "{}",
        r.body
    );
    let r = kg
        .policy(
            &token,
            &product,
            json!({"name": "Bad", "heartbeatDuration": 5}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = kg
        .policy(
            &token,
            "6c1f0a5e-0000-4000-8000-000000000000",
            json!({"name": "Orphan"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "PRODUCT_NOT_FOUND"));

    // Listing by product, with pagination.
    let r = kg
        .get(
            &format!("/keygen/v1/policies?product={product}&page[size]=1&page[number]=2"),
            &token,
        )
        .await;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        r.body["meta"]["count"], 3,
        "default, Pro and Floating: {}",
        r.body
    );
    assert!(r.body["links"]["prev"]
        .as_str()
        .unwrap_or("")
        .contains("page[number]=1"));
    assert!(r.body["links"]["last"]
        .as_str()
        .unwrap_or("")
        .contains("page[number]=3"));
    let r = kg
        .call(
            Method::GET,
            "/keygen/v1/policies?page[size]=101",
            &token,
            None,
        )
        .await;
    assert_eq!(
        (
            r.status,
            r.body["errors"][0]["source"]["parameter"].as_str()
        ),
        (400, Some("page[size]"))
    );

    kg.ok(
        Method::DELETE,
        &format!("/keygen/v1/policies/{id}"),
        &token,
        None,
        204,
    )
    .await;
    let r = kg
        .call(
            Method::GET,
            &format!("/keygen/v1/policies/{id}"),
            &token,
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));
}

#[tokio::test]
async fn licenses_are_created_changed_suspended_renewed_counted_and_revoked() {
    let cp = Cp::start().await;
    let (kg, token, product, policy) = setup(&cp).await;
    let r = kg
        .license(
            &token,
            &policy,
            json!({"name": "Acme", "key": "ACME-0001-KEY", "metadata": {"seat": 4}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.id();
    assert_eq!(
        (r.attr("key"), r.attr("name"), r.attr("metadata")),
        (&json!("ACME-0001-KEY"), &json!("Acme"), &json!({"seat": 4}))
    );
    assert_eq!(
        (r.attr("maxMachines"), r.attr("maxUses"), r.attr("status")),
        (&json!(2), &json!(3), &json!("EXPIRING"))
    );
    assert!(
        r.attr("expiry").is_string(),
        "the policy's duration applies: {}",
        r.body
    );
    assert_eq!(
        r.body["data"]["relationships"]["policy"]["data"]["id"],
        policy.as_str()
    );
    let r = kg
        .license(&token, &policy, json!({"key": "ACME-0001-KEY"}))
        .await;
    assert_eq!((r.status, r.code()), (422, "KEY_TAKEN"), "{}", r.body);
    let r = kg
        .license(&token, "6c1f0a5e-0000-4000-8000-000000000000", json!({}))
        .await;
    assert_eq!((r.status, r.code()), (422, "POLICY_NOT_FOUND"));
    let generated = kg.license(&token, &policy, json!({})).await;
    assert_eq!(generated.status, 201, "{}", generated.body);

    // By id and by key; filtered lists.
    kg.get(&format!("/keygen/v1/licenses/{id}"), &token).await;
    let r = kg.get("/keygen/v1/licenses/ACME-0001-KEY", &token).await;
    assert_eq!(r.id(), id);
    let r = kg
        .get(
            &format!("/keygen/v1/licenses?policy={policy}&limit=1"),
            &token,
        )
        .await;
    assert_eq!(
        (
            r.body["data"].as_array().map(Vec::len),
            &r.body["meta"]["count"]
        ),
        (Some(1), &json!(2))
    );
    let r = kg
        .get(
            &format!("/keygen/v1/licenses?product={product}&suspended=true"),
            &token,
        )
        .await;
    assert_eq!(r.body["meta"]["count"], 0);

    // Update: name, metadata, expiry, limits.
    let patch = json!({"data": {"type": "licenses", "attributes": {"name": "Acme Corp", "metadata": {"seat": 5},
        "expiry": "2030-01-01T00:00:00.000Z", "maxMachines": 4}}});
    let r = kg
        .ok(
            Method::PATCH,
            &format!("/keygen/v1/licenses/{id}"),
            &token,
            Some(patch),
            200,
        )
        .await;
    assert_eq!(
        (
            r.attr("name"),
            r.attr("metadata"),
            r.attr("expiry"),
            r.attr("maxMachines")
        ),
        (
            &json!("Acme Corp"),
            &json!({"seat": 5}),
            &json!("2030-01-01T00:00:00.000Z"),
            &json!(4)
        )
    );
    assert_ne!(r.attr("updated"), r.attr("created"));

    // Suspend and reinstate, each once.
    let action = |a: &str| format!("/keygen/v1/licenses/{id}/actions/{a}");
    let r = kg
        .ok(Method::POST, &action("suspend"), &token, None, 200)
        .await;
    assert_eq!(
        (r.attr("suspended"), r.attr("status")),
        (&json!(true), &json!("SUSPENDED"))
    );
    let r = kg
        .call(Method::POST, &action("suspend"), &token, None)
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = kg
        .ok(Method::POST, &action("reinstate"), &token, None, 200)
        .await;
    assert_eq!(r.attr("suspended"), &json!(false));
    assert_eq!(
        kg.call(Method::POST, &action("reinstate"), &token, None)
            .await
            .status,
        422
    );

    // Renew: one policy duration past the expiry.
    let r = kg
        .ok(Method::POST, &action("renew"), &token, None, 200)
        .await;
    assert_eq!(r.attr("expiry"), "2030-01-02T00:00:00.000Z");

    // Usage within maxUses (3): the fourth increment is refused, below zero too.
    let r = kg
        .ok(
            Method::POST,
            &action("increment-usage"),
            &token,
            Some(json!({"meta": {"increment": 2}})),
            200,
        )
        .await;
    assert_eq!(r.attr("uses"), 2);
    kg.ok(Method::POST, &action("increment-usage"), &token, None, 200)
        .await;
    let r = kg
        .call(Method::POST, &action("increment-usage"), &token, None)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (422, "USES_LIMIT_EXCEEDED"),
        "{}",
        r.body
    );
    let r = kg
        .ok(Method::POST, &action("decrement-usage"), &token, None, 200)
        .await;
    assert_eq!(r.attr("uses"), 2);
    let r = kg
        .ok(Method::POST, &action("reset-usage"), &token, None, 200)
        .await;
    assert_eq!(r.attr("uses"), 0);
    let r = kg
        .call(Method::POST, &action("decrement-usage"), &token, None)
        .await;
    assert_eq!((r.status, r.code()), (422, "USES_INVALID"));

    // Check-in only where the policy requires it.
    let r = kg
        .call(Method::POST, &action("check-in"), &token, None)
        .await;
    assert_eq!((r.status, r.code()), (422, "CHECK_IN_NOT_REQUIRED"));
    let patch = json!({"data": {"type": "policies", "attributes": {"requireCheckIn": true, "checkInInterval": "DAY", "checkInIntervalCount": 1}}});
    kg.ok(
        Method::PATCH,
        &format!("/keygen/v1/policies/{policy}"),
        &token,
        Some(patch),
        200,
    )
    .await;
    let r = kg
        .ok(Method::POST, &action("check-in"), &token, None, 200)
        .await;
    assert!(
        r.attr("lastCheckIn").is_string() && r.attr("nextCheckIn").is_string(),
        "{}",
        r.body
    );

    // Unknown action, revoke, then gone.
    assert_eq!(
        kg.call(Method::POST, &action("explode"), &token, None)
            .await
            .status,
        404
    );
    kg.ok(Method::DELETE, &action("revoke"), &token, None, 204)
        .await;
    let r = kg
        .call(
            Method::GET,
            &format!("/keygen/v1/licenses/{id}"),
            &token,
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));
    kg.ok(
        Method::DELETE,
        &format!("/keygen/v1/licenses/{}", generated.id()),
        &token,
        None,
        204,
    )
    .await;
}

#[tokio::test]
async fn machines_are_activated_within_the_limit_described_pinged_and_deactivated() {
    let cp = Cp::start().await;
    let (kg, token, _, policy) = setup(&cp).await;
    let license = kg.license(&token, &policy, json!({})).await.id();
    let activate = |fingerprint: &str| {
        json!({"data": {"type": "machines", "attributes": {"fingerprint": fingerprint, "platform": "linux/x86_64", "cores": 8},
            "relationships": {"license": {"data": {"type": "licenses", "id": license}}}}})
    };
    let r = kg
        .ok(
            Method::POST,
            "/keygen/v1/machines",
            &token,
            Some(activate("fp-1")),
            201,
        )
        .await;
    let machine = r.id();
    assert_eq!(
        (
            r.attr("fingerprint"),
            r.attr("cores"),
            r.attr("heartbeatStatus")
        ),
        (&json!("fp-1"), &json!(8), &json!("NOT_STARTED"))
    );
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/machines",
            &token,
            Some(activate("fp-1")),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "FINGERPRINT_TAKEN"));
    kg.ok(
        Method::POST,
        "/keygen/v1/machines",
        &token,
        Some(activate("fp-2")),
        201,
    )
    .await;
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/machines",
            &token,
            Some(activate("fp-3")),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (422, "MACHINE_LIMIT_EXCEEDED"),
        "{}",
        r.body
    );
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/machines",
            &token,
            Some(json!({"data": {"type": "machines", "attributes": {"fingerprint": "x"}}})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "LICENSE_NOT_FOUND"));
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/machines",
            &token,
            Some(json!({"data": {"type": "machines", "attributes": {}}})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "FINGERPRINT_BLANK"));

    // Lists by license and fingerprint; show by fingerprint.
    let r = kg
        .get(&format!("/keygen/v1/machines?license={license}"), &token)
        .await;
    assert_eq!(r.body["meta"]["count"], 2);
    let r = kg.get("/keygen/v1/machines?fingerprint=fp-2", &token).await;
    assert_eq!(r.body["data"][0]["attributes"]["fingerprint"], "fp-2");
    let r = kg
        .get(&format!("/keygen/v1/licenses/{license}/machines"), &token)
        .await;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(2));
    let r = kg.get("/keygen/v1/machines/fp-1", &token).await;
    assert_eq!(r.id(), machine);

    // Describe, ping, reset.
    let patch = json!({"data": {"type": "machines", "attributes": {"name": "Build box", "hostname": "ci-1"}}});
    let r = kg
        .ok(
            Method::PATCH,
            &format!("/keygen/v1/machines/{machine}"),
            &token,
            Some(patch),
            200,
        )
        .await;
    assert_eq!(
        (r.attr("name"), r.attr("hostname")),
        (&json!("Build box"), &json!("ci-1"))
    );
    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/machines/{machine}/actions/ping"),
            &token,
            None,
            200,
        )
        .await;
    assert_eq!(r.attr("heartbeatStatus"), "ALIVE");
    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/machines/{machine}/actions/reset"),
            &token,
            None,
            200,
        )
        .await;
    assert_eq!(r.attr("heartbeatStatus"), "NOT_STARTED");

    // Deactivate frees a slot.
    kg.ok(
        Method::DELETE,
        &format!("/keygen/v1/machines/{machine}"),
        &token,
        None,
        204,
    )
    .await;
    assert_eq!(
        kg.call(
            Method::GET,
            &format!("/keygen/v1/machines/{machine}"),
            &token,
            None
        )
        .await
        .status,
        404
    );
    kg.ok(
        Method::POST,
        "/keygen/v1/machines",
        &token,
        Some(activate("fp-3")),
        201,
    )
    .await;
}

#[tokio::test]
async fn entitlements_attach_to_policies_and_licenses() {
    let cp = Cp::start().await;
    let (kg, token, _, policy) = setup(&cp).await;
    let license = kg.license(&token, &policy, json!({})).await.id();
    let make = |code: &str| json!({"data": {"type": "entitlements", "attributes": {"name": code, "code": code}}});
    let a = kg
        .ok(
            Method::POST,
            "/keygen/v1/entitlements",
            &token,
            Some(make("EXPORT")),
            201,
        )
        .await
        .id();
    let b = kg
        .ok(
            Method::POST,
            "/keygen/v1/entitlements",
            &token,
            Some(make("SYNC")),
            201,
        )
        .await
        .id();
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/entitlements",
            &token,
            Some(make("SYNC")),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "CODE_TAKEN"));
    let link = |id: &str| json!({"data": [{"type": "entitlements", "id": id}]});
    kg.ok(
        Method::POST,
        &format!("/keygen/v1/policies/{policy}/entitlements"),
        &token,
        Some(link(&a)),
        200,
    )
    .await;
    kg.ok(
        Method::POST,
        &format!("/keygen/v1/licenses/{license}/entitlements"),
        &token,
        Some(link(&b)),
        200,
    )
    .await;
    let r = kg
        .get(
            &format!("/keygen/v1/licenses/{license}/entitlements"),
            &token,
        )
        .await;
    assert_eq!(r.body["data"][0]["attributes"]["code"], "SYNC");
    let r = kg
        .call(
            Method::POST,
            &format!("/keygen/v1/licenses/{license}/entitlements"),
            &token,
            Some(link("6c1f0a5e-0000-4000-8000-000000000000")),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "ENTITLEMENT_NOT_FOUND"));
    let r = kg
        .call(
            Method::POST,
            &format!("/keygen/v1/licenses/{license}/entitlements"),
            &token,
            Some(json!({"data": []})),
        )
        .await;
    assert_eq!(r.status, 400);
    kg.ok(
        Method::DELETE,
        &format!("/keygen/v1/licenses/{license}/entitlements"),
        &token,
        Some(link(&b)),
        204,
    )
    .await;
    let r = kg
        .get(
            &format!("/keygen/v1/licenses/{license}/entitlements"),
            &token,
        )
        .await;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(0));
    let r = kg
        .call(
            Method::DELETE,
            &format!("/keygen/v1/licenses/{license}/entitlements"),
            &token,
            Some(link(&b)),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = kg
        .get(
            &format!("/keygen/v1/policies/{policy}/entitlements"),
            &token,
        )
        .await;
    assert_eq!(r.body["data"][0]["attributes"]["code"], "EXPORT");
    let patch = json!({"data": {"type": "entitlements", "attributes": {"name": "Export to PDF"}}});
    let r = kg
        .ok(
            Method::PATCH,
            &format!("/keygen/v1/entitlements/{a}"),
            &token,
            Some(patch),
            200,
        )
        .await;
    assert_eq!(r.attr("name"), "Export to PDF");
    kg.ok(
        Method::DELETE,
        &format!("/keygen/v1/entitlements/{a}"),
        &token,
        None,
        204,
    )
    .await;
}

#[tokio::test]
async fn a_product_token_reaches_its_product_only() {
    let cp = Cp::start().await;
    let (kg, admin, product, policy) = setup(&cp).await;
    let other_product = kg.product(&admin, "Server").await;
    let other_policy = kg
        .policy(&admin, &other_product, json!({"name": "Other"}))
        .await
        .id();
    let other_license = kg
        .license(&admin, &other_policy, json!({"key": "OTHER-KEY-0001"}))
        .await
        .id();
    let own_license = kg.license(&admin, &policy, json!({})).await.id();

    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/products/{product}/tokens"),
            &admin,
            None,
            201,
        )
        .await;
    assert_eq!(r.attr("kind"), "product-token");
    let token = r.attr("token").as_str().expect("token").to_owned();
    assert!(token.starts_with("prod-"), "{token}");

    let me = kg.get("/keygen/v1/me", &token).await;
    assert_eq!(
        (me.body["data"]["type"].as_str(), me.id()),
        (Some("products"), product.clone())
    );
    let r = kg.get("/keygen/v1/licenses", &token).await;
    let ids: Vec<&str> = r.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["id"].as_str())
        .collect();
    assert_eq!(ids, vec![own_license.as_str()]);
    kg.ok(
        Method::POST,
        &format!("/keygen/v1/licenses/{own_license}/actions/suspend"),
        &token,
        None,
        200,
    )
    .await;
    for target in [
        format!("/keygen/v1/licenses/{other_license}"),
        "/keygen/v1/licenses/OTHER-KEY-0001".to_owned(),
        format!("/keygen/v1/policies/{other_policy}"),
        format!("/keygen/v1/products/{other_product}"),
    ] {
        let r = kg.call(Method::GET, &target, &token, None).await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{target}");
    }
    let r = kg
        .call(
            Method::POST,
            &format!("/keygen/v1/licenses/{other_license}/actions/suspend"),
            &token,
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = kg.license(&token, &other_policy, json!({})).await;
    assert_eq!((r.status, r.code()), (422, "POLICY_NOT_FOUND"));
    for (method, target) in [
        (Method::POST, "/keygen/v1/products".to_owned()),
        (Method::DELETE, format!("/keygen/v1/products/{product}")),
        (
            Method::POST,
            format!("/keygen/v1/products/{product}/tokens"),
        ),
    ] {
        let body = json!({"data": {"type": "products", "attributes": {"name": "x"}}});
        let r = kg.call(method.clone(), &target, &token, Some(body)).await;
        assert_eq!(r.status, 403, "{method} {target}: {}", r.body);
    }
}

#[tokio::test]
async fn another_tenants_resources_do_not_exist() {
    let cp = Cp::start().await;
    let (kg, alice, product, policy) = setup(&cp).await;
    let license = kg
        .license(&alice, &policy, json!({"key": "ALICE-KEY-0001"}))
        .await
        .id();
    let activate = json!({"data": {"type": "machines", "attributes": {"fingerprint": "fp"},
        "relationships": {"license": {"data": {"type": "licenses", "id": license}}}}});
    let machine = kg
        .ok(
            Method::POST,
            "/keygen/v1/machines",
            &alice,
            Some(activate.clone()),
            201,
        )
        .await
        .id();
    let entitlement = kg
        .ok(
            Method::POST,
            "/keygen/v1/entitlements",
            &alice,
            Some(
                json!({"data": {"type": "entitlements", "attributes": {"name": "A", "code": "A"}}}),
            ),
            201,
        )
        .await
        .id();

    cp.admin("mallory").await;
    let mallory = kg.admin_token("mallory", PASSWORD).await;
    let mallory = mallory.attr("token").as_str().expect("token").to_owned();
    let alice_account = kg.get("/keygen/v1/me", &alice).await.id();
    // Naming Alice's account with Mallory's token is refused outright.
    let r = kg
        .call(
            Method::GET,
            &format!("/keygen/v1/accounts/{alice_account}/licenses"),
            &mallory,
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "TOKEN_INVALID"));

    let patch = |ty: &str| Some(json!({"data": {"type": ty, "attributes": {"name": "mine now"}}}));
    for (method, target, body) in [
        (Method::GET, format!("/keygen/v1/products/{product}"), None),
        (
            Method::PATCH,
            format!("/keygen/v1/products/{product}"),
            patch("products"),
        ),
        (
            Method::DELETE,
            format!("/keygen/v1/products/{product}"),
            None,
        ),
        (Method::GET, format!("/keygen/v1/policies/{policy}"), None),
        (
            Method::PATCH,
            format!("/keygen/v1/policies/{policy}"),
            patch("policies"),
        ),
        (
            Method::DELETE,
            format!("/keygen/v1/policies/{policy}"),
            None,
        ),
        (Method::GET, format!("/keygen/v1/licenses/{license}"), None),
        (
            Method::GET,
            "/keygen/v1/licenses/ALICE-KEY-0001".to_owned(),
            None,
        ),
        (
            Method::PATCH,
            format!("/keygen/v1/licenses/{license}"),
            patch("licenses"),
        ),
        (
            Method::POST,
            format!("/keygen/v1/licenses/{license}/actions/suspend"),
            None,
        ),
        (
            Method::POST,
            format!("/keygen/v1/licenses/{license}/actions/increment-usage"),
            None,
        ),
        (
            Method::DELETE,
            format!("/keygen/v1/licenses/{license}/actions/revoke"),
            None,
        ),
        (
            Method::GET,
            format!("/keygen/v1/licenses/{license}/machines"),
            None,
        ),
        (
            Method::GET,
            format!("/keygen/v1/licenses/{license}/entitlements"),
            None,
        ),
        (Method::GET, format!("/keygen/v1/machines/{machine}"), None),
        (Method::GET, "/keygen/v1/machines/fp".to_owned(), None),
        (
            Method::PATCH,
            format!("/keygen/v1/machines/{machine}"),
            patch("machines"),
        ),
        (
            Method::POST,
            format!("/keygen/v1/machines/{machine}/actions/ping"),
            None,
        ),
        (
            Method::DELETE,
            format!("/keygen/v1/machines/{machine}"),
            None,
        ),
        (
            Method::GET,
            format!("/keygen/v1/entitlements/{entitlement}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/keygen/v1/entitlements/{entitlement}"),
            None,
        ),
        (
            Method::GET,
            format!("/keygen/v1/policies/{policy}/entitlements"),
            None,
        ),
    ] {
        let r = kg.call(method.clone(), &target, &mallory, body).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "NOT_FOUND"),
            "{method} {target}: {}",
            r.body
        );
    }
    let alice_ids = [&product, &policy, &license, &machine, &entitlement];
    for target in [
        "/keygen/v1/products",
        "/keygen/v1/policies",
        "/keygen/v1/licenses",
        "/keygen/v1/machines",
        "/keygen/v1/entitlements",
        "/keygen/v1/tokens",
    ] {
        let text = kg
            .ok(Method::GET, target, &mallory, None, 200)
            .await
            .body
            .to_string();
        assert!(
            alice_ids.iter().all(|id| !text.contains(id.as_str())),
            "{target}: {text}"
        );
    }
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/machines",
            &mallory,
            Some(activate),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "LICENSE_NOT_FOUND"));
    let r = kg.license(&mallory, &policy, json!({})).await;
    assert_eq!((r.status, r.code()), (422, "POLICY_NOT_FOUND"));
    // Alice's data is intact.
    let r = kg
        .get(&format!("/keygen/v1/licenses/{license}"), &alice)
        .await;
    assert_eq!(r.attr("suspended"), false);
}

#[tokio::test]
async fn every_answer_is_signed_even_refusals_before_the_facade() {
    let cp = Cp::start_with(|c| c.max_body_bytes = 1024).await;
    let (kg, token, _, _) = setup(&cp).await;
    // Empty 200, unknown route, wrong method, oversized body, NUL in the path: all signed
    // (`send` checks), all in Keygen's error shape.
    let r = kg.call(Method::GET, "/keygen/v1/ping", &token, None).await;
    assert_eq!(r.status, 200);
    let r = kg
        .call(Method::GET, "/keygen/v1/nothing-here", &token, None)
        .await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));
    let r = kg
        .call(Method::PATCH, "/keygen/v1/licenses", &token, None)
        .await;
    assert_eq!(r.status, 405);
    let big = json!({"data": {"type": "products", "attributes": {"name": "x".repeat(4096)}}});
    let r = kg
        .call(Method::POST, "/keygen/v1/products", &token, Some(big))
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body["errors"][0]["detail"].is_string(), "{}", r.body);
    let r = kg
        .call(Method::GET, "/keygen/v1/licenses/a%00b", &token, None)
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["errors"].is_array(), "{}", r.body);
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/products",
            &token,
            Some(json!([1])),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn licenses_of_a_pooled_policy_take_each_pooled_key_once() {
    let cp = Cp::start().await;
    let (kg, token, product, _) = setup(&cp).await;
    let r = kg
        .policy(&token, &product, json!({"name": "Boxed", "usePool": true}))
        .await;
    assert_eq!(
        (r.status, r.attr("usePool")),
        (201, &json!(true)),
        "{}",
        r.body
    );
    let policy = r.id();
    let pool_key = |key: &str| {
        json!({"data": {"type": "keys", "attributes": {"key": key},
            "relationships": {"policy": {"data": {"type": "policies", "id": policy}}}}})
    };
    let mut pooled = Vec::new();
    for i in 0..6 {
        let r = kg
            .ok(
                Method::POST,
                "/keygen/v1/keys",
                &token,
                Some(pool_key(&format!("BOX-{i:04}"))),
                201,
            )
            .await;
        pooled.push(r.id());
    }
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/keys",
            &token,
            Some(pool_key("BOX-0000")),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "KEY_TAKEN"));
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/keys",
            &token,
            Some(json!({"data": {"type": "keys", "attributes": {"key": "X"}}})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "POLICY_NOT_FOUND"));
    let r = kg
        .get(&format!("/keygen/v1/keys?policy={policy}"), &token)
        .await;
    assert_eq!(r.body["meta"]["count"], 6);

    // Edit one, pop the oldest out through the policy's pool.
    let patch = json!({"data": {"type": "keys", "attributes": {"key": "BOX-EDITED"}}});
    let r = kg
        .ok(
            Method::PATCH,
            &format!("/keygen/v1/keys/{}", pooled[5]),
            &token,
            Some(patch),
            200,
        )
        .await;
    assert_eq!(r.attr("key"), "BOX-EDITED");
    let r = kg
        .ok(
            Method::DELETE,
            &format!("/keygen/v1/policies/{policy}/pool"),
            &token,
            None,
            200,
        )
        .await;
    assert_eq!(r.attr("key"), "BOX-0000");
    kg.ok(
        Method::DELETE,
        &format!("/keygen/v1/keys/{}", pooled[1]),
        &token,
        None,
        204,
    )
    .await;
    let r = kg
        .get(&format!("/keygen/v1/policies/{policy}/pool"), &token)
        .await;
    assert_eq!(r.body["meta"]["count"], 4, "{}", r.body);

    // Ten concurrent licenses over four pooled keys: four get distinct pooled keys, six are
    // refused with an empty pool.
    let made =
        futures_util::future::join_all((0..10).map(|_| kg.license(&token, &policy, json!({}))))
            .await;
    let mut keys: Vec<String> = made
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| r.attr("key").as_str().unwrap_or_default().to_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["BOX-0002", "BOX-0003", "BOX-0004", "BOX-EDITED"]);
    for r in made.iter().filter(|r| r.status != 201) {
        assert_eq!(
            (r.status, r.code()),
            (422, "POLICY_POOL_EMPTY"),
            "{}",
            r.body
        );
    }
    let r = kg
        .get(&format!("/keygen/v1/policies/{policy}/pool"), &token)
        .await;
    assert_eq!(r.body["meta"]["count"], 0);
    let r = kg
        .call(
            Method::DELETE,
            &format!("/keygen/v1/policies/{policy}/pool"),
            &token,
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "POOL_EMPTY"));
    // A given key does not need the pool.
    kg.ok(Method::POST, "/keygen/v1/licenses", &token, Some(json!({"data": {"type": "licenses",
        "attributes": {"key": "BOX-OWN"}, "relationships": {"policy": {"data": {"type": "policies", "id": policy}}}}})), 201).await;
}

#[tokio::test]
async fn tokens_validate_licenses_in_keygens_rule_order() {
    let cp = Cp::start().await;
    let (kg, token, _, policy) = setup(&cp).await;
    let id = kg
        .license(&token, &policy, json!({"key": "VAL-KEY-0001"}))
        .await
        .id();
    let validate_key =
        |key: &str| json!({"meta": {"key": key, "nonce": 7, "scope": {"fingerprint": "fp-1"}}});
    let r = kg
        .ok(
            Method::POST,
            "/keygen/v1/licenses/actions/validate-key",
            &token,
            Some(validate_key("VAL-KEY-0001")),
            200,
        )
        .await;
    assert_eq!(
        (
            r.body["meta"]["code"].as_str(),
            r.body["meta"]["valid"].as_bool()
        ),
        (Some("NO_MACHINES"), Some(false)),
        "{}",
        r.body
    );
    assert_eq!(
        (
            &r.body["meta"]["nonce"],
            &r.body["meta"]["scope"]["fingerprint"]
        ),
        (&json!(7), &json!("fp-1"))
    );
    let r = kg
        .get(
            &format!("/keygen/v1/licenses/{id}/actions/validate"),
            &token,
        )
        .await;
    assert_eq!(
        r.body["meta"]["code"], "VALID",
        "quick: no scope: {}",
        r.body
    );
    let r = kg
        .ok(
            Method::POST,
            "/keygen/v1/licenses/actions/validate-key",
            &token,
            Some(validate_key("NOPE")),
            200,
        )
        .await;
    assert_eq!(
        (&r.body["data"], r.body["meta"]["code"].as_str()),
        (&Value::Null, Some("NOT_FOUND"))
    );
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/licenses/actions/validate-key",
            &token,
            Some(json!({"meta": {}})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "KEY_MISSING"));
    kg.ok(
        Method::POST,
        &format!("/keygen/v1/licenses/{id}/actions/suspend"),
        &token,
        None,
        200,
    )
    .await;
    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/licenses/{id}/actions/validate"),
            &token,
            None,
            200,
        )
        .await;
    assert_eq!(r.body["meta"]["code"], "SUSPENDED");
    let r = kg.get(&format!("/keygen/v1/licenses/{id}"), &token).await;
    assert!(
        r.attr("lastValidated").is_string(),
        "validations are counted: {}",
        r.body
    );
}

#[tokio::test]
async fn dead_machines_are_deactivated_after_their_revival_window() {
    let cp = Cp::start_with(|c| c.janitor_ms = 50).await;
    let (kg, token, product, _) = setup(&cp).await;
    let mut machines = Vec::new();
    for (name, attributes) in [
        (
            "cull",
            json!({"requireHeartbeat": true, "heartbeatDuration": 60}),
        ),
        (
            "keep",
            json!({"requireHeartbeat": true, "heartbeatDuration": 60, "heartbeatCullStrategy": "KEEP_DEAD"}),
        ),
        (
            "revivable",
            json!({"requireHeartbeat": true, "heartbeatDuration": 60, "heartbeatResurrectionStrategy": "15_MINUTE_REVIVE"}),
        ),
        (
            "alive",
            json!({"requireHeartbeat": true, "heartbeatDuration": 3600}),
        ),
    ] {
        let mut attributes = attributes;
        attributes["name"] = json!(name);
        attributes["floating"] = json!(true);
        attributes["maxMachines"] = json!(4);
        let policy = kg.policy(&token, &product, attributes).await;
        assert_eq!(policy.status, 201, "{}", policy.body);
        let license = kg.license(&token, &policy.id(), json!({})).await.id();
        let activate = json!({"data": {"type": "machines", "attributes": {"fingerprint": name},
            "relationships": {"license": {"data": {"type": "licenses", "id": license}}}}});
        let machine = kg
            .ok(
                Method::POST,
                "/keygen/v1/machines",
                &token,
                Some(activate),
                201,
            )
            .await
            .id();
        machines.push((name, machine));
    }
    // Every heartbeat ten minutes old: all dead but "alive" (an hour's duration).
    let db = cp.db.client().await;
    db.execute(
        "UPDATE machines SET last_heartbeat_at = now() - interval '10 minutes'",
        &[],
    )
    .await
    .expect("age the heartbeats");
    let culled = &machines[0].1;
    keyward_shared::testing::eventually(
        std::time::Duration::from_secs(10),
        "dead machine culled",
        || async {
            let r = kg
                .call(
                    Method::GET,
                    &format!("/keygen/v1/machines/{culled}"),
                    &token,
                    None,
                )
                .await;
            (r.status == 404).then_some(())
        },
    )
    .await;
    for (name, id) in &machines[1..] {
        let r = kg
            .call(
                Method::GET,
                &format!("/keygen/v1/machines/{id}"),
                &token,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{name} must stay: {}", r.body);
    }
    let r = kg
        .ok(
            Method::GET,
            &format!("/keygen/v1/machines/{}", machines[1].1),
            &token,
            None,
            200,
        )
        .await;
    assert_eq!(r.attr("heartbeatStatus"), "DEAD");
    let login = cp
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    let jwt = login.body["token"].as_str().expect("jwt").to_owned();
    let audit = cp.ok(Method::GET, "/v1/audit-log", &jwt, None).await;
    assert!(
        audit.to_string().contains("janitor:heartbeat-cull"),
        "{audit}"
    );
}

#[tokio::test]
async fn webhook_endpoints_hear_the_keygen_apis_events() {
    let cp = Cp::start_with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.allow_http = true;
        c.webhooks.backoff_base_ms = 100;
    })
    .await;
    let (kg, token, product, policy) = setup(&cp).await;
    let receiver = common::receiver::Receiver::start(&[500]).await;
    let endpoint = |subscriptions: Value| {
        json!({"data": {"type": "webhook-endpoints", "attributes": {"url": receiver.url("/hook"),
            "subscriptions": subscriptions, "signatureAlgorithm": "ED25519"}}})
    };
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/webhook-endpoints",
            &token,
            Some(endpoint(json!(["license.exploded"]))),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = kg
        .ok(
            Method::POST,
            "/keygen/v1/webhook-endpoints",
            &token,
            Some(endpoint(json!([
                "license.suspended",
                "machine.created",
                "policy.updated"
            ]))),
            201,
        )
        .await;
    assert_eq!(r.attr("signatureAlgorithm"), "ed25519");
    let hook = r.id();
    kg.get(&format!("/keygen/v1/webhook-endpoints/{hook}"), &token)
        .await;
    let r = kg.get("/keygen/v1/webhook-endpoints", &token).await;
    assert_eq!(r.body["meta"]["count"], 1);

    // Three writes through the Keygen API, three deliveries (the first one after a retry).
    let license = kg.license(&token, &policy, json!({})).await.id();
    kg.ok(
        Method::POST,
        &format!("/keygen/v1/licenses/{license}/actions/suspend"),
        &token,
        None,
        200,
    )
    .await;
    let activate = json!({"data": {"type": "machines", "attributes": {"fingerprint": "hooked"},
        "relationships": {"license": {"data": {"type": "licenses", "id": license}}}}});
    kg.ok(
        Method::POST,
        "/keygen/v1/machines",
        &token,
        Some(activate),
        201,
    )
    .await;
    let patch = json!({"data": {"type": "policies", "attributes": {"maxUses": 9}}});
    kg.ok(
        Method::PATCH,
        &format!("/keygen/v1/policies/{policy}"),
        &token,
        Some(patch),
        200,
    )
    .await;
    let got = receiver.wait_for(4).await;
    let mut names: Vec<String> = got
        .iter()
        .skip(1)
        .map(common::receiver::Got::event)
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["license.suspended", "machine.created", "policy.updated"]
    );
    let suspended = got
        .iter()
        .find(|g| g.event() == "license.suspended")
        .expect("suspension");
    assert_eq!(suspended.payload()["data"]["attributes"]["suspended"], true);
    assert_eq!(
        product,
        suspended.payload()["data"]["relationships"]["product"]["data"]["id"]
            .as_str()
            .unwrap_or("")
    );

    // The log, in Keygen's shape; one event retried, then deleted.
    let events = keyward_shared::testing::eventually(
        std::time::Duration::from_secs(10),
        "all delivered",
        || async {
            let r = kg
                .call(
                    Method::GET,
                    "/keygen/v1/webhook-events?events[]=license.suspended",
                    &token,
                    None,
                )
                .await;
            (r.body["data"][0]["attributes"]["status"] == "DELIVERED").then_some(r)
        },
    )
    .await
    .0;
    assert_eq!(events.body["meta"]["count"], 1);
    let event = events.body["data"][0]["id"]
        .as_str()
        .expect("event id")
        .to_owned();
    assert_eq!(
        events.body["data"][0]["attributes"]["endpoint"],
        receiver.url("/hook").as_str()
    );
    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/webhook-events/{event}/actions/retry"),
            &token,
            None,
            200,
        )
        .await;
    assert!(
        matches!(
            r.attr("status").as_str(),
            Some("QUEUED" | "DELIVERING" | "DELIVERED")
        ),
        "{}",
        r.body
    );
    receiver.wait_for(5).await;
    kg.get(&format!("/keygen/v1/webhook-events/{event}"), &token)
        .await;
    kg.ok(
        Method::DELETE,
        &format!("/keygen/v1/webhook-events/{event}"),
        &token,
        None,
        204,
    )
    .await;
    assert_eq!(
        kg.call(
            Method::GET,
            &format!("/keygen/v1/webhook-events/{event}"),
            &token,
            None
        )
        .await
        .status,
        404
    );

    // Unsubscribed events are not delivered; a deleted endpoint hears nothing more.
    let patch = json!({"data": {"type": "webhook-endpoints", "attributes": {"subscriptions": ["license.reinstated"]}}});
    let r = kg
        .ok(
            Method::PATCH,
            &format!("/keygen/v1/webhook-endpoints/{hook}"),
            &token,
            Some(patch),
            200,
        )
        .await;
    assert_eq!(r.attr("subscriptions"), &json!(["license.reinstated"]));
    kg.ok(
        Method::DELETE,
        &format!("/keygen/v1/webhook-endpoints/{hook}"),
        &token,
        None,
        204,
    )
    .await;
    kg.ok(
        Method::POST,
        &format!("/keygen/v1/licenses/{license}/actions/reinstate"),
        &token,
        None,
        200,
    )
    .await;
    let r = kg.get("/keygen/v1/webhook-events", &token).await;
    assert_eq!(r.body["meta"]["count"], 0, "{}", r.body);
}

async fn user_token(kg: &Kg<'_>, email: &str, password: &str) -> Signed {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
    kg.send(
        Method::POST,
        "/keygen/v1/tokens",
        Some(&format!("Basic {basic}")),
        None,
    )
    .await
}

#[tokio::test]
async fn users_own_licenses_log_in_with_their_own_tokens_and_are_banned_with_them() {
    let cp = Cp::start().await;
    let (kg, admin, _, policy) = setup(&cp).await;
    let new_user = |email: &str| {
        json!({"data": {"type": "users", "attributes": {"email": email, "firstName": "Ada",
            "lastName": "Lovelace", "password": "analytical engine", "metadata": {"plan": "pro"}}}})
    };
    let r = kg
        .ok(
            Method::POST,
            "/keygen/v1/users",
            &admin,
            Some(new_user("ada@example.com")),
            201,
        )
        .await;
    let ada = r.id();
    assert_eq!(
        (r.attr("fullName"), r.attr("status"), r.attr("role")),
        (&json!("Ada Lovelace"), &json!("ACTIVE"), &json!("user"))
    );
    assert!(r.attr("password").is_null(), "never rendered: {}", r.body);
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/users",
            &admin,
            Some(new_user("ADA@example.com")),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "EMAIL_TAKEN"), "{}", r.body);
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/users",
            &admin,
            Some(json!({"data": {"type": "users", "attributes": {"firstName": "X"}}})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "EMAIL_MISSING"));
    let r = kg.call(Method::POST, "/keygen/v1/users", &admin, Some(json!({"data": {"type": "users", "attributes": {"email": "short@example.com", "password": "x"}}}))).await;
    assert_eq!(r.status, 422, "a short password is refused: {}", r.body);
    let other = kg
        .ok(
            Method::POST,
            "/keygen/v1/users",
            &admin,
            Some(new_user("bob@example.com")),
            201,
        )
        .await
        .id();
    let r = kg.get("/keygen/v1/users/ada%40example.com", &admin).await;
    assert_eq!(r.id(), ada);
    let r = kg.get("/keygen/v1/users?search=lovelace", &admin).await;
    assert_eq!(r.body["meta"]["count"], 2);

    // Licenses owned by Ada, and one owned by Bob.
    let owned = |owner: &str| json!({"owner": {"data": {"type": "users", "id": owner}}});
    let mut doc = json!({"data": {"type": "licenses", "attributes": {"key": "ADA-KEY-0001"},
        "relationships": {"policy": {"data": {"type": "policies", "id": policy}}}}});
    doc["data"]["relationships"]["owner"] = owned(&ada)["owner"].clone();
    let r = kg
        .ok(Method::POST, "/keygen/v1/licenses", &admin, Some(doc), 201)
        .await;
    let adas = r.id();
    assert_eq!(
        r.body["data"]["relationships"]["owner"]["data"]["id"],
        ada.as_str()
    );
    let bobs = kg.license(&admin, &policy, json!({})).await.id();
    let patch = json!({"data": {"type": "licenses", "relationships": owned(&other)}});
    kg.ok(
        Method::PATCH,
        &format!("/keygen/v1/licenses/{bobs}"),
        &admin,
        Some(patch),
        200,
    )
    .await;
    let r = kg
        .get(&format!("/keygen/v1/licenses?owner={ada}"), &admin)
        .await;
    assert_eq!(r.body["meta"]["count"], 1);
    let r = kg.license(&admin, &policy, json!({})).await;
    assert_eq!(r.status, 201);
    let orphan = json!({"data": {"type": "licenses", "relationships": owned("6c1f0a5e-0000-4000-8000-000000000000")}});
    let r = kg
        .call(
            Method::PATCH,
            &format!("/keygen/v1/licenses/{adas}"),
            &admin,
            Some(orphan),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "OWNER_NOT_FOUND"));

    // Ada's token: two weeks, her licenses and machines only.
    let r = user_token(&kg, "ada@example.com", "analytical engine").await;
    assert_eq!(
        (r.status, r.attr("kind")),
        (201, &json!("user-token")),
        "{}",
        r.body
    );
    assert!(r.attr("expiry").is_string());
    let token = r.attr("token").as_str().expect("token").to_owned();
    assert!(token.starts_with("user-"));
    let me = kg.get("/keygen/v1/me", &token).await;
    assert_eq!(
        (me.id(), me.attr("email")),
        (ada.clone(), &json!("ada@example.com"))
    );
    let r = kg.get("/keygen/v1/licenses", &token).await;
    let ids: Vec<&str> = r.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["id"].as_str())
        .collect();
    assert_eq!(ids, vec![adas.as_str()]);
    assert_eq!(
        kg.call(
            Method::GET,
            &format!("/keygen/v1/licenses/{bobs}"),
            &token,
            None
        )
        .await
        .status,
        404
    );
    let activate = |license: &str, fp: &str| {
        json!({"data": {"type": "machines", "attributes": {"fingerprint": fp},
            "relationships": {"license": {"data": {"type": "licenses", "id": license}}}}})
    };
    kg.ok(
        Method::POST,
        "/keygen/v1/machines",
        &token,
        Some(activate(&adas, "ada-laptop")),
        201,
    )
    .await;
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/machines",
            &token,
            Some(activate(&bobs, "sneaky")),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "LICENSE_NOT_FOUND"));
    for (method, target) in [
        (Method::GET, "/keygen/v1/policies".to_owned()),
        (Method::GET, "/keygen/v1/users".to_owned()),
        (Method::GET, format!("/keygen/v1/users/{other}")),
        (
            Method::POST,
            format!("/keygen/v1/licenses/{adas}/actions/suspend"),
        ),
        (Method::POST, "/keygen/v1/licenses".to_owned()),
    ] {
        let r = kg.call(method.clone(), &target, &token, None).await;
        assert_eq!(r.status, 403, "{method} {target}: {}", r.body);
    }
    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/licenses/{adas}/actions/validate"),
            &token,
            None,
            200,
        )
        .await;
    assert_eq!(r.body["meta"]["code"], "VALID");

    // Her own password: the old one proves it's her.
    let change =
        |old: &str| json!({"meta": {"oldPassword": old, "newPassword": "difference engine"}});
    let r = kg
        .call(
            Method::POST,
            &format!("/keygen/v1/users/{ada}/actions/update-password"),
            &token,
            Some(change("wrong")),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "OLD_PASSWORD_INCORRECT"));
    kg.ok(
        Method::POST,
        &format!("/keygen/v1/users/{ada}/actions/update-password"),
        &token,
        Some(change("analytical engine")),
        200,
    )
    .await;
    assert_eq!(
        user_token(&kg, "ada@example.com", "analytical engine")
            .await
            .status,
        401
    );
    assert_eq!(
        user_token(&kg, "ada@example.com", "difference engine")
            .await
            .status,
        201
    );

    // Banned: her licenses validate BANNED, her token stops working; unbanned: back.
    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/users/{ada}/actions/ban"),
            &admin,
            None,
            200,
        )
        .await;
    assert_eq!(r.attr("status"), "BANNED");
    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/licenses/{adas}/actions/validate"),
            &admin,
            None,
            200,
        )
        .await;
    assert_eq!(
        (
            r.body["meta"]["code"].as_str(),
            r.body["data"]["attributes"]["status"].as_str()
        ),
        (Some("BANNED"), Some("BANNED"))
    );
    let r = kg.call(Method::GET, "/keygen/v1/me", &token, None).await;
    assert_eq!((r.status, r.code()), (403, "USER_BANNED"));
    let r = user_token(&kg, "ada@example.com", "difference engine").await;
    assert_eq!((r.status, r.code()), (403, "USER_BANNED"));
    kg.ok(
        Method::POST,
        &format!("/keygen/v1/users/{ada}/actions/unban"),
        &admin,
        None,
        200,
    )
    .await;
    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/licenses/{adas}/actions/validate"),
            &admin,
            None,
            200,
        )
        .await;
    assert_eq!(r.body["meta"]["code"], "VALID");

    // Updated by the admin, then deleted: her license loses its owner.
    let patch =
        json!({"data": {"type": "users", "attributes": {"lastName": null, "role": "read-only"}}});
    let r = kg
        .ok(
            Method::PATCH,
            &format!("/keygen/v1/users/{ada}"),
            &admin,
            Some(patch),
            200,
        )
        .await;
    assert_eq!(
        (r.attr("fullName"), r.attr("role")),
        (&json!("Ada"), &json!("read-only"))
    );
    kg.ok(
        Method::DELETE,
        &format!("/keygen/v1/users/{ada}"),
        &admin,
        None,
        204,
    )
    .await;
    let r = kg.get(&format!("/keygen/v1/licenses/{adas}"), &admin).await;
    assert!(
        r.body["data"]["relationships"]["owner"]["data"].is_null(),
        "{}",
        r.body
    );
    assert_eq!(
        kg.call(Method::GET, "/keygen/v1/me", &token, None)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn a_password_reset_goes_out_by_webhook_and_its_token_works_once() {
    let cp = Cp::start_with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.allow_http = true;
    })
    .await;
    let (kg, admin, _, _) = setup(&cp).await;
    let receiver = common::receiver::Receiver::start(&[]).await;
    let hook = json!({"data": {"type": "webhook-endpoints", "attributes": {"url": receiver.url("/hook"),
        "subscriptions": ["user.password-reset"]}}});
    kg.ok(
        Method::POST,
        "/keygen/v1/webhook-endpoints",
        &admin,
        Some(hook),
        201,
    )
    .await;
    let user = json!({"data": {"type": "users", "attributes": {"email": "grace@example.com", "password": "compiler one"}}});
    let grace = kg
        .ok(Method::POST, "/keygen/v1/users", &admin, Some(user), 201)
        .await
        .id();

    // Unknown e-mails answer the same, and send nothing.
    let ask = |email: &str| json!({"meta": {"email": email, "deliver": false}});
    let r = kg
        .send(
            Method::POST,
            "/keygen/v1/passwords",
            None,
            Some(ask("nobody@example.com")),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = kg
        .send(
            Method::POST,
            "/keygen/v1/passwords",
            None,
            Some(ask("grace@example.com")),
        )
        .await;
    assert_eq!(r.status, 204);
    let got = receiver.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let payload = got[0].payload();
    assert_eq!(payload["data"]["id"], grace.as_str());
    let token = payload["meta"]["passwordResetToken"]
        .as_str()
        .expect("reset token")
        .to_owned();

    let reset = |token: &str| json!({"meta": {"passwordResetToken": token, "newPassword": "flow-matic rocks"}});
    let target = format!("/keygen/v1/users/{grace}/actions/reset-password");
    let r = kg
        .send(Method::POST, &target, None, Some(reset("not-the-token")))
        .await;
    assert_eq!((r.status, r.code()), (401, "RESET_TOKEN_INVALID"));
    let r = kg
        .send(Method::POST, &target, None, Some(reset(&token)))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = kg
        .send(Method::POST, &target, None, Some(reset(&token)))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "RESET_TOKEN_INVALID"),
        "single use"
    );
    assert_eq!(
        user_token(&kg, "grace@example.com", "compiler one")
            .await
            .status,
        401
    );
    assert_eq!(
        user_token(&kg, "grace@example.com", "flow-matic rocks")
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn expiry_starts_on_the_first_use_the_policy_names() {
    let cp = Cp::start().await;
    let (kg, token, product, _) = setup(&cp).await;
    let policy = |name: &str, basis: &str| json!({"name": name, "floating": true, "maxMachines": 5, "duration": 3600, "expirationBasis": basis});
    let on_validation = kg
        .policy(
            &token,
            &product,
            policy("on validation", "FROM_FIRST_VALIDATION"),
        )
        .await
        .id();
    let on_activation = kg
        .policy(
            &token,
            &product,
            policy("on activation", "FROM_FIRST_ACTIVATION"),
        )
        .await
        .id();

    let l = kg.license(&token, &on_validation, json!({})).await;
    assert!(
        l.attr("expiry").is_null(),
        "not started at creation: {}",
        l.body
    );
    let id = l.id();
    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/licenses/{id}/actions/validate"),
            &token,
            None,
            200,
        )
        .await;
    assert_eq!(r.body["meta"]["code"], "VALID");
    let expiry = r
        .attr("expiry")
        .as_str()
        .expect("started by the validation")
        .to_owned();
    // A second validation does not move it.
    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/licenses/{id}/actions/validate"),
            &token,
            None,
            200,
        )
        .await;
    assert_eq!(r.attr("expiry"), expiry.as_str());

    let l = kg.license(&token, &on_activation, json!({})).await;
    let id = l.id();
    let r = kg
        .ok(
            Method::POST,
            &format!("/keygen/v1/licenses/{id}/actions/validate"),
            &token,
            None,
            200,
        )
        .await;
    assert!(
        r.attr("expiry").is_null(),
        "a validation does not start it: {}",
        r.body
    );
    let activate = json!({"data": {"type": "machines", "attributes": {"fingerprint": "first"},
        "relationships": {"license": {"data": {"type": "licenses", "id": id}}}}});
    kg.ok(
        Method::POST,
        "/keygen/v1/machines",
        &token,
        Some(activate),
        201,
    )
    .await;
    let r = kg.get(&format!("/keygen/v1/licenses/{id}"), &token).await;
    assert!(
        r.attr("expiry").is_string(),
        "started by the activation: {}",
        r.body
    );
}

#[tokio::test]
async fn a_fingerprint_is_unique_within_the_policys_scope_even_under_concurrency() {
    let cp = Cp::start().await;
    let (kg, token, product, _) = setup(&cp).await;
    let scoped = |name: &str, strategy: &str| json!({"name": name, "floating": true, "maxMachines": 5, "machineUniquenessStrategy": strategy});
    let per_product = kg
        .policy(
            &token,
            &product,
            scoped("per product", "UNIQUE_PER_PRODUCT"),
        )
        .await
        .id();
    let per_account = kg
        .policy(
            &token,
            &product,
            scoped("per account", "UNIQUE_PER_ACCOUNT"),
        )
        .await
        .id();
    let per_license = kg
        .policy(
            &token,
            &product,
            scoped("per license", "UNIQUE_PER_LICENSE"),
        )
        .await
        .id();
    let activate = |license: &str, fp: &str| {
        json!({"data": {"type": "machines", "attributes": {"fingerprint": fp},
            "relationships": {"license": {"data": {"type": "licenses", "id": license}}}}})
    };

    let (a, b) = (
        kg.license(&token, &per_product, json!({})).await.id(),
        kg.license(&token, &per_product, json!({})).await.id(),
    );
    kg.ok(
        Method::POST,
        "/keygen/v1/machines",
        &token,
        Some(activate(&a, "shared-fp")),
        201,
    )
    .await;
    let r = kg
        .call(
            Method::POST,
            "/keygen/v1/machines",
            &token,
            Some(activate(&b, "shared-fp")),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (422, "FINGERPRINT_TAKEN"),
        "{}",
        r.body
    );
    // Per license, the same fingerprint may sit on two licenses.
    let (c, d) = (
        kg.license(&token, &per_license, json!({})).await.id(),
        kg.license(&token, &per_license, json!({})).await.id(),
    );
    kg.ok(
        Method::POST,
        "/keygen/v1/machines",
        &token,
        Some(activate(&c, "free-fp")),
        201,
    )
    .await;
    kg.ok(
        Method::POST,
        "/keygen/v1/machines",
        &token,
        Some(activate(&d, "free-fp")),
        201,
    )
    .await;

    // Eight licenses racing for one fingerprint in the account: exactly one wins.
    let mut licenses = Vec::new();
    for _ in 0..8 {
        licenses.push(kg.license(&token, &per_account, json!({})).await.id());
    }
    let raced = futures_util::future::join_all(licenses.iter().map(|l| {
        kg.call(
            Method::POST,
            "/keygen/v1/machines",
            &token,
            Some(activate(l, "raced-fp")),
        )
    }))
    .await;
    let won = raced.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        won,
        1,
        "{:?}",
        raced.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(raced
        .iter()
        .filter(|r| r.status != 201)
        .all(|r| r.code() == "FINGERPRINT_TAKEN"));
}

#[tokio::test]
async fn token_validations_are_webhook_events_too() {
    let cp = Cp::start_with(|c| {
        c.webhooks.allow_private = true;
        c.webhooks.allow_http = true;
    })
    .await;
    let (kg, token, _, policy) = setup(&cp).await;
    let receiver = common::receiver::Receiver::start(&[]).await;
    let hook = json!({"data": {"type": "webhook-endpoints", "attributes": {"url": receiver.url("/hook"),
        "subscriptions": ["license.validation.succeeded", "license.validation.failed"]}}});
    kg.ok(
        Method::POST,
        "/keygen/v1/webhook-endpoints",
        &token,
        Some(hook),
        201,
    )
    .await;
    let id = kg.license(&token, &policy, json!({})).await.id();
    let validate = format!("/keygen/v1/licenses/{id}/actions/validate");
    kg.ok(Method::POST, &validate, &token, None, 200).await;
    kg.ok(
        Method::POST,
        &format!("/keygen/v1/licenses/{id}/actions/suspend"),
        &token,
        None,
        200,
    )
    .await;
    kg.ok(Method::POST, &validate, &token, None, 200).await;
    let got = receiver.wait_for(2).await;
    let mut seen: Vec<(String, Value)> = got
        .iter()
        .map(|g| (g.event(), g.payload()["meta"]["code"].clone()))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("license.validation.failed".to_owned(), json!("SUSPENDED")),
            ("license.validation.succeeded".to_owned(), json!("VALID")),
        ]
    );
}

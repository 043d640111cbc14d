//! The Keygen client API on the validator (`/keygen/v1/…`): validation documents, license-key
//! authentication in Keygen's order, and a signature on every answer, checked as the SDKs check
//! it. Real PostgreSQL, real HTTP.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use keyward_shared::keygen_signature;
use keyward_shared::model::License;
use keyward_shared::policy::{AuthenticationStrategy, PolicyPatch};
use keyward_shared::store::{api_keys, policies, signing_keys};
use keyward_shared::testing::{eventually, TestDb};
use keyward_shared::write::WriteTx;
use serde_json::{json, Value};

/// One signed answer, its signature already checked.
struct Signed {
    status: u16,
    body: Value,
    raw: Vec<u8>,
    headers: reqwest::header::HeaderMap,
}

impl Signed {
    fn meta(&self, field: &str) -> &Value {
        &self.body["meta"][field]
    }

    fn error_code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("")
    }
}

struct Keygen {
    http: reqwest::Client,
    addr: SocketAddr,
    public_key: String,
}

impl Keygen {
    /// The public key as an operator hands it to clients (`control-plane signing-key show`).
    async fn new(c: &mut tokio_postgres::Client, addr: SocketAddr) -> Keygen {
        let public_key = signing_keys::ensure_primary(c, None)
            .await
            .expect("primary signing key")
            .public_key;
        Keygen {
            http: reqwest::Client::new(),
            addr,
            public_key,
        }
    }

    /// Sends a request and checks the answer's signature over exactly what was sent.
    async fn call(
        &self,
        method: reqwest::Method,
        target: &str,
        body: Option<Value>,
        auth: Option<&str>,
    ) -> Signed {
        let mut req = self
            .http
            .request(method.clone(), format!("http://{}{target}", self.addr))
            .header("accept", "application/vnd.api+json")
            .header("keygen-version", "1.8");
        if let Some(b) = body {
            req = req
                .header("content-type", "application/vnd.api+json")
                .body(b.to_string());
        }
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let raw = resp.bytes().await.expect("body").to_vec();
        let h = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{target} answered {status} without {name}"))
                .to_string()
        };
        assert_eq!(h("date"), h("keygen-date"), "{target}");
        assert_eq!(h("digest"), h("keygen-digest"), "{target}");
        keygen_signature::verify_response(
            &self.public_key,
            method.as_str(),
            target,
            &self.addr.to_string(),
            &h("date"),
            &h("digest"),
            &h("keygen-signature"),
            &raw,
        )
        .unwrap_or_else(|e| panic!("{method} {target} ({status}): signature: {e}"));
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Signed {
            status,
            body,
            raw,
            headers,
        }
    }

    async fn validate_key(&self, meta: Value, auth: Option<&str>) -> Signed {
        self.call(
            reqwest::Method::POST,
            "/keygen/v1/licenses/actions/validate-key",
            Some(json!({ "meta": meta })),
            auth,
        )
        .await
    }
}

async fn set_policy(c: &mut tokio_postgres::Client, t: &Tenant, l: &License, patch: PolicyPatch) {
    let mut w = WriteTx::begin(c, t.actor.clone()).await.unwrap();
    policies::update(&mut w, l.policy_id, &patch).await.unwrap();
    w.commit().await.unwrap();
}

#[tokio::test]
async fn validate_key_answers_signed_keygen_documents() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 1).await;
    let v = validator(&db.url, |_| {}).await;
    let kg = Keygen::new(&mut c, v.addr()).await;

    let scope = json!({"product": t.app.id.to_string()});
    let r = kg
        .validate_key(json!({"key": l.key, "nonce": 42, "scope": scope}), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.meta("valid"), true, "{}", r.body);
    assert_eq!(r.meta("code"), "VALID");
    assert_eq!(r.meta("detail"), "is valid");
    assert_eq!(r.meta("nonce"), 42);
    assert_eq!(r.meta("scope"), &scope);
    assert!(r.meta("ts").as_str().is_some_and(|ts| ts.ends_with('Z')));
    let data = &r.body["data"];
    assert_eq!(data["type"], "licenses");
    assert_eq!(data["id"], l.id.to_string());
    assert_eq!(data["attributes"]["key"], l.key);
    assert_eq!(data["attributes"]["status"], "ACTIVE");
    assert!(data["attributes"]["metadata"].is_object());
    assert_eq!(
        data["relationships"]["product"]["data"]["id"],
        t.app.id.to_string()
    );
    assert_eq!(
        data["relationships"]["policy"]["data"]["id"],
        l.policy_id.to_string()
    );
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/vnd.api+json"));
    assert_eq!(r.headers["keygen-version"], "1.8");

    // Another product's id in the scope.
    let r = kg
        .validate_key(
            json!({"key": l.key, "scope": {"product": uuid::Uuid::new_v4().to_string()}}),
            None,
        )
        .await;
    assert_eq!(
        (r.meta("valid"), r.meta("code")),
        (&json!(false), &json!("PRODUCT_SCOPE_MISMATCH"))
    );
    // keygen-rs always sends a product scope, even an empty one.
    let r = kg
        .validate_key(json!({"key": l.key, "scope": {"product": ""}}), None)
        .await;
    assert_eq!(r.meta("code"), "PRODUCT_SCOPE_MISMATCH");

    // An unknown key: 200, data null, NOT_FOUND; no scope or nonce sent, none echoed.
    let r = kg.validate_key(json!({"key": "NO-SUCH-KEY"}), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"], Value::Null);
    assert_eq!(r.meta("code"), "NOT_FOUND");
    assert_eq!(r.meta("detail"), "does not exist");
    assert_eq!(r.meta("valid"), false);
    assert!(r.body["meta"].get("scope").is_none() && r.body["meta"].get("nonce").is_none());

    // Bad input: 400 with a pointer, signed like everything else.
    for (meta, pointer) in [
        (json!({}), "/meta/key"),
        (json!({"key": "  "}), "/meta/key"),
        (json!({"key": 7}), "/meta/key"),
        (json!({"key": l.key, "nonce": "x"}), "/meta/nonce"),
        (json!({"key": l.key, "scope": []}), "/meta/scope"),
        (
            json!({"key": l.key, "scope": {"fingerprints": 3}}),
            "/meta/scope",
        ),
    ] {
        let r = kg.validate_key(meta.clone(), None).await;
        assert_eq!(r.status, 400, "{meta}: {}", r.body);
        assert_eq!(r.body["errors"][0]["source"]["pointer"], pointer, "{meta}");
        assert_eq!(r.body["errors"][0]["title"], "Bad request");
    }
    v.shutdown().await;
}

#[tokio::test]
async fn a_validation_never_activates_a_machine() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 1).await;
    let v = validator(&db.url, |_| {}).await;
    let kg = Keygen::new(&mut c, v.addr()).await;
    let r = kg
        .validate_key(
            json!({"key": l.key, "scope": {"fingerprint": "fp-1"}}),
            None,
        )
        .await;
    assert_eq!(r.meta("valid"), false);
    assert_eq!(r.meta("code"), "NO_MACHINE", "{}", r.body);
    let machines = machine_count(&c, l.id).await;
    assert_eq!(machines, 0);
    // A HWID bound by the native path is a machine: the fingerprint now matches.
    assert_eq!(
        code(&kg.http, v.addr(), t.app.id, &l.key, Some("fp-1")).await,
        "VALID"
    );
    let r = kg
        .validate_key(
            json!({"key": l.key, "scope": {"fingerprint": "fp-1"}}),
            None,
        )
        .await;
    assert_eq!(r.meta("code"), "VALID", "{}", r.body);
    let r = kg
        .validate_key(
            json!({"key": l.key, "scope": {"fingerprint": "fp-2"}}),
            None,
        )
        .await;
    assert_eq!(r.meta("code"), "FINGERPRINT_SCOPE_MISMATCH");
    assert_eq!(
        r.meta("detail"),
        "fingerprint is not activated (does not match any associated machines)"
    );
    v.shutdown().await;
}

#[tokio::test]
async fn license_authentication_follows_keygens_order() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 1).await;
    let v = validator(&db.url, |_| {}).await;
    let kg = Keygen::new(&mut c, v.addr()).await;
    let auth = format!("License {}", l.key);

    // `GET me` under license authentication is the license.
    let r = kg
        .call(reqwest::Method::GET, "/keygen/v1/me", None, Some(&auth))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["type"], "licenses");
    assert_eq!(r.body["data"]["id"], l.id.to_string());
    // keygen-sdk validates by id next, with the same credential; GET is the quick validation.
    let by_id = format!("/keygen/v1/licenses/{}/actions/validate", l.id);
    let r = kg
        .call(
            reqwest::Method::POST,
            &by_id,
            Some(json!({"meta": {"nonce": 1}})),
            Some(&auth),
        )
        .await;
    assert_eq!(
        (r.status, r.meta("code")),
        (200, &json!("VALID")),
        "{}",
        r.body
    );
    let r = kg
        .call(reqwest::Method::GET, &by_id, None, Some(&auth))
        .await;
    assert_eq!(r.meta("code"), "VALID");
    // By key too, percent-encoded.
    let by_key = format!(
        "/keygen/v1/licenses/{}/actions/validate",
        l.key.replace('-', "%2D")
    );
    let r = kg
        .call(reqwest::Method::POST, &by_key, None, Some(&auth))
        .await;
    assert_eq!(r.meta("code"), "VALID", "{}", r.body);

    // Unknown key: 401 with the challenge.
    let r = kg
        .call(
            reqwest::Method::GET,
            "/keygen/v1/me",
            None,
            Some("License NOPE"),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "LICENSE_INVALID");
    assert_eq!(r.headers["www-authenticate"], "License realm=\"keygen\"");
    // Even on validate-key, before any validation.
    let r = kg
        .validate_key(json!({"key": l.key}), Some("License NOPE"))
        .await;
    assert_eq!((r.status, r.error_code()), (401, "LICENSE_INVALID"));

    // Another license's id with this credential: access denied.
    let other = one_license(&mut c, &t, 1).await;
    let r = kg
        .call(
            reqwest::Method::POST,
            &format!("/keygen/v1/licenses/{}/actions/validate", other.id),
            None,
            Some(&auth),
        )
        .await;
    assert_eq!(r.status, 403);

    // A policy that only allows tokens: 403 LICENSE_NOT_ALLOWED, as soon as every validator
    // has dropped the cached policy.
    set_policy(
        &mut c,
        &t,
        &l,
        PolicyPatch {
            authentication_strategy: Some(AuthenticationStrategy::Token),
            ..Default::default()
        },
    )
    .await;
    eventually(Duration::from_secs(5), "policy change seen", || async {
        let r = kg
            .call(reqwest::Method::GET, "/keygen/v1/me", None, Some(&auth))
            .await;
        (r.status == 403 && r.error_code() == "LICENSE_NOT_ALLOWED").then_some(())
    })
    .await;
    v.shutdown().await;
}

#[tokio::test]
async fn a_suspension_reaches_every_validator_within_milliseconds() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 1).await;
    let (v1, v2) = (
        validator(&db.url, |_| {}).await,
        validator(&db.url, |_| {}).await,
    );
    let (k1, k2) = (
        Keygen::new(&mut c, v1.addr()).await,
        Keygen::new(&mut c, v2.addr()).await,
    );
    for kg in [&k1, &k2] {
        assert_eq!(
            kg.validate_key(json!({"key": l.key}), None)
                .await
                .meta("code"),
            "VALID"
        );
    }
    // Suspended through the control-plane's Keygen admin API, as a vendor's script does, with
    // an admin's API key as the Bearer token.
    let cp = keyward_control_plane::start(keyward_control_plane::Config::new(db.url.clone()))
        .await
        .expect("control-plane");
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    let (_, admin_key) = api_keys::create(&mut w, "vendor script", &["*".to_owned()])
        .await
        .unwrap();
    w.commit().await.unwrap();
    let suspended = reqwest::Client::new()
        .post(format!(
            "http://{}/keygen/v1/licenses/{}/actions/suspend",
            cp.addr(),
            l.id
        ))
        .header("authorization", format!("Bearer {admin_key}"))
        .header("accept", "application/vnd.api+json")
        .send()
        .await
        .expect("suspend");
    // The answer leaves after the commit.
    let committed = std::time::Instant::now();
    assert_eq!(suspended.status(), 200);
    let seen = [&k1, &k2].map(|kg| async {
        eventually(Duration::from_secs(5), "suspension seen", || async {
            let r = kg.validate_key(json!({"key": l.key}), None).await;
            (r.meta("code") == "SUSPENDED").then(|| committed.elapsed())
        })
        .await
        .0
    });
    let [took1, took2] = seen;
    let (took1, took2) = tokio::join!(took1, took2);
    println!(
        "Keygen suspension (control-plane Keygen API) seen by validator 1 {took1:?} and \
         validator 2 {took2:?} after the answer"
    );
    for kg in [&k1, &k2] {
        let r = kg.validate_key(json!({"key": l.key}), None).await;
        assert_eq!(
            (r.meta("valid"), r.meta("detail")),
            (&json!(false), &json!("is suspended"))
        );
        assert_eq!(r.body["data"]["attributes"]["status"], "SUSPENDED");
        assert_eq!(r.body["data"]["attributes"]["suspended"], true);
        let r = kg
            .call(
                reqwest::Method::GET,
                "/keygen/v1/me",
                None,
                Some(&format!("License {}", l.key)),
            )
            .await;
        assert_eq!((r.status, r.error_code()), (403, "LICENSE_SUSPENDED"));
    }
    v1.shutdown().await;
    v2.shutdown().await;
    cp.shutdown().await;
}

#[tokio::test]
async fn accounts_in_the_path_scope_every_lookup() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (a, b) = (tenant(&mut c, true).await, tenant(&mut c, true).await);
    let la = one_license(&mut c, &a, 1).await;
    let owner_a = owner_of(&c, &a).await;
    let v = validator(&db.url, |_| {}).await;
    let kg = Keygen::new(&mut c, v.addr()).await;
    for account in [a.actor.account_id.to_string(), owner_a] {
        let r = kg
            .call(
                reqwest::Method::POST,
                &format!("/keygen/v1/accounts/{account}/licenses/actions/validate-key"),
                Some(json!({"meta": {"key": la.key}})),
                None,
            )
            .await;
        assert_eq!(r.meta("code"), "VALID", "{account}: {}", r.body);
        assert_eq!(
            r.headers["keygen-signature"]
                .to_str()
                .unwrap()
                .split(',')
                .next()
                .unwrap(),
            format!("keyid=\"{}\"", a.actor.account_id)
        );
        assert!(r.body["data"]["links"]["self"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "/keygen/v1/accounts/{}/licenses/",
                a.actor.account_id
            )));
    }
    // Under another account's path, A's key does not exist.
    let r = kg
        .call(
            reqwest::Method::POST,
            &format!(
                "/keygen/v1/accounts/{}/licenses/actions/validate-key",
                b.actor.account_id
            ),
            Some(json!({"meta": {"key": la.key}})),
            None,
        )
        .await;
    assert_eq!(r.meta("code"), "NOT_FOUND");
    let r = kg
        .call(
            reqwest::Method::POST,
            &format!(
                "/keygen/v1/accounts/{}/licenses/{}/actions/validate",
                b.actor.account_id, la.id
            ),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    // An unknown account, an unknown route: signed 404s.
    let r = kg
        .call(
            reqwest::Method::GET,
            "/keygen/v1/accounts/nobody/me",
            None,
            None,
        )
        .await;
    assert_eq!((r.status, r.error_code()), (404, "NOT_FOUND"));
    let r = kg
        .call(
            reqwest::Method::GET,
            "/keygen/v1/nothing-here?x=%2B&",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    v.shutdown().await;
}

#[tokio::test]
async fn empty_answers_are_signed_over_the_empty_digest() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let v = validator(&db.url, |_| {}).await;
    let kg = Keygen::new(&mut c, v.addr()).await;
    // keygen-rs requests with a bare trailing `?`; the target is signed as received.
    for target in ["/keygen/v1/ping", "/keygen/v1/ping?"] {
        let r = kg.call(reqwest::Method::GET, target, None, None).await;
        assert_eq!(r.status, 200);
        assert!(r.raw.is_empty());
        assert_eq!(
            r.headers["digest"],
            "sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
    // An accept-signature header naming another algorithm is refused (and still signed).
    let r = kg
        .http
        .get(format!("http://{}/keygen/v1/ping", v.addr()))
        .header("keygen-accept-signature", "algorithm=\"rsa-sha256\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().contains_key("keygen-signature"));
    v.shutdown().await;
}

fn machine_body(license: &License, fingerprint: &str) -> Value {
    json!({"data": {
        "type": "machines",
        "attributes": {"fingerprint": fingerprint, "platform": "linux/x86_64", "cores": 8},
        "relationships": {"license": {"data": {"type": "licenses", "id": license.id.to_string()}}},
    }})
}

#[tokio::test]
async fn machines_activate_heartbeat_check_out_and_deactivate() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 1).await;
    let v = validator(&db.url, |_| {}).await;
    let kg = Keygen::new(&mut c, v.addr()).await;
    let auth = format!("License {}", l.key);
    let post = reqwest::Method::POST;

    // Machines are never anonymous.
    let r = kg
        .call(
            post.clone(),
            "/keygen/v1/machines",
            Some(machine_body(&l, "fp-a")),
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    let r = kg
        .call(
            post.clone(),
            "/keygen/v1/machines",
            Some(machine_body(&l, "fp-a")),
            Some(&auth),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["data"]["attributes"]["fingerprint"], "fp-a");
    assert_eq!(
        r.body["data"]["attributes"]["heartbeatStatus"],
        "NOT_STARTED"
    );
    assert_eq!(r.body["data"]["attributes"]["requireHeartbeat"], false);
    assert!(r.headers["location"].to_str().unwrap().ends_with(&id));
    let r = kg
        .validate_key(
            json!({"key": l.key, "scope": {"fingerprint": "fp-a"}}),
            None,
        )
        .await;
    assert_eq!(r.meta("code"), "VALID", "{}", r.body);

    // The same fingerprint again, a second one past the limit of 1, a blank one.
    let r = kg
        .call(
            post.clone(),
            "/keygen/v1/machines",
            Some(machine_body(&l, "fp-a")),
            Some(&auth),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (422, "FINGERPRINT_TAKEN"));
    assert_eq!(
        r.body["errors"][0]["source"]["pointer"],
        "/data/attributes/fingerprint"
    );
    let r = kg
        .call(
            post.clone(),
            "/keygen/v1/machines",
            Some(machine_body(&l, "fp-b")),
            Some(&auth),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (422, "MACHINE_LIMIT_EXCEEDED"),
        "{}",
        r.body
    );
    let r = kg
        .call(
            post.clone(),
            "/keygen/v1/machines",
            Some(machine_body(&l, "")),
            Some(&auth),
        )
        .await;
    assert_eq!(r.status, 422);
    // Another license's id in the relationship.
    let other = one_license(&mut c, &t, 1).await;
    let r = kg
        .call(
            post.clone(),
            "/keygen/v1/machines",
            Some(machine_body(&other, "fp-c")),
            Some(&auth),
        )
        .await;
    assert_eq!((r.status, r.error_code()), (422, "LICENSE_NOT_FOUND"));

    // Read by id and by fingerprint; heartbeat ping and reset.
    for name in [id.as_str(), "fp-a"] {
        let r = kg
            .call(
                reqwest::Method::GET,
                &format!("/keygen/v1/machines/{name}"),
                None,
                Some(&auth),
            )
            .await;
        assert_eq!(
            (r.status, r.body["data"]["id"].as_str()),
            (200, Some(id.as_str()))
        );
    }
    let r = kg
        .call(
            post.clone(),
            &format!("/keygen/v1/machines/{id}/actions/ping"),
            None,
            Some(&auth),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["attributes"]["heartbeatStatus"], "ALIVE");
    assert!(r.body["data"]["attributes"]["nextHeartbeat"].is_string());
    let r = kg
        .call(
            post.clone(),
            &format!("/keygen/v1/machines/{id}/actions/reset"),
            None,
            Some(&auth),
        )
        .await;
    assert_eq!(
        r.body["data"]["attributes"]["heartbeatStatus"],
        "NOT_STARTED"
    );

    // A license file, encrypted, verified offline with the key; a machine file with its license.
    let r = kg
        .call(
            post.clone(),
            &format!(
                "/keygen/v1/licenses/{}/actions/check-out?encrypt=1&include=entitlements",
                l.id
            ),
            None,
            Some(&auth),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["type"], "license-files");
    let attrs = &r.body["data"]["attributes"];
    assert_eq!(attrs["algorithm"], "aes-256-gcm+ed25519");
    assert_eq!(attrs["ttl"], 2_629_746);
    let cert = attrs["certificate"].as_str().unwrap();
    let file = keyward_shared::license_file::verify(
        cert,
        &kg.public_key,
        Some(l.key.as_bytes()),
        chrono::Utc::now(),
    )
    .expect("license file verifies offline");
    assert_eq!(file.dataset["data"]["attributes"]["key"], l.key);
    assert!(file.expiry.is_some());
    let r = kg
        .call(
            reqwest::Method::GET,
            &format!("/keygen/v1/machines/{id}/actions/check-out?"),
            None,
            Some(&auth),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    let cert = String::from_utf8(r.raw.clone()).unwrap();
    assert!(cert.starts_with("-----BEGIN MACHINE FILE-----\n"));
    let file =
        keyward_shared::license_file::verify(&cert, &kg.public_key, None, chrono::Utc::now())
            .expect("machine file verifies");
    assert_eq!(file.dataset["included"][0]["type"], "licenses");
    assert_eq!(file.dataset["data"]["attributes"]["fingerprint"], "fp-a");
    // Both check-outs are recorded: the license's and the machine's.
    let r = kg
        .call(
            reqwest::Method::GET,
            "/keygen/v1/machines/fp-a",
            None,
            Some(&auth),
        )
        .await;
    assert!(
        r.body["data"]["attributes"]["lastCheckOut"].is_string(),
        "{}",
        r.body
    );
    let r = kg
        .call(reqwest::Method::GET, "/keygen/v1/me", None, Some(&auth))
        .await;
    assert!(
        r.body["data"]["attributes"]["lastCheckOut"].is_string(),
        "{}",
        r.body
    );
    for (query, code) in [
        ("ttl=60", "CHECKOUT_TTL_INVALID"),
        ("algorithm=rsa", "CHECKOUT_ALGORITHM_INVALID"),
        ("include=secrets", "CHECKOUT_INCLUDE_INVALID"),
    ] {
        let r = kg
            .call(
                post.clone(),
                &format!("/keygen/v1/licenses/{}/actions/check-out?{query}", l.id),
                None,
                Some(&auth),
            )
            .await;
        assert_eq!((r.status, r.error_code()), (400, code), "{query}");
    }

    // Deactivate: 204, signed over the empty body; the slot is free again.
    let r = kg
        .call(
            reqwest::Method::DELETE,
            "/keygen/v1/machines/fp-a",
            None,
            Some(&auth),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = kg
        .call(
            post.clone(),
            "/keygen/v1/machines",
            Some(machine_body(&l, "fp-b")),
            Some(&auth),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    v.shutdown().await;
}

#[tokio::test]
async fn concurrent_activations_over_two_validators_never_exceed_max_machines() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 3).await;
    let (v1, v2) = (
        validator(&db.url, |_| {}).await,
        validator(&db.url, |_| {}).await,
    );
    let k1 = Keygen::new(&mut c, v1.addr()).await;
    let k2 = Keygen::new(&mut c, v2.addr()).await;
    let auth = format!("License {}", l.key);
    let calls = (0..24).map(|i| {
        let kg = if i % 2 == 0 { &k1 } else { &k2 };
        let body = machine_body(&l, &format!("fp-{i}"));
        let auth = auth.clone();
        async move {
            kg.call(
                reqwest::Method::POST,
                "/keygen/v1/machines",
                Some(body),
                Some(&auth),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    let created = answers.iter().filter(|r| r.status == 201).count();
    let refused = answers
        .iter()
        .filter(|r| r.status == 422 && r.error_code() == "MACHINE_LIMIT_EXCEEDED")
        .count();
    assert_eq!((created, refused), (3, 21));
    let machines = machine_count(&c, l.id).await;
    assert_eq!(machines, 3);
    v1.shutdown().await;
    v2.shutdown().await;
}

#[tokio::test]
async fn entitlement_changes_reach_the_entitlements_scope() {
    use keyward_shared::store::entitlements::{self, EntitlementPatch, Holder};
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 1).await;
    let v = validator(&db.url, |_| {}).await;
    let kg = Keygen::new(&mut c, v.addr()).await;
    let ask = json!({"key": l.key, "scope": {"entitlements": ["FEATURE_A"]}});
    assert_eq!(
        kg.validate_key(ask.clone(), None).await.meta("code"),
        "ENTITLEMENTS_MISSING"
    );
    let r = kg
        .validate_key(json!({"key": l.key, "scope": {"entitlements": []}}), None)
        .await;
    assert_eq!(r.meta("code"), "ENTITLEMENTS_SCOPE_EMPTY");

    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    let e = entitlements::create(
        &mut w,
        &EntitlementPatch {
            name: Some("Feature A".into()),
            code: Some("FEATURE_A".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    entitlements::attach(&mut w, Holder::Policy(l.policy_id), &[e.id])
        .await
        .unwrap();
    w.commit().await.unwrap();
    eventually(
        Duration::from_secs(5),
        "policy entitlement seen",
        || async {
            (kg.validate_key(ask.clone(), None).await.meta("code") == "VALID").then_some(())
        },
    )
    .await;

    // Renamed: the old code is no longer granted.
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    entitlements::update(
        &mut w,
        e.id,
        &EntitlementPatch {
            code: Some("FEATURE_B".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    eventually(
        Duration::from_secs(5),
        "renamed entitlement seen",
        || async {
            (kg.validate_key(ask.clone(), None).await.meta("code") == "ENTITLEMENTS_MISSING")
                .then_some(())
        },
    )
    .await;
    v.shutdown().await;
}

#[tokio::test]
async fn a_first_validation_starts_the_expiry_of_a_policy_that_says_so() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 1).await;
    set_policy(
        &mut c,
        &t,
        &l,
        PolicyPatch {
            duration_secs: Some(Some(3600)),
            expiration_basis: Some(keyward_shared::policy::ExpirationBasis::FromFirstValidation),
            ..Default::default()
        },
    )
    .await;
    // A license made now follows the policy's duration from its first validation.
    let l = one_license(&mut c, &t, 1).await;
    assert!(l.expires_at.is_none() && l.duration_secs == Some(3600));
    let v = validator(&db.url, |_| {}).await;
    let kg = Keygen::new(&mut c, v.addr()).await;
    let r = kg.validate_key(json!({"key": l.key}), None).await;
    assert_eq!(r.meta("code"), "VALID", "{}", r.body);
    let expiry = r.body["data"]["attributes"]["expiry"]
        .as_str()
        .expect("the first validation starts it")
        .to_owned();
    let stored: Option<chrono::DateTime<chrono::Utc>> = c
        .query_one("SELECT expires_at FROM licenses WHERE id = $1", &[&l.id])
        .await
        .unwrap()
        .get(0);
    assert!(stored.is_some_and(|at| at > chrono::Utc::now() + chrono::Duration::minutes(59)));
    let r = kg.validate_key(json!({"key": l.key}), None).await;
    assert_eq!(r.body["data"]["attributes"]["expiry"], expiry.as_str());
    v.shutdown().await;
}

#[tokio::test]
async fn validations_become_webhook_events_when_an_endpoint_listens() {
    use keyward_shared::store::webhook_endpoints::{self, EndpointPatch, UrlPolicy};
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 1).await;
    let v = validator(&db.url, |_| {}).await;
    let kg = Keygen::new(&mut c, v.addr()).await;
    // Nobody listens: validations write nothing.
    kg.validate_key(json!({"key": l.key}), None).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    webhook_endpoints::create(
        &mut w,
        &EndpointPatch {
            url: Some("http://127.0.0.1:9/keygen".into()),
            subscriptions: Some(vec![
                "license.validation.succeeded".into(),
                "license.validation.failed".into(),
            ]),
            ..Default::default()
        },
        UrlPolicy {
            allow_http: true,
            allow_private: true,
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    assert!(webhook_rows(&c).await.is_empty());
    // Once the validator has re-read the account's endpoints, each validation is an event.
    let (rows, took) = eventually(Duration::from_secs(15), "a validation event", || async {
        kg.validate_key(json!({"key": l.key, "nonce": 9}), None)
            .await;
        let rows = webhook_rows(&c).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    println!("validation events written {took:?} after the endpoint was created");
    let (event, payload): (String, Value) = (rows[0].get(0), rows[0].get(1));
    assert_eq!(event, "license.validation.succeeded");
    assert_eq!(payload["meta"]["code"], "VALID");
    assert_eq!(payload["data"]["id"], l.id.to_string());
    // A refused validation is a failed one.
    let scope = json!({"key": l.key, "scope": {"fingerprint": "not-activated"}});
    let r = kg.validate_key(scope, None).await;
    assert_eq!(r.meta("valid"), false);
    eventually(
        Duration::from_secs(5),
        "a failed validation event",
        || async {
            let rows = webhook_rows(&c).await;
            rows.iter()
                .any(|r| r.get::<_, String>(0) == "license.validation.failed")
                .then_some(())
        },
    )
    .await;
    v.shutdown().await;
}

/// The webhook events written so far, oldest first: (event, payload).
async fn webhook_rows(c: &tokio_postgres::Client) -> Vec<tokio_postgres::Row> {
    c.query(
        "SELECT event, payload FROM webhook_events ORDER BY created_at",
        &[],
    )
    .await
    .expect("webhook events")
}

//! Hostile input on the validator's Keygen client API: every body field, path id, query
//! parameter and credential of its routes gets NUL, 70 kB, control and unicode text, wrong JSON
//! types and deep nesting. Nothing may answer 5xx or drop the connection; every answer is signed
//! and, when refused, a Keygen error document; a NUL is a 400 naming its field; another
//! tenant's license key reaches nothing of the first tenant's.

mod common;

use std::net::SocketAddr;

use common::hostile_values::*;
use common::*;
use keyward_shared::policy::{AuthenticationStrategy, PolicyPatch};
use keyward_shared::store::policies;
use keyward_shared::testing::TestDb;
use keyward_shared::write::WriteTx;
use reqwest::Method;
use serde_json::{json, Value};

struct Sweep {
    http: reqwest::Client,
    addr: SocketAddr,
    sent: usize,
    failures: Vec<String>,
}

struct Got {
    status: u16,
    text: String,
    json: Value,
}

impl Sweep {
    async fn send(
        &mut self,
        method: Method,
        target: &str,
        auth: Option<&str>,
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Got {
        self.sent += 1;
        let mut req = self
            .http
            .request(method, format!("http://{}{target}", self.addr));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/vnd.api+json")
                .body(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.failures.push(format!("{what}: no answer: {e}"));
                return Got {
                    status: 0,
                    text: String::new(),
                    json: Value::Null,
                };
            }
        };
        let status = resp.status().as_u16();
        let signed = resp.headers().contains_key("keygen-signature");
        let text = resp.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let got = Got { status, text, json };
        if status >= 500 {
            self.failures
                .push(format!("{what} → {status} {}", short(&got.text)));
        } else if !signed {
            self.failures.push(format!("{what} → {status} unsigned"));
        } else if status >= 400 && !got.json["errors"][0]["detail"].is_string() {
            self.failures.push(format!(
                "{what} → {status} without a Keygen error document: {}",
                short(&got.text)
            ));
        }
        got
    }

    fn nul_named(&mut self, g: &Got, field: &str, what: &str) {
        let detail = g.json["errors"][0]["detail"].as_str().unwrap_or("");
        let pointer = g.json["errors"][0]["source"].to_string();
        if g.status != 400 || !(detail.contains(field) || pointer.contains(field)) {
            self.failures.push(format!(
                "{what}: a NUL must be a 400 naming '{field}', got {} {}",
                g.status,
                short(&g.text)
            ));
        }
    }
}

fn short(s: &str) -> String {
    if s.len() > 200 {
        format!("{}… ({} bytes)", &s[..s.floor_char_boundary(200)], s.len())
    } else {
        s.to_string()
    }
}

/// Every hostile value as JSON, with whether it holds a NUL.
fn values() -> Vec<(String, Value, bool)> {
    hostile_strings()
        .into_iter()
        .map(|(l, s, nul)| (l.to_string(), Value::String(s), nul))
        .chain(
            hostile_json()
                .into_iter()
                .map(|(l, v)| (l.to_string(), v, false)),
        )
        .collect()
}

#[tokio::test]
async fn keygen_client_routes_survive_hostile_input() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let alice = tenant(&mut c, true).await;
    let bob = tenant(&mut c, true).await;
    let a = one_license(&mut c, &alice, 3).await;
    let b = one_license(&mut c, &bob, 3).await;
    for (t, l) in [(&alice, &a), (&bob, &b)] {
        let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
        let patch = PolicyPatch {
            authentication_strategy: Some(AuthenticationStrategy::Mixed),
            ..Default::default()
        };
        policies::update(&mut w, l.policy_id, &patch).await.unwrap();
        w.commit().await.unwrap();
    }
    let v = validator(&db.url, |_| {}).await;
    let mut sweep = Sweep {
        http: reqwest::Client::new(),
        addr: v.addr(),
        sent: 0,
        failures: Vec::new(),
    };
    let alice_auth = format!("License {}", a.key);
    let bob_auth = format!("License {}", b.key);
    let activate = |license: &str, attributes: Value| {
        json!({"data": {"type": "machines", "attributes": attributes,
            "relationships": {"license": {"data": {"type": "licenses", "id": license}}}}})
    };
    let g = sweep
        .send(
            Method::POST,
            "/keygen/v1/machines",
            Some(&alice_auth),
            Some(
                activate(&a.id.to_string(), json!({"fingerprint": "alice-fp"}))
                    .to_string()
                    .into_bytes(),
            ),
            "activate",
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text);
    let machine = g.json["data"]["id"]
        .as_str()
        .expect("machine id")
        .to_owned();

    // 1. validate-key: every meta field, then whole bodies.
    for field in ["key", "nonce", "scope"] {
        for (label, value, nul) in values() {
            let mut meta = json!({"key": a.key});
            meta[field] = value;
            let what = format!("validate-key meta.{field} = {label}");
            let g = sweep
                .send(
                    Method::POST,
                    "/keygen/v1/licenses/actions/validate-key",
                    None,
                    Some(json!({"meta": meta}).to_string().into_bytes()),
                    &what,
                )
                .await;
            if nul && field == "key" {
                sweep.nul_named(&g, field, &what);
            }
        }
    }
    // Scope members one by one.
    for member in [
        "product",
        "policy",
        "fingerprint",
        "fingerprints",
        "machine",
        "entitlements",
        "user",
    ] {
        for (label, value, _) in values() {
            let body = json!({"meta": {"key": a.key, "scope": {member: value}}});
            sweep
                .send(
                    Method::POST,
                    "/keygen/v1/licenses/actions/validate-key",
                    None,
                    Some(body.to_string().into_bytes()),
                    &format!("validate-key scope.{member} = {label}"),
                )
                .await;
        }
    }
    let mut nested = "[".repeat(100_000);
    nested.push_str(&"]".repeat(100_000));
    for (label, raw) in [
        ("100 000-deep array", nested.into_bytes()),
        ("a string", b"\"x\"".to_vec()),
        ("null", b"null".to_vec()),
        (
            "invalid UTF-8",
            b"{\"meta\":{\"key\":\"\xff\xfe\"}}".to_vec(),
        ),
        ("a lone surrogate", br#"{"meta":{"key":"\ud800"}}"#.to_vec()),
        ("16 kB of whitespace", vec![b' '; 16_000]),
    ] {
        sweep
            .send(
                Method::POST,
                "/keygen/v1/licenses/actions/validate-key",
                None,
                Some(raw),
                &format!("validate-key body {label}"),
            )
            .await;
    }

    // 2. Credentials.
    for (label, value, _) in hostile_strings() {
        if value.contains(['\r', '\n', '\0']) || value.len() > 8_000 {
            continue; // not a header value a client can send
        }
        for scheme in ["License", "Bearer", "Basic", ""] {
            sweep
                .send(
                    Method::GET,
                    "/keygen/v1/me",
                    Some(&format!("{scheme} {value}")),
                    None,
                    &format!("me with {scheme} {label}"),
                )
                .await;
        }
    }

    // 3. Path ids, with Alice's license key.
    let routes: Vec<(Method, &str)> = vec![
        (Method::GET, "/keygen/v1/licenses/{}/actions/validate"),
        (Method::POST, "/keygen/v1/licenses/{}/actions/validate"),
        (Method::GET, "/keygen/v1/licenses/{}/machines"),
        (Method::POST, "/keygen/v1/licenses/{}/actions/check-out"),
        (Method::GET, "/keygen/v1/machines/{}"),
        (Method::POST, "/keygen/v1/machines/{}/actions/ping"),
        (Method::POST, "/keygen/v1/machines/{}/actions/check-out"),
        (Method::DELETE, "/keygen/v1/machines/{}"),
        (Method::GET, "/keygen/v1/accounts/{}/me"),
    ];
    for (method, template) in &routes {
        // Beyond 16 kB a URL is refused by the HTTP client itself.
        for (label, value, nul) in hostile_strings().into_iter().filter(|v| v.1.len() < 16_000) {
            let target = template.replace("{}", &encode(&value));
            let what = format!("{method} {template} id = {label}");
            let g = sweep
                .send(method.clone(), &target, Some(&alice_auth), None, &what)
                .await;
            if nul {
                let name = if template.contains("/accounts/") {
                    "account"
                } else {
                    "id"
                };
                sweep.nul_named(&g, name, &what);
            }
        }
    }

    // 4. Activation attributes.
    for attribute in [
        "fingerprint",
        "name",
        "hostname",
        "platform",
        "ip",
        "cores",
        "memory",
        "disk",
        "metadata",
    ] {
        for (label, value, _) in values() {
            let mut attrs = json!({"fingerprint": format!("fp-{}", sweep.sent)});
            attrs[attribute] = value;
            sweep
                .send(
                    Method::POST,
                    "/keygen/v1/machines",
                    Some(&alice_auth),
                    Some(activate(&a.id.to_string(), attrs).to_string().into_bytes()),
                    &format!("activate {attribute} = {label}"),
                )
                .await;
        }
    }

    // 5. Check-out parameters.
    for param in ["ttl", "algorithm", "include", "encrypt"] {
        for (label, value, _) in hostile_strings().into_iter().filter(|v| v.1.len() < 16_000) {
            sweep
                .send(
                    Method::GET,
                    &format!(
                        "/keygen/v1/licenses/{}/actions/check-out?{param}={}",
                        a.id,
                        encode(&value)
                    ),
                    Some(&alice_auth),
                    None,
                    &format!("check-out {param} = {label}"),
                )
                .await;
        }
    }

    // 6. Bob's license key against Alice's license and machine.
    for (method, template) in &routes {
        for id in [a.id.to_string(), a.key.clone(), machine.clone()] {
            let target = template.replace("{}", &encode(&id));
            let what = format!("{method} {template} as Bob");
            let g = sweep
                .send(method.clone(), &target, Some(&bob_auth), None, &what)
                .await;
            if (200..300).contains(&g.status) && !template.contains("accounts") {
                sweep
                    .failures
                    .push(format!("{what} succeeded: {}", short(&g.text)));
            }
            if g.text.contains(&a.key) && !target.contains(&encode(&a.key)) {
                sweep
                    .failures
                    .push(format!("{what} revealed Alice's key: {}", short(&g.text)));
            }
        }
    }
    let g = sweep
        .send(
            Method::GET,
            &format!("/keygen/v1/machines/{machine}"),
            Some(&alice_auth),
            None,
            "Alice's machine after the sweep",
        )
        .await;
    assert_eq!(g.status, 200, "Bob deleted Alice's machine: {}", g.text);

    println!("{} hostile Keygen requests", sweep.sent);
    for f in &sweep.failures {
        println!("MISBEHAVED {f}");
    }
    assert!(
        sweep.failures.is_empty(),
        "{} of {} requests misbehaved",
        sweep.failures.len(),
        sweep.sent
    );
    v.shutdown().await;
}

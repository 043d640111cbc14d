//! Hostile input on every route of the validator and every client-API `type`: NUL, 60 and 70 kB
//! strings, invalid UTF-8, control and unicode text, wrong JSON types, out-of-range numbers and
//! deep nesting in every field, in every encoding the client API reads (urlencoded, JSON,
//! multipart, query string) and every API version; and a second tenant's sessions, keys and
//! users aimed at the first tenant's app. Nothing may answer 5xx or drop the connection, and
//! nothing of one tenant works through the other's.

mod common;

use std::net::SocketAddr;

use common::hostile_values::*;
use common::*;
use keyward_shared::store::licenses;
use keyward_shared::testing::TestDb;
use serde_json::{json, Value};

const HWID: &str = "0123456789abcdef0123456789abcdef";
const PASSWORD: &str = "player-password";

/// Every parameter a client-API handler reads.
const PARAMS: &[&str] = &[
    "type",
    "name",
    "ownerid",
    "sessionid",
    "ver",
    "hash",
    "enckey",
    "hwid",
    "key",
    "username",
    "pass",
    "email",
    "var",
    "varid",
    "data",
    "message",
    "pcuser",
    "webid",
    "params",
    "body",
    "conttype",
    "reason",
    "newUsername",
];

/// Every client-API type, plus one that does not exist.
const TYPES: &[&str] = &[
    "init",
    "register",
    "login",
    "license",
    "upgrade",
    "check",
    "var",
    "getvar",
    "setvar",
    "log",
    "webhook",
    "fetchOnline",
    "fetchStats",
    "checkblacklist",
    "checkblack",
    "logout",
    "changeUsername",
    "nosuchtype",
    "ban",
];

fn form(params: &[(String, String)]) -> Vec<u8> {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn multipart(params: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in params {
        out.extend_from_slice(
            format!("--zz\r\ncontent-disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    out.extend_from_slice(b"--zz--\r\n");
    out
}

struct Sweep {
    http: reqwest::Client,
    addr: SocketAddr,
    /// The client address claimed through the (trusted) proxy header: `ban` blacklists the
    /// caller's address, so each ban comes from an address of its own.
    forwarded_for: Option<String>,
    sent: usize,
    failures: Vec<String>,
}

struct Got {
    status: u16,
    text: String,
    json: Value,
}

impl Sweep {
    /// One request; `query` is already encoded.
    async fn send(
        &mut self,
        path: &str,
        query: &str,
        ct: Option<&str>,
        body: Vec<u8>,
        what: &str,
    ) -> Got {
        self.sent += 1;
        let url = if query.is_empty() {
            format!("http://{}{path}", self.addr)
        } else {
            format!("http://{}{path}?{query}", self.addr)
        };
        let mut req = if body.is_empty() && ct.is_none() {
            self.http.get(url)
        } else {
            self.http.post(url).body(body)
        };
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        if let Some(ip) = &self.forwarded_for {
            req = req.header("x-forwarded-for", ip);
        }
        let resp = req.send().await.unwrap_or_else(|e| {
            panic!(
                "{what}: no answer (connection dropped?): {}",
                short(&e.to_string())
            )
        });
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("{what}: body cut: {e}"));
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        let got = Got { status, text, json };
        self.sane(&got, what);
        got
    }

    fn sane(&mut self, g: &Got, what: &str) {
        if g.status >= 500 {
            self.failures
                .push(format!("{what} → {} {}", g.status, short(&g.text)));
        } else if g.text != "KeyAuth_Invalid"
            // `log` answers an empty body, as KeyAuth's does; the ops endpoints have their own.
            && !(g.status == 200 && (g.text.is_empty() || what.starts_with('/')))
            && (g.json["success"].as_bool().is_none() && g.json["valid"].as_bool().is_none()
                || (g.status >= 400 || g.json["success"] == false) && !g.json["message"].is_string())
        {
            self.failures.push(format!(
                "{what}: not an answer of the protocol: {} {}",
                g.status,
                short(&g.text)
            ));
        }
    }

    fn refused(&mut self, g: &Got, what: &str) {
        if g.json["success"] == true || g.json["valid"] == true {
            self.failures.push(format!(
                "{what} succeeded across tenants: {}",
                short(&g.text)
            ));
        }
    }

    async fn client_api(&mut self, version: &str, params: &[(String, String)]) -> Got {
        let what = format!(
            "{version} {}",
            params
                .iter()
                .find(|(k, _)| k == "type")
                .map_or("-", |(_, v)| v)
        );
        self.send(
            &format!("/api/{version}/"),
            "",
            Some("application/x-www-form-urlencoded"),
            form(params),
            &what,
        )
        .await
    }
}

fn short(s: &str) -> String {
    if s.len() > 200 {
        format!("{}… ({} bytes)", &s[..s.floor_char_boundary(200)], s.len())
    } else {
        s.to_string()
    }
}

/// A tenant as its clients see it.
struct Side {
    app: uuid::Uuid,
    owner: String,
    name: String,
    keys: Vec<String>,
}

async fn side(c: &mut tokio_postgres::Client) -> Side {
    let t = tenant(c, false).await;
    let owner = owner_of(c, &t).await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        let batch = licenses::GenerateSpec {
            count: Some(500),
            ..Default::default()
        };
        keys.extend(generate(c, &t, batch).await.into_iter().map(|l| l.key));
    }
    Side {
        app: t.app.id,
        owner,
        name: t.app.name.clone(),
        keys,
    }
}

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Side {
    fn ident(&self) -> Vec<(String, String)> {
        p(&[("name", &self.name), ("ownerid", &self.owner)])
    }

    /// A session logged in as the side's player.
    async fn session(&self, sweep: &mut Sweep) -> String {
        let mut init = self.ident();
        init.extend(p(&[("type", "init"), ("ver", "1.0"), ("enckey", "abc")]));
        let g = sweep.client_api("1.2", &init).await;
        let sid = g.json["sessionid"]
            .as_str()
            .unwrap_or_else(|| panic!("init: {}", g.text))
            .to_string();
        let mut login = self.ident();
        login.extend(p(&[
            ("type", "login"),
            ("username", "player"),
            ("pass", PASSWORD),
            ("hwid", HWID),
            ("sessionid", &sid),
        ]));
        let g = sweep.client_api("1.2", &login).await;
        assert_eq!(g.json["success"], true, "login: {}", g.text);
        sid
    }

    /// A session logged in as a new user made from `key` (for the types that ban or rename the
    /// caller).
    async fn throwaway_session(&self, sweep: &mut Sweep, key: &str, hwid: &str) -> String {
        let mut init = self.ident();
        init.extend(p(&[("type", "init"), ("ver", "1.0"), ("enckey", "abc")]));
        let g = sweep.client_api("1.2", &init).await;
        let sid = g.json["sessionid"]
            .as_str()
            .unwrap_or_else(|| panic!("init: {}", g.text))
            .to_string();
        let mut license = self.ident();
        license.extend(p(&[
            ("type", "license"),
            ("key", key),
            ("hwid", hwid),
            ("sessionid", &sid),
        ]));
        let g = sweep.client_api("1.2", &license).await;
        assert_eq!(g.json["success"], true, "license: {}", g.text);
        sid
    }

    /// Plausible parameters of a type, so that the hostile one is what gets judged.
    fn base(&self, kind: &str, sid: &str, n: usize) -> Vec<(String, String)> {
        let mut v = self.ident();
        v.push(("type".into(), kind.into()));
        if kind != "init" {
            v.push(("sessionid".into(), sid.into()));
        }
        let key = &self.keys[10 + n % 990];
        let user = format!("user{n}");
        let extra: Vec<(&str, &str)> = match kind {
            "init" => vec![("ver", "1.0"), ("enckey", "abc")],
            "register" => vec![
                ("username", &user),
                ("pass", PASSWORD),
                ("key", key),
                ("hwid", HWID),
                ("email", "a@example.com"),
            ],
            "login" => vec![("username", "player"), ("pass", PASSWORD), ("hwid", HWID)],
            "license" => vec![("key", key), ("hwid", HWID)],
            "upgrade" => vec![("username", "player"), ("key", key)],
            "var" => vec![("varid", "motd")],
            "getvar" => vec![("var", "rank")],
            "setvar" => vec![("var", "rank"), ("data", "gold")],
            "log" => vec![("pcuser", "me"), ("message", "hello")],
            "webhook" => vec![
                ("webid", "nohook"),
                ("params", "a=b"),
                ("body", "{}"),
                ("conttype", "application/json"),
            ],
            "ban" => vec![("reason", "testing")],
            "changeUsername" => vec![("newUsername", &user)],
            _ => vec![],
        };
        v.extend(p(&extra));
        v
    }
}

fn with(mut base: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    base.retain(|(k, _)| k != name);
    base.push((name.to_string(), value.to_string()));
    base
}

#[tokio::test]
async fn every_route_and_client_api_type_survives_hostile_input() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let a = side(&mut c).await;
    let b = side(&mut c).await;
    let v = validator(&db.url, |cfg| {
        cfg.app_rate_limit_per_sec = 0;
        cfg.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
    })
    .await;
    let mut sweep = Sweep {
        http: reqwest::Client::new(),
        addr: v.addr(),
        forwarded_for: None,
        sent: 0,
        failures: Vec::new(),
    };
    // Each side's player, registered with its first key.
    for s in [&a, &b] {
        let mut init = s.ident();
        init.extend(p(&[("type", "init"), ("ver", "1.0")]));
        let sid = sweep.client_api("1.2", &init).await.json["sessionid"]
            .as_str()
            .expect("sid")
            .to_string();
        let mut reg = s.ident();
        reg.extend(p(&[
            ("type", "register"),
            ("username", "player"),
            ("pass", PASSWORD),
            ("key", &s.keys[0]),
            ("hwid", HWID),
            ("sessionid", &sid),
        ]));
        let g = sweep.client_api("1.2", &reg).await;
        assert_eq!(g.json["success"], true, "register: {}", g.text);
    }

    // 1. /v1/validate: every field, and whole bodies.
    let valid = json!({"app": a.app, "key": a.keys[1], "hwid": "m1", "nonce": "n"});
    for field in ["app", "key", "hwid", "nonce"] {
        let values: Vec<(String, Value, bool)> = hostile_strings()
            .into_iter()
            .map(|(l, s, nul)| (l.to_string(), Value::String(s), nul))
            .chain(
                hostile_json()
                    .into_iter()
                    .map(|(l, v)| (l.to_string(), v, false)),
            )
            .collect();
        for (label, value, nul) in values {
            let mut body = valid.clone();
            body[field] = value;
            let what = format!("validate {field} = {label}");
            let g = sweep
                .send(
                    "/v1/validate",
                    "",
                    Some("application/json"),
                    body.to_string().into_bytes(),
                    &what,
                )
                .await;
            if nul
                && field != "nonce"
                && !(g.status == 400
                    && g.json["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(field)))
            {
                sweep.failures.push(format!(
                    "{what}: a NUL must be a 400 naming '{field}': {} {}",
                    g.status,
                    short(&g.text)
                ));
            }
        }
    }
    let mut nested = "[".repeat(100_000);
    nested.push_str(&"]".repeat(100_000));
    for (label, raw) in [
        ("100 000-deep array", nested.into_bytes()),
        ("a NUL field name", br#"{"\u0000":1}"#.to_vec()),
        (
            "a lone surrogate",
            br#"{"app":"\ud800","key":"k"}"#.to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"app\":\"\xff\xfe\",\"key\":\"k\"}".to_vec(),
        ),
        (
            "a duplicate field",
            format!(r#"{{"app":"{}","key":"a","key":"b"}}"#, a.app).into_bytes(),
        ),
        (
            "an unknown field",
            format!(r#"{{"app":"{}","key":"a","admin":true}}"#, a.app).into_bytes(),
        ),
        ("16 kB of whitespace", vec![b' '; 16_000]),
    ] {
        sweep
            .send(
                "/v1/validate",
                "",
                Some("application/json"),
                raw,
                &format!("validate body {label}"),
            )
            .await;
    }
    for path in ["/healthz", "/readyz", "/metrics", "/nowhere"] {
        for (label, value, _) in hostile_strings() {
            if value.len() < 10_000 {
                sweep
                    .send(
                        path,
                        &format!("x={}", encode(&value)),
                        None,
                        Vec::new(),
                        &format!("{path} query {label}"),
                    )
                    .await;
            }
        }
    }

    // 2. Across tenants: Bob's sessions, keys and users reach nothing of Alice's.
    let bob_sid = b.session(&mut sweep).await;
    let alice_sid = a.session(&mut sweep).await;
    for kind in TYPES.iter().filter(|k| **k != "init") {
        // Bob's session on Alice's app, and Alice's session on Bob's app.
        let mut on_alice = b.base(kind, &bob_sid, 0);
        on_alice.retain(|(k, _)| k != "name" && k != "ownerid");
        on_alice.extend(a.ident());
        let g = sweep.client_api("1.2", &on_alice).await;
        sweep.refused(&g, &format!("{kind} with Bob's session on Alice's app"));
        let mut on_bob = a.base(kind, &alice_sid, 0);
        on_bob.retain(|(k, _)| k != "name" && k != "ownerid");
        on_bob.extend(b.ident());
        let g = sweep.client_api("1.2", &on_bob).await;
        sweep.refused(&g, &format!("{kind} with Alice's session on Bob's app"));
    }
    // Alice's keys and user through Bob's app.
    for (kind, extra) in [
        ("license", vec![("key", a.keys[2].as_str()), ("hwid", HWID)]),
        (
            "register",
            vec![
                ("username", "stolen"),
                ("pass", "x"),
                ("key", a.keys[3].as_str()),
                ("hwid", HWID),
            ],
        ),
        (
            "upgrade",
            vec![("username", "player"), ("key", a.keys[4].as_str())],
        ),
    ] {
        let fresh = b.session(&mut sweep).await;
        let mut params = b.ident();
        params.extend(p(&[("type", kind), ("sessionid", &fresh)]));
        params.extend(p(&extra));
        let g = sweep.client_api("1.2", &params).await;
        sweep.refused(&g, &format!("{kind} with Alice's key through Bob's app"));
    }
    let fresh = b.session(&mut sweep).await;
    let mut params = b.ident();
    params.extend(p(&[
        ("type", "login"),
        ("sessionid", &fresh),
        ("username", "player"),
        ("pass", "not bob's player password"),
    ]));
    let g = sweep.client_api("1.2", &params).await;
    sweep.refused(&g, "login with a wrong password");
    for (app, key, what) in [
        (b.app, &a.keys[5], "Alice's key on Bob's app"),
        (a.app, &b.keys[5], "Bob's key on Alice's app"),
    ] {
        let body = json!({"app": app, "key": key, "hwid": "m"})
            .to_string()
            .into_bytes();
        let g = sweep
            .send("/v1/validate", "", Some("application/json"), body, what)
            .await;
        if g.json["code"] != "NOT_FOUND" {
            sweep.failures.push(format!("{what}: {}", g.text));
        }
    }

    // 3. The client API: every type × every parameter, in every encoding and version.
    let mut n = 10;
    let mut spare_keys = a.keys[1000..].iter();
    for kind in TYPES {
        for param in PARAMS {
            let sid = if ["ban", "changeUsername"].contains(kind) {
                let key = spare_keys.next().expect("a spare key");
                n += 1;
                // `ban` blacklists the caller's HWID and address: both are its own.
                sweep.forwarded_for = Some(format!("10.77.{}.{}", n / 250 % 250, n % 250));
                a.throwaway_session(&mut sweep, key, &format!("hwid-{n:020}"))
                    .await
            } else {
                a.session(&mut sweep).await
            };
            for (label, value, _) in hostile_strings() {
                n += 1;
                let params = with(a.base(kind, &sid, n), param, &value);
                let what = format!("1.2 {kind} {param} = {label} (urlencoded)");
                sweep
                    .send(
                        "/api/1.2/",
                        "",
                        Some("application/x-www-form-urlencoded"),
                        form(&params),
                        &what,
                    )
                    .await;
                let obj: serde_json::Map<String, Value> = params
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                let what = format!("1.2 {kind} {param} = {label} (JSON)");
                sweep
                    .send(
                        "/api/1.2/",
                        "",
                        Some("application/json"),
                        Value::Object(obj).to_string().into_bytes(),
                        &what,
                    )
                    .await;
            }
            for (label, value) in hostile_json() {
                n += 1;
                let mut obj: serde_json::Map<String, Value> = a
                    .base(kind, &sid, n)
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                obj.insert(param.to_string(), value);
                let what = format!("1.2 {kind} {param} = {label} (JSON)");
                sweep
                    .send(
                        "/api/1.2/",
                        "",
                        Some("application/json"),
                        Value::Object(obj).to_string().into_bytes(),
                        &what,
                    )
                    .await;
            }
            for (label, value, _) in hostile_strings()
                .into_iter()
                .filter(|(l, _, _)| ["NUL", "60 kB", "control characters"].contains(l))
            {
                n += 1;
                let params = with(a.base(kind, &sid, n), param, &value);
                let what = format!("1.2 {kind} {param} = {label} (multipart)");
                sweep
                    .send(
                        "/api/1.2/",
                        "",
                        Some("multipart/form-data; boundary=zz"),
                        multipart(&params),
                        &what,
                    )
                    .await;
                let what = format!("1.2 {kind} {param} = {label} (query string)");
                let q = String::from_utf8(form(&params)).expect("ascii");
                if q.len() < 60_000 {
                    sweep.send("/api/1.2/", &q, None, Vec::new(), &what).await;
                }
                for version in ["1.1", "1.3"] {
                    let what = format!("{version} {kind} {param} = {label}");
                    sweep
                        .send(
                            &format!("/api/{version}/"),
                            "",
                            Some("application/x-www-form-urlencoded"),
                            form(&params),
                            &what,
                        )
                        .await;
                }
            }
            // Bytes that are not UTF-8, raw in the body and percent-encoded in the query.
            let mut raw = form(&a.base(kind, &sid, n));
            raw.extend_from_slice(format!("&{param}=").as_bytes());
            raw.extend_from_slice(&[0xff, 0xfe, 0xc3]);
            sweep
                .send(
                    "/api/1.2/",
                    "",
                    Some("application/x-www-form-urlencoded"),
                    raw,
                    &format!("1.2 {kind} {param} = invalid UTF-8"),
                )
                .await;
            let q = format!(
                "{}&{param}=%FF%FE%C3",
                String::from_utf8(form(&a.base(kind, &sid, n))).expect("ascii")
            );
            sweep
                .send(
                    "/api/1.2/",
                    &q,
                    None,
                    Vec::new(),
                    &format!("1.2 {kind} {param} = invalid UTF-8 (query)"),
                )
                .await;
        }
    }

    println!("{} hostile requests", sweep.sent);
    for f in &sweep.failures {
        println!("MISBEHAVED {f}");
    }
    assert!(
        sweep.failures.is_empty(),
        "{} of {} requests misbehaved:\n{}",
        sweep.failures.len(),
        sweep.sent,
        sweep
            .failures
            .iter()
            .take(200)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    v.shutdown().await;
}

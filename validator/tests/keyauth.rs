//! The KeyAuth client API end to end, over HTTP against real PostgreSQL: the real crates.io
//! `keyauth` client (1.2, HMAC-verifying), 1.3 answers checked by an independent Ed25519
//! implementation, sessions across validators, every failure message, hostile input.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use keyward_shared::model::BlacklistKind;
use keyward_shared::store::{api_keys, apps, blacklist, licenses, users, variables};
use keyward_shared::testing::{eventually, TestDb};
use keyward_shared::write::WriteTx;
use serde_json::Value;

const HWID: &str = "0123456789abcdef0123456789abcdef";
const OTHER_HWID: &str = "fedcba9876543210fedcba9876543210";
const NOT_FOUND_SESSION: &str =
    "Session not found. If you get this frequently, ask the developer to use the latest example code";

struct Client {
    http: reqwest::Client,
    addr: SocketAddr,
    name: String,
    owner: String,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
    json: Value,
}

impl Answer {
    fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or("")
    }
    fn success(&self) -> bool {
        self.json["success"].as_bool().unwrap_or(false)
    }
}

impl Client {
    async fn call(&self, version: &str, params: &[(&str, &str)]) -> Answer {
        let mut form: Vec<(&str, &str)> = vec![("name", &self.name), ("ownerid", &self.owner)];
        form.extend_from_slice(params);
        let resp = self
            .http
            .post(format!("http://{}/api/{version}/", self.addr))
            .form(&form)
            .send()
            .await
            .expect("request");
        answer(resp).await
    }

    async fn init(&self, version: &str) -> String {
        let a = self
            .call(version, &[("type", "init"), ("ver", "1.0")])
            .await;
        assert!(a.success(), "init: {}", a.text);
        a.json["sessionid"].as_str().expect("sessionid").to_string()
    }

    async fn init_with(&self, extra: &[(&str, &str)]) -> String {
        let mut p = vec![("type", "init")];
        p.extend_from_slice(extra);
        let a = self.call("1.2", &p).await;
        assert!(a.success(), "init: {}", a.text);
        a.json["sessionid"].as_str().expect("sessionid").to_string()
    }
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        text,
        json,
    }
}

async fn patch_app(c: &mut tokio_postgres::Client, t: &Tenant, patch: apps::AppPatch) {
    let mut w = WriteTx::begin(c, t.actor.clone()).await.expect("begin");
    apps::update(&mut w, t.app.id, &patch).await.expect("patch");
    w.commit().await.expect("commit");
}

async fn keys(c: &mut tokio_postgres::Client, t: &Tenant, n: i64) -> Vec<String> {
    generate(
        c,
        t,
        licenses::GenerateSpec {
            count: Some(n),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|l| l.key)
    .collect()
}

async fn setup(db: &TestDb, hwid_lock: bool) -> (tokio_postgres::Client, Tenant, String) {
    let mut c = db.client().await;
    let t = tenant(&mut c, hwid_lock).await;
    let owner = owner_of(&c, &t).await;
    (c, t, owner)
}

fn client(addr: SocketAddr, owner: &str) -> Client {
    Client {
        http: reqwest::Client::new(),
        addr,
        name: "app".into(),
        owner: owner.into(),
    }
}

#[tokio::test]
async fn real_keyauth_crate_verifies_every_signature() {
    let db = TestDb::new().await;
    let (mut c, t, owner) = setup(&db, true).await;
    let k = keys(&mut c, &t, 3).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    variables::upsert_global(&mut w, t.app.id, "motd", "hello fleet")
        .await
        .unwrap();
    w.commit().await.unwrap();
    let v = validator(&db.url, |_| {}).await;
    let url = format!("http://{}/api/1.2/", v.addr());
    let secret = t.app.secret.clone();

    // reqwest::blocking must not run inside the runtime: a plain thread, as a shipped client.
    let (u, o, s) = (url.clone(), owner.clone(), secret.clone());
    let keys = k.clone();
    tokio::task::spawn_blocking(move || {
        use keyauth::v1_2::KeyauthApi;
        // A client built with the wrong secret must reject our init: verification is real.
        let mut forged = KeyauthApi::new("app", &o, &"0".repeat(64), "1.0", &u);
        assert_eq!(forged.init(None).unwrap_err(), "response was tampered with");

        let mut account = KeyauthApi::new("app", &o, &s, "1.0", &u);
        account.init(None).expect("init");
        account
            .register(
                "alice".into(),
                "pw-1".into(),
                keys[1].clone(),
                Some(HWID.into()),
            )
            .expect("register");
        assert_eq!(account.username, "alice");
        account
            .login("alice".into(), "pw-1".into(), Some(HWID.into()))
            .expect("login");
        assert_eq!(account.subscription, "default");
        account
            .upgrade("alice".into(), keys[2].clone())
            .expect("upgrade");

        let mut ka = KeyauthApi::new("app", &o, &s, "1.0", &u);
        ka.init(None).expect("init");
        ka.license(keys[0].clone(), Some(HWID.into()))
            .expect("license");
        assert_eq!(ka.username, keys[0]);
        assert!(ka.check_session().expect("check"));
        assert_eq!(ka.var("motd".into()).expect("var"), "hello fleet");
        ka.setvar("color".into(), "blue".into()).expect("setvar");
        assert!(ka.success, "setvar: {}", ka.message);
        assert_eq!(ka.getvar("color".into()).expect("getvar"), "blue");
        ka.log("started".into(), None);
        let online = ka.fetch_online().expect("fetchOnline");
        assert!(!online.as_array().expect("users").is_empty());
        ka.checkblacklist().expect("checkblacklist");
        assert!(!ka.blacklisted);
        ka.ban();
        // Banned: the session is refused and this machine's address is now blacklisted.
        assert!(!ka.check_session().expect("check after ban"));
        ka.checkblacklist().expect("checkblacklist after ban");
        assert!(ka.blacklisted);
    })
    .await
    .expect("client thread");

    let banned: bool = c
        .query_one(
            "SELECT banned FROM app_users WHERE app_id = $1 AND username = $2",
            &[&t.app.id, &k[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert!(banned);
    let logs: i64 = c
        .query_one(
            "SELECT count(*) FROM client_logs WHERE app_id = $1 AND data LIKE 'started%'",
            &[&t.app.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logs, 1, "log is stored before the answer");
    v.shutdown().await;
}

fn verify_1_3(a: &Answer, public: &ed25519_compact::PublicKey) {
    let sig_hex = a
        .headers
        .get("x-signature-ed25519")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no signature on {}", a.text));
    assert_eq!(sig_hex.len(), 128);
    let ts = a
        .headers
        .get("x-signature-timestamp")
        .and_then(|v| v.to_str().ok())
        .expect("timestamp");
    let now = chrono::Utc::now().timestamp();
    let sent: i64 = ts.parse().expect("numeric timestamp");
    assert!((now - sent).abs() <= 5, "timestamp {sent} vs now {now}");
    let sig = ed25519_compact::Signature::from_slice(&hex::decode(sig_hex).unwrap()).unwrap();
    let mut msg = ts.as_bytes().to_vec();
    msg.extend_from_slice(a.text.as_bytes());
    public
        .verify(&msg, &sig)
        .unwrap_or_else(|e| panic!("bad signature ({e}) on {}", a.text));
}

#[tokio::test]
async fn v1_3_every_answer_is_signed_and_carries_code_and_ownerid() {
    let db = TestDb::new().await;
    let (mut c, t, owner) = setup(&db, true).await;
    let k = keys(&mut c, &t, 1).await;
    let v = validator(&db.url, |_| {}).await;
    let ka = client(v.addr(), &owner);
    let sid = ka.init("1.3").await;
    let public_hex: String = c
        .query_one("SELECT public_key FROM signing_keys WHERE is_primary", &[])
        .await
        .expect("a primary key exists")
        .get(0);
    let public = ed25519_compact::PublicKey::from_slice(&hex::decode(public_hex).unwrap()).unwrap();
    let calls: Vec<(Vec<(&str, &str)>, bool)> = vec![
        (vec![("type", "init")], true),
        (vec![("type", "check"), ("sessionid", &sid)], false),
        (
            vec![
                ("type", "license"),
                ("key", &k[0]),
                ("hwid", HWID),
                ("sessionid", &sid),
            ],
            true,
        ),
        (vec![("type", "check"), ("sessionid", &sid)], true),
        (vec![("type", "fetchStats"), ("sessionid", &sid)], true),
        (
            vec![("type", "var"), ("varid", "nope"), ("sessionid", &sid)],
            false,
        ),
        (vec![("type", "check"), ("sessionid", "unknown")], false),
        (vec![("type", "nosuchtype"), ("sessionid", &sid)], false),
        (vec![("type", "init"), ("ver", "9.9")], false),
    ];
    for (params, success) in calls {
        let a = ka.call("1.3", &params).await;
        verify_1_3(&a, &public);
        assert!(a.text.is_ascii());
        assert_eq!(a.success(), success, "{params:?} → {}", a.text);
        assert_eq!(a.json["ownerid"], owner.as_str(), "{}", a.text);
        let code = a.json["code"].as_i64().expect("numeric code");
        assert_eq!(code == 68, success, "{}", a.text);
    }
    // Pre-dispatch refusals are signed too (with the deployment's primary key).
    let a = Client {
        owner: "short".into(),
        ..client(v.addr(), &owner)
    }
    .call("1.3", &[("type", "init")])
    .await;
    verify_1_3(&a, &public);
    assert!(a
        .message()
        .starts_with("OwnerID should be 10 characters long"));

    // Rotation: this app stays on the key its clients were built with; a new app gets the new one.
    let rotated = keyward_shared::store::signing_keys::rotate(&mut c)
        .await
        .expect("rotate");
    let new_public =
        ed25519_compact::PublicKey::from_slice(&hex::decode(&rotated.public_key).unwrap()).unwrap();
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    apps::create(
        &mut w,
        &apps::AppPatch {
            name: Some("app2".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    let app2 = Client {
        name: "app2".into(),
        ..client(v.addr(), &owner)
    };
    let a = eventually(
        Duration::from_secs(2),
        "new app signed with the new key",
        || async {
            let a = app2.call("1.3", &[("type", "init")]).await;
            a.success().then_some(a)
        },
    )
    .await
    .0;
    verify_1_3(&a, &new_public);
    let a = ka.call("1.3", &[("type", "init")]).await;
    verify_1_3(&a, &public);
    v.shutdown().await;
}

#[tokio::test]
async fn sessions_span_validators_and_control_plane_bans_reach_both() {
    let db = TestDb::new().await;
    let (mut c, t, owner) = setup(&db, true).await;
    let k = keys(&mut c, &t, 1).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    let (_, seller_key) = api_keys::create_seller(&mut w, "test").await.unwrap();
    w.commit().await.unwrap();
    let cp = keyward_control_plane::start(keyward_control_plane::Config::new(&db.url))
        .await
        .expect("control-plane");
    let a = validator(&db.url, |_| {}).await;
    let b = validator(&db.url, |_| {}).await;
    let (on_a, on_b) = (client(a.addr(), &owner), client(b.addr(), &owner));

    let sid = on_a.init("1.2").await;
    // Unvalidated on B first, so B caches the session before the login on A.
    let r = on_b
        .call("1.2", &[("type", "check"), ("sessionid", &sid)])
        .await;
    assert_eq!(r.message(), "Session is not validated");
    let r = on_a
        .call(
            "1.2",
            &[
                ("type", "license"),
                ("key", &k[0]),
                ("hwid", HWID),
                ("sessionid", &sid),
            ],
        )
        .await;
    assert!(r.success(), "{}", r.text);
    for v in [&on_a, &on_b] {
        eventually(
            Duration::from_secs(1),
            "session validated on both",
            || async {
                let r = v
                    .call("1.2", &[("type", "check"), ("sessionid", &sid)])
                    .await;
                r.success().then_some(())
            },
        )
        .await;
    }

    let http = reqwest::Client::new();
    let banned = http
        .get(format!("http://{}/api/seller/", cp.addr()))
        .query(&[
            ("sellerkey", seller_key.as_str()),
            ("type", "banuser"),
            ("appname", "app"),
            ("user", k[0].as_str()),
            ("reason", "chargeback"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(banned.status(), 200);
    for v in [&on_a, &on_b] {
        let (_, took) = eventually(Duration::from_secs(1), "ban refused on both", || async {
            let r = v
                .call("1.2", &[("type", "check"), ("sessionid", &sid)])
                .await;
            (r.message() == "The user is banned").then_some(())
        })
        .await;
        println!("ban seen in {took:?}");
    }
    // Logout on B ends the session on A too.
    let r = on_b
        .call("1.2", &[("type", "logout"), ("sessionid", &sid)])
        .await;
    assert_eq!(r.message(), "Successfully logged out.");
    eventually(Duration::from_secs(1), "logout seen on A", || async {
        let r = on_a
            .call("1.2", &[("type", "check"), ("sessionid", &sid)])
            .await;
        (r.message() == NOT_FOUND_SESSION).then_some(())
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
    cp.shutdown().await;
}

#[tokio::test]
async fn every_failure_message_of_the_spec() {
    let db = TestDb::new().await;
    let (mut c, t, owner) = setup(&db, true).await;
    let k = keys(&mut c, &t, 6).await;
    let v = validator(&db.url, |_| {}).await;
    let ka = client(v.addr(), &owner);
    let sid = ka.init("1.2").await;
    let call = |params: Vec<(&'static str, String)>| {
        let ka = &ka;
        let sid = sid.clone();
        async move {
            let mut p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            p.push(("sessionid", &sid));
            ka.call("1.2", &p).await
        }
    };
    let msg = |a: Answer| {
        assert!(!a.success(), "expected a failure: {}", a.text);
        assert_eq!(a.status, 200);
        a.message().to_string()
    };
    let s = |v: &str| v.to_string();

    assert_eq!(
        msg(call(vec![("type", s("check"))]).await),
        "Session is not validated"
    );
    assert_eq!(
        msg(ka
            .call("1.2", &[("type", "check"), ("sessionid", "nope")])
            .await),
        NOT_FOUND_SESSION
    );
    // Register alice with key 0, then the failures of login.
    let reg = call(vec![
        ("type", s("register")),
        ("username", s("alice")),
        ("pass", s("right")),
        ("key", k[0].clone()),
        ("hwid", s(HWID)),
    ])
    .await;
    assert!(reg.success(), "{}", reg.text);
    let login = |pass: &str, hwid: &str| {
        vec![
            ("type", s("login")),
            ("username", s("alice")),
            ("pass", s(pass)),
            ("hwid", s(hwid)),
        ]
    };
    assert_eq!(
        msg(call(login("wrong", HWID)).await),
        "Password does not match."
    );
    assert_eq!(
        msg(call(login("right", OTHER_HWID)).await),
        "HWID doesn't match. Ask for a HWID reset"
    );
    assert_eq!(
        msg(call(login("right", "short")).await),
        "HWID must be 20 or more characters, change this in app settings."
    );
    assert_eq!(
        msg(call(vec![
            ("type", s("login")),
            ("username", s("alice")),
            ("pass", s("right"))
        ])
        .await),
        "Force HWID is enabled, disable in app settings if you want to use blank HWIDs"
    );
    assert_eq!(
        msg(call(vec![
            ("type", s("login")),
            ("username", s("bob")),
            ("pass", s("x")),
            ("hwid", s(HWID))
        ])
        .await),
        "Invalid username"
    );
    // Used key, unknown key, taken username.
    let register = |user: &str, key: &str| {
        vec![
            ("type", s("register")),
            ("username", s(user)),
            ("pass", s("pw")),
            ("key", s(key)),
            ("hwid", s(HWID)),
        ]
    };
    assert_eq!(
        msg(call(register("carol", &k[0])).await),
        "License key has already been used"
    );
    assert_eq!(
        msg(call(register("carol", "NOPE-NOPE")).await),
        "Invalid license key"
    );
    assert_eq!(
        msg(call(register("alice", &k[1])).await),
        "Username already taken, choose a different one"
    );
    // Banned key.
    let id: uuid::Uuid = c
        .query_one("SELECT id FROM licenses WHERE key = $1", &[&k[1]])
        .await
        .unwrap()
        .get(0);
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    licenses::ban(&mut w, id, Some("fraud")).await.unwrap();
    w.commit().await.unwrap();
    eventually(Duration::from_secs(2), "banned key refused", || async {
        let a = call(register("carol", &k[1])).await;
        (a.message() == "Your license is banned").then_some(())
    })
    .await;
    // Expired subscription.
    let alice = users::find_by_name(&c, t.app.id, "alice")
        .await
        .unwrap()
        .unwrap();
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    users::subtract(&mut w, t.app.id, alice.id, 3_162_240_000, None)
        .await
        .unwrap();
    w.commit().await.unwrap();
    eventually(
        Duration::from_secs(2),
        "expired subscription refused",
        || async {
            let a = call(login("right", HWID)).await;
            (a.message() == "No active subscription(s) found").then_some(())
        },
    )
    .await;
    // Blacklisted HWID, then blacklisted address (all clients here come from 127.0.0.1).
    for (kind, value, hwid) in [
        (BlacklistKind::Hwid, OTHER_HWID, OTHER_HWID),
        (BlacklistKind::Ip, "127.0.0.1", HWID),
    ] {
        let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
        let entry = blacklist::NewEntry {
            kind,
            value: value.into(),
            note: None,
        };
        blacklist::add(&mut w, t.app.id, &entry).await.unwrap();
        w.commit().await.unwrap();
        eventually(Duration::from_secs(2), "blacklist refused", || async {
            let mut p = register("dave", &k[2]);
            p[4].1 = s(hwid);
            let a = call(p).await;
            (a.message() == "You've been blacklisted from our application").then_some(())
        })
        .await;
    }
    // Invalid version (with the download link, slashes unescaped) and a paused app.
    patch_app(
        &mut c,
        &t,
        apps::AppPatch {
            download_url: Some("https://example.com/dl".into()),
            messages: Some([("keynotfound".to_string(), "No such key, friend".to_string())].into()),
            ..Default::default()
        },
    )
    .await;
    let bad_ver = eventually(Duration::from_secs(2), "download link served", || async {
        let a = ka.call("1.2", &[("type", "init"), ("ver", "0.9")]).await;
        (a.json["download"] == "https://example.com/dl").then_some(a)
    })
    .await
    .0;
    assert_eq!(bad_ver.message(), "invalidver");
    assert!(bad_ver.text.contains("https://example.com/dl"));
    assert_eq!(
        msg(call(vec![
            ("type", s("upgrade")),
            ("username", s("alice")),
            ("key", s("NOPE"))
        ])
        .await),
        "No such key, friend"
    );
    patch_app(
        &mut c,
        &t,
        apps::AppPatch {
            paused: Some(true),
            ..Default::default()
        },
    )
    .await;
    eventually(Duration::from_secs(2), "paused app refused", || async {
        let a = ka.call("1.2", &[("type", "init")]).await;
        (a.message()
            == "Application is currently paused, please wait for the developer to say otherwise.")
            .then_some(())
    })
    .await;
    v.shutdown().await;
}

#[tokio::test]
async fn hostile_input_gets_the_protocol_shape_never_a_5xx() {
    let db = TestDb::new().await;
    let (_c, _t, owner) = setup(&db, true).await;
    let v = validator(&db.url, |_| {}).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/1.2/", v.addr());
    let big = "A".repeat(5000);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "application/x-www-form-urlencoded",
            b"type=init".to_vec(),
            "No OwnerID specified",
        ),
        (
            "application/x-www-form-urlencoded",
            b"type=init&ownerid=abc".to_vec(),
            "No app name specified",
        ),
        (
            "application/x-www-form-urlencoded",
            b"type=init&ownerid=abc&name=app".to_vec(),
            "OwnerID should be 10 characters long",
        ),
        (
            "application/json",
            br#"{"type":["init"]}"#.to_vec(),
            "must be a string",
        ),
        ("application/json", b"{not json".to_vec(), "not valid JSON"),
        ("application/json", b"[1,2]".to_vec(), "JSON object"),
        (
            "multipart/form-data; boundary=zz",
            b"--zz\r\nbroken".to_vec(),
            "multipart",
        ),
        (
            "application/x-www-form-urlencoded",
            [
                format!("type=init&ownerid={owner}&name=").into_bytes(),
                vec![0xff, 0xfe],
            ]
            .concat(),
            "KeyAuth_Invalid",
        ),
        (
            "application/x-www-form-urlencoded",
            format!("type=init&ownerid={owner}&name={big}").into_bytes(),
            "KeyAuth_Invalid",
        ),
        (
            "application/x-www-form-urlencoded",
            format!("type=zzz&ownerid={owner}&name=app").into_bytes(),
            "type paramater was not found",
        ),
        (
            "application/x-www-form-urlencoded",
            format!("type=login&ownerid={owner}&name=app&sessionid={big}").into_bytes(),
            "Session not found",
        ),
        (
            "application/x-www-form-urlencoded",
            vec![b'a'; 1024 * 1024],
            "exceeds",
        ),
    ];
    for (ct, body, expect) in cases {
        let r = http
            .post(&url)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .expect("answered");
        let status = r.status().as_u16();
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        let text = r.text().await.unwrap();
        assert!(status < 500, "{status}: {text}");
        assert_eq!(ctype, "application/json; charset=utf-8");
        assert!(text.contains(expect), "expected {expect:?} in {text}");
        if text != "KeyAuth_Invalid" {
            let json: Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(json["success"], false);
            assert!(json["message"].is_string());
        }
    }
    // Oversized fields inside a valid session.
    let ka = client(v.addr(), &owner);
    let sid = ka.init("1.2").await;
    for (kind, field) in [
        ("license", "key"),
        ("register", "username"),
        ("register", "key"),
    ] {
        let a = ka
            .call(
                "1.2",
                &[
                    ("type", kind),
                    (field, &big),
                    ("hwid", HWID),
                    ("sessionid", &sid),
                ],
            )
            .await;
        assert!(!a.success() && a.status == 200, "{}", a.text);
        assert!(a.message().contains("shorter than 70"), "{}", a.text);
    }
    v.shutdown().await;
}

#[tokio::test]
async fn per_app_and_per_address_limits_answer_429_and_bcrypt_users_are_upgraded() {
    let db = TestDb::new().await;
    let (mut c, t, owner) = setup(&db, false).await;
    // An imported KeyAuth user: bcrypt `$2y$`.
    let legacy = bcrypt::hash_with_result("old secret", 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    users::create(
        &mut w,
        t.app.id,
        &users::NewUser {
            username: "imported",
            password_hash: &legacy,
            email: None,
            hwid: None,
            ip: None,
            subscription: None,
            level: None,
            days: Some(30),
            key: None,
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    let v = validator(&db.url, |cfg| {
        cfg.app_rate_limit_per_sec = 1;
        cfg.app_rate_limit_burst = 5;
    })
    .await;
    let ka = client(v.addr(), &owner);
    let sid = ka.init("1.2").await;
    let login = ka
        .call(
            "1.2",
            &[
                ("type", "login"),
                ("username", "imported"),
                ("pass", "old secret"),
                ("hwid", HWID),
                ("sessionid", &sid),
            ],
        )
        .await;
    assert!(login.success(), "{}", login.text);
    let stored: String = c
        .query_one(
            "SELECT password_hash FROM app_users WHERE username = 'imported'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("$argon2id$"), "upgraded: {stored}");

    let mut limited = None;
    for _ in 0..20 {
        let a = ka
            .call("1.2", &[("type", "check"), ("sessionid", &sid)])
            .await;
        if a.status == 429 {
            limited = Some(a);
            break;
        }
    }
    let a = limited.expect("the app's limit answers 429");
    assert!(a.headers.contains_key("retry-after"));
    assert_eq!(a.json["success"], false);
    assert!(a.message().contains("too many requests"));
    // Per client address too (the validator-wide limit, shared with /v1/validate).
    let per_ip = validator(&db.url, |cfg| {
        cfg.rate_limit_per_sec = 1;
        cfg.rate_limit_burst = 2;
    })
    .await;
    let other = client(per_ip.addr(), &owner);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let a = other.call("1.2", &[("type", "init")]).await;
        if a.status == 429 {
            assert_eq!(a.json["success"], false, "{}", a.text);
            assert!(a.headers.contains_key("retry-after"));
        }
        statuses.push(a.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    per_ip.shutdown().await;
    v.shutdown().await;
}

/// A one-shot HTTP server on loopback answering `body`; returns what it received.
async fn webhook_target(body: &'static str) -> (SocketAddr, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(resp.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    });
    (addr, task)
}

#[tokio::test]
async fn webhooks_are_called_server_side_and_private_targets_refused_by_default() {
    let db = TestDb::new().await;
    let (mut c, t, owner) = setup(&db, false).await;
    let (target, received) = webhook_target("pong").await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    let hook = keyward_shared::store::webhooks::create(
        &mut w,
        t.app.id,
        &keyward_shared::store::webhooks::NewWebhook {
            name: "notify".into(),
            url: format!("http://{target}/hook?"),
            user_agent: Some("keyward-test".into()),
            body: None,
            auth_header: Some("Bearer vendor-secret".into()),
            authed: Some(false),
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    let open = validator(&db.url, |cfg| cfg.webhook_allow_private = true).await;
    let guarded = validator(&db.url, |_| {}).await;

    let ka = client(guarded.addr(), &owner);
    let sid = ka.init("1.2").await;
    let id = hook.id.to_string();
    let a = ka
        .call(
            "1.2",
            &[
                ("type", "webhook"),
                ("webid", &id),
                ("params", "a=1"),
                ("sessionid", &sid),
            ],
        )
        .await;
    assert!(!a.success(), "{}", a.text);
    assert!(
        a.message().starts_with("Webhook request failed"),
        "{}",
        a.text
    );

    let ka = client(open.addr(), &owner);
    let sid = ka.init("1.2").await;
    let a = ka
        .call(
            "1.2",
            &[
                ("type", "webhook"),
                ("webid", "notify"),
                ("params", "a=1"),
                ("sessionid", &sid),
            ],
        )
        .await;
    assert!(a.success(), "{}", a.text);
    assert_eq!(a.json["response"], "pong");
    let request = received.await.unwrap();
    assert!(request.starts_with("GET /hook?a=1 "), "{request}");
    assert!(request
        .to_ascii_lowercase()
        .contains("authorization: bearer vendor-secret"));
    let a = ka
        .call(
            "1.2",
            &[
                ("type", "webhook"),
                ("webid", "missing"),
                ("sessionid", &sid),
            ],
        )
        .await;
    assert_eq!(a.message(), "Webhook Not Found.");
    open.shutdown().await;
    guarded.shutdown().await;
}

#[tokio::test]
async fn sessions_are_persisted_before_the_answer_and_bodies_are_php_encoded() {
    let db = TestDb::new().await;
    let (mut c, t, owner) = setup(&db, false).await;
    let key = keys(&mut c, &t, 1).await.remove(0);
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    variables::upsert_global(&mut w, t.app.id, "path", "a/b é😀")
        .await
        .unwrap();
    w.commit().await.unwrap();
    let v = validator(&db.url, |_| {}).await;
    let ka = client(v.addr(), &owner);
    let a = ka
        .call(
            "1.2",
            &[("type", "init"), ("ver", "1.0"), ("enckey", "abc")],
        )
        .await;
    let sid = a.json["sessionid"].as_str().unwrap();
    assert_eq!(sid.len(), 16);
    assert!(sid.chars().all(|ch| ch.is_ascii_alphanumeric()));
    let n: i64 = c
        .query_one("SELECT count(*) FROM sessions WHERE id = $1", &[&sid])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the session row exists as soon as init answers");
    assert_eq!(a.json["newSession"], true);
    assert!(a.json["appinfo"]["numKeys"].is_string());
    let keys: Vec<&String> = a.json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "success",
            "message",
            "sessionid",
            "appinfo",
            "newSession",
            "nonce"
        ]
    );
    assert_eq!(a.headers["access-control-allow-origin"], "*");
    // Non-ASCII and slashes are escaped the PHP way, and the signature covers those bytes.
    let a = ka
        .call(
            "1.2",
            &[
                ("type", "license"),
                ("key", &key),
                ("hwid", HWID),
                ("sessionid", sid),
            ],
        )
        .await;
    assert!(a.success(), "{}", a.text);
    let a = ka
        .call(
            "1.2",
            &[("type", "var"), ("varid", "path"), ("sessionid", sid)],
        )
        .await;
    assert!(
        a.text.contains(r#""message":"a\/b \u00e9\ud83d\ude00""#),
        "{}",
        a.text
    );
    assert_eq!(a.message(), "a/b é😀");
    let expected = keyward_shared::signing::hmac_hex(
        format!("abc-{}", t.app.secret).as_bytes(),
        a.text.as_bytes(),
    );
    assert_eq!(a.headers["signature"], expected.as_str());

    // Logging in again on the same session from the same machine commits nothing.
    let last_login = || async {
        let at: Option<chrono::DateTime<chrono::Utc>> = c
            .query_one(
                "SELECT last_login_at FROM app_users WHERE username = $1",
                &[&key],
            )
            .await
            .unwrap()
            .get(0);
        at
    };
    let before = last_login().await;
    assert!(before.is_some());
    let a = ka
        .call(
            "1.2",
            &[
                ("type", "license"),
                ("key", &key),
                ("hwid", HWID),
                ("sessionid", sid),
            ],
        )
        .await;
    assert!(a.success(), "{}", a.text);
    assert_eq!(last_login().await, before);
    // From another machine it is a new login (and is recorded).
    let a = ka
        .call(
            "1.2",
            &[
                ("type", "license"),
                ("key", &key),
                ("hwid", OTHER_HWID),
                ("sessionid", sid),
            ],
        )
        .await;
    assert!(a.success(), "{}", a.text);
    assert!(last_login().await > before);
    v.shutdown().await;
}

#[tokio::test]
async fn hash_check_session_expiry_transports_and_username_change() {
    let db = TestDb::new().await;
    let (mut c, t, owner) = setup(&db, false).await;
    let key = keys(&mut c, &t, 1).await.remove(0);
    patch_app(
        &mut c,
        &t,
        apps::AppPatch {
            hash_check: Some(true),
            session_secs: Some(1),
            ..Default::default()
        },
    )
    .await;
    let v = validator(&db.url, |_| {}).await;
    let ka = client(v.addr(), &owner);
    let hash_fail = "This program hash does not match, make sure you're using latest version";
    assert_eq!(
        ka.call("1.2", &[("type", "init")]).await.message(),
        hash_fail
    );
    // The first hash is learned; others are refused once every validator has seen it.
    assert!(ka
        .call("1.2", &[("type", "init"), ("hash", "abc")])
        .await
        .success());
    eventually(Duration::from_secs(2), "other hash refused", || async {
        let a = ka.call("1.2", &[("type", "init"), ("hash", "abd")]).await;
        (a.message() == hash_fail).then_some(())
    })
    .await;
    let a = ka.call("1.2", &[("type", "init"), ("hash", "ABC")]).await;
    assert!(a.success(), "{}", a.text);

    // Every transport: GET query, POST with an empty body and a query, JSON, multipart.
    let base = format!("http://{}/api/1.1/", v.addr());
    let query = [
        ("type", "init"),
        ("name", "app"),
        ("ownerid", owner.as_str()),
        ("hash", "abc"),
    ];
    let http = reqwest::Client::new();
    let get = answer(http.get(&base).query(&query).send().await.unwrap()).await;
    let empty_post = answer(http.post(&base).query(&query).send().await.unwrap()).await;
    let json_body =
        serde_json::json!({"type": "init", "name": "app", "ownerid": owner, "hash": "abc"});
    let json = answer(http.post(&base).json(&json_body).send().await.unwrap()).await;
    let mut multipart = String::new();
    for (k, v) in query {
        multipart.push_str(&format!(
            "--b0undary\r\ncontent-disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    multipart.push_str("--b0undary--\r\n");
    let mp = answer(
        http.post(&base)
            .header("content-type", "multipart/form-data; boundary=b0undary")
            .body(multipart)
            .send()
            .await
            .unwrap(),
    )
    .await;
    for a in [get, empty_post, json, mp] {
        assert!(a.success(), "{}", a.text);
        assert!(a.headers.get("signature").is_none(), "1.1 is unsigned");
    }

    // Sessions end on schedule (1 s here), on every path, and are purged from the table.
    let sid = ka.init_with(&[("hash", "abc")]).await;
    let a = ka
        .call("1.2", &[("type", "check"), ("sessionid", &sid)])
        .await;
    assert_eq!(a.message(), "Session is not validated");
    eventually(Duration::from_secs(5), "session expired", || async {
        let a = ka
            .call("1.2", &[("type", "check"), ("sessionid", &sid)])
            .await;
        (a.message() == NOT_FOUND_SESSION).then_some(())
    })
    .await;
    let purged = keyward_shared::store::sessions::purge_expired(&c, 1000)
        .await
        .unwrap();
    assert!(purged >= 1);

    // checkblacklist under its three names; then changeUsername ends the session.
    patch_app(
        &mut c,
        &t,
        apps::AppPatch {
            session_secs: Some(3600),
            ..Default::default()
        },
    )
    .await;
    let sid = eventually(Duration::from_secs(2), "long sessions", || async {
        let sid = ka.init_with(&[("hash", "abc")]).await;
        let row: chrono::DateTime<chrono::Utc> = c
            .query_one("SELECT expires_at FROM sessions WHERE id = $1", &[&sid])
            .await
            .unwrap()
            .get(0);
        (row > chrono::Utc::now() + chrono::Duration::seconds(600)).then_some(sid)
    })
    .await
    .0;
    for name in ["checkblacklist", "checkblack", "checkBlack"] {
        let a = ka
            .call(
                "1.2",
                &[("type", name), ("hwid", HWID), ("sessionid", &sid)],
            )
            .await;
        assert_eq!(a.message(), "Client is not blacklisted", "{name}");
    }
    let a = ka
        .call(
            "1.2",
            &[
                ("type", "register"),
                ("username", "first"),
                ("pass", "pw"),
                ("key", &key),
                ("sessionid", &sid),
            ],
        )
        .await;
    assert!(a.success(), "{}", a.text);
    let a = ka
        .call(
            "1.2",
            &[
                ("type", "changeUsername"),
                ("newUsername", "second"),
                ("sessionid", &sid),
            ],
        )
        .await;
    assert_eq!(
        a.message(),
        "Successfully changed username, user logged out."
    );
    let a = ka
        .call("1.2", &[("type", "check"), ("sessionid", &sid)])
        .await;
    assert_eq!(a.message(), NOT_FOUND_SESSION);
    let sid = ka.init_with(&[("hash", "abc")]).await;
    for (name, expect) in [("second", "Logged in!"), ("first", "Invalid username")] {
        let a = ka
            .call(
                "1.2",
                &[
                    ("type", "login"),
                    ("username", name),
                    ("pass", "pw"),
                    ("hwid", HWID),
                    ("sessionid", &sid),
                ],
            )
            .await;
        assert_eq!(a.message(), expect, "{}", a.text);
    }
    v.shutdown().await;
}

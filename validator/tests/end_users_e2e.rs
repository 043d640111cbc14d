//! End users managed through the control-plane's native `/v1` API, observed by a KeyAuth client
//! on a validator: a ban refuses the user's logins and ends its sessions, a HWID reset lets
//! another machine in, shortened and extended subscriptions gate the login, a killed session is
//! unknown, global variables and client logs flow both ways.
//!
//! It lives with the validator's tests because only they can start both services.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use keyward_shared::testing::{eventually, TestDb};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";
/// How long a change may take to reach the validator (it is milliseconds in practice).
const PROPAGATION: Duration = Duration::from_secs(5);
const NOT_FOUND_SESSION: &str =
    "Session not found. If you get this frequently, ask the developer to use the latest example code";

struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = reply(req.send().await.expect("control-plane request")).await;
        assert!(
            (200..300).contains(&r.status),
            "{method} {path} → {} {}",
            r.status,
            r.body
        );
        r.body
    }
}

/// A KeyAuth 1.2 client of one app.
struct Client {
    http: reqwest::Client,
    addr: SocketAddr,
    name: String,
    owner: String,
}

impl Client {
    async fn call(&self, params: &[(&str, &str)]) -> Value {
        let mut form: Vec<(&str, &str)> = vec![("name", &self.name), ("ownerid", &self.owner)];
        form.extend_from_slice(params);
        let resp = self
            .http
            .post(format!("http://{}/api/1.2/", self.addr))
            .form(&form)
            .send()
            .await
            .expect("client request");
        let text = resp.text().await.expect("body");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }

    async fn init(&self) -> String {
        let a = self.call(&[("type", "init")]).await;
        assert_eq!(a["success"], true, "init: {a}");
        a["sessionid"].as_str().expect("sessionid").to_string()
    }

    /// A fresh session's login: (success, message).
    async fn login(&self, user: &str, hwid: &str) -> (bool, String) {
        let s = self.init().await;
        let a = self
            .call(&[
                ("type", "login"),
                ("sessionid", &s),
                ("username", user),
                ("pass", "red pill"),
                ("hwid", hwid),
            ])
            .await;
        (
            a["success"] == true,
            a["message"].as_str().unwrap_or("").to_string(),
        )
    }

    async fn message(&self, session: &str, params: &[(&str, &str)]) -> String {
        let mut p = vec![("sessionid", session)];
        p.extend_from_slice(params);
        let a = self.call(&p).await;
        a["message"].as_str().unwrap_or("").to_string()
    }
}

/// Polls the client until `check` holds for its answer.
async fn until<F, Fut>(what: &str, mut ask: F, check: impl Fn(&(bool, String)) -> bool)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, String)>,
{
    let (_, took) = eventually(PROPAGATION, what, || {
        let answer = ask();
        let check = &check;
        async move {
            let a = answer.await;
            check(&a).then_some(())
        }
    })
    .await;
    println!("{what}: after {took:?}");
}

#[tokio::test]
async fn end_users_managed_over_v1_are_enforced_by_the_validator() {
    let db = TestDb::new().await;
    keyward_control_plane::create_admin(&db.url, "alice", PASSWORD)
        .await
        .expect("admin");
    let cp = keyward_control_plane::start(keyward_control_plane::Config::new(db.url.clone()))
        .await
        .expect("control-plane");
    let v = validator(&db.url, |_| {}).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", cp.addr());
    let login = reply(
        http.post(format!("{base}/v1/auth/login"))
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let admin = Admin {
        http: http.clone(),
        base,
        token: login.body["token"].as_str().unwrap().to_string(),
    };
    use reqwest::Method;

    let app = admin
        .call(
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "Tool", "hwid_lock": true})),
        )
        .await;
    let app_id = app["id"].as_str().unwrap().to_string();
    let user = admin
        .call(
            Method::POST,
            &format!("/v1/apps/{app_id}/users"),
            Some(json!({"username": "neo", "password": "red pill", "days": 3})),
        )
        .await;
    let user_path = format!("/v1/users/{}", user["id"].as_str().unwrap());
    let owner: String = db
        .client()
        .await
        .query_one(
            "SELECT public_id FROM accounts WHERE id = (SELECT account_id FROM apps WHERE id = $1)",
            &[&app_id.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    let client = Client {
        http: http.clone(),
        addr: v.addr(),
        name: "Tool".into(),
        owner,
    };

    // The user made over /v1 logs in; the session shows in /v1 with its user.
    let session = client.init().await;
    let a = client
        .call(&[
            ("type", "login"),
            ("sessionid", &session),
            ("username", "neo"),
            ("pass", "red pill"),
            ("hwid", "HWID-AAAAAAAAAAAAAAAAAAAA"),
        ])
        .await;
    assert_eq!(a["success"], true, "{a}");
    assert_eq!(
        client.message(&session, &[("type", "check")]).await,
        "Session is validated."
    );
    let online = admin
        .call(
            Method::GET,
            &format!("/v1/apps/{app_id}/sessions?validated=true"),
            None,
        )
        .await;
    assert_eq!(online["items"][0]["id"], json!(session), "{online}");
    assert_eq!(online["items"][0]["username"], "neo");
    assert_eq!(
        admin.call(Method::GET, &user_path, None).await["hwid"],
        "HWID-AAAAAAAAAAAAAAAAAAAA"
    );

    // A ban: logins refused and the logged-in session refused too.
    admin
        .call(
            Method::POST,
            &format!("{user_path}/ban"),
            Some(json!({"reason": "glitch"})),
        )
        .await;
    until(
        "a banned user's login is refused",
        || client.login("neo", "HWID-AAAAAAAAAAAAAAAAAAAA"),
        |(ok, m)| !ok && m.contains("The user is banned"),
    )
    .await;
    until(
        "a banned user's session is refused",
        || async {
            let m = client.message(&session, &[("type", "check")]).await;
            (m == "Session is validated.", m)
        },
        |(ok, m)| !ok && m.contains("The user is banned"),
    )
    .await;
    admin
        .call(Method::POST, &format!("{user_path}/unban"), None)
        .await;
    until(
        "an unbanned user logs in",
        || client.login("neo", "HWID-AAAAAAAAAAAAAAAAAAAA"),
        |(ok, _)| *ok,
    )
    .await;

    // Another machine is refused until the HWID is reset over /v1.
    let (ok, m) = client.login("neo", "HWID-BBBBBBBBBBBBBBBBBBBB").await;
    assert!(!ok && m.contains("HWID doesn't match"), "{m}");
    admin
        .call(Method::POST, &format!("{user_path}/reset-hwid"), None)
        .await;
    until(
        "a reset HWID lets another machine in",
        || client.login("neo", "HWID-BBBBBBBBBBBBBBBBBBBB"),
        |(ok, _)| *ok,
    )
    .await;

    // Subscriptions taken away, then given back.
    admin
        .call(
            Method::POST,
            &format!("{user_path}/subtract"),
            Some(json!({"days": 4})),
        )
        .await;
    until(
        "no active subscription",
        || client.login("neo", "HWID-BBBBBBBBBBBBBBBBBBBB"),
        |(ok, m)| !ok && m.contains("No active subscription"),
    )
    .await;
    admin
        .call(
            Method::POST,
            &format!("{user_path}/extend"),
            Some(json!({"days": 30})),
        )
        .await;
    until(
        "an extended subscription logs in",
        || client.login("neo", "HWID-BBBBBBBBBBBBBBBBBBBB"),
        |(ok, _)| *ok,
    )
    .await;

    // A global variable set over /v1 is served; a client's log line is read over /v1.
    let session = client.init().await;
    client
        .call(&[
            ("type", "login"),
            ("sessionid", &session),
            ("username", "neo"),
            ("pass", "red pill"),
            ("hwid", "HWID-BBBBBBBBBBBBBBBBBBBB"),
        ])
        .await;
    admin
        .call(
            Method::POST,
            &format!("/v1/apps/{app_id}/variables"),
            Some(json!({"key": "motd", "value": "wake up"})),
        )
        .await;
    until(
        "the variable is served",
        || async {
            let m = client
                .message(&session, &[("type", "var"), ("varid", "motd")])
                .await;
            (true, m)
        },
        |(_, m)| m == "wake up",
    )
    .await;
    client
        .call(&[
            ("type", "log"),
            ("sessionid", &session),
            ("message", "follow the white rabbit"),
        ])
        .await;
    let logs = admin
        .call(Method::GET, &format!("/v1/apps/{app_id}/logs"), None)
        .await;
    assert_eq!(
        logs["items"][0]["data"], "follow the white rabbit",
        "{logs}"
    );
    assert_eq!(logs["items"][0]["username"], "neo");

    // A session killed over /v1 is unknown to the validator.
    let r = admin
        .http
        .delete(format!("{}/v1/sessions/{session}", admin.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    until(
        "a killed session is not found",
        || async {
            let m = client.message(&session, &[("type", "check")]).await;
            (false, m)
        },
        |(_, m)| m == NOT_FOUND_SESSION,
    )
    .await;

    // Deleted over /v1: the user is unknown.
    admin
        .http
        .delete(format!("{}{user_path}", admin.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    until(
        "a deleted user is unknown",
        || client.login("neo", "HWID-BBBBBBBBBBBBBBBBBBBB"),
        |(ok, m)| !ok && m == "Invalid username",
    )
    .await;
}

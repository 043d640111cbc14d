//! Harness of the control-plane's integration tests: a control-plane in-process on port 0 over a
//! fresh database, and a small JSON client.
#![allow(dead_code)]

pub mod receiver;

use keyward_control_plane::{Config, Running};
use keyward_shared::testing::TestDb;
use reqwest::Method;
use serde_json::{json, Value};

pub const PASSWORD: &str = "correct horse battery";

pub struct Cp {
    pub db: TestDb,
    pub running: Running,
    pub http: reqwest::Client,
    pub base: String,
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl Cp {
    pub async fn start() -> Cp {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Cp {
        let db = TestDb::new().await;
        let mut cfg = Config::new(db.url.clone());
        cfg.login_rate_per_minute = 1000;
        tweak(&mut cfg);
        let running = keyward_control_plane::start(cfg).await.expect("start");
        let base = format!("http://{}", running.addr());
        Cp {
            db,
            running,
            http: reqwest::Client::new(),
            base,
        }
    }

    /// Creates an admin and returns a JWT for it.
    pub async fn admin(&self, username: &str) -> String {
        keyward_control_plane::create_admin(&self.db.url, username, PASSWORD)
            .await
            .expect("create admin");
        let r = self
            .call(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["token"].as_str().expect("token").to_string()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_resp(req.send().await.expect("request")).await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        into_resp(req.send().await.expect("request")).await
    }

    pub async fn ok(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let r = self.call(method.clone(), path, Some(token), body).await;
        assert!(
            (200..300).contains(&r.status),
            "{method} {path} → {} {}",
            r.status,
            r.body
        );
        r.body
    }

    /// Every attempt (method, path, body) answers 404 to `token`.
    pub async fn all_not_found(&self, token: &str, attempts: Vec<(Method, String, Option<Value>)>) {
        for (method, path, body) in attempts {
            let r = self.call(method.clone(), &path, Some(token), body).await;
            assert_eq!(r.status, 404, "{method} {path} → {}", r.body);
        }
    }

    pub async fn app(&self, token: &str, name: &str) -> String {
        let b = self
            .ok(Method::POST, "/v1/apps", token, Some(json!({"name": name})))
            .await;
        b["id"].as_str().expect("app id").to_string()
    }

    pub async fn licenses(&self, token: &str, app: &str, spec: Value) -> Vec<Value> {
        let b = self
            .ok(
                Method::POST,
                &format!("/v1/apps/{app}/licenses"),
                token,
                Some(spec),
            )
            .await;
        b["licenses"].as_array().expect("licenses").clone()
    }
}

pub async fn into_resp(resp: reqwest::Response) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Resp {
        status,
        body,
        headers,
    }
}

/// The invalidations committed from now on (each notification's items), for as long as the
/// returned connection lives.
pub async fn listening(
    cp: &Cp,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<Vec<keyward_shared::invalidation::Invalidation>>,
) {
    use futures_util::StreamExt;
    use keyward_shared::invalidation;
    let cfg: tokio_postgres::Config = cp.db.url.parse().expect("database url");
    let (client, mut conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .expect("listener connection");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut s = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = s.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                if let Some(p) = invalidation::decode(n.payload()) {
                    let _ = tx.send(p.i);
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", invalidation::CHANNEL))
        .await
        .expect("LISTEN");
    (client, rx)
}

//! With PostgreSQL unreachable the API answers 503 JSON (never a 500 or a misleading 401/404),
//! `/readyz` reports it, `/healthz` stays up, and everything recovers with the database.

mod common;

use std::time::Duration;

use common::*;
use keyward_control_plane::Config;
use keyward_shared::testing::{eventually, ChaosProxy, TestDb};
use serde_json::json;

#[tokio::test]
async fn database_outage_is_503_and_recovers() {
    let db = TestDb::new().await;
    let proxy = ChaosProxy::start(db.socket_addr()).await;
    let running = keyward_control_plane::start(Config::new(db.url_via(&proxy)))
        .await
        .expect("start");
    keyward_control_plane::create_admin(&db.url, "alice", PASSWORD)
        .await
        .expect("admin");
    let base = format!("http://{}", running.addr());
    let http = reqwest::Client::new();
    let get = |path: &'static str, token: Option<String>| {
        let mut req = http.get(format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { into_resp(req.send().await.expect("request")).await }
    };
    let login = into_resp(
        http.post(format!("{base}/v1/auth/login"))
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await
            .expect("login"),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.body["token"].as_str().unwrap().to_string();
    assert_eq!(get("/readyz", None).await.status, 200);

    proxy.break_networking();
    let deadline = Duration::from_secs(20);
    eventually(deadline, "readyz reports the outage", || async {
        let r = get("/readyz", None).await;
        (r.status == 503 && r.code() == "UNAVAILABLE").then_some(())
    })
    .await;
    assert_eq!(get("/healthz", None).await.status, 200);
    let r = get("/v1/apps", Some(token.clone())).await;
    assert_eq!((r.status, r.code()), (503, "UNAVAILABLE"), "{}", r.body);
    assert_eq!(r.body["success"], false);

    proxy.restore_networking();
    eventually(deadline, "the API recovers", || async {
        let r = get("/v1/apps", Some(token.clone())).await;
        (r.status == 200).then_some(())
    })
    .await;
    assert_eq!(get("/readyz", None).await.status, 200);
    running.shutdown().await;
}

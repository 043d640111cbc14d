//! TLS termination on the control-plane: the admin API over HTTPS on HTTP/1.1 and h2 (login
//! sees the peer's address through TLS, so its per-address limit still works), HTTPS only, and a
//! renewed certificate loaded on SIGHUP while the process keeps serving.

mod common;

use common::*;
use keyward_shared::test_tls::{assert_sighup_reloads, TempDir, TestCert, Validity};
use keyward_shared::testing::TestDb;
use reqwest::Method;
use serde_json::json;

const CONTROL_PLANE: &str = env!("CARGO_BIN_EXE_control-plane");

fn trusting(cert: &TestCert, http1_only: bool) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).expect("PEM");
    let b = reqwest::Client::builder().tls_certs_only([root]);
    let b = if http1_only { b.http1_only() } else { b };
    b.build().expect("client")
}

#[tokio::test]
async fn the_admin_api_over_tls_on_http1_and_h2() {
    let dir = TempDir::new();
    let cert = TestCert::new(Validity::Current);
    let (cert_path, key_path) = cert.write_to(dir.path());
    let mut cp = Cp::start_with(|cfg| {
        cfg.tls.tls_cert = Some(cert_path);
        cfg.tls.tls_key = Some(key_path);
        cfg.login_rate_per_minute = 4;
    })
    .await;
    let port = cp.running.addr().port();
    cp.base = format!("https://127.0.0.1:{port}");

    for (http1_only, version) in [
        (true, reqwest::Version::HTTP_11),
        (false, reqwest::Version::HTTP_2),
    ] {
        cp.http = trusting(&cert, http1_only);
        let probe = cp
            .http
            .get(format!("{}/healthz", cp.base))
            .send()
            .await
            .expect("healthz over TLS");
        assert_eq!(probe.version(), version);
        assert_eq!(probe.status(), 200);
        let admin = format!("admin-{}", if http1_only { "h1" } else { "h2" });
        let token = cp.admin(&admin).await;
        let app = cp.app(&token, "Tool").await;
        let licenses = cp
            .licenses(&token, &app, json!({"count": 2, "duration_days": 30}))
            .await;
        assert_eq!(licenses.len(), 2);
        let listed = cp
            .ok(
                Method::GET,
                &format!("/v1/licenses?app_id={app}"),
                &token,
                None,
            )
            .await;
        assert!(listed
            .to_string()
            .contains(licenses[0]["key"].as_str().expect("key")));
    }

    // The login limiter keys on the peer's address, which it still sees behind TLS: two logins
    // spent of four, two more wrong ones, then 429.
    let wrong = json!({"username": "admin-h1", "password": "wrong password"});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = cp
            .call(Method::POST, "/v1/auth/login", None, Some(wrong.clone()))
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [401, 401, 429], "the login limit behind TLS");

    // HTTPS only: a plain-HTTP request on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|r| r.status() == 400),
        "{plain:?}"
    );
    cp.running.shutdown().await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_the_process_keeps_serving() {
    let db = TestDb::new().await;
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("KEYWARD_CP_LISTEN", "127.0.0.1:0"),
    ];
    assert_sighup_reloads(CONTROL_PLANE, &["serve"], &env).await;
}

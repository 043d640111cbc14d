//! Keep-alive connections survive every answer of the control-plane: after a 401, 404, 429 or
//! 400 the same connection carries the next request, and a 413 says `Connection: close`.

mod common;

use common::*;
use keyward_shared::keepalive::{answer_then_reuse, RawResponse, Reuse};

fn assert_reusable(what: &str, status: u16, got: (RawResponse, Reuse)) {
    let (first, reuse) = got;
    assert_eq!(first.status, status, "{what}: {}", first.text());
    match reuse {
        Reuse::SaidClose => {}
        Reuse::Reused(next) => assert_eq!(next.status, 200, "{what}: the next request: {}", next.text()),
        Reuse::Broken(why) => panic!("{what}: answered {status} without `Connection: close`, then the connection broke: {why}"),
    }
}

#[tokio::test]
async fn every_early_answer_keeps_the_connection_or_says_close() {
    let cp = Cp::start_with(|cfg| {
        cfg.login_rate_per_minute = 1;
        cfg.max_body_bytes = 2048;
    })
    .await;
    let a = cp.running.addr();
    let json = "content-type: application/json";
    let post = |path: &str| format!("POST {path} HTTP/1.1\r\n{json}");
    let app = br#"{"name":"Tool"}"#;
    assert_reusable(
        "native route without credentials",
        401,
        answer_then_reuse(a, &post("/v1/apps"), app, "/healthz").await,
    );
    assert_reusable(
        "KeyAux route without credentials",
        401,
        answer_then_reuse(a, &post("/api/dashboard/apps"), app, "/healthz").await,
    );
    assert_reusable(
        "unknown route",
        404,
        answer_then_reuse(a, &post("/v1/nowhere"), app, "/healthz").await,
    );
    assert_reusable(
        "malformed JSON",
        400,
        answer_then_reuse(a, &post("/v1/auth/login"), b"{\"username\":", "/healthz").await,
    );
    let login = br#"{"username":"nobody","password":"wrong password"}"#;
    assert_reusable(
        "first login attempt",
        401,
        answer_then_reuse(a, &post("/v1/auth/login"), login, "/healthz").await,
    );
    let got = answer_then_reuse(a, &post("/v1/auth/login"), login, "/healthz").await;
    assert!(got.0.header("retry-after").is_some());
    assert_reusable("login over the rate limit", 429, got);
    let (big, reuse) = answer_then_reuse(a, &post("/v1/apps"), &vec![b' '; 4096], "/healthz").await;
    assert_eq!(big.status, 413, "{}", big.text());
    assert!(
        matches!(reuse, Reuse::SaidClose),
        "413 must say close: {reuse:?}"
    );
}

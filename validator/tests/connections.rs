//! Keep-alive connections survive every answer: after a 429, 413, 415, 404, 405 or 400 the same
//! connection carries the next request, or the answer said `Connection: close`. A client pool
//! reusing a connection that was closed silently reports "connection reset" instead of the 429
//! the protocol promised.

mod common;

use common::*;
use keyward_shared::keepalive::{answer_then_reuse, Reuse};
use keyward_shared::testing::TestDb;

fn assert_reusable(what: &str, status: u16, got: (keyward_shared::keepalive::RawResponse, Reuse)) {
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
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 0).await;
    let v = validator(&db.url, |cfg| {
        // One request per address, then 429 for a long while.
        cfg.rate_limit_per_sec = 1;
        cfg.rate_limit_burst = 1;
        cfg.max_body_bytes = 1024;
    })
    .await;
    let a = v.addr();
    let valid = format!(r#"{{"app":"{}","key":"{}","hwid":"m"}}"#, t.app.id, l.key);
    let json = "content-type: application/json";
    let post = |path: &str, ct: &str| format!("POST {path} HTTP/1.1\r\n{ct}");

    // The request that uses up the address's allowance.
    let (first, _) =
        answer_then_reuse(a, &post("/v1/validate", json), valid.as_bytes(), "/healthz").await;
    assert_eq!(first.status, 200, "{}", first.text());

    // Answers given from the head alone, before the body arrived.
    let got = answer_then_reuse(a, &post("/v1/validate", json), valid.as_bytes(), "/healthz").await;
    assert!(got.0.header("retry-after").is_some());
    assert_reusable("validate over the rate limit", 429, got);
    let form = "content-type: application/x-www-form-urlencoded";
    let keyauth = b"type=init&name=app&ownerid=0123456789&ver=1.0";
    assert_reusable(
        "KeyAuth call over the rate limit",
        429,
        answer_then_reuse(a, &post("/api/1.2/", form), keyauth, "/healthz").await,
    );
    v.shutdown().await;

    // The rest with no rate limit in the way.
    let v = validator(&db.url, |cfg| cfg.max_body_bytes = 1024).await;
    let a = v.addr();
    assert_reusable(
        "unsupported content type",
        415,
        answer_then_reuse(
            a,
            &post("/v1/validate", "content-type: text/plain"),
            valid.as_bytes(),
            "/healthz",
        )
        .await,
    );
    assert_reusable(
        "unknown route",
        404,
        answer_then_reuse(a, &post("/nowhere", json), valid.as_bytes(), "/healthz").await,
    );
    assert_reusable(
        "wrong method",
        405,
        answer_then_reuse(
            a,
            &format!("PUT /v1/validate HTTP/1.1\r\n{json}"),
            valid.as_bytes(),
            "/healthz",
        )
        .await,
    );
    // Too large to drain: the answer must say close.
    let (big, reuse) = answer_then_reuse(
        a,
        &post("/v1/validate", json),
        &vec![b' '; 4096],
        "/healthz",
    )
    .await;
    assert_eq!(big.status, 413, "{}", big.text());
    assert!(
        matches!(reuse, Reuse::SaidClose),
        "413 must say close: {reuse:?}"
    );
    assert_reusable(
        "malformed JSON",
        400,
        answer_then_reuse(a, &post("/v1/validate", json), b"{\"app\":", "/healthz").await,
    );
    assert_reusable(
        "validate, valid",
        200,
        answer_then_reuse(a, &post("/v1/validate", json), valid.as_bytes(), "/healthz").await,
    );
    v.shutdown().await;
}

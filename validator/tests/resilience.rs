//! What must hold when things go wrong: the listener's connection is killed, PostgreSQL becomes
//! unreachable, many validators race for the last HWID slot.

mod common;

use std::time::Duration;

use common::*;
use keyward_shared::store::licenses;
use keyward_shared::testing::{eventually, ChaosProxy, TestDb};
use keyward_shared::write::WriteTx;

async fn listener_pid(c: &tokio_postgres::Client) -> Option<i32> {
    c.query_opt(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        &[&keyward_validator::LISTENER_APPLICATION_NAME],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
}

const LISTENER_CONNECTED: &str = "keyward_validator_listener_connected";

async fn ready(http: &reqwest::Client, addr: std::net::SocketAddr) -> bool {
    http.get(format!("http://{addr}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

#[tokio::test]
async fn killed_listener_reconnects_flushes_and_sees_changes_made_in_the_gap() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 0).await;
    // A long first back-off so the change below surely lands while no listener is connected.
    let v = validator(&db.url, |cfg| {
        cfg.listener_backoff_ms = 1_500;
        cfg.epoch_check_ms = 60_000;
    })
    .await;
    let http = reqwest::Client::new();
    let a = v.addr();
    warm(&http, a, t.app.id, &l.key, Some("m")).await;

    let old_pid = listener_pid(&c).await.expect("listener session");
    let killed: bool = c
        .query_one("SELECT pg_terminate_backend($1)", &[&old_pid])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    eventually(Duration::from_secs(5), "listener disconnected", || {
        let http = http.clone();
        async move { (metric(&http, a, LISTENER_CONNECTED).await == 0).then_some(()) }
    })
    .await;
    // Nobody listens now: this ban's notification is lost to the validator.
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    licenses::ban(&mut w, l.id, None).await.unwrap();
    w.commit().await.unwrap();
    // Within the grace the cached (stale) answer is still served...
    assert_eq!(code(&http, a, t.app.id, &l.key, Some("m")).await, "VALID");

    // ...until the listener is back: it flushed, so the ban is seen.
    let (_, took) = eventually(
        Duration::from_secs(10),
        "listener back and ban seen",
        || {
            let (http, app, key) = (http.clone(), t.app.id, l.key.clone());
            async move {
                (ready(&http, a).await && code(&http, a, app, &key, Some("m")).await == "BANNED")
                    .then_some(())
            }
        },
    )
    .await;
    println!("reconnected and flushed {took:?} after the ban");
    let new_pid = listener_pid(&c).await.expect("a new listener session");
    assert_ne!(new_pid, old_pid);
    v.shutdown().await;
}

#[tokio::test]
async fn lost_notification_is_caught_by_the_epoch_check() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 0).await;
    let v = validator(&db.url, |cfg| cfg.epoch_check_ms = 100).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    assert_eq!(code(&http, a, t.app.id, &l.key, Some("m")).await, "VALID");
    // A write that bypasses NOTIFY (as if the notification were lost) but bumps the generation.
    c.batch_execute(&format!(
        "UPDATE licenses SET status = 'banned' WHERE id = '{}';
         UPDATE cache_epoch SET generation = generation + 1;",
        l.id
    ))
    .await
    .unwrap();
    eventually(Duration::from_secs(5), "epoch check flush", || {
        let (http, app, key) = (http.clone(), t.app.id, l.key.clone());
        async move { (code(&http, a, app, &key, Some("m")).await == "BANNED").then_some(()) }
    })
    .await;
    v.shutdown().await;
}

async fn readyz(http: &reqwest::Client, addr: std::net::SocketAddr) -> (u16, serde_json::Value) {
    let r = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .expect("readyz answers");
    let status = r.status().as_u16();
    (status, r.json().await.expect("readyz JSON"))
}

/// Readiness means "can serve": a PostgreSQL outage keeps every validator in rotation for the
/// grace (cached keys answer, misses 503), takes it out afterwards, and it comes back only once
/// its caches were flushed, so the first answer after "ready" already sees changes made during
/// the outage.
#[tokio::test]
async fn outage_keeps_readiness_for_the_grace_and_ready_again_only_after_the_flush() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let cached = one_license(&mut c, &t, 0).await;
    let uncached = one_license(&mut c, &t, 0).await;
    let proxy = ChaosProxy::start(db.socket_addr()).await;
    let v = validator(&db.url_via(&proxy), |cfg| {
        cfg.outage_grace_secs = 3;
        cfg.listener_backoff_ms = 50;
    })
    .await;
    let http = reqwest::Client::new();
    let a = v.addr();
    assert_eq!(readyz(&http, a).await.1["state"], "live");
    warm(&http, a, t.app.id, &cached.key, Some("m")).await;

    proxy.break_networking();
    eventually(Duration::from_secs(5), "outage noticed", || {
        let http = http.clone();
        async move { (metric(&http, a, LISTENER_CONNECTED).await == 0).then_some(()) }
    })
    .await;
    // Within the grace: still ready, the cached key answers, the uncached one is
    // "unavailable", never "invalid".
    let (status, body) = readyz(&http, a).await;
    assert_eq!(
        (status, &body["state"]),
        (200, &serde_json::json!("outage")),
        "{body}"
    );
    assert_eq!(
        code(&http, a, t.app.id, &cached.key, Some("m")).await,
        "VALID"
    );
    let r = validate(&http, a, t.app.id, &uncached.key, Some("m")).await;
    assert_eq!((r.status, r.code()), (503, "UNAVAILABLE"), "{:?}", r.body);
    assert_eq!(r.body["success"], false);
    // Banned meanwhile, directly in PostgreSQL: no notification reaches this validator.
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    licenses::ban(&mut w, cached.id, None).await.unwrap();
    w.commit().await.unwrap();

    // After the grace: not ready, and even cached keys are refused with 503.
    let (_, took) = eventually(Duration::from_secs(10), "grace runs out", || {
        let http = http.clone();
        async move { (readyz(&http, a).await.0 == 503).then_some(()) }
    })
    .await;
    println!("not ready {took:?} into the outage (grace 3 s)");
    assert_eq!(readyz(&http, a).await.1["code"], "NOT_READY");
    assert_eq!(
        code(&http, a, t.app.id, &cached.key, Some("m")).await,
        "503:UNAVAILABLE"
    );

    // PostgreSQL back: ready again only after the flush, so the ban is the first answer.
    proxy.restore_networking();
    eventually(Duration::from_secs(15), "ready again", || {
        let http = http.clone();
        async move { (readyz(&http, a).await.0 == 200).then_some(()) }
    })
    .await;
    assert_eq!(
        code(&http, a, t.app.id, &cached.key, Some("m")).await,
        "BANNED"
    );
    assert_eq!(
        code(&http, a, t.app.id, &uncached.key, Some("m")).await,
        "VALID"
    );
    v.shutdown().await;
}

/// On shutdown (SIGTERM) a validator reports not ready at once but keeps serving for the
/// shutdown delay, so load balancers stop sending before its listener closes.
#[tokio::test]
async fn shutdown_drains_not_ready_while_still_serving() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 0).await;
    let v = validator(&db.url, |cfg| cfg.shutdown_delay_secs = 3).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    assert_eq!(code(&http, a, t.app.id, &l.key, Some("m")).await, "VALID");
    let stopping = tokio::spawn(v.shutdown());
    eventually(Duration::from_secs(2), "draining reported", || {
        let http = http.clone();
        async move { (readyz(&http, a).await.0 == 503).then_some(()) }
    })
    .await;
    assert!(readyz(&http, a).await.1["message"]
        .as_str()
        .is_some_and(|m| m.contains("shutting down")));
    // Still answering while the load balancer catches up.
    assert_eq!(code(&http, a, t.app.id, &l.key, Some("m")).await, "VALID");
    stopping.await.expect("shutdown");
    assert!(
        http.get(format!("http://{a}/healthz"))
            .send()
            .await
            .is_err(),
        "stopped listening after the delay"
    );
}

#[tokio::test]
async fn concurrent_first_uses_on_two_validators_never_exceed_the_hwid_limit() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 2).await;
    let v1 = validator(&db.url, |_| {}).await;
    let v2 = validator(&db.url, |_| {}).await;
    let http = reqwest::Client::new();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let addr = if i % 2 == 0 { v1.addr() } else { v2.addr() };
            let (http, app, key) = (http.clone(), t.app.id, l.key.clone());
            tokio::spawn(async move { code(&http, addr, app, &key, Some(&format!("hw{i}"))).await })
        })
        .collect();
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    let valid = codes.iter().filter(|c| *c == "VALID").count();
    let refused = codes.iter().filter(|c| *c == "TOO_MANY_HWIDS").count();
    assert_eq!((valid, refused), (2, 48), "{codes:?}");
    let bound = machine_count(&c, l.id).await;
    assert_eq!(bound, 2);
    v1.shutdown().await;
    v2.shutdown().await;
}

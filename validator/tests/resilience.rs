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
    eventually(
        Duration::from_secs(5),
        "validator reports not ready",
        || {
            let http = http.clone();
            async move { (!ready(&http, a).await).then_some(()) }
        },
    )
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

#[tokio::test]
async fn outage_serves_cached_keys_for_the_grace_and_503_for_the_rest() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let cached = one_license(&mut c, &t, 0).await;
    let uncached = one_license(&mut c, &t, 0).await;
    let proxy = ChaosProxy::start(db.socket_addr()).await;
    let v = validator(&db.url_via(&proxy), |cfg| {
        cfg.outage_grace_secs = 2;
        cfg.listener_backoff_ms = 50;
    })
    .await;
    let http = reqwest::Client::new();
    let a = v.addr();
    warm(&http, a, t.app.id, &cached.key, Some("m")).await;

    proxy.break_networking();
    eventually(Duration::from_secs(5), "outage noticed", || {
        let http = http.clone();
        async move { (!ready(&http, a).await).then_some(()) }
    })
    .await;
    // Within the grace: the cached key still answers; the uncached one is "unavailable", never
    // "invalid".
    assert_eq!(
        code(&http, a, t.app.id, &cached.key, Some("m")).await,
        "VALID"
    );
    let r = validate(&http, a, t.app.id, &uncached.key, Some("m")).await;
    assert_eq!((r.status, r.code()), (503, "UNAVAILABLE"), "{:?}", r.body);
    assert_eq!(r.body["success"], false);
    // After the grace even cached keys are refused with 503.
    let (_, took) =
        eventually(Duration::from_secs(10), "grace runs out", || {
            let (http, app, key) = (http.clone(), t.app.id, cached.key.clone());
            async move {
                (code(&http, a, app, &key, Some("m")).await == "503:UNAVAILABLE").then_some(())
            }
        })
        .await;
    println!("cached answers stopped {took:?} into the outage (grace 2 s)");

    proxy.restore_networking();
    eventually(Duration::from_secs(15), "recovery", || {
        let (http, app, key) = (http.clone(), t.app.id, uncached.key.clone());
        async move { (code(&http, a, app, &key, Some("m")).await == "VALID").then_some(()) }
    })
    .await;
    v.shutdown().await;
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
    let bound: i64 = c
        .query_one(
            "SELECT count(*) FROM license_hwids WHERE license_id = $1",
            &[&l.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bound, 2);
    v1.shutdown().await;
    v2.shutdown().await;
}

//! Read replicas (`--replica-url`) against the real streaming replica that `./deploy/test.sh`
//! starts: misses read it when it is fresh, never when it has not replayed an invalidation the
//! validator applied, and a replica that is down only sends misses to the primary.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use keyward_shared::store::licenses;
use keyward_shared::testing::{eventually, TestDb};
use keyward_shared::write::WriteTx;

const REPLICA_READS: &str = r#"keyward_validator_miss_reads_total{source="replica"}"#;
const PRIMARY_READS: &str = r#"keyward_validator_miss_reads_total{source="primary"}"#;
const LICENSE_INVALIDATIONS: &str = r#"keyward_validator_invalidations_total{kind="license"}"#;

/// Misses (of keys that do not exist) until one is read from the replica.
async fn until_a_miss_reads_the_replica(http: &reqwest::Client, addr: SocketAddr, app: uuid::Uuid) {
    let before = metric(http, addr, REPLICA_READS).await;
    let mut i = 0;
    eventually(
        Duration::from_secs(30),
        "a miss served by the replica",
        || {
            i += 1;
            let key = format!("NO-SUCH-KEY-{i}");
            async move {
                assert_eq!(code(http, addr, app, &key, None).await, "NOT_FOUND");
                (metric(http, addr, REPLICA_READS).await > before).then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn misses_are_read_from_a_fresh_replica() {
    let db = TestDb::new().await;
    let replica = db.replica_url().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let v = validator(&db.url, |cfg| cfg.replica_url = vec![replica.clone()]).await;
    let http = reqwest::Client::new();
    until_a_miss_reads_the_replica(&http, v.addr(), t.app.id).await;

    // A license made on the primary is found (its creation's invalidation drops the negative
    // entry, and the next miss reads a replica that has replayed it, or the primary).
    let made = one_license(&mut c, &t, 1).await;
    eventually(Duration::from_secs(10), "the new license VALID", || async {
        (code(&http, v.addr(), t.app.id, &made.key, None).await == "VALID").then_some(())
    })
    .await;
    v.shutdown().await;
}

#[tokio::test]
async fn a_ban_is_never_answered_valid_while_the_replica_lags() {
    let db = TestDb::new().await;
    let replica = db.replica_url().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let license = one_license(&mut c, &t, 1).await;
    let v = validator(&db.url, |cfg| cfg.replica_url = vec![replica.clone()]).await;
    let http = reqwest::Client::new();
    let addr = v.addr();
    until_a_miss_reads_the_replica(&http, addr, t.app.id).await;
    assert_eq!(
        code(&http, addr, t.app.id, &license.key, None).await,
        "VALID"
    );

    // The replica stops replaying: it still says the license is active.
    let paused = keyward_shared::testing::ReplayPaused::new(&replica).await;
    let invalidations = metric(&http, addr, LICENSE_INVALIDATIONS).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    licenses::ban(&mut w, license.id, Some("chargeback"))
        .await
        .unwrap();
    w.commit().await.unwrap();
    let stale = keyward_shared::testing::connect_to(&replica)
        .await
        .query_one(
            "SELECT status::text FROM licenses WHERE id = $1",
            &[&license.id],
        )
        .await
        .unwrap()
        .get::<_, String>(0);
    assert_ne!(
        stale, "banned",
        "the replica must not have replayed the ban yet"
    );

    // Until the invalidation arrives the cached VALID may still be served (as without
    // replicas); from then on every answer, each a miss, is BANNED.
    let primary_before = metric(&http, addr, PRIMARY_READS).await;
    eventually(
        Duration::from_secs(10),
        "the ban's invalidation",
        || async {
            (metric(&http, addr, LICENSE_INVALIDATIONS).await > invalidations).then_some(())
        },
    )
    .await;
    for _ in 0..20 {
        assert_eq!(
            code(&http, addr, t.app.id, &license.key, None).await,
            "BANNED"
        );
    }
    assert!(
        metric(&http, addr, PRIMARY_READS).await > primary_before,
        "the miss after the ban was read from the primary"
    );
    // Other keys' misses also avoid the lagging replica.
    let replica_reads = metric(&http, addr, REPLICA_READS).await;
    assert_eq!(
        code(&http, addr, t.app.id, "NO-SUCH-KEY-paused", None).await,
        "NOT_FOUND"
    );
    assert_eq!(metric(&http, addr, REPLICA_READS).await, replica_reads);

    // Replay resumes: misses go back to the replica, which now says BANNED too.
    drop(paused);
    until_a_miss_reads_the_replica(&http, addr, t.app.id).await;
    assert_eq!(
        code(&http, addr, t.app.id, &license.key, None).await,
        "BANNED"
    );
    v.shutdown().await;
}

#[tokio::test]
async fn a_replica_that_is_down_sends_misses_to_the_primary() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let license = one_license(&mut c, &t, 1).await;
    // Nothing listens on port 1.
    let down = keyward_shared::testing::with_database("postgres://keyward@127.0.0.1:1/x", &db.name);
    let v = validator(&db.url, |cfg| cfg.replica_url = vec![down]).await;
    let http = reqwest::Client::new();
    let addr = v.addr();
    assert_eq!(
        code(&http, addr, t.app.id, &license.key, None).await,
        "VALID"
    );
    let invalidations = metric(&http, addr, LICENSE_INVALIDATIONS).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    licenses::ban(&mut w, license.id, None).await.unwrap();
    w.commit().await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the ban's invalidation",
        || async {
            (metric(&http, addr, LICENSE_INVALIDATIONS).await > invalidations).then_some(())
        },
    )
    .await;
    assert_eq!(
        code(&http, addr, t.app.id, &license.key, None).await,
        "BANNED"
    );
    assert_eq!(metric(&http, addr, REPLICA_READS).await, 0);
    assert!(metric(&http, addr, PRIMARY_READS).await >= 2);
    assert!(
        metric(
            &http,
            addr,
            r#"keyward_validator_replica_fallbacks_total{reason="down"}"#
        )
        .await
            > 0
    );
    let ready = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        ready.as_u16(),
        200,
        "a replica down does not make it unready"
    );
    v.shutdown().await;
}

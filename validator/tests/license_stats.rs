//! CyberLicense's usage statistics from real validations over HTTP against a real PostgreSQL:
//! `POST /api/license/validate` answers are counted as success / blocked (an IP or HWID limit) /
//! invalid (any other refusal), with the distinct IPs and HWIDs that asked, written behind by
//! the validator's flush: nothing per validation, the newest 100 requests per license.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use keyward_shared::store::licenses;
use keyward_shared::testing::{eventually, TestDb};
use keyward_shared::write::WriteTx;
use serde_json::json;
use uuid::Uuid;

const VALIDATE: &str = "/api/license/validate";
const BACKLOG: &str = "keyward_validator_license_stats_backlog";

/// The validator's CyberLicense rate limit off (the test sends far more than 200 from one IP).
fn unlimited(cfg: &mut keyward_validator::Config) {
    cfg.cyberlicense_rate_limit = 0;
    cfg.pool_size = 6;
}

async fn cl_validate(
    http: &reqwest::Client,
    addr: SocketAddr,
    key: &str,
    ip: &str,
    hwid: &str,
) -> (u16, String) {
    let body = json!({"key": key, "ip": ip, "hwid": hwid});
    let r = post_raw(http, addr, VALIDATE, body.to_string(), &[]).await;
    let error = r.body["error"].as_str().unwrap_or("").to_owned();
    (r.status, error)
}

/// A license's counts over all days: success, blocked, invalid.
async fn counts(c: &tokio_postgres::Client, license: Uuid) -> [i64; 3] {
    let r = c
        .query_one(
            "SELECT coalesce(sum(success), 0)::bigint, coalesce(sum(blocked), 0)::bigint,
                    coalesce(sum(invalid), 0)::bigint
               FROM license_daily_usage WHERE license_id = $1",
            &[&license],
        )
        .await
        .unwrap();
    [r.get(0), r.get(1), r.get(2)]
}

async fn seen(c: &tokio_postgres::Client, license: Uuid, kind: &str) -> BTreeSet<String> {
    c.query(
        "SELECT value FROM license_seen WHERE license_id = $1 AND kind = $2",
        &[&license, &kind],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn request_rows(c: &tokio_postgres::Client, license: Uuid) -> i64 {
    c.query_one(
        "SELECT count(*) FROM license_requests WHERE license_id = $1",
        &[&license],
    )
    .await
    .unwrap()
    .get(0)
}

async fn all_rows(c: &tokio_postgres::Client) -> i64 {
    c.query_one(
        "SELECT (SELECT count(*) FROM license_daily_usage) + (SELECT count(*) FROM license_seen)
              + (SELECT count(*) FROM license_requests)",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn a_thousand_validations_are_counted_by_outcome_and_written_behind_in_one_flush() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let limited = generate(
        &mut c,
        &t,
        licenses::GenerateSpec {
            hwid_limit: Some(2),
            ip_limit: Some(8),
            ..Default::default()
        },
    )
    .await
    .remove(0);
    let suspended = generate(&mut c, &t, Default::default()).await.remove(0);
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    licenses::ban(&mut w, suspended.id, Some("chargeback"))
        .await
        .unwrap();
    w.commit().await.unwrap();

    // No periodic flush during the test: the only write is the one at shutdown.
    let v = validator(&db.url, |cfg| {
        unlimited(cfg);
        cfg.usage_flush_ms = 3_600_000;
    })
    .await;
    let http = reqwest::Client::new();
    let a = v.addr();

    // Both HWIDs and all eight IPs bound first, so the limits hold exactly these.
    for i in 0..8 {
        let ip = format!("10.0.0.{i}");
        let hwid = format!("hw-{}", i % 2);
        assert_eq!(
            cl_validate(&http, a, &limited.key, &ip, &hwid).await,
            (200, String::new())
        );
    }
    let started = Instant::now();
    // 1 000 more from 10 clients at once: i % 10 picks the case.
    //  0–5: success (a bound HWID, one of 8 bound IPs);
    //  6–7: blocked by the HWID limit (three unbound HWIDs);
    //  8:   blocked by the IP limit (an unbound IP);
    //  9:   invalid: the suspended license.
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..10 {
        let (http, limited, suspended) = (http.clone(), limited.key.clone(), suspended.key.clone());
        tasks.spawn(async move {
            let mut wrong = Vec::new();
            for n in 0..100 {
                let i = n * 10 + worker;
                let (key, ip, hwid, want) = match i % 10 {
                    0..=5 => (
                        &limited,
                        format!("10.0.0.{}", i % 8),
                        format!("hw-{}", i % 2),
                        (200, ""),
                    ),
                    6 | 7 => (
                        &limited,
                        "10.0.0.3".to_owned(),
                        format!("hw-new-{}", i % 3),
                        (403, "HWID limit exceeded"),
                    ),
                    8 => (
                        &limited,
                        "192.0.2.77".to_owned(),
                        "hw-0".to_owned(),
                        (403, "IP limit exceeded"),
                    ),
                    _ => (
                        &suspended,
                        format!("198.51.100.{}", n % 4),
                        "hw-s".to_owned(),
                        (403, "License suspended"),
                    ),
                };
                let got = cl_validate(&http, a, key, &ip, &hwid).await;
                if (got.0, got.1.as_str()) != want {
                    wrong.push((i, got));
                }
            }
            wrong
        });
    }
    while let Some(wrong) = tasks.join_next().await {
        assert_eq!(wrong.unwrap(), vec![], "answers as expected");
    }
    println!("1 000 validations in {:?}", started.elapsed());
    // Unknown keys are no license's statistics.
    assert_eq!(
        cl_validate(&http, a, "NO-SUCH-KEY", "10.9.9.9", "hw").await,
        (400, "License not found".to_owned())
    );

    // Buffered, not written: no row per validation.
    assert!(metric(&http, a, BACKLOG).await > 0, "entries buffered");
    assert_eq!(all_rows(&c).await, 0, "nothing written before a flush");

    v.shutdown().await;
    // The shutdown's flush wrote them before it returned; polled all the same.
    eventually(Duration::from_secs(10), "statistics written", || async {
        (counts(&c, suspended.id).await[2] == 100).then_some(())
    })
    .await;
    // 8 + 600 successes, 200 + 100 blocked, 100 invalid.
    assert_eq!(counts(&c, limited.id).await, [608, 300, 0]);
    assert_eq!(counts(&c, suspended.id).await, [0, 0, 100]);
    let ips: BTreeSet<String> = (0..8)
        .map(|i| format!("10.0.0.{i}"))
        .chain(["192.0.2.77".to_owned()])
        .collect();
    assert_eq!(seen(&c, limited.id, "ip").await, ips);
    let hwids: BTreeSet<String> = ["hw-0", "hw-1", "hw-new-0", "hw-new-1", "hw-new-2"]
        .map(str::to_owned)
        .into();
    assert_eq!(seen(&c, limited.id, "hwid").await, hwids);
    assert_eq!(seen(&c, suspended.id, "ip").await.len(), 4);
    assert_eq!(
        seen(&c, suspended.id, "hwid").await,
        BTreeSet::from(["hw-s".to_owned()])
    );
    // One flush: the newest 100 requests of the 908, all 100 of the other.
    assert_eq!(request_rows(&c, limited.id).await, 100);
    assert_eq!(request_rows(&c, suspended.id).await, 100);
    let daily_rows: i64 = c
        .query_one("SELECT count(*) FROM license_daily_usage", &[])
        .await
        .unwrap()
        .get(0);
    assert!(daily_rows <= 4, "a row per license and day: {daily_rows}");
}

#[tokio::test]
async fn the_periodic_flush_writes_the_statistics_within_its_interval() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, false).await;
    let license = generate(&mut c, &t, Default::default()).await.remove(0);
    let v = validator(&db.url, unlimited).await;
    let http = reqwest::Client::new();
    let a = v.addr();
    for i in 0..30 {
        let ip = format!("10.1.0.{}", i % 3);
        assert_eq!(cl_validate(&http, a, &license.key, &ip, "hw").await.0, 200);
    }
    // A flush's statements are spread over half its interval: the requests come last.
    let (_, waited) = eventually(
        Duration::from_secs(10),
        "the flush wrote 30 successes and their requests",
        || async {
            let done = counts(&c, license.id).await == [30, 0, 0]
                && request_rows(&c, license.id).await == 30;
            done.then_some(())
        },
    )
    .await;
    println!("statistics in the database {waited:?} after the last validation");
    assert_eq!(seen(&c, license.id, "ip").await.len(), 3);
    eventually(Duration::from_secs(10), "backlog written", || async {
        (metric(&http, a, BACKLOG).await == 0).then_some(())
    })
    .await;
    v.shutdown().await;
}

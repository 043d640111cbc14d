//! Validations per app, minute and outcome (the Overview's chart), from real validations over
//! HTTP against a real PostgreSQL: native `/v1/validate`, CyberLicense, Keygen and the KeyAuth
//! client API count their verdicts in memory, and the validator writes them behind into
//! `validation_buckets`, periodically and at shutdown.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use keyward_shared::store::licenses;
use keyward_shared::testing::{eventually, TestDb};
use keyward_shared::write::WriteTx;
use serde_json::json;
use uuid::Uuid;

const HWID: &str = "0123456789abcdef0123456789abcdef";
const OTHER_HWID: &str = "fedcba9876543210fedcba9876543210";

/// The app's buckets summed over minutes, by outcome.
async fn by_outcome(c: &tokio_postgres::Client, app: Uuid) -> BTreeMap<String, i64> {
    c.query(
        "SELECT outcome, sum(n)::bigint FROM validation_buckets WHERE app_id = $1
          GROUP BY outcome",
        &[&app],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn expected(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|&(o, n)| (o.to_string(), n)).collect()
}

async fn keyauth(
    http: &reqwest::Client,
    addr: SocketAddr,
    owner: &str,
    params: &[(&str, &str)],
) -> serde_json::Value {
    let mut form: Vec<(&str, &str)> = vec![("name", "app"), ("ownerid", owner)];
    form.extend_from_slice(params);
    let text = http
        .post(format!("http://{addr}/api/1.1/"))
        .form(&form)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

#[tokio::test]
async fn verdicts_of_every_facade_are_counted_per_outcome_and_written_behind() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let owner = owner_of(&c, &t).await;
    let mut made = generate(
        &mut c,
        &t,
        licenses::GenerateSpec {
            count: Some(6),
            hwid_limit: Some(1),
            ..Default::default()
        },
    )
    .await
    .into_iter();
    let mut next = || made.next().expect("six licenses");
    let (bound, banned, expired, cyber, redeemed, keygen) =
        (next(), next(), next(), next(), next(), next());
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    licenses::ban(&mut w, banned.id, Some("chargeback"))
        .await
        .unwrap();
    w.commit().await.unwrap();
    // Set up before any validator reads it (the API refuses an expiry in the past).
    c.execute(
        "UPDATE licenses SET expires_at = now() - interval '1 day' WHERE id = $1",
        &[&expired.id],
    )
    .await
    .unwrap();

    let v = validator(&db.url, |cfg| cfg.cyberlicense_rate_limit = 0).await;
    let (http, a, app) = (reqwest::Client::new(), v.addr(), t.app.id);
    for _ in 0..3 {
        assert_eq!(code(&http, a, app, &bound.key, Some(HWID)).await, "VALID");
    }
    assert_eq!(
        code(&http, a, app, &bound.key, Some(OTHER_HWID)).await,
        "HWID_MISMATCH"
    );
    assert_eq!(code(&http, a, app, "NO-SUCH-KEY", None).await, "NOT_FOUND");
    assert_eq!(code(&http, a, app, "NOR-THIS-ONE", None).await, "NOT_FOUND");
    assert_eq!(code(&http, a, app, &banned.key, None).await, "BANNED");
    assert_eq!(code(&http, a, app, &expired.key, None).await, "EXPIRED");
    // An app nobody knows is not counted anywhere.
    assert_eq!(
        code(&http, a, Uuid::new_v4(), &bound.key, None).await,
        "404:APP_NOT_FOUND"
    );

    let body = json!({"key": cyber.key, "ip": "10.0.0.1", "hwid": "cl-hw"});
    let r = post_raw(&http, a, "/api/license/validate", body.to_string(), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A key nobody has: no app is known, nothing is counted.
    let body = json!({"key": "NOBODYS-KEY", "ip": "10.0.0.1", "hwid": "cl-hw"});
    let r = post_raw(&http, a, "/api/license/validate", body.to_string(), &[]).await;
    assert_eq!(r.body["error"], "License not found", "{}", r.body);

    // Keygen counts its own codes (a banned license is SUSPENDED to it).
    for (key, code) in [(&keygen.key, "VALID"), (&banned.key, "SUSPENDED")] {
        let body = json!({"meta": {"key": key}});
        let path = "/keygen/v1/licenses/actions/validate-key";
        let r = post_raw(&http, a, path, body.to_string(), &[]).await;
        assert_eq!(r.body["meta"]["code"], code, "{}", r.body);
    }

    let init = keyauth(&http, a, &owner, &[("type", "init"), ("ver", "1.0")]).await;
    let sid = init["sessionid"].as_str().expect("sessionid").to_string();
    let ok = keyauth(
        &http,
        a,
        &owner,
        &[
            ("type", "license"),
            ("key", &redeemed.key),
            ("hwid", HWID),
            ("sessionid", &sid),
        ],
    )
    .await;
    assert_eq!(ok["success"], true, "{ok}");
    let unknown = keyauth(
        &http,
        a,
        &owner,
        &[
            ("type", "license"),
            ("key", "NOT-A-KEY"),
            ("hwid", HWID),
            ("sessionid", &sid),
        ],
    )
    .await;
    assert_eq!(unknown["success"], false, "{unknown}");

    let want = expected(&[
        ("valid", 3 + 1 + 1 + 1),
        ("suspended", 1),
        ("hwid_mismatch", 1),
        ("not_found", 2 + 1),
        ("banned", 1),
        ("expired", 1),
    ]);
    let client = &c;
    let (got, _) = eventually(Duration::from_secs(10), "buckets written", || async {
        let got = by_outcome(client, app).await;
        (got.values().sum::<i64>() >= want.values().sum::<i64>()).then_some(got)
    })
    .await;
    assert_eq!(got, want);
    let backlog = "keyward_validator_validation_counts_backlog";
    eventually(Duration::from_secs(10), "backlog drained", || async {
        (metric(&http, a, backlog).await == 0).then_some(())
    })
    .await;
    assert_eq!(
        metric(
            &http,
            a,
            "keyward_validator_validation_counts_dropped_total"
        )
        .await,
        0
    );
    let accounts: i64 = c
        .query_one(
            "SELECT count(*) FROM validation_buckets WHERE account_id <> $1",
            &[&t.actor.account_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(accounts, 0, "every bucket is the tenant's");
    v.shutdown().await;
}

#[tokio::test]
async fn counts_still_buffered_are_written_at_shutdown() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 1).await;
    // No periodic flush during the test: the only write is the one at shutdown.
    let v = validator(&db.url, |cfg| cfg.usage_flush_ms = 3_600_000).await;
    let (http, a) = (reqwest::Client::new(), v.addr());
    assert_eq!(code(&http, a, t.app.id, &l.key, Some(HWID)).await, "VALID");
    assert_eq!(
        code(&http, a, t.app.id, &l.key, Some(OTHER_HWID)).await,
        "HWID_MISMATCH"
    );
    assert_eq!(
        metric(&http, a, "keyward_validator_validation_counts_backlog").await,
        2
    );
    assert!(by_outcome(&c, t.app.id).await.is_empty(), "nothing yet");
    v.shutdown().await;
    assert_eq!(
        by_outcome(&c, t.app.id).await,
        expected(&[("valid", 1), ("hwid_mismatch", 1)])
    );
}

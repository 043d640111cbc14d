//! CyberLicense's conditional write (`store::license_uses::record`) against a real PostgreSQL:
//! limits and credits re-checked under the row's lock by concurrent writers, all or nothing,
//! nonces answered as replays, invalidation and audit only when an IP/HWID was appended.

use std::net::IpAddr;

use keyward_shared::model::{License, LicenseType};
use keyward_shared::store::license_uses::{self, Recorded, Used};
use keyward_shared::store::licenses;
use keyward_shared::testing::{self, Tenant, TestDb};
use keyward_shared::verdict::cyberlicense::{Refusal, Use};
use keyward_shared::write::WriteTx;
use uuid::Uuid;

async fn license(
    c: &mut tokio_postgres::Client,
    t: &Tenant,
    spec: licenses::GenerateSpec,
) -> License {
    testing::generate(c, t, spec).await.remove(0)
}

fn consumption(credits: i32) -> licenses::GenerateSpec {
    licenses::GenerateSpec {
        license_type: Some(LicenseType::Consumption),
        max_uses: Some(credits),
        ..Default::default()
    }
}

/// One `record` in its own committed transaction.
async fn record(
    c: &mut tokio_postgres::Client,
    t: &Tenant,
    id: Uuid,
    write: &Use,
    nonce: Option<&str>,
) -> Used {
    let mut w = WriteTx::begin(c, t.actor.clone()).await.unwrap();
    let used = license_uses::record(&mut w, id, write, nonce)
        .await
        .unwrap()
        .expect("license exists");
    w.commit().await.unwrap();
    used
}

fn hwid(h: &str) -> Use {
    Use {
        append_hwid: Some(h.into()),
        ..Use::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn spend() -> Use {
    Use {
        spend: true,
        ..Use::default()
    }
}

async fn audits(c: &tokio_postgres::Client, id: Uuid) -> Vec<serde_json::Value> {
    c.query(
        "SELECT details FROM audit_log WHERE action = 'license.use' AND target_id = $1 ORDER BY id",
        &[&id.to_string()],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn generation(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT generation FROM cache_epoch", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn twenty_racing_hwids_on_a_limit_of_one_bind_exactly_one() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = testing::tenant(&mut c, false).await;
    let l = license(
        &mut c,
        &t,
        licenses::GenerateSpec {
            hwid_limit: Some(1),
            ..Default::default()
        },
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let mut c = db.client().await;
        let actor = t.actor.clone();
        tasks.push(tokio::spawn(async move {
            let mut w = WriteTx::begin(&mut c, actor).await.unwrap();
            let used = license_uses::record(&mut w, l.id, &hwid(&format!("PC-{i}")), None)
                .await
                .unwrap()
                .unwrap();
            w.commit().await.unwrap();
            used.outcome
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let written = outcomes.iter().filter(|o| **o == Recorded::Written).count();
    let refused = outcomes
        .iter()
        .filter(|o| **o == Recorded::Refused(Refusal::HwidLimit))
        .count();
    println!("20 racing HWIDs on hwidLimit 1: {written} written, {refused} refused");
    assert_eq!((written, refused), (1, 19));
    let fresh = licenses::get(&c, t.actor.account_id, l.id).await.unwrap();
    assert_eq!(fresh.hwids.len(), 1);
    assert_eq!(fresh.hwids[0].bound_by, "validate");
}

#[tokio::test]
async fn thirty_racing_spends_of_ten_credits_spend_exactly_ten() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = testing::tenant(&mut c, false).await;
    let l = license(&mut c, &t, consumption(10)).await;
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let mut c = db.client().await;
        let actor = t.actor.clone();
        tasks.push(tokio::spawn(async move {
            let mut w = WriteTx::begin(&mut c, actor).await.unwrap();
            let used = license_uses::record(&mut w, l.id, &spend(), None)
                .await
                .unwrap()
                .unwrap();
            w.commit().await.unwrap();
            used.outcome
        }));
    }
    let mut spent = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Recorded::Written => spent += 1,
            Recorded::Refused(Refusal::NoCredits) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    println!("30 racing spends of 10 credits: {spent} spent, {refused} refused");
    assert_eq!((spent, refused), (10, 20));
    let fresh = licenses::get(&c, t.actor.account_id, l.id).await.unwrap();
    assert_eq!((fresh.uses, fresh.max_uses), (10, Some(10)));
}

#[tokio::test]
async fn the_single_statement_spend_never_spends_more_than_the_credits() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = testing::tenant(&mut c, false).await;
    let l = license(&mut c, &t, consumption(10)).await;
    // The one-statement spend is for a license used before.
    let first = Use {
        first_use: true,
        ..Use::default()
    };
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    license_uses::record(&mut w, l.id, &first, None)
        .await
        .unwrap();
    w.commit().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let c = db.client().await;
        let account = t.actor.account_id;
        tasks.push(tokio::spawn(async move {
            license_uses::spend(&c, account, l.id).await.unwrap()
        }));
    }
    let mut spent = 0;
    for task in tasks {
        spent += usize::from(task.await.unwrap());
    }
    println!("30 racing single-statement spends of 10 credits: {spent} spent");
    assert_eq!(spent, 10);
    let fresh = licenses::get(&c, t.actor.account_id, l.id).await.unwrap();
    assert_eq!(fresh.uses, 10);
    // Another account's id spends nothing.
    assert!(!license_uses::spend(&c, Uuid::new_v4(), l.id).await.unwrap());
}

#[tokio::test]
async fn a_refusal_writes_nothing_at_all() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = testing::tenant(&mut c, false).await;
    // One credit left, one HWID slot taken, IPs unlimited.
    let mut spec = consumption(1);
    spec.hwid_limit = Some(1);
    spec.hwids = Some(vec!["PC-1".into()]);
    let l = license(&mut c, &t, spec).await;
    let both = Use {
        append_ip: Some(ip("192.0.2.1")),
        append_hwid: Some("PC-2".into()),
        spend: true,
        first_use: true,
    };
    let before = generation(&c).await;
    let used = record(&mut c, &t, l.id, &both, Some("n-1")).await;
    assert_eq!(used.outcome, Recorded::Refused(Refusal::HwidLimit));
    assert!(!used.changed);
    let fresh = &used.license;
    // Neither the IP (checked first, within its limit) nor the credit nor the nonce.
    assert!(fresh.ips.is_empty(), "{:?}", fresh.ips);
    assert_eq!(fresh.uses, 0);
    assert!(fresh.used_at.is_none());
    assert_eq!(generation(&c).await, before, "nothing invalidated");
    assert!(audits(&c, l.id).await.is_empty());
    let nonces: i64 = c
        .query_one(
            "SELECT count(*) FROM license_spends WHERE license_id = $1",
            &[&l.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(nonces, 0);
}

#[tokio::test]
async fn appends_invalidate_and_audit_before_and_after_but_a_spend_alone_does_not() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = testing::tenant(&mut c, false).await;
    let l = license(&mut c, &t, consumption(5)).await;

    let first = Use {
        append_ip: Some(ip("192.0.2.1")),
        append_hwid: Some("PC-1".into()),
        spend: true,
        first_use: true,
    };
    let before = generation(&c).await;
    let used = record(&mut c, &t, l.id, &first, None).await;
    assert_eq!(used.outcome, Recorded::Written);
    assert!(used.changed);
    assert_eq!(used.license.ips, [ip("192.0.2.1")]);
    assert_eq!(used.license.hwids[0].hwid, "PC-1");
    assert_eq!(used.license.uses, 1);
    assert!(used.license.used_at.is_some());
    assert!(generation(&c).await > before, "invalidated");
    let a = audits(&c, l.id).await;
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0]["before"],
        serde_json::json!({"usedIps": [], "usedHwids": []})
    );
    assert_eq!(
        a[0]["after"],
        serde_json::json!({"usedIps": ["192.0.2.1"], "usedHwids": ["PC-1"]})
    );

    // A known IP and HWID with a spend: a hot write, neither invalidated nor audited.
    let again = Use {
        spend: true,
        ..Use::default()
    };
    let before = generation(&c).await;
    let used = record(&mut c, &t, l.id, &again, None).await;
    assert_eq!((used.outcome, used.changed), (Recorded::Written, false));
    assert_eq!(used.license.uses, 2);
    assert_eq!(generation(&c).await, before);
    assert_eq!(audits(&c, l.id).await.len(), 1);

    // A value appended meanwhile by someone else is not appended twice, nor refused.
    let used = record(&mut c, &t, l.id, &hwid("PC-1"), None).await;
    assert_eq!((used.outcome, used.changed), (Recorded::Written, false));
    assert_eq!(used.license.hwids.len(), 1);
}

#[tokio::test]
async fn a_repeated_nonce_is_a_replay_that_spends_and_appends_nothing() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = testing::tenant(&mut c, false).await;
    let l = license(&mut c, &t, consumption(3)).await;
    let used = record(&mut c, &t, l.id, &spend(), Some("retry-me")).await;
    assert_eq!((used.outcome, used.license.uses), (Recorded::Written, 1));
    let replay = Use {
        append_hwid: Some("PC-9".into()),
        spend: true,
        ..Use::default()
    };
    let used = record(&mut c, &t, l.id, &replay, Some("retry-me")).await;
    assert_eq!(used.outcome, Recorded::Replayed);
    assert_eq!(used.license.uses, 1);
    assert!(used.license.hwids.is_empty());
    assert!(license_uses::replayed(&c, l.id, "retry-me").await.unwrap());
    assert!(!license_uses::replayed(&c, l.id, "other").await.unwrap());
    // Another nonce spends.
    let used = record(&mut c, &t, l.id, &spend(), Some("second")).await;
    assert_eq!((used.outcome, used.license.uses), (Recorded::Written, 2));
    // A nonce older than the window is forgotten and spends again.
    c.execute(
        "UPDATE license_spends SET created_at = now() - interval '11 minutes' WHERE nonce = 'retry-me'",
        &[],
    )
    .await
    .unwrap();
    assert!(!license_uses::replayed(&c, l.id, "retry-me").await.unwrap());
    let used = record(&mut c, &t, l.id, &spend(), Some("retry-me")).await;
    assert_eq!((used.outcome, used.license.uses), (Recorded::Written, 3));
    // None left: refused, and a replay of the last spend is still a replay.
    let used = record(&mut c, &t, l.id, &spend(), Some("fourth")).await;
    assert_eq!(used.outcome, Recorded::Refused(Refusal::NoCredits));
    let used = record(&mut c, &t, l.id, &spend(), Some("retry-me")).await;
    assert_eq!(used.outcome, Recorded::Replayed);
    // The nonce is only read for a spend.
    let used = record(&mut c, &t, l.id, &hwid("PC-1"), Some("retry-me")).await;
    assert_eq!(used.outcome, Recorded::Written);
    assert_eq!(used.license.hwids.len(), 1);
}

#[tokio::test]
async fn the_row_is_rechecked_for_state_ip_limit_and_a_spent_one_time_key() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = testing::tenant(&mut c, false).await;
    let l = license(
        &mut c,
        &t,
        licenses::GenerateSpec {
            ip_limit: Some(1),
            one_time_use: Some(true),
            ..Default::default()
        },
    )
    .await;
    let first = Use {
        append_ip: Some(ip("192.0.2.1")),
        first_use: true,
        ..Use::default()
    };
    let used = record(&mut c, &t, l.id, &first, None).await;
    assert_eq!(used.outcome, Recorded::Written);
    // A second first use of the one-time key (a validator that had not yet heard): expired.
    let used = record(&mut c, &t, l.id, &first, None).await;
    assert_eq!(used.outcome, Recorded::Refused(Refusal::Expired));
    let other = Use {
        append_ip: Some(ip("192.0.2.2")),
        ..Use::default()
    };
    let used = record(&mut c, &t, l.id, &other, None).await;
    assert_eq!(used.outcome, Recorded::Refused(Refusal::IpLimit));
    // Suspended meanwhile.
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    licenses::ban(&mut w, l.id, None).await.unwrap();
    w.commit().await.unwrap();
    let used = record(&mut c, &t, l.id, &hwid("PC-1"), None).await;
    assert_eq!(used.outcome, Recorded::Refused(Refusal::Suspended));
    assert!(used.license.hwids.is_empty());
    // Another account's writer finds nothing.
    let other_tenant = testing::tenant(&mut c, false).await;
    let mut w = WriteTx::begin(&mut c, other_tenant.actor.clone())
        .await
        .unwrap();
    let none = license_uses::record(&mut w, l.id, &hwid("PC-1"), None)
        .await
        .unwrap();
    assert!(none.is_none());
}

#[tokio::test]
async fn the_first_use_starts_an_expiry_counted_from_it() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = testing::tenant(&mut c, false).await;
    let l = license(
        &mut c,
        &t,
        licenses::GenerateSpec {
            duration_days: Some(2),
            expiry_on_first_use: true,
            ..Default::default()
        },
    )
    .await;
    assert!(l.expires_at.is_none() && l.used_at.is_none());
    let used = record(
        &mut c,
        &t,
        l.id,
        &Use {
            first_use: true,
            ..Use::default()
        },
        None,
    )
    .await;
    assert!(used.changed);
    let expires = used.license.expires_at.expect("expiry started");
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::hours(47) && left <= chrono::Duration::days(2),
        "{left:?}"
    );
}

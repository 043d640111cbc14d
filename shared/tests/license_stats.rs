//! Per-license usage statistics against a real PostgreSQL: validations aggregated in memory and
//! written as per-day counts, distinct IPs/HWIDs and the newest requests, exactly; the cap of
//! 100 requests per license; the bounded aggregate; pruning by age and beyond the newest 100.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use keyward_shared::store::license_stats::write::{
    self, Aggregate, UseEvent, UseStatus, REQUESTS_PER_LICENSE,
};
use keyward_shared::testing::TestDb;
use uuid::Uuid;

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Now, to PostgreSQL's microsecond precision.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap()
}

fn event(license: Uuid, ip: &str, hwid: &str, status: UseStatus, at: DateTime<Utc>) -> UseEvent {
    UseEvent {
        license_id: license,
        ip: Some(ip.to_owned()),
        hwid: Some(hwid.to_owned()),
        status,
        at,
    }
}

type Daily = BTreeMap<(Uuid, NaiveDate), ([i64; 3], DateTime<Utc>)>;
type Seen = BTreeMap<(Uuid, String, String), DateTime<Utc>>;

async fn daily(c: &tokio_postgres::Client) -> Daily {
    c.query(
        "SELECT license_id, day, success, blocked, invalid, last_used_at FROM license_daily_usage",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            (r.get(0), r.get(1)),
            ([r.get(2), r.get(3), r.get(4)], r.get(5)),
        )
    })
    .collect()
}

async fn seen(c: &tokio_postgres::Client) -> Seen {
    c.query(
        "SELECT license_id, kind, value, last_seen_at FROM license_seen",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get(3)))
    .collect()
}

/// A license's request rows: (created_at, ip, hwid, status), oldest first.
async fn requests(
    c: &tokio_postgres::Client,
    license: Uuid,
) -> Vec<(DateTime<Utc>, Option<String>, Option<String>, String)> {
    c.query(
        "SELECT created_at, ip, hwid, status FROM license_requests WHERE license_id = $1
          ORDER BY created_at, id",
        &[&license],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

fn index(s: UseStatus) -> usize {
    match s {
        UseStatus::Success => 0,
        UseStatus::Blocked => 1,
        UseStatus::Invalid => 2,
    }
}

#[tokio::test]
async fn many_validations_over_many_days_land_as_exact_counts_and_distinct_values() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let licenses: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let start = now() - Duration::days(12);
    let mut rng = Rng(0x5eed);
    let statuses = [UseStatus::Success, UseStatus::Blocked, UseStatus::Invalid];
    let events: Vec<UseEvent> = (0..6_000)
        .map(|_| {
            let license = licenses[rng.below(4) as usize];
            // Anywhere in twelve days, so counts cross many UTC midnights.
            let at = start + Duration::microseconds(rng.below(12 * 86_400 * 1_000_000) as i64);
            let status = statuses[rng.below(3) as usize];
            event(
                license,
                &format!("10.0.0.{}", rng.below(7)),
                &format!("hw-{}", rng.below(5)),
                status,
                at,
            )
        })
        .collect();

    // What the tables must hold, computed naively.
    let mut want_daily = Daily::new();
    let mut want_seen = Seen::new();
    for e in &events {
        let d = want_daily
            .entry((e.license_id, e.at.date_naive()))
            .or_insert(([0; 3], e.at));
        d.0[index(e.status)] += 1;
        d.1 = d.1.max(e.at);
        for (kind, v) in [("ip", &e.ip), ("hwid", &e.hwid)] {
            let key = (e.license_id, kind.to_owned(), v.clone().unwrap());
            let last = want_seen.entry(key).or_insert(e.at);
            *last = (*last).max(e.at);
        }
    }

    // Several flushes of unsorted events, as validators would send them.
    let calls: Vec<&[UseEvent]> = events.chunks(1_700).collect();
    for call in &calls {
        write::record(&c, call).await.unwrap();
    }

    let got_daily = daily(&c).await;
    assert_eq!(got_daily, want_daily);
    assert!(
        got_daily.len() > 40,
        "four licenses over twelve days: {} day rows",
        got_daily.len()
    );
    let got_seen = seen(&c).await;
    assert_eq!(got_seen, want_seen);
    assert_eq!(got_seen.len(), 4 * (7 + 5), "7 IPs and 5 HWIDs per license");
    let total: i64 = got_daily.values().map(|(n, _)| n.iter().sum::<i64>()).sum();
    assert_eq!(total, 6_000);

    // Each flush wrote the newest 100 requests of each license among its events.
    for license in &licenses {
        let mut want: Vec<DateTime<Utc>> = Vec::new();
        for call in &calls {
            let mut times: Vec<DateTime<Utc>> = call
                .iter()
                .filter(|e| e.license_id == *license)
                .map(|e| e.at)
                .collect();
            times.sort();
            want.extend(times.iter().rev().take(REQUESTS_PER_LICENSE));
        }
        want.sort();
        let got: Vec<DateTime<Utc>> = requests(&c, *license).await.iter().map(|r| r.0).collect();
        assert_eq!(got, want, "requests of {license}");
        assert_eq!(got.len(), calls.len() * REQUESTS_PER_LICENSE);
    }
}

#[tokio::test]
async fn a_flush_writes_only_the_newest_100_requests_of_a_license_and_prune_keeps_100() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let license = Uuid::new_v4();
    let other = Uuid::new_v4();
    let base = now() - Duration::minutes(30);
    let mut rng = Rng(42);
    // 250 validations a millisecond apart, handed over shuffled.
    let mut events: Vec<UseEvent> = (0..250)
        .map(|i| {
            event(
                license,
                &format!("192.0.2.{}", i % 3),
                "hw",
                if i % 10 == 0 {
                    UseStatus::Blocked
                } else {
                    UseStatus::Success
                },
                base + Duration::milliseconds(i),
            )
        })
        .collect();
    for i in (1..events.len()).rev() {
        events.swap(i, rng.below(i as u64 + 1) as usize);
    }
    events.push(event(other, "192.0.2.9", "x", UseStatus::Invalid, base));
    write::record(&c, &events).await.unwrap();

    let rows = requests(&c, license).await;
    assert_eq!(rows.len(), REQUESTS_PER_LICENSE);
    let want: Vec<DateTime<Utc>> = (150..250)
        .map(|i| base + Duration::milliseconds(i))
        .collect();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), want);
    // Each request keeps its own IP, HWID and outcome.
    for (i, r) in (150..250).zip(&rows) {
        assert_eq!(r.1.as_deref(), Some(format!("192.0.2.{}", i % 3).as_str()));
        assert_eq!(r.2.as_deref(), Some("hw"));
        let status = if i % 10 == 0 { "blocked" } else { "success" };
        assert_eq!(r.3, status);
    }
    assert_eq!(requests(&c, other).await.len(), 1);
    // The counts still count all 250.
    let d = daily(&c).await;
    let counts: i64 = d
        .iter()
        .filter(|((l, _), _)| *l == license)
        .map(|(_, (n, _))| n[0] + n[1])
        .sum();
    assert_eq!(counts, 250);

    // A second flush adds 40 newer ones; prune leaves the newest 100 of all.
    let newer: Vec<UseEvent> = (250..290)
        .map(|i| {
            event(
                license,
                "192.0.2.1",
                "hw",
                UseStatus::Success,
                base + Duration::milliseconds(i),
            )
        })
        .collect();
    write::record(&c, &newer).await.unwrap();
    assert_eq!(requests(&c, license).await.len(), 140);
    let deleted = write::prune(&c, Duration::days(30)).await.unwrap();
    assert_eq!(deleted, 40);
    let want: Vec<DateTime<Utc>> = (190..290)
        .map(|i| base + Duration::milliseconds(i))
        .collect();
    let got: Vec<DateTime<Utc>> = requests(&c, license).await.iter().map(|r| r.0).collect();
    assert_eq!(got, want);
    assert_eq!(
        requests(&c, other).await.len(),
        1,
        "another license untouched"
    );
}

#[tokio::test]
async fn prune_drops_what_is_older_than_the_retention_and_spends_older_than_a_day() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let (old, recent) = (Uuid::new_v4(), Uuid::new_v4());
    let t = now();
    write::record(
        &c,
        &[
            event(
                old,
                "1.1.1.1",
                "old-hw",
                UseStatus::Success,
                t - Duration::days(40),
            ),
            event(
                old,
                "1.1.1.2",
                "old-hw",
                UseStatus::Invalid,
                t - Duration::days(35),
            ),
            // Seen again lately: its HWID stays, its old IPs go.
            event(
                old,
                "1.1.1.3",
                "old-hw",
                UseStatus::Success,
                t - Duration::days(3),
            ),
            event(
                recent,
                "2.2.2.2",
                "new-hw",
                UseStatus::Blocked,
                t - Duration::hours(1),
            ),
        ],
    )
    .await
    .unwrap();
    for (nonce, age) in [
        ("stale", Duration::hours(25)),
        ("fresh", Duration::hours(2)),
    ] {
        c.execute(
            "INSERT INTO license_spends (license_id, nonce, created_at) VALUES ($1, $2, $3)",
            &[&recent, &nonce, &(t - age)],
        )
        .await
        .unwrap();
    }
    assert_eq!(daily(&c).await.len(), 4);

    let deleted = write::prune(&c, Duration::days(30)).await.unwrap();
    // Two old requests, two old days, two old IPs, one stale spend.
    assert_eq!(deleted, 7);
    let days: BTreeSet<(Uuid, NaiveDate)> = daily(&c).await.into_keys().collect();
    let want: BTreeSet<(Uuid, NaiveDate)> = [
        (old, (t - Duration::days(3)).date_naive()),
        (recent, (t - Duration::hours(1)).date_naive()),
    ]
    .into();
    assert_eq!(days, want);
    let values: BTreeSet<(Uuid, String, String)> = seen(&c).await.into_keys().collect();
    let want: BTreeSet<(Uuid, String, String)> = [
        (old, "hwid".to_owned(), "old-hw".to_owned()),
        (old, "ip".to_owned(), "1.1.1.3".to_owned()),
        (recent, "hwid".to_owned(), "new-hw".to_owned()),
        (recent, "ip".to_owned(), "2.2.2.2".to_owned()),
    ]
    .into();
    assert_eq!(values, want);
    assert_eq!(requests(&c, old).await.len(), 1);
    assert_eq!(requests(&c, recent).await.len(), 1);
    let nonces: Vec<String> = c
        .query("SELECT nonce FROM license_spends", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(nonces, vec!["fresh".to_owned()]);

    // A shorter retention drops more; nothing left to drop is zero.
    assert_eq!(write::prune(&c, Duration::days(2)).await.unwrap(), 4);
    assert_eq!(write::prune(&c, Duration::days(2)).await.unwrap(), 0);
    assert_eq!(daily(&c).await.len(), 1);
}

#[tokio::test]
async fn values_are_cut_to_the_columns_caps_and_cleaned() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let license = Uuid::new_v4();
    let long_hwid = "é".repeat(300);
    let long_ip = "1".repeat(100);
    write::record(
        &c,
        &[
            event(license, &long_ip, &long_hwid, UseStatus::Success, now()),
            // A NUL cannot be stored: it is dropped from the value.
            event(license, "10.0.0.1\0", "a\0b", UseStatus::Success, now()),
            // Empty values are no values.
            event(license, "", "", UseStatus::Invalid, now()),
        ],
    )
    .await
    .unwrap();
    let values: BTreeSet<(String, String)> =
        seen(&c).await.into_keys().map(|(_, k, v)| (k, v)).collect();
    let want: BTreeSet<(String, String)> = [
        ("hwid".to_owned(), "é".repeat(256)),
        ("hwid".to_owned(), "ab".to_owned()),
        ("ip".to_owned(), "1".repeat(100)),
        ("ip".to_owned(), "10.0.0.1".to_owned()),
    ]
    .into();
    assert_eq!(values, want);
    let rows = requests(&c, license).await;
    assert_eq!(rows.len(), 3);
    let ips: BTreeSet<Option<String>> = rows.iter().map(|r| r.1.clone()).collect();
    assert!(ips.contains(&Some("1".repeat(64))), "{ips:?}");
    assert!(ips.contains(&None));
    let hwids: BTreeSet<Option<String>> = rows.iter().map(|r| r.2.clone()).collect();
    assert!(hwids.contains(&Some("é".repeat(256))));
}

#[test]
fn a_full_aggregate_keeps_counting_what_it_holds_and_drops_what_needs_room() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let t = now();
    // A license, its day, one IP, one HWID, one request: five entries.
    let mut agg = Aggregate::with_limit(5);
    assert!(agg.add(event(a, "ip1", "hw1", UseStatus::Success, t)));
    assert_eq!(agg.entries(), 5);
    // Known values, no room for another request: counted, the request left out.
    assert!(!agg.add(event(a, "ip1", "hw1", UseStatus::Invalid, t)));
    // A new license does not fit at all.
    assert!(!agg.add(event(b, "ip1", "hw1", UseStatus::Success, t)));
    assert_eq!(agg.entries(), 5);
    let mut merged = Aggregate::default();
    merged.merge(agg);
    let mut more = Aggregate::default();
    assert!(more.add(event(a, "ip2", "hw1", UseStatus::Blocked, t)));
    merged.merge(more);
    assert_eq!(merged.entries(), 1 + 1 + 2 + 1 + 2);
}

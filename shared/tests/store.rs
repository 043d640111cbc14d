//! The store against a real PostgreSQL: migrations, the write helper's NOTIFY semantics, key
//! generation and the atomic first-use write.

use std::time::Duration;

use futures_util::StreamExt;
use keyward_shared::invalidation::{self, Invalidation};
use keyward_shared::model::{App, License, LicenseStatus};
use keyward_shared::store::{accounts, apps, licenses};
use keyward_shared::testing::TestDb;
use keyward_shared::verdict::Activation;
use keyward_shared::write::{Actor, WriteTx};
use keyward_shared::{db, StoreError};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use uuid::Uuid;

async fn tenant(c: &mut tokio_postgres::Client) -> (Actor, App) {
    let acct = accounts::create(
        &*c,
        &format!("t{}", keyward_shared::secrets::random_token(8)),
        None,
        "x",
    )
    .await
    .unwrap();
    let actor = Actor {
        origin: Default::default(),
        account_id: acct.id,
        label: "test".into(),
    };
    let mut w = WriteTx::begin(c, actor.clone()).await.unwrap();
    let app = apps::create(
        &mut w,
        &apps::AppPatch {
            name: Some("app".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    (actor, app)
}

/// A LISTEN connection whose notifications arrive on a channel.
/// Licenses generated and committed.
async fn generate(
    c: &mut tokio_postgres::Client,
    actor: &Actor,
    app: &App,
    spec: licenses::GenerateSpec,
) -> Vec<License> {
    let mut w = WriteTx::begin(c, actor.clone()).await.unwrap();
    let made = licenses::generate(&mut w, app.id, &spec).await.unwrap();
    w.commit().await.unwrap();
    made
}

async fn listen(url: &str) -> (tokio_postgres::Client, mpsc::UnboundedReceiver<String>) {
    let cfg = db::pg_config(url, "store-test-listener").unwrap();
    let (client, mut conn) = cfg.connect(NoTls).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(msg)) = stream.next().await {
            if let AsyncMessage::Notification(n) = msg {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", invalidation::CHANNEL))
        .await
        .unwrap();
    (client, rx)
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    assert!(db::migrate(&mut c).await.unwrap().is_empty());
    let v: i32 = c
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, db::latest_migration());
}

#[tokio::test]
async fn notify_is_sent_on_commit_and_never_on_rollback() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(&mut c).await;
    let (_l, mut rx) = listen(&db.url).await;

    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    let generated = licenses::generate(&mut w, app.id, &licenses::GenerateSpec::default())
        .await
        .unwrap();
    drop(w); // rolled back
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    licenses::generate(&mut w, app.id, &licenses::GenerateSpec::default())
        .await
        .unwrap();
    w.commit().await.unwrap();

    let payload = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let p = invalidation::decode(&payload).unwrap();
    assert_eq!(p.i.len(), 1);
    match &p.i[0] {
        Invalidation::License { app: a, key } => {
            assert_eq!(*a, app.id);
            assert_ne!(
                key, &generated[0].key,
                "the rolled-back key must not be announced"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // The generation announced is the one committed.
    let g: i64 = c
        .query_one("SELECT generation FROM cache_epoch", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(p.g, g);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn large_batches_split_into_payloads_under_the_limit() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(&mut c).await;
    let (_l, mut rx) = listen(&db.url).await;
    let mut w = WriteTx::begin(&mut c, actor).await.unwrap();
    let spec = licenses::GenerateSpec {
        count: Some(500),
        mask: Some("XXXXXXXX-XXXXXXXX-XXXXXXXX-XXXXXXXX".into()),
        ..Default::default()
    };
    let made = licenses::generate(&mut w, app.id, &spec).await.unwrap();
    w.commit().await.unwrap();
    let committed: i64 = c
        .query_one("SELECT generation FROM cache_epoch", &[])
        .await
        .unwrap()
        .get(0);
    let (mut seen, mut payloads) = (0, 0);
    while seen < made.len() {
        let payload = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(payload.len() < 8000);
        let p = invalidation::decode(&payload).unwrap();
        assert_eq!(
            p.g, committed,
            "every payload of one write carries its generation"
        );
        seen += p.i.len();
        payloads += 1;
    }
    assert_eq!(seen, 500);
    assert!(payloads > 1);
}

#[tokio::test]
async fn generation_respects_mask_limits_and_tenancy() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(&mut c).await;
    let (other, _) = tenant(&mut c).await;

    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    let spec = licenses::GenerateSpec {
        count: Some(20),
        mask: Some("KW-XXXX-XXXX".into()),
        duration_days: Some(30),
        hwid_limit: Some(3),
        ..Default::default()
    };
    let made = licenses::generate(&mut w, app.id, &spec).await.unwrap();
    w.commit().await.unwrap();
    let mask = keyward_shared::keygen::Mask::parse("KW-XXXX-XXXX", None).unwrap();
    assert_eq!(made.len(), 20);
    assert!(made
        .iter()
        .all(|l| mask.matches(&l.key) && l.hwid_limit == 3 && l.expires_at.is_some()));

    for bad in [
        licenses::GenerateSpec {
            count: Some(501),
            ..Default::default()
        },
        licenses::GenerateSpec {
            count: Some(0),
            ..Default::default()
        },
        licenses::GenerateSpec {
            mask: Some("XX".into()),
            ..Default::default()
        },
        licenses::GenerateSpec {
            expiry_on_first_use: true,
            ..Default::default()
        },
        licenses::GenerateSpec {
            duration_days: Some(1),
            duration_secs: Some(1),
            ..Default::default()
        },
    ] {
        let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
        assert!(
            matches!(
                licenses::generate(&mut w, app.id, &bad).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    // Another tenant cannot generate into, read, or ban this app's licenses.
    let mut w = WriteTx::begin(&mut c, other.clone()).await.unwrap();
    assert!(matches!(
        licenses::generate(&mut w, app.id, &spec).await,
        Err(StoreError::NotFound(_))
    ));
    drop(w);
    assert!(matches!(
        licenses::get(&c, other.account_id, made[0].id).await,
        Err(StoreError::NotFound(_))
    ));
    let mut w = WriteTx::begin(&mut c, other).await.unwrap();
    assert!(matches!(
        licenses::ban(&mut w, made[0].id, None).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn concurrent_activations_never_exceed_the_hwid_limit() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(&mut c).await;
    let spec = licenses::GenerateSpec {
        hwid_limit: Some(2),
        ..Default::default()
    };
    let lic = generate(&mut c, &actor, &app, spec).await.remove(0);

    let mut tasks = Vec::new();
    for i in 0..30 {
        let url = db.url.clone();
        let account_id = lic.account_id;
        tasks.push(tokio::spawn(async move {
            let cfg = db::pg_config(&url, "activation-test").unwrap();
            let mut c = db::connect(&cfg).await.unwrap();
            let mut w = WriteTx::begin(
                &mut c,
                Actor {
                    origin: Default::default(),
                    account_id,
                    label: "validator".into(),
                },
            )
            .await
            .unwrap();
            let act = Activation {
                bind_hwid: Some(format!("HWID-{i}")),
                first_use: true,
                ..Default::default()
            };
            let fresh = licenses::activate(&mut w, lic.id, &act)
                .await
                .unwrap()
                .unwrap();
            w.commit().await.unwrap();
            fresh.license.has_hwid(&format!("HWID-{i}"))
        }));
    }
    let mut bound = 0;
    for t in tasks {
        bound += t.await.unwrap() as usize;
    }
    assert_eq!(bound, 2);
    let fresh = licenses::get(&c, lic.account_id, lic.id).await.unwrap();
    assert_eq!(fresh.hwids.len(), 2);
    assert!(fresh.used_at.is_some());
    assert_eq!(fresh.status, LicenseStatus::Active);
}

#[tokio::test]
async fn first_use_starts_expiry_once() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(&mut c).await;
    let spec = licenses::GenerateSpec {
        duration_secs: Some(3600),
        expiry_on_first_use: true,
        ..Default::default()
    };
    let lic = generate(&mut c, &actor, &app, spec).await.remove(0);
    assert!(lic.expires_at.is_none() && lic.used_at.is_none());

    let act = Activation {
        first_use: true,
        ..Default::default()
    };
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    let fresh = licenses::activate(&mut w, lic.id, &act)
        .await
        .unwrap()
        .unwrap();
    w.commit().await.unwrap();
    assert!(fresh.first_use);
    let (used, exp) = (
        fresh.license.used_at.unwrap(),
        fresh.license.expires_at.unwrap(),
    );
    assert_eq!((exp - used).num_seconds(), 3600);

    // A second activation does not move the clock.
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    let again = licenses::activate(&mut w, lic.id, &act)
        .await
        .unwrap()
        .unwrap();
    w.commit().await.unwrap();
    assert!(!again.first_use);
    assert_eq!(again.license.expires_at, Some(exp));

    // Extending an expired license counts from now.
    c.execute(
        "UPDATE licenses SET expires_at = now() - interval '10 days' WHERE id = $1",
        &[&lic.id],
    )
    .await
    .unwrap();
    let mut w = WriteTx::begin(&mut c, actor).await.unwrap();
    licenses::extend(
        &mut w,
        lic.id,
        &licenses::Extension {
            days: Some(1),
            seconds: None,
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    let ext = licenses::get(&c, lic.account_id, lic.id).await.unwrap();
    let left = ext.expires_at.unwrap() - chrono::Utc::now();
    assert!(left.num_hours() >= 23 && left.num_hours() <= 24, "{left:?}");
}

/// Usage counters are written behind in batches covering the licenses validated in the last few
/// seconds. They live in `license_usage`, one row per license made with it, so a flush leaves the
/// license rows (what validators read on a miss) alone, and its updates are heap-only (no new
/// entry in an index), which needs the table's free room per page.
#[tokio::test]
async fn usage_counters_update_in_place_and_leave_licenses_alone() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(&mut c).await;
    let spec = licenses::GenerateSpec {
        count: Some(200),
        ..Default::default()
    };
    let made = generate(&mut c, &actor, &app, spec).await;

    let ids: Vec<_> = made.iter().step_by(10).map(|l| l.id).collect();
    let counts = vec![3_i64; ids.len()];
    let at = vec![chrono::Utc::now(); ids.len()];
    c.batch_execute("BEGIN").await.unwrap();
    let updated = keyward_shared::store::usage::record_validations(&c, &ids, &counts, &at)
        .await
        .unwrap();
    // Counted for this transaction alone, so no wait for the statistics collector.
    let stats = c
        .query_one(
            "SELECT pg_stat_get_xact_tuples_hot_updated('license_usage'::regclass),
                    pg_stat_get_xact_tuples_updated('licenses'::regclass)",
            &[],
        )
        .await
        .unwrap();
    c.batch_execute("COMMIT").await.unwrap();
    assert_eq!(updated, 20);
    assert_eq!(stats.get::<_, i64>(0), 20, "every usage update heap-only");
    assert_eq!(stats.get::<_, i64>(1), 0, "no license row rewritten");
    let again = licenses::get(&c, made[0].account_id, made[0].id)
        .await
        .unwrap();
    assert_eq!(again.validation_count, 3);
    assert!(again.last_validated_at.is_some());
    let untouched = licenses::get(&c, made[1].account_id, made[1].id)
        .await
        .unwrap();
    assert_eq!(
        (untouched.validation_count, untouched.last_validated_at),
        (0, None)
    );
}

/// Every way of creating licenses makes their usage rows (a flush only updates), and deleting a
/// license takes its row with it.
#[tokio::test]
async fn every_license_has_one_usage_row() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(&mut c).await;
    let spec = licenses::GenerateSpec {
        count: Some(5),
        ..Default::default()
    };
    let made = generate(&mut c, &actor, &app, spec).await;
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    licenses::seed_sequential(&mut w, app.id, "SEED", (1, 7), true)
        .await
        .unwrap();
    w.commit().await.unwrap();
    let orphans = "SELECT count(*) FROM licenses l
                    WHERE NOT EXISTS (SELECT 1 FROM license_usage u WHERE u.license_id = l.id)";
    assert_eq!(scalar(&c, "SELECT count(*) FROM license_usage").await, 12);
    assert_eq!(scalar(&c, orphans).await, 0);

    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    licenses::delete(&mut w, made[0].id).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(scalar(&c, "SELECT count(*) FROM license_usage").await, 11);
}

async fn scalar(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// The validators' narrow batch query reads the same facts as the full row, answer by lookup.
#[tokio::test]
async fn facts_by_keys_match_the_full_rows() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(&mut c).await;
    let spec = licenses::GenerateSpec {
        duration_days: Some(30),
        hwid_limit: Some(3),
        ip_limit: Some(2),
        ..Default::default()
    };
    let lic = generate(&mut c, &actor, &app, spec).await.remove(0);
    for (hwid, ip) in [("HWID-A", "203.0.113.9"), ("HWID-B", "2001:db8::1")] {
        let act = Activation {
            bind_hwid: Some(hwid.into()),
            record_ip: Some(ip.parse().unwrap()),
            first_use: true,
        };
        let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
        licenses::activate(&mut w, lic.id, &act).await.unwrap();
        w.commit().await.unwrap();
    }
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    licenses::ban(&mut w, lic.id, Some("chargeback"))
        .await
        .unwrap();
    w.commit().await.unwrap();

    let full = licenses::get(&c, actor.account_id, lic.id).await.unwrap();
    let other = generate(&mut c, &actor, &app, Default::default())
        .await
        .remove(0);
    // In any order, with a missing key and a repeated one: each answer is its lookup's.
    let answers = licenses::facts_by_keys(
        &c,
        &[
            (app.id, "NO-SUCH-KEY"),
            (app.id, &lic.key),
            (app.id, &other.key),
            (Uuid::new_v4(), &lic.key),
            (app.id, &lic.key),
        ],
    )
    .await
    .unwrap();
    assert_eq!(answers.len(), 5);
    assert!(answers[0].is_none() && answers[3].is_none());
    let facts = answers[1].clone().unwrap();
    assert_eq!(facts, full.facts());
    assert_eq!(answers[4].as_ref(), Some(&facts));
    assert!(facts.has_hwid("HWID-B") && facts.has_ip("2001:db8::1".parse().unwrap()));
    assert_eq!(facts.ban_reason(), Some("chargeback"));
    let other_facts = answers[2].clone().unwrap();
    assert_eq!(other_facts.id, other.id);
    assert!(licenses::facts_by_keys(&c, &[]).await.unwrap().is_empty());
}

/// Migration 0009 on a database with data of before: every license joins its app's new default
/// policy, limits equal to the old defaults follow it, the others stay as overrides. Run in a
/// schema of its own (the migrations name no schema), so the test database stays as it is.
#[tokio::test]
async fn upgrade_gives_existing_licenses_their_apps_default_policy() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("CREATE SCHEMA before_policies; SET search_path TO before_policies")
        .await
        .unwrap();
    let sources: Vec<&str> = db::migration_sources().collect();
    let before = 8;
    for sql in &sources[..before] {
        c.batch_execute(sql).await.unwrap();
    }
    c.batch_execute(
        "INSERT INTO accounts (id, public_id, username, password_hash)
              VALUES ('00000000-0000-0000-0000-00000000000a', 'ABCDEFGHIJ', 'old', 'x');
         INSERT INTO apps (id, account_id, name, secret)
              VALUES ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000000a', 'one', 's'),
                     ('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-00000000000a', 'two', 's');
         -- A policy already named like the default one.
         INSERT INTO policies (id, account_id, app_id, name)
              VALUES (gen_random_uuid(), '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-0000000000a2', 'Default');
         INSERT INTO licenses (id, account_id, app_id, key, hwid_limit, ip_limit, max_uses)
              VALUES (gen_random_uuid(), '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-0000000000a1', 'PLAIN', 1, 0, 1),
                     (gen_random_uuid(), '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-0000000000a1', 'WIDE', 5, 2, 3),
                     (gen_random_uuid(), '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-0000000000a2', 'OTHER', 1, 0, 1);",
    )
    .await
    .unwrap();
    for sql in &sources[before..] {
        c.batch_execute(sql).await.unwrap();
    }
    let rows = c
        .query(
            "SELECT l.key, a.name AS app, p.name AS policy, p.is_default, p.authentication_strategy,
                    l.hwid_limit, l.ip_limit, l.max_uses
               FROM licenses l JOIN policies p ON p.id = l.policy_id JOIN apps a ON a.id = l.app_id
              ORDER BY l.key",
            &[],
        )
        .await
        .unwrap();
    // key, app, policy, is_default, strategy, hwid_limit, ip_limit, max_uses
    type Row = (
        String,
        String,
        String,
        bool,
        String,
        Option<i32>,
        Option<i32>,
        Option<i32>,
    );
    let got: Vec<Row> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
            )
        })
        .collect();
    let expected =
        |key: &str, app: &str, policy: String, limits: (Option<i32>, Option<i32>, Option<i32>)| {
            (
                key.to_string(),
                app.to_string(),
                policy,
                true,
                "license".to_string(),
                limits.0,
                limits.1,
                limits.2,
            )
        };
    assert_eq!(
        got,
        vec![
            expected(
                "OTHER",
                "two",
                "Default 00000000".to_string(),
                (None, None, None)
            ),
            expected("PLAIN", "one", "Default".to_string(), (None, None, None)),
            expected(
                "WIDE",
                "one",
                "Default".to_string(),
                (Some(5), Some(2), Some(3))
            ),
        ]
    );
    // Still one default per app, and a license cannot follow another app's policy.
    let err = c
        .batch_execute(
            "UPDATE licenses SET policy_id = (SELECT id FROM policies WHERE app_id = '00000000-0000-0000-0000-0000000000a2' AND is_default)
              WHERE key = 'PLAIN'",
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
    );
    let err = c
        .batch_execute("UPDATE policies SET is_default = true WHERE name = 'Default' AND app_id = '00000000-0000-0000-0000-0000000000a2'")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
}

//! Read replicas (`--replica-url`) against the real streaming replica that `./deploy/test.sh`
//! starts: the native API's read-only GETs are served by a fresh replica, never by one that has
//! not replayed this process's last write (read-your-writes), and a replica that is down only
//! sends reads to the primary.

mod common;

use std::time::Duration;

use common::*;
use keyward_control_plane::{Config, Running};
use keyward_shared::testing::{eventually, TestDb};
use reqwest::Method;
use serde_json::{json, Value};

const REPLICA_READS: &str = r#"keyward_control_plane_reads_total{source="replica"}"#;
const PRIMARY_READS: &str = r#"keyward_control_plane_reads_total{source="primary"}"#;
const DOWN_FALLBACKS: &str = r#"keyward_control_plane_replica_fallbacks_total{reason="down"}"#;
/// Other tests of the run share the replica (and may pause its replay for a while).
const DEADLINE: Duration = Duration::from_secs(30);

/// A control-plane over a fresh database reading from `replicas` (`None`: the test replica).
async fn start(replicas: Option<Vec<String>>) -> Cp {
    let db = TestDb::new().await;
    let replicas = match replicas {
        Some(r) => r,
        None => vec![db.replica_url().await],
    };
    let mut cfg = Config::new(db.url.clone());
    cfg.login_rate_per_minute = 1000;
    cfg.replicas.url = replicas;
    let running: Running = keyward_control_plane::start(cfg).await.expect("start");
    let base = format!("http://{}", running.addr());
    Cp {
        db,
        running,
        http: reqwest::Client::new(),
        base,
    }
}

async fn metric(cp: &Cp, name: &str) -> f64 {
    let text = cp
        .http
        .get(format!("{}/metrics", cp.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_string())
        .collect()
}

/// GETs `path` until one is served by the replica; every answer must have `status`.
async fn served_by_replica(cp: &Cp, token: &str, path: &str, status: u16) -> Value {
    eventually(
        DEADLINE,
        &format!("GET {path} to be served by the replica"),
        || async {
            let before = metric(cp, REPLICA_READS).await;
            let r = cp.call(Method::GET, path, Some(token), None).await;
            assert_eq!(r.status, status, "GET {path} → {}", r.body);
            (metric(cp, REPLICA_READS).await > before).then_some(r.body)
        },
    )
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_replica_serves_the_read_only_gets() {
    let cp = start(None).await;
    let t = cp.admin("replica-reads").await;
    let app = cp.app(&t, "replicated").await;
    let lics = cp.licenses(&t, &app, json!({"count": 3})).await;
    let mut want: Vec<String> = lics
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    want.sort();

    // The list, served by the replica, holds what was written.
    let page = served_by_replica(&cp, &t, &format!("/v1/licenses?app_id={app}"), 200).await;
    let mut got = ids(&page);
    got.sort();
    assert_eq!(got, want);
    let id = &want[0];
    let one = served_by_replica(&cp, &t, &format!("/v1/licenses/{id}"), 200).await;
    assert_eq!(one["id"], id.as_str());

    // Every read-only GET switched to the replica runs there: none of them writes (a write on
    // a hot standby would be a 500), and unknown ids are still 404s.
    let none = uuid_like();
    let ok = [
        "/v1/account".to_string(),
        "/v1/customers".into(),
        "/v1/api-keys".into(),
        "/v1/apps".into(),
        format!("/v1/apps/{app}"),
        format!("/v1/apps/{app}/service-keys"),
        format!("/v1/apps/{app}/keyless"),
        format!("/v1/apps/{app}/blacklist"),
        format!("/v1/apps/{app}/policies"),
        "/v1/policies".into(),
        format!("/v1/licenses/{id}/entitlements"),
        "/v1/entitlements".into(),
        "/v1/providers".into(),
        "/v1/licenses/count".into(),
        "/v1/transactions".into(),
        format!("/v1/licenses/{id}/machines"),
        "/v1/machines".into(),
        "/v1/audit-log".into(),
        "/v1/stats/overview".into(),
        "/v1/stats/validations".into(),
        "/v1/signing-keys".into(),
        "/v1/webhook-endpoints".into(),
        "/v1/webhook-events".into(),
        format!("/v1/apps/{app}/users"),
        format!("/v1/apps/{app}/subscriptions"),
        format!("/v1/apps/{app}/variables"),
        format!("/v1/apps/{app}/sessions"),
        format!("/v1/apps/{app}/logs"),
        "/v1/seller-keys".into(),
    ];
    for path in &ok {
        served_by_replica(&cp, &t, path, 200).await;
    }
    let missing = [
        format!("/v1/customers/{none}"),
        format!("/v1/policies/{none}"),
        format!("/v1/policies/{none}/entitlements"),
        format!("/v1/entitlements/{none}"),
        "/v1/providers/987654321".to_string(),
        format!("/v1/transactions/{none}"),
        format!("/v1/machines/{none}"),
        format!("/v1/webhook-endpoints/{none}"),
        format!("/v1/webhook-events/{none}"),
        format!("/v1/users/{none}"),
        format!("/v1/users/{none}/variables"),
        format!("/v1/subscriptions/{none}"),
    ];
    for path in &missing {
        served_by_replica(&cp, &t, path, 404).await;
    }
    cp.running.shutdown().await;
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-00000000beef".to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_right_after_a_write_see_it_while_the_replica_is_paused() {
    let cp = start(None).await;
    let replica_url = cp.db.replica_url().await;
    let t = cp.admin("replica-ryw").await;
    let app = cp.app(&t, "ryw").await;
    // The replica serves reads before the pause.
    served_by_replica(&cp, &t, &format!("/v1/licenses?app_id={app}"), 200).await;

    let observer = keyward_shared::testing::connect_to(&replica_url).await;
    // Another test of the run may resume replay while this one has it paused (it is one
    // replica): a round is conclusive about where reads ran only if replay stayed paused.
    for round in 0.. {
        assert!(round < 10, "replay never stayed paused for a whole round");
        let paused = keyward_shared::testing::ReplayPaused::new(&replica_url).await;
        let at = keyward_shared::testing::replay_paused_at(&observer).await;
        let (replica0, primary0) = (
            metric(&cp, REPLICA_READS).await,
            metric(&cp, PRIMARY_READS).await,
        );

        // Create, then read at once: the new license is there.
        let id = cp.licenses(&t, &app, json!({"count": 1})).await[0]["id"]
            .as_str()
            .expect("id")
            .to_string();
        let one = cp
            .ok(Method::GET, &format!("/v1/licenses/{id}"), &t, None)
            .await;
        assert_eq!(one["id"], id.as_str());
        assert_eq!(one["status"], "active");
        let page = cp
            .ok(Method::GET, &format!("/v1/licenses?app_id={app}"), &t, None)
            .await;
        assert!(ids(&page).contains(&id), "{page}");

        // Ban, then read at once: banned, in the detail and in the filtered list.
        let banned = cp
            .ok(
                Method::POST,
                &format!("/v1/licenses/{id}/ban"),
                &t,
                Some(json!({"reason": "chargeback"})),
            )
            .await;
        assert_eq!(banned["status"], "banned");
        let one = cp
            .ok(Method::GET, &format!("/v1/licenses/{id}"), &t, None)
            .await;
        assert_eq!(
            (one["status"].as_str(), one["ban_reason"].as_str()),
            (Some("banned"), Some("chargeback"))
        );
        let page = cp
            .ok(
                Method::GET,
                &format!("/v1/licenses?app_id={app}&status=banned"),
                &t,
                None,
            )
            .await;
        assert!(ids(&page).contains(&id), "{page}");

        let (replica1, primary1) = (
            metric(&cp, REPLICA_READS).await,
            metric(&cp, PRIMARY_READS).await,
        );
        if at.is_none() || keyward_shared::testing::replay_paused_at(&observer).await != at {
            drop(paused);
            continue;
        }
        // The replica never replayed the writes: the primary answered all four reads.
        assert_eq!(replica1, replica0, "a read went to the paused replica");
        assert!(primary1 >= primary0 + 4.0, "{primary0} → {primary1}");
        drop(paused);
        break;
    }

    // Once replay resumes, reads go back to the replica and see the ban there.
    let page = served_by_replica(
        &cp,
        &t,
        &format!("/v1/licenses?app_id={app}&status=banned"),
        200,
    )
    .await;
    assert!(!ids(&page).is_empty());
    cp.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_is_down_sends_reads_to_the_primary() {
    // A loopback port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let cp = start(Some(vec![format!(
        "postgres://keyward@127.0.0.1:{port}/postgres"
    )]))
    .await;
    let t = cp.admin("replica-down").await;
    let app = cp.app(&t, "down").await;
    let lics = cp.licenses(&t, &app, json!({"count": 2})).await;
    let id = lics[0]["id"].as_str().expect("id");
    for _ in 0..3 {
        let one = cp
            .ok(Method::GET, &format!("/v1/licenses/{id}"), &t, None)
            .await;
        assert_eq!(one["id"], id);
        let page = cp
            .ok(Method::GET, &format!("/v1/licenses?app_id={app}"), &t, None)
            .await;
        assert_eq!(ids(&page).len(), 2, "{page}");
    }
    assert_eq!(metric(&cp, REPLICA_READS).await, 0.0);
    assert!(metric(&cp, PRIMARY_READS).await >= 6.0);
    assert!(metric(&cp, DOWN_FALLBACKS).await >= 6.0);
    cp.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_replica_beside_a_fresh_one_is_skipped() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let db = TestDb::new().await;
    let real = db.replica_url().await;
    let mut cfg = Config::new(db.url.clone());
    cfg.login_rate_per_minute = 1000;
    cfg.replicas.url = vec![
        format!("postgres://keyward@127.0.0.1:{port}/postgres"),
        real,
    ];
    let running = keyward_control_plane::start(cfg).await.expect("start");
    let base = format!("http://{}", running.addr());
    let cp = Cp {
        db,
        running,
        http: reqwest::Client::new(),
        base,
    };
    let t = cp.admin("replica-mixed").await;
    let app = cp.app(&t, "mixed").await;
    cp.licenses(&t, &app, json!({"count": 4})).await;
    // Every read is answered correctly; some of them by the live replica, none failed.
    let page = served_by_replica(&cp, &t, &format!("/v1/licenses?app_id={app}"), 200).await;
    assert_eq!(ids(&page).len(), 4, "{page}");
    for _ in 0..4 {
        let page = cp
            .ok(Method::GET, &format!("/v1/licenses?app_id={app}"), &t, None)
            .await;
        assert_eq!(ids(&page).len(), 4, "{page}");
    }
    cp.running.shutdown().await;
}

//! Short real runs of the load generator against a validator on real PostgreSQL: the native
//! scenario and both KeyAuth flows, every answer verified, no errors.

use std::sync::Arc;
use std::time::Duration;

use keyward_loadtest::engine::{self, Live, LoadConfig, Mode, Target};
use keyward_loadtest::scenario::{KeyAuthVersion, Scenario};
use keyward_shared::store::{accounts, apps, licenses};
use keyward_shared::testing::TestDb;
use keyward_shared::write::{Actor, WriteTx};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_keyauth_scenarios_run_clean_against_a_validator() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let account = accounts::create(&c, "loadtester", None, "not-a-login")
        .await
        .unwrap();
    let actor = Actor {
        account_id: account.id,
        label: "test".into(),
    };
    let mut w = WriteTx::begin(&mut c, actor).await.unwrap();
    let app = apps::create(
        &mut w,
        &apps::AppPatch {
            name: Some("bench".into()),
            hwid_lock: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let spec = licenses::GenerateSpec {
        count: Some(4),
        ..Default::default()
    };
    let keys: Vec<String> = licenses::generate(&mut w, app.id, &spec)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    w.commit().await.unwrap();

    let mut cfg = keyward_validator::Config::new(&db.url);
    cfg.rate_limit_per_sec = 0;
    let v = keyward_validator::start(cfg).await.unwrap();
    v.wait_ready(Duration::from_secs(10)).await.unwrap();
    let target = Target::parse(&format!("http://{}", v.addr())).unwrap();
    let load = |max| LoadConfig {
        connections: 4,
        duration: Duration::from_secs(60),
        max_requests: Some(max),
        mode: Mode::Closed,
        timeout: Duration::from_secs(10),
    };

    let native = Scenario::Validate {
        app: app.id.to_string(),
        keys: Arc::new(keys[..2].to_vec()),
        hwid: Some("machine-1".into()),
    };
    let out = engine::run(&target, &native, &load(300), Arc::new(Live::default()))
        .await
        .unwrap();
    assert_eq!(out.stats.total().len(), 300);
    assert!(out.stats.errors.is_empty(), "{:?}", out.stats.errors);

    for (version, key) in [
        (KeyAuthVersion::V1_2, &keys[2]),
        (KeyAuthVersion::V1_3, &keys[3]),
    ] {
        let mut pk = None;
        if version == KeyAuthVersion::V1_3 {
            // The validator made the key on its first 1.3 answer if the control-plane has not.
            let probe = Scenario::KeyAuth {
                version,
                name: "bench".into(),
                owner: account.public_id.clone(),
                secret: app.secret.clone(),
                keys: Arc::new(vec![key.clone()]),
                hwid: "loadtest-hwid-0000000001".into(),
                public_key: None,
            };
            let _ = engine::run(&target, &probe, &load(1), Arc::new(Live::default())).await;
            let hex_key: String = c
                .query_one("SELECT public_key FROM signing_keys WHERE is_primary", &[])
                .await
                .unwrap()
                .get(0);
            let bytes: [u8; 32] = hex::decode(hex_key).unwrap().try_into().unwrap();
            pk = Some(Box::new(
                ed25519_dalek::VerifyingKey::from_bytes(&bytes).unwrap(),
            ));
        }
        let flow = Scenario::KeyAuth {
            version,
            name: "bench".into(),
            owner: account.public_id.clone(),
            secret: app.secret.clone(),
            keys: Arc::new(vec![key.clone()]),
            hwid: "loadtest-hwid-0000000001".into(),
            public_key: pk,
        };
        let out = engine::run(&target, &flow, &load(60), Arc::new(Live::default()))
            .await
            .unwrap();
        assert!(
            out.stats.errors.is_empty(),
            "{version:?}: {:?}",
            out.stats.errors
        );
        for step in ["init", "license", "check"] {
            assert!(
                out.stats.steps.get(step).is_some_and(|h| h.len() >= 15),
                "{version:?} {step}: {:?}",
                out.stats.steps.keys().collect::<Vec<_>>()
            );
        }
    }
    v.shutdown().await;
}

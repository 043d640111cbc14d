//! Short real runs of the load generator against a validator on real PostgreSQL: the native
//! scenario, both KeyAuth flows and Keygen's validate-key, every answer verified, no errors.

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
        origin: Default::default(),
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
        threads: Some(2),
        stop: None,
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
                repeat: keyward_loadtest::scenario::Repeat::Flow,
                verify_every: 1,
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
        let flow_of = |repeat| Scenario::KeyAuth {
            version,
            name: "bench".into(),
            owner: account.public_id.clone(),
            secret: app.secret.clone(),
            keys: Arc::new(vec![key.clone()]),
            hwid: "loadtest-hwid-0000000001".into(),
            public_key: pk.clone(),
            repeat,
            verify_every: 1,
        };
        let flow = flow_of(keyward_loadtest::scenario::Repeat::Flow);
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
        // Every answer's signature was checked.
        assert_eq!(out.stats.verified, out.stats.total().len(), "{version:?}");

        // The request wrk repeats in the cross-checks: a `check` on a live session, which the
        // validator keeps answering.
        let check = flow_of(keyward_loadtest::scenario::Repeat::Check);
        let url = format!("http://{}", v.addr());
        let request = keyward_loadtest::wrk::steady_request(&url, &check, "check")
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&request).contains("type=check&sessionid="));
        let mut conn = keyward_loadtest::http1::Connection::open(
            &v.addr().to_string(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        for _ in 0..3 {
            let answer = conn.exchange(&request).await.unwrap();
            assert_eq!(answer.status, 200);
            let body: serde_json::Value = serde_json::from_slice(answer.body).unwrap();
            assert_eq!(body["success"], true, "{body}");
        }
    }
    v.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_seeds_a_tenant_and_the_probe_sees_every_change_on_every_validator() {
    let db = TestDb::new().await;
    let cp = keyward_control_plane::start(keyward_control_plane::Config::new(&db.url))
        .await
        .unwrap();
    keyward_control_plane::create_admin(&db.url, "admin", "load-test-pw")
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("kw-lt-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cp_url = format!("http://{}", cp.addr());
    let via_api = dir.join("api.txt");
    let setup = keyward_loadtest::setup::Setup {
        control_plane: &cp_url,
        api_key: None,
        username: Some("admin"),
        password: Some("load-test-pw"),
        app_name: "lt",
        licenses: 600,
        keys_file: &via_api,
        database_url: None,
        hwid_lock: false,
        activated: false,
    };
    let tenant = keyward_loadtest::setup::run(&setup).await.unwrap();
    let api_keys = std::fs::read_to_string(&via_api).unwrap();
    assert_eq!(api_keys.lines().count(), 600);
    // The same app again, plus 2500 inserted by PostgreSQL.
    let bulk = dir.join("bulk.txt");
    let tenant2 = keyward_loadtest::setup::run(&keyward_loadtest::setup::Setup {
        licenses: 2500,
        keys_file: &bulk,
        database_url: Some(&db.url),
        activated: true,
        ..setup
    })
    .await
    .unwrap();
    assert_eq!(tenant["app_id"], tenant2["app_id"]);
    let c = db.client().await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM licenses", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3100);
    // The bulk path leaves the table vacuumed and analysed: the planner knows its size.
    let reltuples: f32 = c
        .query_one(
            "SELECT reltuples FROM pg_class WHERE relname = 'licenses'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reltuples, 3100.0);

    let mut validators = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..2 {
        let mut cfg = keyward_validator::Config::new(&db.url);
        cfg.rate_limit_per_sec = 0;
        let v = keyward_validator::start(cfg).await.unwrap();
        v.wait_ready(Duration::from_secs(10)).await.unwrap();
        urls.push(format!("http://{}", v.addr()));
        validators.push(v);
    }
    // Every bulk key validates (the last one, say).
    let last = std::fs::read_to_string(&bulk)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let app = tenant["app_id"].as_str().unwrap().to_string();
    let scenario = Scenario::Validate {
        app: app.clone(),
        keys: Arc::new(vec![last.clone()]),
        hwid: None,
    };
    let target = Target::parse(&urls[0]).unwrap();
    let cfg = LoadConfig {
        connections: 1,
        duration: Duration::from_secs(10),
        max_requests: Some(1),
        mode: Mode::Closed,
        timeout: Duration::from_secs(5),
        threads: None,
        stop: None,
    };
    let out = engine::run(&target, &scenario, &cfg, Arc::new(Live::default()))
        .await
        .unwrap();
    assert!(out.stats.errors.is_empty());

    // An API key for the probe.
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{cp_url}/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": "load-test-pw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: serde_json::Value = http
        .post(format!("{cp_url}/v1/api-keys"))
        .bearer_auth(login["token"].as_str().unwrap())
        .json(&serde_json::json!({"name": "probe", "scopes": ["*"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let probe = keyward_loadtest::probe::Probe {
        control_plane: &cp_url,
        api_key: key["key"].as_str().unwrap(),
        app: &app,
        key: api_keys.lines().next().unwrap(),
        validators: &urls,
        rounds: 3,
        background: 2,
        background_keys: Arc::new(api_keys.lines().map(str::to_string).collect()),
        deadline: Duration::from_secs(5),
    };
    let report = keyward_loadtest::probe::run(&probe).await.unwrap();
    for v in report["validators"].as_array().unwrap() {
        assert_eq!(v["changes"], 6, "{report}");
        assert_eq!(v["missed"], 0, "{report}");
        assert!(v["max_ms"].as_f64().unwrap() < 5000.0);
    }
    println!("{report}");
    for v in validators {
        v.shutdown().await;
    }
    cp.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The suite's Keygen row on what it runs on: licenses made by `setup` through the
/// control-plane (their app's default policy), validated by key with no `Authorization`, every
/// answer's `Keygen-Signature` verified against the deployment's public key and `VALID`; and the
/// request the wrk cross-check repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_validate_key_runs_clean_on_setup_licenses() {
    let db = TestDb::new().await;
    let cp = keyward_control_plane::start(keyward_control_plane::Config::new(&db.url))
        .await
        .unwrap();
    keyward_control_plane::create_admin(&db.url, "admin", "load-test-pw")
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("kw-lt-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cp_url = format!("http://{}", cp.addr());
    let keys_file = dir.join("keys.txt");
    keyward_loadtest::setup::run(&keyward_loadtest::setup::Setup {
        control_plane: &cp_url,
        api_key: None,
        username: Some("admin"),
        password: Some("load-test-pw"),
        app_name: "bench",
        licenses: 8,
        keys_file: &keys_file,
        database_url: None,
        hwid_lock: false,
        activated: false,
    })
    .await
    .unwrap();
    let keys: Vec<String> = std::fs::read_to_string(&keys_file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let c = db.client().await;
    // Their policy is the app's default, which lets the key authenticate (validate-key needs
    // no `Authorization` at all).
    let strategies: Vec<(bool, String)> = c
        .query(
            "SELECT DISTINCT p.is_default, p.authentication_strategy::text FROM licenses l
             JOIN policies p ON p.id = l.policy_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(strategies, [(true, "license".to_string())]);

    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{cp_url}/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": "load-test-pw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signing: serde_json::Value = http
        .get(format!("{cp_url}/v1/signing-keys"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public_key = signing["primary"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();

    let mut cfg = keyward_validator::Config::new(&db.url);
    cfg.rate_limit_per_sec = 0;
    let v = keyward_validator::start(cfg).await.unwrap();
    v.wait_ready(Duration::from_secs(10)).await.unwrap();
    let url = format!("http://{}", v.addr());
    let target = Target::parse(&url).unwrap();
    let scenario = |public_key: String, verify_every| Scenario::KeygenValidateKey {
        keys: Arc::new(keys.clone()),
        public_key,
        verify_every,
    };
    let load = LoadConfig {
        connections: 4,
        duration: Duration::from_secs(60),
        max_requests: Some(400),
        mode: Mode::Closed,
        timeout: Duration::from_secs(10),
        threads: Some(2),
        stop: None,
    };
    let every = scenario(public_key.clone(), 1);
    let out = engine::run(&target, &every, &load, Arc::new(Live::default()))
        .await
        .unwrap();
    assert!(out.stats.errors.is_empty(), "{:?}", out.stats.errors);
    assert_eq!(out.stats.steps["validate-key"].len(), 400);
    assert_eq!(out.stats.verified, 400);

    // Sampled: one in 16 verified.
    let sampled = scenario(public_key.clone(), 16);
    let out = engine::run(&target, &sampled, &load, Arc::new(Live::default()))
        .await
        .unwrap();
    assert!(out.stats.errors.is_empty(), "{:?}", out.stats.errors);
    assert!(
        (20..=28).contains(&out.stats.verified),
        "{}",
        out.stats.verified
    );

    // Another deployment's key: every verified answer is a signature error.
    let other = keyward_shared::signing::Ed25519Signer::generate().public_key_hex();
    let out = engine::run(
        &target,
        &scenario(other, 1),
        &LoadConfig {
            max_requests: Some(20),
            ..load
        },
        Arc::new(Live::default()),
    )
    .await
    .unwrap();
    assert_eq!(out.stats.errors.get("signature"), Some(&20));

    // wrk's request: the validate-key POST itself, which the validator answers VALID.
    let one = Scenario::KeygenValidateKey {
        keys: Arc::new(vec![keys[0].clone()]),
        public_key,
        verify_every: 1,
    };
    let request = keyward_loadtest::wrk::steady_request(&url, &one, "validate-key")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&request);
    assert!(
        text.starts_with("POST /keygen/v1/licenses/actions/validate-key HTTP/1.1\r\n")
            && text.ends_with(&format!(r#"{{"meta":{{"key":"{}"}}}}"#, keys[0])),
        "{text}"
    );
    let script = keyward_loadtest::wrk::script(&request).unwrap();
    assert!(
        script.contains("wrk.headers[\"content-type\"] = \"application/vnd.api+json\""),
        "{script}"
    );
    let mut conn =
        keyward_loadtest::http1::Connection::open(&v.addr().to_string(), Duration::from_secs(5))
            .await
            .unwrap();
    let answer = conn.exchange(&request).await.unwrap();
    assert_eq!(answer.status, 200);
    let body: serde_json::Value = serde_json::from_slice(answer.body).unwrap();
    assert_eq!(body["meta"]["code"], "VALID", "{body}");
    v.shutdown().await;
    cp.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

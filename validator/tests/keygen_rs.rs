//! Acceptance: the real, unmodified crates.io client `keygen-rs` 0.14.0 (`ahonn/keygen-rs`, MIT)
//! against the validator's Keygen facade. It is configured only with the base URL, the account,
//! the product, the license key and our public key (which makes it verify every answer's
//! signature itself). `tests/keygen_rs/` is a small Cargo project of its own that drives it
//! through its public API and prints one JSON line per step. Real PostgreSQL, real HTTP, real
//! keygen-rs.
//!
//! keygen-rs is not a dependency of the workspace (it would bring its HTTP stack into every
//! build): the project is built here, once per target dir, with `--locked` against its committed
//! Cargo.lock. The first build downloads from crates.io; a registry that cannot be reached fails
//! these tests rather than skipping them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::keygen_clients::{blocking, client_license, Steps};
use common::*;
use keyward_shared::model::License;
use keyward_shared::policy::DEFAULT_HEARTBEAT_SECS;
use keyward_shared::signing::Ed25519Signer;
use keyward_shared::store::{licenses, machines, signing_keys};
use keyward_shared::testing::TestDb;
use keyward_shared::write::WriteTx;
use keyward_validator::Running;
use serde_json::{json, Value};

/// The client under test, as `tests/keygen_rs/Cargo.toml` pins it.
const KEYGEN_RS: &str = "0.14.0";
const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keygen_rs/Cargo.toml");
const PROGRAM: &str = "keyward-keygen-rs-acceptance";

/// The built program. Built once per test process; cargo's lock on the target dir orders
/// concurrent test processes, and every build after the first is a no-op.
fn program() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build).clone()
}

fn build() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("keygen_rs");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .args([
            "build",
            "--locked",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(MANIFEST)
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{cargo} build` for {MANIFEST}: {e}"));
    assert!(
        out.status.success(),
        "`{cargo} build --locked --manifest-path {MANIFEST}` failed ({}): the acceptance test \
         needs the real keygen-rs {KEYGEN_RS} from crates.io, so the registry must be reachable \
         the first time.\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
    );
    // What cargo built and linked (fresh units are reported too): the pinned keygen-rs, and our
    // program's executable.
    let artifacts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .collect();
    let keygen_rs: Vec<&str> = artifacts
        .iter()
        .filter(|a| a["target"]["name"] == "keygen_rs")
        .filter_map(|a| a["package_id"].as_str())
        .collect();
    assert!(
        keygen_rs.len() == 1 && keygen_rs[0].ends_with(&format!("keygen-rs@{KEYGEN_RS}")),
        "expected keygen-rs {KEYGEN_RS} from crates.io, cargo built {keygen_rs:?}"
    );
    assert!(
        keygen_rs[0].starts_with("registry+https://github.com/rust-lang/crates.io-index"),
        "keygen-rs must come unmodified from crates.io, not {}",
        keygen_rs[0]
    );
    let exe = artifacts
        .iter()
        .filter(|a| a["target"]["name"] == PROGRAM)
        .find_map(|a| a["executable"].as_str())
        .unwrap_or_else(|| panic!("cargo reported no executable {PROGRAM}"));
    PathBuf::from(exe)
}

/// What the program needs to reach one validator as one license's holder.
struct Client {
    api_url: String,
    api_prefix: Option<String>,
    public_key: String,
    account: String,
    product: String,
}

impl Client {
    async fn new(c: &mut tokio_postgres::Client, v: &Running, t: &Tenant) -> Client {
        let public_key = signing_keys::ensure_primary(c, None)
            .await
            .expect("primary signing key")
            .public_key;
        Client {
            api_url: format!("http://{}/keygen", v.addr()),
            api_prefix: None,
            public_key,
            account: t.actor.account_id.to_string(),
            product: t.app.id.to_string(),
        }
    }

    /// Runs one scenario of the program to its end.
    async fn run(&self, scenario: &str, key: &str, fingerprint: &str) -> Steps {
        let program = blocking(program).await;
        let mut cmd = Command::new(&program);
        cmd
            // The validator is on loopback; a proxy from the environment must not get in between.
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env("KEYGEN_API_URL", &self.api_url)
            .env("KEYGEN_PUBLIC_KEY", &self.public_key)
            .env("KEYGEN_LICENSE_KEY", key)
            .env("KEYGEN_ACCOUNT", &self.account)
            .env("KEYGEN_PRODUCT", &self.product)
            .env("KEYGEN_FINGERPRINT", fingerprint)
            .env("KEYGEN_SCENARIO", scenario)
            .env_remove("KEYGEN_API_PREFIX");
        if let Some(prefix) = &self.api_prefix {
            cmd.env("KEYGEN_API_PREFIX", prefix);
        }
        let out = blocking(move || cmd.output())
            .await
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        Steps::from_output("keygen-rs", scenario, &out)
    }
}

/// The program's steps ran in this order after its `config` line (which names the keygen-rs
/// version it was built with), then `done`.
fn assert_completed(run: &Steps, expected: &[&str]) {
    let mut all = vec!["config"];
    all.extend_from_slice(expected);
    run.assert_completed(&all);
    let config = run.step("config").expect("config line");
    assert_eq!(config["version"], KEYGEN_RS, "{config}");
}

const ACTIVATE: &[&str] = &[
    "service-ping",
    "validate-unactivated",
    "activate",
    "activate-again",
    "activate-another",
    "machine",
    "machines",
    "validate-activated",
    "validate-by-id",
    "ping",
    "license-checkout",
    "license-checkout-encrypted",
    "license-checkout-certificate",
    "machine-checkout",
];

const DEACTIVATE: &[&str] = &[
    "validate-activated",
    "machine",
    "deactivate",
    "validate-deactivated",
    "machine-gone",
    "deactivate-again",
];

/// A validation line: the verdict, and the license and policy it names.
fn assert_verdict(run: &Steps, step: &str, l: &License, code: &str, detail: &str) {
    let Some(s) = run.step(step) else { return };
    assert_eq!(
        (&s["code"], &s["valid"], &s["detail"]),
        (&json!(code), &json!(code == "VALID"), &json!(detail)),
        "{step}: {s}"
    );
    assert_eq!(s["license"], l.id.to_string(), "{step}: {s}");
    assert_eq!(s["policy"], l.policy_id.to_string(), "{step}: {s}");
}

/// The activation lifecycle through keygen-rs, then the machine as the store holds it.
async fn activate(
    c: &tokio_postgres::Client,
    client: &Client,
    t: &Tenant,
    l: &License,
    fingerprint: &str,
) {
    let run = client.run("activate", &l.key, fingerprint).await;
    // Each outcome the program reported is checked before the run's completion, so a failure
    // still checks, and reports, everything before it.
    if let Some(s) = run.step("service-ping") {
        assert_eq!(s["api_version"], "1.8", "{s}");
    }
    assert_verdict(
        &run,
        "validate-unactivated",
        l,
        "NO_MACHINE",
        "fingerprint is not activated (has no associated machine)",
    );
    if let Some(s) = run.step("validate-unactivated") {
        assert_eq!(s["scope"]["fingerprint"], fingerprint, "{s}");
        assert_eq!(s["scope"]["product"], t.app.id.to_string(), "{s}");
    }
    let activated = run.step("activate").cloned();
    if let Some(s) = &activated {
        assert_eq!(s["fingerprint"], fingerprint, "{s}");
        assert_eq!(s["license"], l.id.to_string(), "{s}");
        assert_eq!(
            (&s["heartbeat_status"], &s["require_heartbeat"]),
            (&json!("NOT_STARTED"), &json!(false)),
            "{s}"
        );
    }
    for (step, code) in [
        ("activate-again", "FINGERPRINT_TAKEN"),
        ("activate-another", "MACHINE_LIMIT_EXCEEDED"),
    ] {
        if let Some(s) = run.step(step) {
            assert_eq!(
                (&s["status"], &s["code"]),
                (&json!(422), &json!(code)),
                "{s}"
            );
        }
    }
    if let Some(s) = run.step("activate-another") {
        assert_eq!(
            s["detail"],
            "machine count has exceeded maximum allowed for license (1)"
        );
    }
    let machine_id = activated.as_ref().map(|s| s["id"].clone());
    if let Some(s) = run.step("machine") {
        assert_eq!(Some(&s["id"]), machine_id.as_ref(), "{s}");
    }
    if let Some(s) = run.step("machines") {
        assert_eq!(Some(&s["ids"]), machine_id.map(|id| json!([id])).as_ref());
    }
    for step in ["validate-activated", "validate-by-id"] {
        assert_verdict(&run, step, l, "VALID", "is valid");
    }
    if let Some(s) = run.step("ping") {
        assert_eq!(
            (&s["heartbeat_status"], &s["require_heartbeat"]),
            (&json!("ALIVE"), &json!(true)),
            "{s}"
        );
        assert_eq!(s["heartbeat_duration"], DEFAULT_HEARTBEAT_SECS);
    }
    for (step, ttl) in [
        // Keygen's default TTL: one month.
        ("license-checkout", 2_629_746),
        ("license-checkout-encrypted", 3600),
        ("license-checkout-certificate", 7200),
        ("machine-checkout", 2_629_746),
    ] {
        if let Some(s) = run.step(step) {
            assert_eq!(
                (&s["ttl"], &s["license"]),
                (&json!(ttl), &json!(l.id)),
                "{s}"
            );
        }
    }
    assert_completed(&run, ACTIVATE);

    // The store holds the machine keygen-rs described, as keygen-rs reported it.
    let activated = activated.expect("activate line");
    assert_eq!(machine_count(c, l.id).await, 1);
    let stored = machines::list_for_license(c, t.actor.account_id, l.id)
        .await
        .expect("machines");
    let m = &stored[0];
    assert_eq!(m.id.to_string(), activated["id"]);
    assert_eq!(m.fingerprint, fingerprint);
    assert_eq!(m.bound_by, "api");
    let platform = format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH);
    assert_eq!(m.platform.as_deref(), Some(platform.as_str()));
    assert_eq!(json!(m.hostname), activated["hostname"]);
    assert_eq!(json!(m.cores), activated["cores"]);
    assert!(m.last_heartbeat_at.is_some(), "the ping was not recorded");
    assert_eq!(
        run.step("machine-checkout").map(|s| &s["machine"]),
        Some(&activated["id"])
    );
}

/// The machine found by fingerprint and deactivated through keygen-rs, then gone from the store.
async fn deactivate(c: &tokio_postgres::Client, client: &Client, l: &License, fingerprint: &str) {
    let machine = machines::list_for_license(c, l.account_id, l.id)
        .await
        .expect("machines")
        .into_iter()
        .find(|m| m.fingerprint == fingerprint)
        .expect("the activated machine");
    let run = client.run("deactivate", &l.key, fingerprint).await;
    assert_verdict(&run, "validate-activated", l, "VALID", "is valid");
    for step in ["machine", "deactivate"] {
        if let Some(s) = run.step(step) {
            let id = if step == "machine" {
                &s["id"]
            } else {
                &s["machine"]
            };
            assert_eq!(id, &json!(machine.id), "{step}: {s}");
        }
    }
    assert_verdict(
        &run,
        "validate-deactivated",
        l,
        "NO_MACHINE",
        "fingerprint is not activated (has no associated machine)",
    );
    for step in ["machine-gone", "deactivate-again"] {
        if let Some(s) = run.step(step) {
            assert_eq!(
                (&s["status"], &s["code"], &s["kind"]),
                (&json!(404), &json!("NOT_FOUND"), &json!("NotFound")),
                "{step}: {s}"
            );
        }
    }
    assert_completed(&run, DEACTIVATE);
    assert_eq!(machine_count(c, l.id).await, 0);
}

#[tokio::test]
async fn keygen_rs_activates_validates_checks_out_and_deactivates() {
    blocking(program).await;
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = client_license(&mut c, &t).await;
    let v = validator(&db.url, |_| {}).await;
    let client = Client::new(&mut c, &v, &t).await;

    let fingerprint = "keygen-rs-fp-1";
    activate(&c, &client, &t, &l, fingerprint).await;
    deactivate(&c, &client, &l, fingerprint).await;
    v.shutdown().await;
}

/// keygen-rs pushes its prefix as one path segment, so `/v1/accounts/{id}/…` is reached with the
/// base `…/keygen/v1/accounts` and the account id as the prefix (spec §1): the same lifecycle
/// under the account's path.
#[tokio::test]
async fn keygen_rs_works_under_an_account_path() {
    blocking(program).await;
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = client_license(&mut c, &t).await;
    let v = validator(&db.url, |_| {}).await;
    let mut client = Client::new(&mut c, &v, &t).await;
    client.api_url = format!("http://{}/keygen/v1/accounts", v.addr());
    client.api_prefix = Some(t.actor.account_id.to_string());

    let fingerprint = "keygen-rs-fp-2";
    activate(&c, &client, &t, &l, fingerprint).await;
    deactivate(&c, &client, &l, fingerprint).await;
    v.shutdown().await;
}

/// The refusals keygen-rs maps to typed API errors, each over a signed answer it verified, and a
/// foreign public key, which must make it refuse the very first answer.
#[tokio::test]
async fn keygen_rs_refuses_bad_keys_suspensions_and_foreign_signatures() {
    blocking(program).await;
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = client_license(&mut c, &t).await;
    let banned = client_license(&mut c, &t).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone()).await.unwrap();
    licenses::ban(&mut w, banned.id, Some("chargeback"))
        .await
        .unwrap();
    w.commit().await.unwrap();
    let v = validator(&db.url, |_| {}).await;
    let mut client = Client::new(&mut c, &v, &t).await;
    let fingerprint = "keygen-rs-fp-3";

    for (scenario, key, status, code, kind) in [
        (
            "unknown-key",
            "NO-SUCH-KEY",
            401,
            "LICENSE_INVALID",
            "LicenseKeyInvalid",
        ),
        (
            "suspended",
            banned.key.as_str(),
            403,
            "LICENSE_SUSPENDED",
            "LicenseSuspended",
        ),
    ] {
        let run = client.run(scenario, key, fingerprint).await;
        assert_completed(&run, &["validate"]);
        let s = run.step("validate").unwrap();
        assert_eq!(
            (&s["error"], &s["status"], &s["code"], &s["kind"]),
            (&json!("Api"), &json!(status), &json!(code), &json!(kind)),
            "{scenario}: {s}"
        );
    }

    client.public_key = Ed25519Signer::generate().public_key_hex();
    let run = client.run("foreign-public-key", &l.key, fingerprint).await;
    assert_completed(&run, &["validate"]);
    let s = run.step("validate").unwrap();
    assert_eq!(s["error"], "KeygenSignatureInvalid", "{s}");
    assert_eq!(
        s["message"],
        "Keygen signature validation failed: Signature verification failed"
    );
    v.shutdown().await;
}

//! Acceptance: the real, unmodified PyPI package `keygen-sdk` 1.0.0 (module `keygen`, a port of
//! keygen-go) against the validator's Keygen facade. It is configured only with the base URL,
//! our public key (which makes it verify every answer's signature itself), the license key,
//! the account and the product. `tests/keygen_sdk/run.py` drives it through its public API and
//! prints one JSON line per step. Real PostgreSQL, real HTTP, real Python.
//!
//! The SDK is installed with pip under the cargo target dir, once; a registry that cannot be
//! reached fails these tests rather than skipping them.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::keygen_clients::{blocking, client_license, Steps};
use common::*;
use keyward_shared::model::License;
use keyward_shared::policy::DEFAULT_HEARTBEAT_SECS;
use keyward_shared::signing::Ed25519Signer;
use keyward_shared::store::{licenses, signing_keys};
use keyward_shared::testing::TestDb;
use keyward_shared::write::WriteTx;
use keyward_validator::Running;
use serde_json::json;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keygen_sdk/run.py");

/// The directory holding keygen-sdk and its dependencies (`requests`, `cryptography`), for
/// `PYTHONPATH`. Installed once per target dir: each test process installs into a directory of
/// its own and renames it into place, so concurrent test processes never see half an install.
fn sdk_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(install_sdk).clone()
}

fn install_sdk() -> PathBuf {
    common::pip::install(&common::pip::Package {
        spec: "keygen-sdk==1.0.0",
        dir: "keygen-sdk-1.0.0",
        dist_info: "keygen_sdk-1.0.0.dist-info",
        module: "keygen/client.py",
    })
}

/// What run.py needs to reach one validator as one license's holder.
struct Sdk {
    api_url: String,
    public_key: String,
    account: String,
    product: String,
    api_prefix: Option<String>,
}

impl Sdk {
    async fn new(c: &mut tokio_postgres::Client, v: &Running, t: &Tenant) -> Sdk {
        let public_key = signing_keys::ensure_primary(c, None)
            .await
            .expect("primary signing key")
            .public_key;
        Sdk {
            api_url: format!("http://{}/keygen", v.addr()),
            public_key,
            account: t.actor.account_id.to_string(),
            product: t.app.id.to_string(),
            api_prefix: None,
        }
    }

    /// Runs one scenario of run.py to its end.
    async fn run(&self, scenario: &str, key: &str, fingerprint: &str) -> Steps {
        let sdk = blocking(sdk_dir).await;
        let mut cmd = Command::new("python3");
        cmd.arg(SCRIPT)
            .env("PYTHONPATH", sdk)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            // The validator is on loopback; a proxy from the environment must not get in between.
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env("KEYGEN_API_URL", &self.api_url)
            .env("KEYGEN_PUBLIC_KEY", &self.public_key)
            .env("KEYGEN_LICENSE_KEY", key)
            .env("KEYGEN_ACCOUNT", &self.account)
            .env("KEYGEN_PRODUCT", &self.product)
            .env("KEYGEN_FINGERPRINT", fingerprint)
            .env("KEYGEN_SCENARIO", scenario);
        if let Some(prefix) = &self.api_prefix {
            cmd.env("KEYGEN_API_PREFIX", prefix);
        }
        let out = blocking(move || cmd.output())
            .await
            .unwrap_or_else(|e| panic!("cannot run python3 {SCRIPT}: {e}"));
        Steps::from_output("keygen-sdk", scenario, &out)
    }
}

/// The HTTP exchanges of one step: `METHOD target status`.
fn calls(steps: &Steps, name: &str) -> Vec<String> {
    steps
        .step(name)
        .and_then(|l| l["calls"].as_array())
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{} {} {}",
                c[0].as_str().unwrap_or("?"),
                c[1].as_str().unwrap_or("?"),
                c[2]
            )
        })
        .collect()
}

const LIFECYCLE: &[&str] = &[
    "sdk",
    "me",
    "validate-unactivated",
    "activate",
    "activate-again",
    "activate-another",
    "machine",
    "validate-activated",
    "ping",
    "license-checkout",
    "license-checkout-plain",
    "machine-checkout",
    "deactivate",
    "validate-deactivated",
    "machine-gone",
];

/// Checks the outcomes of the lifecycle's steps that ran, then that it ran to its end (so a
/// failure still checks, and reports, everything before it).
fn assert_lifecycle(steps: &Steps, prefix: &str, l: &License, fingerprint: &str) {
    let id = l.id.to_string();
    if let Some(s) = steps.step("me") {
        assert_eq!(
            (&s["type"], &s["id"]),
            (&json!("licenses"), &json!(id)),
            "{s}"
        );
        assert_eq!(s["policy"], l.policy_id.to_string());
        assert_eq!(calls(steps, "me"), [format!("GET {prefix}/me 200")]);
    }
    for name in ["validate-unactivated", "validate-deactivated"] {
        if let Some(s) = steps.step(name) {
            assert_eq!(s["outcome"], "LicenseNotActivatedError", "{s}");
            assert_eq!(
                (&s["code"], &s["valid"]),
                (&json!("NO_MACHINE"), &json!(false))
            );
            assert_eq!(
                s["detail"],
                "fingerprint is not activated (has no associated machine)"
            );
            assert_eq!(s["scope"]["fingerprint"], fingerprint);
            assert_eq!(
                calls(steps, name),
                [
                    format!("GET {prefix}/me 200"),
                    format!("POST {prefix}/licenses/{id}/actions/validate 200"),
                ]
            );
        }
    }
    let machine = steps.step("activate").map(|s| {
        assert_eq!(s["fingerprint"], fingerprint);
        assert_eq!(s["license"], id);
        assert_eq!(s["heartbeat_status"], "NOT_STARTED");
        assert_eq!(
            calls(steps, "activate"),
            [format!("POST {prefix}/machines 201")]
        );
        s["id"].as_str().expect("machine id").to_string()
    });
    if let Some(s) = steps.step("activate-again") {
        assert_eq!(s["status"], 422, "{s}");
    }
    if let Some(s) = steps.step("activate-another") {
        assert_eq!(s["status"], 422, "{s}");
    }
    if let Some(s) = steps.step("machine") {
        assert_eq!(s["id"], json!(machine));
        assert_eq!(
            calls(steps, "machine"),
            [format!("GET {prefix}/machines/{fingerprint} 200")]
        );
    }
    if let Some(s) = steps.step("validate-activated") {
        assert_eq!(
            (&s["code"], &s["valid"]),
            (&json!("VALID"), &json!(true)),
            "{s}"
        );
    }
    if let Some(s) = steps.step("ping") {
        assert_eq!(s["heartbeat_status"], "ALIVE", "{s}");
        assert_eq!(s["heartbeat_duration"], DEFAULT_HEARTBEAT_SECS);
        let machine = machine.as_deref().unwrap_or("?");
        assert_eq!(
            calls(steps, "ping"),
            [format!("POST {prefix}/machines/{machine}/actions/ping 200")]
        );
    }
    if let Some(s) = steps.step("license-checkout") {
        // Keygen's default TTL: one month.
        assert_eq!(s["ttl"], 2_629_746, "{s}");
        assert_eq!(
            calls(steps, "license-checkout"),
            [format!(
                "POST {prefix}/licenses/{id}/actions/check-out\
                 ?algorithm=aes-256-gcm%2Bed25519&encrypt=true&include=entitlements 200"
            )]
        );
    }
    if let Some(s) = steps.step("machine-checkout") {
        assert_eq!(s["license"], id, "{s}");
    }
    if steps.step("deactivate").is_some() {
        let machine = machine.as_deref().unwrap_or("?");
        assert_eq!(
            calls(steps, "deactivate"),
            [format!("DELETE {prefix}/machines/{machine} 204")]
        );
    }
    if let Some(s) = steps.step("machine-gone") {
        assert_eq!(
            (&s["status"], &s["code"]),
            (&json!(404), &json!("NOT_FOUND")),
            "{s}"
        );
    }
    steps.assert_completed(LIFECYCLE);
}

#[tokio::test]
async fn keygen_sdk_activates_validates_checks_out_and_deactivates() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = client_license(&mut c, &t).await;
    let v = validator(&db.url, |_| {}).await;
    let sdk = Sdk::new(&mut c, &v, &t).await;

    let fingerprint = "keygen-sdk-fp-1";
    let steps = sdk.run("lifecycle", &l.key, fingerprint).await;
    assert_lifecycle(&steps, "/keygen/v1", &l, fingerprint);
    v.shutdown().await;
}

/// keygen-sdk reaches `/v1/accounts/{id}/…` only through `api_prefix` (spec §1): the same
/// lifecycle under the account's path.
#[tokio::test]
async fn keygen_sdk_works_under_an_account_path() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = client_license(&mut c, &t).await;
    let v = validator(&db.url, |_| {}).await;
    let mut sdk = Sdk::new(&mut c, &v, &t).await;
    let prefix = format!("v1/accounts/{}", t.actor.account_id);
    sdk.api_prefix = Some(prefix.clone());

    let fingerprint = "keygen-sdk-fp-2";
    let steps = sdk.run("lifecycle", &l.key, fingerprint).await;
    assert_lifecycle(&steps, &format!("/keygen/{prefix}"), &l, fingerprint);
    v.shutdown().await;
}

/// The refusals the SDK maps to typed errors, each over a signed answer it verified, and a
/// foreign public key, which must make it refuse the very first answer.
#[tokio::test]
async fn keygen_sdk_refuses_bad_keys_suspensions_and_foreign_signatures() {
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
    let mut sdk = Sdk::new(&mut c, &v, &t).await;
    let fingerprint = "keygen-sdk-fp-3";

    let steps = sdk.run("unknown-key", "NO-SUCH-KEY", fingerprint).await;
    steps.assert_completed(&["sdk", "validate"]);
    let s = steps.step("validate").unwrap();
    assert_eq!(s["outcome"], "LicenseKeyError", "{s}");
    assert_eq!(
        (&s["status"], &s["code"]),
        (&json!(401), &json!("LICENSE_INVALID"))
    );
    assert_eq!(calls(&steps, "validate"), ["GET /keygen/v1/me 401"]);

    let steps = sdk.run("suspended", &banned.key, fingerprint).await;
    steps.assert_completed(&["sdk", "validate"]);
    let s = steps.step("validate").unwrap();
    assert_eq!(s["outcome"], "LicenseSuspendedError", "{s}");
    assert_eq!(
        (&s["status"], &s["code"]),
        (&json!(403), &json!("LICENSE_SUSPENDED"))
    );

    sdk.public_key = Ed25519Signer::generate().public_key_hex();
    let steps = sdk.run("foreign-public-key", &l.key, fingerprint).await;
    steps.assert_completed(&["sdk", "validate"]);
    let s = steps.step("validate").unwrap();
    assert_eq!(s["outcome"], "ResponseSignatureInvalidError", "{s}");
    assert_eq!(calls(&steps, "validate"), ["GET /keygen/v1/me 200"]);
    v.shutdown().await;
}

//! The crates.io `keygen-rs` client, unmodified, driven through its public API against a Keygen
//! server (Keyward's validator under `/keygen`), for `validator/tests/keygen_rs.rs`.
//!
//! It is configured the way a shipped application configures it: `keygen_rs::config::set_config`
//! with the base URL, the account, the product, the license key and the server's public key
//! (hex of the raw Ed25519 key), nothing else. With a public key set, keygen-rs checks the
//! `Keygen-Signature` of every answer (over `Keygen-Date` and `Keygen-Digest`) before it looks
//! at the status, so every step below also proves the answer was signed as the client expects.
//! keygen-rs appends `api_prefix` as ONE path segment: a base `http://HOST:PORT/keygen` with the
//! default prefix `v1` calls `/keygen/v1/…`; `/keygen/v1/accounts/{id}/…` is reached with the
//! base `…/keygen/v1/accounts` and the prefix `{id}`.
//!
//! Inputs (environment): KEYGEN_API_URL, KEYGEN_PUBLIC_KEY, KEYGEN_LICENSE_KEY, KEYGEN_ACCOUNT,
//! KEYGEN_PRODUCT, KEYGEN_FINGERPRINT, KEYGEN_SCENARIO (activate | deactivate | unknown-key |
//! suspended | foreign-public-key) and, optionally, KEYGEN_API_PREFIX.
//! Output: one JSON line per step on stdout, `{"step", "ok": true, …outcome}`, then
//! `{"step": "done"}`. On the first unexpected result the line has `"ok": false`, a message goes
//! to stderr, and the exit status is 1 (2 for bad inputs).

use std::fmt::Debug;
use std::process::exit;
use std::time::{SystemTime, UNIX_EPOCH};

use keygen_rs::config::{self, KeygenConfig};
use keygen_rs::errors::{ApiErrorKind, Error, ErrorMeta};
use keygen_rs::license::{
    License, LicenseCheckoutOpts, LicenseFileAlgorithm, LicenseValidationRequest,
    LicenseValidationResult, LicenseValidationScope, UpdateField,
};
use keygen_rs::license_file::LicenseFile;
use keygen_rs::machine::{Machine, MachineCheckoutOpts};
use keygen_rs::machine_file::MachineFile;
use serde_json::{json, Value};

/// The version Cargo.toml pins (`=0.14.0`), reported in the first line.
const KEYGEN_RS: &str = "0.14.0";
/// The nonce sent with every validation; Keygen echoes it in `meta.nonce`.
const NONCE: i64 = 20_260_622;
/// Keygen's default check-out TTL (one month), used when the request names none.
const DEFAULT_TTL: i32 = 2_629_746;

struct Inputs {
    api_url: String,
    api_prefix: Option<String>,
    public_key: String,
    license_key: String,
    account: String,
    product: String,
    fingerprint: String,
    scenario: String,
}

fn emit(step: &str, outcome: Value) {
    let mut line = json!({"step": step, "ok": true});
    if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), outcome) {
        line.extend(fields);
    }
    println!("{line}");
}

/// What a keygen-rs error says: its variant, message, and the API error behind it, if any.
fn describe(err: &Error) -> Value {
    let debug = format!("{err:?}");
    let variant = debug
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default()
        .to_string();
    json!({
        "error": variant,
        "message": err.to_string(),
        "kind": format!("{:?}", err.api_error_kind()),
        "code": err.code(),
        "detail": err.detail(),
        "status": err.api_error().map(|d| d.status().as_u16()),
    })
}

fn fail(step: &str, message: &str, err: Option<&Error>) -> ! {
    let mut line = json!({"step": step, "ok": false, "message": message});
    if let (Some(line), Some(Value::Object(fields))) = (line.as_object_mut(), err.map(describe)) {
        line.extend(fields);
    }
    println!("{line}");
    eprintln!("keygen-rs {KEYGEN_RS}: step {step:?} failed: {message}");
    if let Some(err) = err {
        eprintln!("{err:?}");
    }
    exit(1)
}

/// The call's value, or the step fails with the error keygen-rs returned.
fn ok<T>(step: &str, result: Result<T, Error>) -> T {
    result.unwrap_or_else(|e| fail(step, &format!("unexpected error: {e}"), Some(&e)))
}

/// The error of a call that must be refused.
fn refused<T: Debug>(step: &str, result: Result<T, Error>, expected: &str) -> Error {
    match result {
        Ok(v) => fail(
            step,
            &format!("expected {expected}, but the call succeeded: {v:?}"),
            None,
        ),
        Err(e) => e,
    }
}

fn check(step: &str, condition: bool, message: impl FnOnce() -> String) {
    if !condition {
        fail(step, &message(), None);
    }
}

/// An API error keygen-rs mapped from a 4xx: its status, code and kind must be these.
fn api_refusal(step: &str, err: &Error, status: u16, code: &str, kind: ApiErrorKind) {
    let Some(document) = err.api_error() else {
        fail(step, &format!("expected an API error {code}"), Some(err));
    };
    check(step, document.status().as_u16() == status, || {
        format!("status {}, expected {status}", document.status())
    });
    check(
        step,
        err.code() == code && err.api_error_kind() == kind,
        || {
            format!(
                "code {} ({:?}), expected {code} ({kind:?})",
                err.code(),
                err.api_error_kind()
            )
        },
    );
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn request(inputs: &Inputs) -> LicenseValidationRequest {
    let mut request = LicenseValidationRequest::for_fingerprint(inputs.fingerprint.clone());
    request.nonce = Some(NONCE);
    request
}

/// `keygen_rs::validate` (validate-key) answers with the fingerprint's verdict; checks what
/// every validation answer carries and returns the license it names.
fn validation(
    step: &str,
    inputs: &Inputs,
    result: &LicenseValidationResult,
    code: &str,
    valid: bool,
) -> License {
    let meta = &result.meta;
    check(step, meta.code == code && meta.valid == valid, || {
        format!(
            "code {} valid {} ({}), expected {code} valid {valid}",
            meta.code, meta.valid, meta.detail
        )
    });
    check(step, meta.nonce == Some(NONCE), || {
        format!("nonce {:?}, sent {NONCE}", meta.nonce)
    });
    // keygen-rs fills the product scope from its configuration; Keyward echoes the scope.
    check(
        step,
        meta.scope.fingerprint.as_deref() == Some(&inputs.fingerprint)
            && meta.scope.product.as_deref() == Some(&inputs.product),
        || format!("meta.scope echoed as {:?}", meta.scope),
    );
    let Some(license) = result.license.clone() else {
        fail(step, "the validation names no license (data: null)", None);
    };
    check(step, license.key == inputs.license_key, || {
        "the validation names another license key".into()
    });
    check(
        step,
        license.policy.is_some() && license.product_id.as_deref() == Some(&inputs.product),
        || {
            format!(
                "policy {:?} product {:?}",
                license.policy, license.product_id
            )
        },
    );
    emit(
        step,
        json!({
            "outcome": "LicenseValidationResult",
            "code": meta.code,
            "valid": meta.valid,
            "detail": meta.detail,
            "nonce": meta.nonce,
            "scope": {"fingerprint": meta.scope.fingerprint, "product": meta.scope.product},
            "license": license.id,
            "policy": license.policy,
            "status": license.status,
        }),
    );
    license
}

/// The license through `keygen_rs::validate`, expected VALID for the fingerprint.
async fn validated(step: &str, inputs: &Inputs) -> License {
    let result = ok(step, keygen_rs::validate(&request(inputs)).await);
    validation(step, inputs, &result, "VALID", true)
}

fn machine_fields(m: &Machine) -> Value {
    json!({
        "id": m.id,
        "fingerprint": m.fingerprint,
        "license": m.license_id,
        "platform": m.platform,
        "hostname": m.hostname,
        "cores": m.cores,
        "heartbeat_status": m.heartbeat_status,
        "require_heartbeat": m.require_heartbeat,
        "heartbeat_duration": m.heartbeat_duration,
    })
}

/// The lifecycle up to an activated machine, left activated for the test to look at the store.
async fn activate(inputs: &Inputs) {
    let fp = inputs.fingerprint.as_str();

    let step = "service-ping";
    let info = ok(step, keygen_rs::service::get_service_info().await);
    check(step, info.api_version.as_deref() == Some("1.8"), || {
        format!("Keygen-Version {:?}, expected 1.8", info.api_version)
    });
    emit(
        step,
        json!({"outcome": "ServiceInfo", "api_version": info.api_version}),
    );

    let step = "validate-unactivated";
    let result = ok(step, keygen_rs::validate(&request(inputs)).await);
    let license = validation(step, inputs, &result, "NO_MACHINE", false);
    // A fingerprint's refusal is not a valid license to hand to the application.
    let err = refused(step, result.into_license(), "LicenseKeyInvalid");
    check(step, matches!(err, Error::LicenseKeyInvalid { .. }), || {
        format!("into_license() refused with {err:?}")
    });

    let step = "activate";
    let machine = ok(step, license.activate(fp, &[]).await);
    check(
        step,
        machine.fingerprint == fp && machine.license_id.as_deref() == Some(&license.id),
        || format!("activated {:?}", machine),
    );
    check(
        step,
        machine.heartbeat_status == "NOT_STARTED" && !machine.require_heartbeat,
        || {
            format!(
                "heartbeatStatus {} requireHeartbeat {} before any ping",
                machine.heartbeat_status, machine.require_heartbeat
            )
        },
    );
    let platform = format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH);
    check(step, machine.platform.as_deref() == Some(&platform), || {
        format!("platform {:?}, keygen-rs sent {platform}", machine.platform)
    });
    check(step, machine.cores.is_some_and(|c| c > 0), || {
        format!("cores {:?}", machine.cores)
    });
    emit(step, machine_fields(&machine));

    let step = "activate-again";
    let err = refused(step, license.activate(fp, &[]).await, "FINGERPRINT_TAKEN");
    api_refusal(
        step,
        &err,
        422,
        "FINGERPRINT_TAKEN",
        ApiErrorKind::FingerprintTaken,
    );
    emit(step, describe(&err));

    let step = "activate-another";
    let other = format!("{fp}-other");
    let err = refused(
        step,
        license.activate(&other, &[]).await,
        "MACHINE_LIMIT_EXCEEDED",
    );
    api_refusal(
        step,
        &err,
        422,
        "MACHINE_LIMIT_EXCEEDED",
        ApiErrorKind::MachineLimitExceeded,
    );
    emit(step, describe(&err));

    let step = "machine";
    let found = ok(step, license.machine(fp).await);
    check(step, found.id == machine.id, || {
        format!("machines/{fp} answered {:?}", found.id)
    });
    emit(step, machine_fields(&found));

    let step = "machines";
    let page = ok(step, license.machines(None).await);
    let ids: Vec<&str> = page.data.iter().map(|m| m.id.as_str()).collect();
    check(step, ids == [machine.id.as_str()], || {
        format!("licenses/{}/machines listed {ids:?}", license.id)
    });
    emit(
        step,
        json!({"outcome": "ResourcePage<Machine>", "ids": ids}),
    );

    validated("validate-activated", inputs).await;

    let step = "validate-by-id";
    let mut by_id = request(inputs);
    by_id.scope = LicenseValidationScope {
        fingerprint: Some(fp.to_string()),
        product: Some(inputs.product.clone()),
        ..Default::default()
    };
    let result = ok(step, license.validate(&by_id).await);
    validation(step, inputs, &result, "VALID", true);

    let step = "ping";
    let pinged = ok(step, machine.ping().await);
    check(
        step,
        pinged.heartbeat_status == "ALIVE" && pinged.require_heartbeat,
        || {
            format!(
                "heartbeatStatus {} requireHeartbeat {} after a ping",
                pinged.heartbeat_status, pinged.require_heartbeat
            )
        },
    );
    check(
        step,
        pinged.heartbeat_duration.is_some_and(|d| d > 0),
        || format!("heartbeatDuration {:?}", pinged.heartbeat_duration),
    );
    emit(step, machine_fields(&pinged));

    let now = now_secs();

    // The default options: no query at all, so keygen-rs asks for `check-out?` and checks the
    // signature over that bare `?`.
    let step = "license-checkout";
    let file = ok(step, license.checkout(&LicenseCheckoutOpts::new()).await);
    check(
        step,
        file.certificate
            .starts_with("-----BEGIN LICENSE FILE-----\n")
            && file.certificate.ends_with("-----END LICENSE FILE-----\n"),
        || "the certificate is not a LICENSE FILE".into(),
    );
    check(step, file.ttl == DEFAULT_TTL, || {
        format!("ttl {}, expected the default {DEFAULT_TTL}", file.ttl)
    });
    check(
        step,
        (file.expiry - file.issued).num_seconds() == i64::from(file.ttl)
            && (file.issued.timestamp() - now).abs() <= 300,
        || {
            format!(
                "issued {} expiry {} ttl {}",
                file.issued, file.expiry, file.ttl
            )
        },
    );
    ok(step, file.verify());
    let dataset = ok(
        step,
        file.verify_and_decode(&inputs.public_key, LicenseFileAlgorithm::Base64Ed25519),
    );
    check(
        step,
        dataset.license.id == license.id && dataset.license.key == inputs.license_key,
        || "the license file holds another license".into(),
    );
    check(
        step,
        dataset.ttl == file.ttl && dataset.expiry == file.expiry,
        || format!("dataset ttl {} expiry {}", dataset.ttl, dataset.expiry),
    );
    // Signed, not encrypted: keygen-rs refuses to decrypt it.
    let err = refused(
        step,
        file.decrypt(&inputs.license_key),
        "LicenseFileNotEncrypted",
    );
    check(step, matches!(err, Error::LicenseFileNotEncrypted), || {
        format!("decrypt() of a base64 file: {err:?}")
    });
    emit(
        step,
        json!({
            "outcome": "LicenseFile",
            "algorithm": "base64+ed25519",
            "verified": true,
            "decoded": true,
            "ttl": file.ttl,
            "license": dataset.license.id,
        }),
    );

    let step = "license-checkout-encrypted";
    let opts = LicenseCheckoutOpts {
        ttl: UpdateField::Set(3600),
        include: Some(vec!["entitlements".into()]),
        encrypt: Some(true),
        algorithm: None,
    };
    let file = ok(step, license.checkout(&opts).await);
    check(step, file.ttl == 3600, || {
        format!("ttl {}, asked 3600", file.ttl)
    });
    ok(step, file.verify());
    let dataset = ok(
        step,
        file.verify_and_decrypt(
            &inputs.public_key,
            &inputs.license_key,
            LicenseFileAlgorithm::Aes256GcmEd25519,
        ),
    );
    check(
        step,
        dataset.license.id == license.id && dataset.ttl == 3600,
        || format!("dataset license {} ttl {}", dataset.license.id, dataset.ttl),
    );
    // Another key opens nothing.
    let err = refused(step, file.decrypt("not-the-license-key"), "DecryptionError");
    check(step, matches!(err, Error::DecryptionError(_)), || {
        format!("decrypt() with a wrong key: {err:?}")
    });
    // The offline path: a stored certificate read back with the license key alone.
    let reread = ok(
        step,
        LicenseFile::from_cert(&inputs.license_key, &file.certificate),
    );
    check(step, reread.id == license.id && reread.ttl == 3600, || {
        format!("from_cert read license {} ttl {}", reread.id, reread.ttl)
    });
    emit(
        step,
        json!({
            "outcome": "LicenseFile",
            "algorithm": "aes-256-gcm+ed25519",
            "verified": true,
            "decrypted": true,
            "ttl": file.ttl,
            "license": dataset.license.id,
            "entitlements": dataset.offline_entitlements().map_or(0, Vec::len),
        }),
    );

    // GET check-out: the raw certificate (application/octet-stream), signed like the rest.
    let step = "license-checkout-certificate";
    let opts = LicenseCheckoutOpts::with_ttl(7200).with_encrypt(true);
    let certificate = ok(step, license.checkout_certificate(&opts).await);
    let file = ok(
        step,
        LicenseFile::from_cert(&inputs.license_key, &certificate),
    );
    ok(step, file.verify());
    check(step, file.id == license.id && file.ttl == 7200, || {
        format!("certificate of license {} ttl {}", file.id, file.ttl)
    });
    emit(
        step,
        json!({"outcome": "LicenseFile", "verified": true, "ttl": file.ttl, "license": file.id}),
    );

    // keygen-rs always asks for an encrypted machine file (`encrypt=1`), with
    // `include=license.entitlements` by default, keyed by license key + fingerprint.
    let step = "machine-checkout";
    let file = ok(step, pinged.checkout(&MachineCheckoutOpts::new()).await);
    check(
        step,
        file.certificate
            .starts_with("-----BEGIN MACHINE FILE-----\n"),
        || "the certificate is not a MACHINE FILE".into(),
    );
    check(step, file.ttl == DEFAULT_TTL, || {
        format!("ttl {}, expected the default {DEFAULT_TTL}", file.ttl)
    });
    ok(step, file.verify());
    let secret = format!("{}{fp}", inputs.license_key);
    let dataset = ok(step, file.decrypt(&secret));
    check(
        step,
        dataset.machine.id == machine.id && dataset.machine.fingerprint == fp,
        || format!("the machine file holds machine {:?}", dataset.machine.id),
    );
    check(
        step,
        dataset.license.id == license.id && dataset.license.key == inputs.license_key,
        || "the machine file does not include its license".into(),
    );
    // The license key alone does not open a machine file.
    let err = refused(step, file.decrypt(&inputs.license_key), "DecryptionError");
    check(step, matches!(err, Error::DecryptionError(_)), || {
        format!("decrypt() with the license key alone: {err:?}")
    });
    let reread = ok(step, MachineFile::from_cert(&secret, &file.certificate));
    check(step, reread.id == machine.id, || {
        format!("from_cert read machine {}", reread.id)
    });
    emit(
        step,
        json!({
            "outcome": "MachineFile",
            "verified": true,
            "decrypted": true,
            "ttl": file.ttl,
            "machine": dataset.machine.id,
            "license": dataset.license.id,
        }),
    );
}

/// The activated machine found by its fingerprint and deactivated; the fingerprint is then
/// refused again.
async fn deactivate(inputs: &Inputs) {
    let fp = inputs.fingerprint.as_str();
    let license = validated("validate-activated", inputs).await;

    let step = "machine";
    let machine = ok(step, license.machine(fp).await);
    emit(step, machine_fields(&machine));

    let step = "deactivate";
    ok(step, machine.deactivate().await);
    emit(step, json!({"outcome": "()", "machine": machine.id}));

    let step = "validate-deactivated";
    let result = ok(step, keygen_rs::validate(&request(inputs)).await);
    validation(step, inputs, &result, "NO_MACHINE", false);

    let step = "machine-gone";
    let err = refused(step, license.machine(fp).await, "NOT_FOUND");
    api_refusal(step, &err, 404, "NOT_FOUND", ApiErrorKind::NotFound);
    emit(step, describe(&err));

    let step = "deactivate-again";
    let err = refused(step, machine.deactivate().await, "NOT_FOUND");
    api_refusal(step, &err, 404, "NOT_FOUND", ApiErrorKind::NotFound);
    emit(step, describe(&err));
}

/// `keygen_rs::validate` refused with an API error keygen-rs maps to `kind`.
async fn refused_validation(inputs: &Inputs, status: u16, code: &str, kind: ApiErrorKind) {
    let step = "validate";
    let err = refused(step, keygen_rs::validate(&request(inputs)).await, code);
    api_refusal(step, &err, status, code, kind);
    emit(step, describe(&err));
}

/// Pinned to another public key: keygen-rs must refuse the very first answer, signed by ours.
async fn foreign_public_key(inputs: &Inputs) {
    let step = "validate";
    let err = refused(
        step,
        keygen_rs::validate(&request(inputs)).await,
        "KeygenSignatureInvalid",
    );
    check(
        step,
        matches!(&err, Error::KeygenSignatureInvalid { reason } if reason == "Signature verification failed"),
        || format!("expected KeygenSignatureInvalid, got {err:?}"),
    );
    emit(step, describe(&err));
}

fn inputs_from_env() -> Inputs {
    let mut missing = Vec::new();
    let mut var = |name: &str| match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => {
            missing.push(name.to_string());
            String::new()
        }
    };
    let inputs = Inputs {
        api_url: var("KEYGEN_API_URL"),
        public_key: var("KEYGEN_PUBLIC_KEY"),
        license_key: var("KEYGEN_LICENSE_KEY"),
        account: var("KEYGEN_ACCOUNT"),
        product: var("KEYGEN_PRODUCT"),
        fingerprint: var("KEYGEN_FINGERPRINT"),
        scenario: var("KEYGEN_SCENARIO"),
        api_prefix: std::env::var("KEYGEN_API_PREFIX")
            .ok()
            .filter(|p| !p.is_empty()),
    };
    if !missing.is_empty() {
        eprintln!("missing environment variables: {}", missing.join(", "));
        exit(2);
    }
    inputs
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let inputs = inputs_from_env();
    let step = "config";
    let mut cfg = KeygenConfig {
        api_url: inputs.api_url.clone(),
        account: inputs.account.clone(),
        product: inputs.product.clone(),
        license_key: Some(inputs.license_key.clone()),
        public_key: Some(inputs.public_key.clone()),
        ..KeygenConfig::default()
    };
    if let Some(prefix) = &inputs.api_prefix {
        cfg.api_prefix = prefix.clone();
    }
    // Signature checks are keygen-rs's default; a change of default must not switch them off
    // unnoticed.
    check(step, cfg.verify_keygen_signature == Some(true), || {
        format!("verify_keygen_signature {:?}", cfg.verify_keygen_signature)
    });
    let (api_url, api_prefix) = (cfg.api_url.clone(), cfg.api_prefix.clone());
    ok(step, config::set_config(cfg));
    emit(
        step,
        json!({
            "outcome": "configured",
            "version": KEYGEN_RS,
            "api_url": api_url,
            "api_prefix": api_prefix,
            "scenario": inputs.scenario,
        }),
    );
    match inputs.scenario.as_str() {
        "activate" => activate(&inputs).await,
        "deactivate" => deactivate(&inputs).await,
        // An unknown key: 401 LICENSE_INVALID, signed, verified, then mapped.
        "unknown-key" => {
            refused_validation(
                &inputs,
                401,
                "LICENSE_INVALID",
                ApiErrorKind::LicenseKeyInvalid,
            )
            .await
        }
        // A suspended license: 403 LICENSE_SUSPENDED.
        "suspended" => {
            refused_validation(
                &inputs,
                403,
                "LICENSE_SUSPENDED",
                ApiErrorKind::LicenseSuspended,
            )
            .await
        }
        "foreign-public-key" => foreign_public_key(&inputs).await,
        other => {
            eprintln!("unknown KEYGEN_SCENARIO {other:?}");
            exit(2);
        }
    }
    println!(
        "{}",
        json!({"step": "done", "ok": true, "scenario": inputs.scenario})
    );
}

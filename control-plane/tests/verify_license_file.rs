//! `keyward verify-license-file`, run as a vendor would: the built binary on certificates issued
//! here with `license_file::issue`. No database.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use chrono::{Duration, SecondsFormat, Utc};
use keyward_shared::license_file::{self, FileAlgorithm, FileKind};
use keyward_shared::signing::Ed25519Signer;
use serde_json::json;

const KEY: &str = "C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3";
const LICENSE_ID: &str = "b4f3e1a2-8c1d-4e5f-9a7b-3c2d1e0f9a8b";
const FINGERPRINT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn license_resource() -> serde_json::Value {
    json!({
        "id": LICENSE_ID,
        "type": "licenses",
        "attributes": {"key": KEY, "name": "Studio seat", "metadata": {}},
        "relationships": {"account": {"data": {"type": "accounts", "id": "acme"}}}
    })
}

/// A dataset as the check-out renders it, expiring `expires_in` from now.
fn dataset(kind: FileKind, expires_in: Duration) -> Vec<u8> {
    let now = Utc::now();
    let meta = json!({
        "issued": rfc3339(now - Duration::hours(1)),
        "expiry": rfc3339(now + expires_in),
        "ttl": 2629746
    });
    let doc = match kind {
        FileKind::License => json!({"data": license_resource(), "included": [], "meta": meta}),
        FileKind::Machine => json!({
            "data": {
                "id": "0e9f8d7c-6b5a-4c3d-8e1f-2a3b4c5d6e7f",
                "type": "machines",
                "attributes": {"fingerprint": FINGERPRINT, "name": "build-box"},
                "relationships": {"license": {"data": {"type": "licenses", "id": LICENSE_ID}}}
            },
            "included": [license_resource()],
            "meta": meta
        }),
    };
    doc.to_string().into_bytes()
}

fn issue(
    signer: &Ed25519Signer,
    kind: FileKind,
    alg: FileAlgorithm,
    expires_in: Duration,
) -> String {
    let secret = match kind {
        FileKind::License => KEY.to_owned(),
        FileKind::Machine => format!("{KEY}{FINGERPRINT}"),
    };
    license_file::issue(
        signer,
        kind,
        alg,
        &dataset(kind, expires_in),
        secret.as_bytes(),
    )
    .unwrap()
}

fn write_file(name: &str, certificate: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "verify-license-file-{}-{name}.lic",
        std::process::id()
    ));
    std::fs::write(&path, certificate).unwrap();
    path
}

/// Runs `keyward verify-license-file <args…>`, with `stdin` piped in when given.
fn keyward(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .arg("verify-license-file")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Runs the verifier on `certificate` written to a file of its own.
fn verify_file(name: &str, certificate: &str, public_key: &str) -> Output {
    let path = write_file(name, certificate);
    let out = keyward(&["--public-key", public_key, path.to_str().unwrap()], None);
    std::fs::remove_file(&path).unwrap();
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn valid_license_file_prints_what_it_grants_and_exits_0() {
    let signer = Ed25519Signer::generate();
    let cert = issue(
        &signer,
        FileKind::License,
        FileAlgorithm::Base64Ed25519,
        Duration::days(30),
    );
    let out = verify_file("valid", &cert, &signer.public_key_hex());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("license id: {LICENSE_ID}\n")),
        "{text}"
    );
    assert!(text.contains(&format!("license key: {KEY}\n")), "{text}");
    assert!(text.contains("issued: 20"), "{text}");
    assert!(text.contains("expiry: 20"), "{text}");
    assert!(text.ends_with("valid\n"), "{text}");
    assert!(stderr(&out).is_empty());
}

#[test]
fn encrypted_files_are_read_from_stdin_with_the_key() {
    let signer = Ed25519Signer::generate();
    let public = signer.public_key_hex();

    let cert = issue(
        &signer,
        FileKind::License,
        FileAlgorithm::Aes256GcmEd25519,
        Duration::days(30),
    );
    let out = keyward(&["--public-key", &public, "--key", KEY, "-"], Some(&cert));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("file: license file (aes-256-gcm+ed25519)\n"));
    assert!(stdout(&out).contains(&format!("license key: {KEY}\n")));

    // Without the key it cannot be read, and says why.
    let out = keyward(&["--public-key", &public, "-"], Some(&cert));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the file is encrypted"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());

    // A machine file needs the key and the fingerprint; its license comes from `included`.
    let cert = issue(
        &signer,
        FileKind::Machine,
        FileAlgorithm::Aes256GcmEd25519,
        Duration::days(30),
    );
    let args = [
        "--public-key",
        &public,
        "--key",
        KEY,
        "--fingerprint",
        FINGERPRINT,
        "-",
    ];
    let out = keyward(&args, Some(&cert));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("fingerprint: {FINGERPRINT}\n")),
        "{text}"
    );
    assert!(text.contains(&format!("license key: {KEY}\n")), "{text}");
    assert!(text.ends_with("valid\n"), "{text}");
    let out = keyward(&["--public-key", &public, "--key", KEY, "-"], Some(&cert));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("wrong key to decrypt"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tampered_file_exits_1_with_the_reason() {
    let signer = Ed25519Signer::generate();
    let cert = issue(
        &signer,
        FileKind::License,
        FileAlgorithm::Base64Ed25519,
        Duration::days(30),
    );
    // Cut the second base64 line: 45 bytes of `enc` go, the rest still decodes and parses, so
    // only the signature can tell.
    let mut lines: Vec<&str> = cert.lines().collect();
    lines.remove(2);
    let tampered = lines.join("\n") + "\n";
    let out = verify_file("tampered", &tampered, &signer.public_key_hex());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("signature does not match this public key"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());

    // An intact file checked against another deployment's key fails the same way.
    let other = Ed25519Signer::generate().public_key_hex();
    let out = keyward(&["--public-key", &other, "-"], Some(&cert));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("signature does not match this public key"));
}

#[test]
fn other_failures_exit_1() {
    let signer = Ed25519Signer::generate();
    let public = signer.public_key_hex();

    let expired = issue(
        &signer,
        FileKind::License,
        FileAlgorithm::Base64Ed25519,
        -Duration::minutes(1),
    );
    let out = keyward(&["--public-key", &public, "-"], Some(&expired));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the file expired at 20"),
        "{}",
        stderr(&out)
    );

    let out = keyward(&["--public-key", &public, "-"], Some("not a certificate"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a license file"),
        "{}",
        stderr(&out)
    );

    let out = keyward(&["--public-key", &public, "/nonexistent/file.lic"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read the certificate"),
        "{}",
        stderr(&out)
    );

    let out = keyward(&["--public-key", "abcd", "-"], Some(&expired));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("64 hex characters"),
        "{}",
        stderr(&out)
    );

    // Usage errors are failures too.
    let out = keyward(&["--fingerprint", FINGERPRINT, "-"], None);
    assert_eq!(out.status.code(), Some(1));
}

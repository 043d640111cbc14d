//! What signing one Keygen answer costs the validator, for the share of a `validate-key` that
//! signing takes (the suite's Keygen row, `keyward-loadtest suite`, divides these medians by the
//! validator's measured CPU per request):
//!
//! - `keygen_signature/sign_response`: all the validator does to sign an answer —
//!   `keygen_signature::sign_response` with the clock read, as `compat/keygen/mod.rs` calls it:
//!   the `Date` text, the body's SHA-256 `Digest`, the signing string, the Ed25519 signature
//!   (aws-lc-rs, `Ed25519Signer`) and its base64 in the `Keygen-Signature` value;
//! - `keygen_signature/ed25519`: the Ed25519 signature alone, over that signing string.
//!
//! The body is a `validate-key` answer as the validator serves it for a license of an app's
//! default policy, no machines (captured from a release build; ids and times are all
//! fixed-width, so every such answer has this size, give or take the key's and name's length).
//! The signature is verified with `verify_response` before anything is timed.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyward_shared::keygen_signature::{self, sign_response, signing_string};
use keyward_shared::signing::Ed25519Signer;

const SEED: &str = "4b6579776172642d6b657967656e2d62656e63682d7369676e696e672d6b6579";
const ACCOUNT: &str = "d8712fdd-cbc5-4f59-be72-c6e1907540ca";
const TARGET: &str = "/keygen/v1/licenses/actions/validate-key";
const HOST: &str = "127.0.0.1:8081";

/// `POST /keygen/v1/licenses/actions/validate-key` for a valid license: 200, this body.
const BODY: &[u8] = br#"{"data":{"id":"6f7532b5-66f9-43f5-86ce-b3beef42daa6","type":"licenses","attributes":{"name":"load test","key":"IKDVE-2CU6K-5YXKC-1I161-4K03P","expiry":null,"status":"ACTIVE","uses":0,"suspended":false,"scheme":null,"encrypted":false,"strict":false,"floating":false,"protected":false,"version":null,"maxMachines":null,"maxProcesses":null,"maxUsers":null,"maxCores":null,"maxMemory":null,"maxDisk":null,"maxUses":1,"requireHeartbeat":false,"requireCheckIn":false,"lastValidated":null,"lastCheckIn":null,"nextCheckIn":null,"lastCheckOut":null,"permissions":[],"metadata":{},"created":"2026-12-06T01:12:08.678Z","updated":"2026-12-06T01:12:08.678Z"},"relationships":{"account":{"data":{"type":"accounts","id":"d8712fdd-cbc5-4f59-be72-c6e1907540ca"},"links":{"related":"/keygen/v1/accounts/d8712fdd-cbc5-4f59-be72-c6e1907540ca"}},"environment":{"data":null,"links":{"related":null}},"product":{"data":{"type":"products","id":"86b7ad10-94ef-4411-aca8-232d3395dcf1"},"links":{"related":"/keygen/v1/accounts/d8712fdd-cbc5-4f59-be72-c6e1907540ca/products/86b7ad10-94ef-4411-aca8-232d3395dcf1"}},"policy":{"data":{"type":"policies","id":"e04bdea3-18ba-47d3-b798-bd29800e1461"},"links":{"related":"/keygen/v1/accounts/d8712fdd-cbc5-4f59-be72-c6e1907540ca/policies/e04bdea3-18ba-47d3-b798-bd29800e1461"}},"group":{"data":null,"links":{"related":null}},"owner":{"data":null,"links":{"related":"/keygen/v1/accounts/d8712fdd-cbc5-4f59-be72-c6e1907540ca/licenses/6f7532b5-66f9-43f5-86ce-b3beef42daa6/owner"}},"users":{"links":{"related":"/keygen/v1/accounts/d8712fdd-cbc5-4f59-be72-c6e1907540ca/licenses/6f7532b5-66f9-43f5-86ce-b3beef42daa6/users"},"meta":{"count":0}},"machines":{"links":{"related":"/keygen/v1/accounts/d8712fdd-cbc5-4f59-be72-c6e1907540ca/licenses/6f7532b5-66f9-43f5-86ce-b3beef42daa6/machines"},"meta":{"cores":0,"count":0}},"tokens":{"links":{"related":"/keygen/v1/accounts/d8712fdd-cbc5-4f59-be72-c6e1907540ca/licenses/6f7532b5-66f9-43f5-86ce-b3beef42daa6/tokens"}},"entitlements":{"links":{"related":"/keygen/v1/accounts/d8712fdd-cbc5-4f59-be72-c6e1907540ca/licenses/6f7532b5-66f9-43f5-86ce-b3beef42daa6/entitlements"}}},"links":{"self":"/keygen/v1/accounts/d8712fdd-cbc5-4f59-be72-c6e1907540ca/licenses/6f7532b5-66f9-43f5-86ce-b3beef42daa6"}},"meta":{"ts":"2026-12-06T01:12:08.710Z","valid":true,"detail":"is valid","code":"VALID"}}"#;

fn keygen_signature(c: &mut Criterion) {
    let signer = Ed25519Signer::from_seed_hex(SEED).expect("seed");
    let signed = sign_response(
        &signer,
        ACCOUNT,
        "POST",
        TARGET,
        HOST,
        BODY,
        SystemTime::now(),
    );
    keygen_signature::verify_response(
        &signer.public_key_hex(),
        "POST",
        TARGET,
        HOST,
        &signed.date,
        &signed.digest,
        &signed.signature,
        BODY,
    )
    .expect("the bench's signature verifies");
    let mut g = c.benchmark_group("keygen_signature");
    g.throughput(Throughput::Bytes(BODY.len() as u64));
    g.bench_function("sign_response", |b| {
        b.iter(|| {
            sign_response(
                &signer,
                ACCOUNT,
                "POST",
                TARGET,
                HOST,
                black_box(BODY),
                SystemTime::now(),
            )
        })
    });
    let string = signing_string("POST", TARGET, HOST, &signed.date, &signed.digest);
    g.throughput(Throughput::Bytes(string.len() as u64));
    g.bench_function("ed25519", |b| {
        b.iter(|| signer.sign_bytes(black_box(string.as_bytes())))
    });
    g.finish();
}

criterion_group!(benches, keygen_signature);
criterion_main!(benches);

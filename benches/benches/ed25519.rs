//! Ed25519 signing and verification of KeyAuth 1.3 answers across the Rust implementations we
//! could pick from, to choose the signer on numbers. The message is what `shared/src/signing.rs`
//! signs: a 10-digit timestamp followed by the JSON body (≈ 108 bytes for `check`, ≈ 340 for
//! `license`). Every key comes from the same 32-byte seed, and before anything is timed the bench
//! asserts that all implementations produce the same public key and byte-identical signatures
//! (Ed25519 is deterministic), and accept each other's, so a mis-used crate fails the run.
//!
//! - `dalek`: ed25519-dalek 3 as the workspace configures it (`fast`, `zeroize`), through
//!   `SigningKey::sign`, exactly as `Ed25519Signer::sign` does. `SigningKey` keeps only the seed
//!   and the public key, so each signature first re-expands the seed (SHA-512 and clamping).
//! - `dalek-expanded`: the same crate with the `ExpandedSecretKey` computed once and
//!   `hazmat::raw_sign`, to show what that per-signature expansion costs.
//! - `ring`, `aws-lc-rs`: their `Ed25519KeyPair` (`from_seed_unchecked`).
//! - `ed25519-compact`: `KeyPair::from_seed`, signing without noise (the deterministic RFC 8032
//!   signature; with noise it would differ from the others).
//!
//! Verification holds each library's ready-to-use public key: dalek's `VerifyingKey` (point
//! already decompressed), aws-lc-rs's `ParsedPublicKey`, ring's `UnparsedPublicKey` (ring has no
//! parsed form), ed25519-compact's `PublicKey` (decompressed on each call).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::{Signer as _, Verifier as _};

const SEED: [u8; 32] = [
    0x4b, 0x65, 0x79, 0x77, 0x61, 0x72, 0x64, 0x20, 0x31, 0x2e, 0x33, 0x20, 0x73, 0x69, 0x67, 0x6e,
    0xd1, 0x3a, 0x07, 0x9c, 0x52, 0xe8, 0x6f, 0x14, 0xb0, 0x2d, 0x99, 0xc4, 0x71, 0x0e, 0xa5, 0x38,
];
const TIMESTAMP: &str = "1764806400";

/// `timestamp ‖ body` with a JSON body of exactly `body_len` bytes, shaped like a 1.3 answer.
fn message(body_len: usize) -> Vec<u8> {
    let head = r#"{"success":true,"message":"Session is validated.","nonce":""#;
    let tail = r#""}"#;
    let pad = body_len - head.len() - tail.len();
    let nonce = "7f3a9c0e".repeat(pad / 8 + 1);
    let body = format!("{head}{}{tail}", &nonce[..pad]);
    assert_eq!(body.len(), body_len);
    let mut msg = TIMESTAMP.as_bytes().to_vec();
    msg.extend_from_slice(body.as_bytes());
    msg
}

struct Keys {
    dalek: ed25519_dalek::SigningKey,
    dalek_expanded: ExpandedSecretKey,
    dalek_public: ed25519_dalek::VerifyingKey,
    ring: ring::signature::Ed25519KeyPair,
    ring_public: ring::signature::UnparsedPublicKey<Vec<u8>>,
    aws: aws_lc_rs::signature::Ed25519KeyPair,
    aws_public: aws_lc_rs::signature::ParsedPublicKey,
    compact: ed25519_compact::KeyPair,
}

fn keys() -> Keys {
    use aws_lc_rs::signature::KeyPair as _;
    use ring::signature::KeyPair as _;

    let dalek = ed25519_dalek::SigningKey::from_bytes(&SEED);
    let ring = ring::signature::Ed25519KeyPair::from_seed_unchecked(&SEED).expect("ring key");
    let aws = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&SEED).expect("aws key");
    let compact = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(SEED));

    let public = dalek.verifying_key().to_bytes();
    assert_eq!(ring.public_key().as_ref(), public, "ring public key");
    assert_eq!(aws.public_key().as_ref(), public, "aws-lc-rs public key");
    assert_eq!(compact.pk.as_ref(), public, "ed25519-compact public key");

    Keys {
        dalek_expanded: ExpandedSecretKey::from(&SEED),
        dalek_public: dalek.verifying_key(),
        ring_public: ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            public.to_vec(),
        ),
        aws_public: aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::ED25519,
            public,
        )
        .expect("aws-lc-rs public key"),
        dalek,
        ring,
        aws,
        compact,
    }
}

/// Every implementation signs `msg` to the same 64 bytes and accepts that signature.
fn assert_identical(k: &Keys, msg: &[u8]) {
    let dalek = k.dalek.sign(msg).to_bytes();
    let expanded = raw_sign::<sha2::Sha512>(&k.dalek_expanded, msg, &k.dalek_public).to_bytes();
    let ring = k.ring.sign(msg);
    let aws = k.aws.sign(msg);
    let compact = k.compact.sk.sign(msg, None);
    assert_eq!(expanded, dalek, "dalek-expanded vs dalek, {} B", msg.len());
    assert_eq!(ring.as_ref(), dalek, "ring vs dalek, {} B", msg.len());
    assert_eq!(aws.as_ref(), dalek, "aws-lc-rs vs dalek, {} B", msg.len());
    assert_eq!(
        compact.as_ref(),
        dalek,
        "ed25519-compact vs dalek, {} B",
        msg.len()
    );

    let sig = ed25519_dalek::Signature::from_bytes(&dalek);
    k.dalek_public.verify(msg, &sig).expect("dalek verifies");
    k.ring_public.verify(msg, &dalek).expect("ring verifies");
    k.aws_public
        .verify_sig(msg, &dalek)
        .expect("aws-lc-rs verifies");
    k.compact
        .pk
        .verify(msg, &ed25519_compact::Signature::new(dalek))
        .expect("ed25519-compact verifies");
    let mut forged = dalek;
    forged[0] ^= 1;
    assert!(k.ring_public.verify(msg, &forged).is_err(), "ring rejects");
    assert!(
        k.aws_public.verify_sig(msg, &forged).is_err(),
        "aws-lc-rs rejects"
    );
}

fn ed25519(c: &mut Criterion) {
    let k = keys();
    let short = message(108);
    let long = message(340);
    assert_eq!((short.len(), long.len()), (118, 350));
    assert_identical(&k, &short);
    assert_identical(&k, &long);

    let mut g = c.benchmark_group("ed25519");
    for (name, msg) in [("sign_118B", &short), ("sign_350B", &long)] {
        let msg = msg.as_slice();
        g.bench_function(format!("{name}/dalek"), |b| {
            b.iter(|| k.dalek.sign(black_box(msg)))
        });
        g.bench_function(format!("{name}/dalek-expanded"), |b| {
            b.iter(|| raw_sign::<sha2::Sha512>(&k.dalek_expanded, black_box(msg), &k.dalek_public))
        });
        g.bench_function(format!("{name}/ring"), |b| {
            b.iter(|| k.ring.sign(black_box(msg)))
        });
        g.bench_function(format!("{name}/aws-lc-rs"), |b| {
            b.iter(|| k.aws.sign(black_box(msg)))
        });
        g.bench_function(format!("{name}/ed25519-compact"), |b| {
            b.iter(|| k.compact.sk.sign(black_box(msg), None))
        });
    }

    let msg = short.as_slice();
    let sig = k.dalek.sign(msg);
    let sig_bytes = sig.to_bytes();
    let compact_sig = ed25519_compact::Signature::new(sig_bytes);
    g.bench_function("verify_118B/dalek", |b| {
        b.iter(|| {
            k.dalek_public
                .verify(black_box(msg), black_box(&sig))
                .unwrap()
        })
    });
    g.bench_function("verify_118B/ring", |b| {
        b.iter(|| {
            k.ring_public
                .verify(black_box(msg), black_box(&sig_bytes))
                .unwrap()
        })
    });
    g.bench_function("verify_118B/aws-lc-rs", |b| {
        b.iter(|| {
            k.aws_public
                .verify_sig(black_box(msg), black_box(&sig_bytes))
                .unwrap()
        })
    });
    g.bench_function("verify_118B/ed25519-compact", |b| {
        b.iter(|| {
            k.compact
                .pk
                .verify(black_box(msg), black_box(&compact_sig))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, ed25519);
criterion_main!(benches);

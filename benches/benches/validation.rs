//! The validation rules and what surrounds them on the hot path.

use std::hint::black_box;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use keyward_benches::{app, blacklist, license};
use keyward_shared::blacklist::BlacklistView;
use keyward_shared::invalidation::{self, Invalidation};
use keyward_shared::keygen::{Mask, DEFAULT_MASK};
use keyward_shared::verdict::{decide, Decision, RequestFacts};

fn rules(c: &mut Criterion) {
    let app = app();
    let lic = license("HWID-1").facts();
    let empty = BlacklistView::default();
    let big = BlacklistView::from_entries(&blacklist(1000));
    let now = Utc::now();
    let facts = RequestFacts {
        hwid: Some("HWID-1"),
        ip: Some("203.0.113.9".parse().unwrap()),
        hwid_optional: false,
    };

    let mut g = c.benchmark_group("decide");
    g.bench_function("valid_empty_blacklist", |b| {
        b.iter(|| {
            let d = decide(
                black_box(&app),
                Some(black_box(&lic)),
                &empty,
                black_box(facts),
                now,
            );
            debug_assert!(matches!(d, Decision::Final(ref v) if v.valid));
            d
        })
    });
    g.bench_function("valid_blacklist_2003_entries", |b| {
        b.iter(|| {
            decide(
                black_box(&app),
                Some(black_box(&lic)),
                &big,
                black_box(facts),
                now,
            )
        })
    });
    g.bench_function("hwid_mismatch", |b| {
        let f = RequestFacts {
            hwid: Some("OTHER"),
            ..facts
        };
        b.iter(|| {
            decide(
                black_box(&app),
                Some(black_box(&lic)),
                &empty,
                black_box(f),
                now,
            )
        })
    });
    g.bench_function("not_found", |b| {
        b.iter(|| decide(black_box(&app), None, &empty, black_box(facts), now))
    });
    g.finish();

    c.bench_function("verdict_to_json", |b| {
        let Decision::Final(v) = decide(&app, Some(&lic), &empty, facts, now) else {
            unreachable!()
        };
        b.iter(|| serde_json::to_vec(black_box(&v)))
    });
}

fn keys(c: &mut Criterion) {
    let mask = Mask::parse(DEFAULT_MASK, None).unwrap();
    c.bench_function("keygen_default_mask", |b| b.iter(|| mask.generate()));
    let app = uuid::Uuid::new_v4();
    let items: Vec<Invalidation> = (0..500)
        .map(|i| Invalidation::License {
            app,
            key: format!("KEY-{i:05}-ABCDE-FGHIJ"),
        })
        .collect();
    c.bench_function("invalidation_encode_500", |b| {
        b.iter(|| invalidation::encode(1, black_box(&items)))
    });
    let payload = invalidation::encode(1, &items[..50]).remove(0);
    c.bench_function("invalidation_decode_50", |b| {
        b.iter(|| invalidation::decode(black_box(&payload)))
    });
}

/// Response signing of the KeyAuth client API over a typical ~300-byte response body.
fn signing(c: &mut Criterion) {
    use keyward_shared::signing::{hmac_hex, Ed25519Signer};
    let body = br#"{"success":true,"message":"Logged in!","info":{"username":"player1","subscriptions":[{"subscription":"default","key":null,"expiry":"1767225600","timeleft":2591999,"level":"1"}],"ip":"203.0.113.7","hwid":"S-1-5-21-1111111111-2222222222-3333333333-1001","createdate":"1764633600","lastlogin":"1764633600"},"nonce":"5c23dfd4fe4f4d69a6db6acc035149cd"}"#;
    let key = b"0123456789abcdef-aVeryLongApplicationSecretOfSixtyFourCharactersXXXXXXXXX";
    c.bench_function("hmac_sha256_hex_300b", |b| b.iter(|| hmac_hex(key, body)));
    let signer = Ed25519Signer::generate();
    c.bench_function("ed25519_sign_hex_300b", |b| {
        b.iter(|| signer.sign("1764633600", body))
    });
}

criterion_group!(benches, rules, keys, signing);
criterion_main!(benches);

//! The validator's request paths without the network: `POST /v1/validate` body → cache →
//! verdict → answer body, and the client API's parameter parsing for each encoding.

use std::hint::black_box;
use std::net::IpAddr;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use keyward_benches::{app, blacklist, license};
use keyward_shared::blacklist::BlacklistView;
use keyward_validator::offline::{keyauth_params, OfflineValidator};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn validate(c: &mut Criterion) {
    let rt = runtime();
    let app = app();
    let lic = license("HWID-0123456789-ABCDEF");
    let body = format!(
        r#"{{"app":"{}","key":"{}","hwid":"HWID-0123456789-ABCDEF","nonce":"n-42"}}"#,
        app.id, lic.key
    );
    let unknown = format!(r#"{{"app":"{}","key":"NO-SUCH-KEY"}}"#, app.id);
    let ip: IpAddr = "203.0.113.9".parse().expect("an address");
    let v = rt
        .block_on(OfflineValidator::new(
            app,
            BlacklistView::from_entries(&blacklist(1000)),
            &[lic],
            &["NO-SUCH-KEY"],
        ))
        .expect("an offline validator");
    // The paths under test must answer, not fail on the unreachable database.
    let answer = rt.block_on(v.validate(body.as_bytes(), ip)).expect("valid");
    assert!(answer.starts_with(br#"{"valid":true"#));
    rt.block_on(v.validate(unknown.as_bytes(), ip))
        .expect("not found");

    let mut g = c.benchmark_group("validate_request");
    g.bench_function("cache_hit_valid", |b| {
        b.to_async(&rt)
            .iter(|| async { v.validate(black_box(body.as_bytes()), ip).await })
    });
    g.bench_function("cached_unknown_key", |b| {
        b.to_async(&rt)
            .iter(|| async { v.validate(black_box(unknown.as_bytes()), ip).await })
    });
    g.bench_function("malformed_body", |b| {
        b.to_async(&rt)
            .iter(|| async { v.validate(black_box(br#"{"app":1}"#), ip).await })
    });
    g.finish();
}

fn client_api_params(c: &mut Criterion) {
    let rt = runtime();
    let form = Bytes::from_static(
        b"type=license&key=ABCDE-FGHIJ-KLMNO&hwid=S-1-5-21-3623811015-3361044348-30300820-1013\
          &sessionid=0123456789abcdef&name=demo&ownerid=AbCdEfGhIj",
    );
    let json = Bytes::from_static(
        br#"{"type":"license","key":"ABCDE-FGHIJ-KLMNO","hwid":"S-1-5-21-3623811015-3361044348-30300820-1013","sessionid":"0123456789abcdef","name":"demo","ownerid":"AbCdEfGhIj"}"#,
    );
    let boundary = "----keyward-bench";
    let mut multipart = String::new();
    for (k, v) in [
        ("type", "license"),
        ("key", "ABCDE-FGHIJ-KLMNO"),
        ("hwid", "S-1-5-21-3623811015-3361044348-30300820-1013"),
        ("sessionid", "0123456789abcdef"),
        ("name", "demo"),
        ("ownerid", "AbCdEfGhIj"),
    ] {
        multipart.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    multipart.push_str(&format!("--{boundary}--\r\n"));
    let multipart = Bytes::from(multipart);
    let multipart_type = format!("multipart/form-data; boundary={boundary}");

    let cases: [(&str, Option<&str>, &Bytes); 3] = [
        (
            "urlencoded",
            Some("application/x-www-form-urlencoded"),
            &form,
        ),
        ("json", Some("application/json"), &json),
        ("multipart", Some(multipart_type.as_str()), &multipart),
    ];
    for (_, content_type, body) in cases {
        let found = rt
            .block_on(keyauth_params(None, content_type, (*body).clone()))
            .expect("parses");
        assert_eq!(found, 6);
    }
    let mut g = c.benchmark_group("client_api_params");
    for (name, content_type, body) in cases {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                keyauth_params(None, content_type, black_box((*body).clone())).await
            })
        });
    }
    g.bench_function("query_string", |b| {
        let query = std::str::from_utf8(&form).expect("ASCII");
        b.to_async(&rt)
            .iter(|| async { keyauth_params(Some(black_box(query)), None, Bytes::new()).await })
    });
    g.finish();
}

criterion_group!(benches, validate, client_api_params);
criterion_main!(benches);

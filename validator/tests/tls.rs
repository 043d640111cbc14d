//! TLS termination: validations and the KeyAuth client API over HTTPS (HTTP/1.1 and h2 by ALPN),
//! a renewed certificate picked up from its files or on SIGHUP while open connections keep
//! theirs, and a start refused with a clear error for a certificate that cannot work.

mod common;

use std::path::Path;

use common::*;
use keyward_shared::test_tls::{
    assert_sighup_reloads, connect, presenting, run_to_exit, TestCert, Validity,
};
use keyward_shared::testing::TestDb;
use keyward_validator::{Config, Running};

const VALIDATOR: &str = env!("CARGO_BIN_EXE_validator");
// KeyAuth apps refuse HWIDs shorter than 20 characters by default.
const HWID: &str = "S-1-5-21-3623811015-3361044348";

fn trusting(cert: &TestCert, http1_only: bool) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).expect("PEM");
    let b = reqwest::Client::builder().tls_certs_only([root]);
    let b = if http1_only { b.http1_only() } else { b };
    b.build().expect("client")
}

async fn tls_validator(url: &str, dir: &Path, tweak: impl FnOnce(&mut Config)) -> Running {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    validator(url, |cfg| {
        cfg.tls.tls_cert = Some(cert);
        cfg.tls.tls_key = Some(key);
        tweak(cfg);
    })
    .await
}

#[tokio::test]
async fn validate_and_keyauth_over_tls_on_http1_and_h2() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = tenant(&mut c, true).await;
    let l = one_license(&mut c, &t, 1).await;
    let owner = owner_of(&c, &t).await;
    let dir = tempdir();
    let cert = TestCert::new(Validity::Current);
    cert.write_to(dir.path());
    let v = tls_validator(&db.url, dir.path(), |_| {}).await;
    let base = format!("https://127.0.0.1:{}", v.addr().port());
    let body = serde_json::json!({"app": t.app.id, "key": l.key, "hwid": HWID}).to_string();

    for (http1_only, version) in [
        (true, reqwest::Version::HTTP_11),
        (false, reqwest::Version::HTTP_2),
    ] {
        let http = trusting(&cert, http1_only);
        let resp = http
            .post(format!("{base}/v1/validate"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("validate over TLS");
        assert_eq!(resp.version(), version);
        let r = reply(resp).await;
        assert_eq!((r.status, r.code()), (200, "VALID"), "{:?}", r.body);

        // The KeyAuth client API: a session, a license on it, a check.
        let call = |params: Vec<(&'static str, String)>| {
            let http = http.clone();
            let url = format!("{base}/api/1.2/");
            let mut form = vec![("name", "app".to_string()), ("ownerid", owner.clone())];
            form.extend(params);
            async move {
                let resp = http
                    .post(url)
                    .form(&form)
                    .send()
                    .await
                    .expect("KeyAuth call");
                assert_eq!(resp.version(), version);
                let text = resp.text().await.expect("body");
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|_| panic!("not JSON: {text}"))
            }
        };
        let init = call(vec![("type", "init".into()), ("ver", "1.0".into())]).await;
        assert_eq!(init["success"], true, "{init}");
        let sid = init["sessionid"].as_str().expect("sessionid").to_string();
        let license = call(vec![
            ("type", "license".into()),
            ("key", l.key.clone()),
            ("hwid", HWID.into()),
            ("sessionid", sid.clone()),
        ])
        .await;
        assert_eq!(license["success"], true, "{license}");
        let check = call(vec![("type", "check".into()), ("sessionid", sid)]).await;
        assert_eq!(check["success"], true, "{check}");
    }

    // HTTPS only: a plain-HTTP request on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", v.addr().port()))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|r| r.status() == 400),
        "{plain:?}"
    );
    v.shutdown().await;
}

#[tokio::test]
async fn a_renewed_certificate_reaches_new_handshakes_and_open_connections_keep_theirs() {
    let db = TestDb::new().await;
    let dir = tempdir();
    let first = TestCert::new(Validity::Current);
    first.write_to(dir.path());
    let v = tls_validator(&db.url, dir.path(), |cfg| cfg.tls.tls_reload_check_ms = 50).await;
    let addr = v.addr();

    let mut open = connect(addr, &first.cert_pem).await.expect("handshake");
    assert_eq!(open.get("/healthz").await.expect("healthz").status, 200);

    // The renewer swaps both files; new handshakes present the new certificate.
    let second = TestCert::new(Validity::Current);
    second.write_to(dir.path());
    presenting(addr, &second, "a handshake with the renewed certificate").await;
    assert!(
        connect(addr, &first.cert_pem).await.is_err(),
        "the old certificate is still presented"
    );
    // The connection opened before the renewal still carries requests.
    let r = open.get("/healthz").await.expect("the open connection");
    assert_eq!(r.status, 200, "{}", r.text());

    // A renewal that does not fit (this key is not the certificate's) is refused, and the working
    // certificate stays.
    let broken = TestCert {
        cert_pem: TestCert::new(Validity::Current).cert_pem,
        key_pem: second.key_pem.clone(),
    };
    broken.write_to(dir.path());
    let tls = v.tls().expect("TLS configured");
    let err = tls.reload().expect_err("a mismatched key must be refused");
    assert!(
        err.to_string().contains("cannot be used with"),
        "unclear: {err}"
    );
    let mut again = connect(addr, &second.cert_pem)
        .await
        .expect("still presenting the working certificate");
    assert_eq!(again.get("/healthz").await.expect("healthz").status, 200);
    v.shutdown().await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_the_process_keeps_serving() {
    let db = TestDb::new().await;
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("KEYWARD_VALIDATOR_LISTEN", "127.0.0.1:0"),
    ];
    assert_sighup_reloads(VALIDATOR, &[], &env).await;
}

#[tokio::test]
async fn a_certificate_that_cannot_work_stops_the_start_with_what_is_wrong() {
    let dir = tempdir();
    let d = dir.path();
    let start = |cert: Option<&str>, key: Option<&str>| {
        let mut cfg = Config::new("postgres://nobody@127.0.0.1:1/nothing");
        cfg.tls.tls_cert = cert.map(|c| d.join(c));
        cfg.tls.tls_key = key.map(|k| d.join(k));
        async move {
            match keyward_validator::start(cfg).await {
                Ok(_) => panic!("started with a certificate that cannot work"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    let put = |name: &str, content: &str| std::fs::write(d.join(name), content).expect("write");
    let good = TestCert::new(Validity::Current);
    put("good.pem", &good.cert_pem);
    put("good.key", &good.key_pem);
    let expired = TestCert::new(Validity::Expired);
    put("expired.pem", &expired.cert_pem);
    put("expired.key", &expired.key_pem);
    let future = TestCert::new(Validity::NotYetValid);
    put("future.pem", &future.cert_pem);
    put("future.key", &future.key_pem);
    put("garbage.pem", "not a certificate\n");

    let cases = [
        (
            Some("expired.pem"),
            Some("expired.key"),
            "expired at 2020-12-31",
        ),
        (
            Some("future.pem"),
            Some("future.key"),
            "is not valid before 2990-01-01",
        ),
        (
            Some("good.pem"),
            Some("expired.key"),
            "cannot be used with the certificate",
        ),
        (
            Some("garbage.pem"),
            Some("good.key"),
            "holds no PEM certificate",
        ),
        (
            Some("good.pem"),
            Some("good.pem"),
            "holds no PEM private key",
        ),
        (Some("missing.pem"), Some("good.key"), "cannot read"),
        (
            Some("good.pem"),
            None,
            "set both the certificate and the key",
        ),
    ];
    for (cert, key, says) in cases {
        let err = start(cert, key).await;
        assert!(
            err.contains(says),
            "{cert:?}/{key:?}: expected {says:?} in {err:?}"
        );
    }

    // The binary exits with that error instead of serving.
    let (cert, key) = (d.join("expired.pem"), d.join("expired.key"));
    let (status, log) = run_to_exit(
        VALIDATOR,
        &[],
        &[
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nothing"),
            ("KEYWARD_VALIDATOR_LISTEN", "127.0.0.1:0"),
            ("KEYWARD_TLS_CERT", &cert.display().to_string()),
            ("KEYWARD_TLS_KEY", &key.display().to_string()),
        ],
    );
    assert!(!status.success());
    assert!(log.contains("expired at"), "{log}");
}

fn tempdir() -> keyward_shared::test_tls::TempDir {
    keyward_shared::test_tls::TempDir::new()
}

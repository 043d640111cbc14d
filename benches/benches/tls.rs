//! What TLS termination costs the server, per full handshake and per request on an open
//! connection, with the exact `ServerConfig` the services use (aws-lc-rs, ALPN h2/http1.1, an
//! ECDSA P-256 certificate as rcgen makes it). Client and server talk through memory buffers,
//! and only the server's calls are timed: the figures are the server CPU a TLS client costs.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use keyward_shared::test_tls::{TempDir, TestCert, Validity};
use keyward_shared::tls::{Tls, TlsFiles};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

/// A native `/v1/validate` request and its answer, as the load tests send them.
const REQUEST: &[u8] = b"POST /v1/validate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 114\r\n\r\n{\"app\":\"3f0c8a52-51f4-4b6e-9b3e-2d7f64b1c0aa\",\"key\":\"KW-7H2Q-9XLM-4RTV-PZ8D-K3NC\",\"hwid\":\"S-1-5-21-3623811015-33\"}";
const RESPONSE_BYTES: usize = 257 + 90;

struct Setup {
    server: Arc<ServerConfig>,
    cert_pem: String,
    _dir: TempDir,
}

fn setup() -> Setup {
    let dir = TempDir::new();
    let cert = TestCert::new(Validity::Current);
    let (cert_path, key_path) = cert.write_to(dir.path());
    let tls = Tls::load(TlsFiles {
        cert: cert_path,
        key: key_path,
    })
    .expect("the services' TLS configuration");
    Setup {
        server: tls.server_config(),
        cert_pem: cert.cert_pem,
        _dir: dir,
    }
}

fn client_config(
    cert_pem: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(c.expect("PEM")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("protocol version")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every handshake full: a fleet of clients that each connect once or rarely.
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn client_to_server(
    c: &mut ClientConnection,
    s: &mut ServerConnection,
    wire: &mut Vec<u8>,
) -> Duration {
    wire.clear();
    while c.wants_write() {
        c.write_tls(wire).expect("client write");
    }
    let start = Instant::now();
    let mut rd = &wire[..];
    while !rd.is_empty() {
        s.read_tls(&mut rd).expect("server read");
        s.process_new_packets().expect("server process");
    }
    start.elapsed()
}

fn server_to_client(
    s: &mut ServerConnection,
    c: &mut ClientConnection,
    wire: &mut Vec<u8>,
) -> Duration {
    wire.clear();
    let start = Instant::now();
    while s.wants_write() {
        s.write_tls(wire).expect("server write");
    }
    let spent = start.elapsed();
    let mut rd = &wire[..];
    while !rd.is_empty() {
        c.read_tls(&mut rd).expect("client read");
        c.process_new_packets().expect("client process");
    }
    spent
}

/// One full handshake; returns the server's share of the time and the open pair.
fn handshake(
    server: &Arc<ServerConfig>,
    client: &Arc<ClientConfig>,
    wire: &mut Vec<u8>,
) -> (Duration, ClientConnection, ServerConnection) {
    let name = ServerName::try_from("localhost").expect("name");
    let mut c = ClientConnection::new(client.clone(), name).expect("client");
    let start = Instant::now();
    let mut s = ServerConnection::new(server.clone()).expect("server");
    let mut spent = start.elapsed();
    while c.is_handshaking() || s.is_handshaking() || s.wants_write() {
        spent += client_to_server(&mut c, &mut s, wire);
        spent += server_to_client(&mut s, &mut c, wire);
    }
    (spent, c, s)
}

fn bench_tls(crit: &mut Criterion) {
    let setup = setup();
    let mut g = crit.benchmark_group("tls");
    for (name, version) in [
        ("handshake_tls13_server", &rustls::version::TLS13),
        ("handshake_tls12_server", &rustls::version::TLS12),
    ] {
        let client = client_config(&setup.cert_pem, version);
        let mut wire = Vec::with_capacity(8192);
        let (_, c, s) = handshake(&setup.server, &client, &mut wire);
        assert_eq!(c.protocol_version(), Some(version.version));
        assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]));
        eprintln!(
            "{name}: {:?}, key exchange {:?}, {:?}",
            version.version,
            s.negotiated_key_exchange_group().map(|g| g.name()),
            s.negotiated_cipher_suite().map(|c| c.suite()),
        );
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += handshake(&setup.server, &client, &mut wire).0;
                }
                total
            })
        });
    }

    // One request in, one answer out, on a connection already open.
    let client = client_config(&setup.cert_pem, &rustls::version::TLS13);
    let mut wire = Vec::with_capacity(8192);
    let (_, mut c, mut s) = handshake(&setup.server, &client, &mut wire);
    let response = vec![b'x'; RESPONSE_BYTES];
    let mut plain = vec![0u8; 4096];
    g.bench_function("request_tls13_server", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                c.writer().write_all(REQUEST).expect("client write");
                total += client_to_server(&mut c, &mut s, &mut wire);
                let start = Instant::now();
                let n = s.reader().read(&mut plain).expect("server read");
                assert_eq!(n, REQUEST.len());
                s.writer().write_all(&response).expect("server write");
                total += start.elapsed();
                total += server_to_client(&mut s, &mut c, &mut wire);
                let got = c.reader().read(&mut plain).expect("client read");
                assert_eq!(got, RESPONSE_BYTES);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench_tls);
criterion_main!(benches);

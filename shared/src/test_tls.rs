//! Test support (feature `test-support`): certificates made at test time, written the way
//! renewers write them, and a raw TLS client whose one connection a test can keep open across a
//! certificate reload.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::keepalive::{read_response, RawResponse};

/// How a test certificate's validity is set.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// From 1975 to 4096.
    Current,
    /// 2020 only.
    Expired,
    /// From 2990.
    NotYetValid,
}

/// A self-signed certificate for `localhost` and 127.0.0.1, and its key, as PEM.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCert {
    pub fn new(validity: Validity) -> TestCert {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("certificate parameters");
        match validity {
            Validity::Current => {}
            Validity::Expired => {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2020, 12, 31);
            }
            Validity::NotYetValid => {
                params.not_before = rcgen::date_time_ymd(2990, 1, 1);
                params.not_after = rcgen::date_time_ymd(2991, 1, 1);
            }
        }
        let key = rcgen::KeyPair::generate().expect("key pair");
        let cert = params.self_signed(&key).expect("self-signed certificate");
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `cert.pem` and `key.pem` into `dir`, each by rename (a new inode, as a secret
    /// mount or an ACME client swaps them), and returns their paths.
    pub fn write_to(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let put = |name: &str, content: &str| {
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, content).expect("write PEM");
            std::fs::rename(&tmp, &path).expect("rename PEM");
            path
        };
        (
            put("cert.pem", &self.cert_pem),
            put("key.pem", &self.key_pem),
        )
    }
}

/// One TLS connection that trusts only `cert_pem`; `Err` when the handshake fails (e.g. the
/// server presents another certificate).
pub async fn connect(addr: SocketAddr, cert_pem: &str) -> Result<RawTls, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(RawTls(BufReader::new(stream)))
}

/// A kept-open HTTP/1.1 connection over TLS.
pub struct RawTls(BufReader<TlsStream<TcpStream>>);

impl RawTls {
    /// `GET path` on this connection.
    pub async fn get(&mut self, path: &str) -> Result<RawResponse, String> {
        let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
        self.0
            .get_mut()
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("writing the request: {e}"))?;
        read_response(&mut self.0).await
    }
}

/// A service binary run as a child process, its log collected, for what only `main` does
/// (signals).
pub struct Spawned {
    child: std::process::Child,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    pub addr: SocketAddr,
}

impl Spawned {
    /// Starts `bin` with `env` (it must listen on port 0 of 127.0.0.1) and waits until it logs
    /// the address it listens on.
    pub async fn start(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Spawned {
        use std::io::BufRead;
        let mut child = std::process::Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().expect("log").push(line);
            }
        });
        let mut spawned = Spawned {
            child,
            log,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let (addr, _) = crate::testing::eventually(
            std::time::Duration::from_secs(60),
            "the service to log its address",
            || {
                let found = spawned.listening_addr();
                async move { found }
            },
        )
        .await;
        spawned.addr = addr;
        spawned
    }

    fn listening_addr(&self) -> Option<SocketAddr> {
        let log = self.log.lock().ok()?;
        log.iter()
            .filter(|l| l.contains("listening"))
            .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("addr=")))
            .and_then(|a| a.parse().ok())
    }

    /// Whether a log line so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log
            .lock()
            .map(|l| l.iter().any(|line| line.contains(needle)))
            .unwrap_or(false)
    }

    /// Polls the log for `needle` until it shows up or 10 s pass: the service logs after it
    /// acts, so what a client sees can precede the line.
    pub async fn wait_logged(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.logged(needle) {
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    }

    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then the exit status (within a deadline).
    pub async fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let (status, _) = crate::testing::eventually(
            std::time::Duration::from_secs(30),
            "the service to exit after SIGTERM",
            || {
                let s = self.child.try_wait().ok().flatten();
                async move { s }
            },
        )
        .await;
        status
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bin` until it exits by itself (a start that must fail), killed if it is still running
/// after 30 s; returns its exit status and log.
pub fn run_to_exit(
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{bin} still running after 30 s; it should have refused to start");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut log = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut log);
    }
    (status, log)
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("keyward-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> TempDir {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits (10 s at most) until new handshakes at `addr` present `cert`; returns such a connection.
pub async fn presenting(addr: SocketAddr, cert: &TestCert, what: &str) -> RawTls {
    let (conn, _) =
        crate::testing::eventually(std::time::Duration::from_secs(10), what, || async {
            connect(addr, &cert.cert_pem).await.ok()
        })
        .await;
    conn
}

/// The SIGHUP check of a service binary: started with TLS (`env` gives the rest, listening on
/// port 0 of 127.0.0.1), its certificate renewed on disk, then SIGHUP. Nothing changes before the
/// signal; after it new handshakes get the renewal and not the old certificate, the connection
/// opened before still answers, the process keeps running and logs the reload, and SIGTERM
/// still ends it cleanly.
pub async fn assert_sighup_reloads(bin: &str, args: &[&str], env: &[(&str, &str)]) {
    let dir = TempDir::new();
    let first = TestCert::new(Validity::Current);
    let (cert, key) = first.write_to(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut env = env.to_vec();
    env.extend([
        ("KEYWARD_TLS_CERT", cert.as_str()),
        ("KEYWARD_TLS_KEY", key.as_str()),
        // Only the signal can reload within the check.
        ("KEYWARD_TLS_RELOAD_CHECK_MS", "3600000"),
    ]);
    let mut service = Spawned::start(bin, args, &env).await;
    let mut open = connect(service.addr, &first.cert_pem)
        .await
        .expect("handshake");
    let second = TestCert::new(Validity::Current);
    second.write_to(dir.path());
    assert!(
        connect(service.addr, &second.cert_pem).await.is_err(),
        "reloaded before the signal"
    );
    service.signal("HUP");
    presenting(
        service.addr,
        &second,
        "a handshake with the certificate loaded on SIGHUP",
    )
    .await;
    assert!(
        service.is_running(),
        "SIGHUP stopped {bin}: {}",
        service.log()
    );
    assert!(
        service.wait_logged("reloaded on SIGHUP").await,
        "{}",
        service.log()
    );
    assert!(
        connect(service.addr, &first.cert_pem).await.is_err(),
        "the old certificate is still presented"
    );
    let r = open
        .get("/healthz")
        .await
        .expect("the connection opened before");
    assert_eq!(r.status, 200, "{}", r.text());
    let status = service.stop().await;
    assert!(status.success(), "{status}");
}

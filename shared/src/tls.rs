//! TLS termination for both services (rustls; TLS 1.3 and 1.2; HTTP/2 and HTTP/1.1 by ALPN).
//!
//! The certificate chain and key come from PEM files and are checked when loaded: both parse,
//! the key matches the leaf certificate, and the leaf is valid now, so a service refuses to start
//! with an expired or mismatched pair instead of failing every handshake. They are reloaded on
//! SIGHUP and when the files change (as when a secret mount or an ACME client renews them): a
//! reload swaps what new handshakes present, connections already open keep theirs, and a reload
//! that fails the same checks keeps the working certificate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use x509_cert::der::Decode;

/// The TLS knobs both services share. Without a certificate they serve plain HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsOptions {
    /// PEM certificate chain, leaf first; with `--tls-key`, the service speaks HTTPS only.
    #[arg(long, env = "KEYWARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "KEYWARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// How often the certificate files are checked for a renewal (SIGHUP reloads at once).
    #[arg(long, env = "KEYWARD_TLS_RELOAD_CHECK_MS", default_value_t = 5_000)]
    pub tls_reload_check_ms: u64,
}

impl Default for TlsOptions {
    fn default() -> TlsOptions {
        TlsOptions {
            tls_cert: None,
            tls_key: None,
            tls_reload_check_ms: 5_000,
        }
    }
}

impl TlsOptions {
    /// Loads and checks the certificate when one is configured.
    pub fn load(&self) -> Result<Option<Arc<Tls>>, TlsError> {
        let files = TlsFiles::from_options(
            self.tls_cert.clone(),
            self.tls_key.clone(),
            "KEYWARD_TLS_CERT / KEYWARD_TLS_KEY",
        )?;
        let Some(files) = files else {
            return Ok(None);
        };
        let tls = Tls::load(files)?;
        log_loaded(tls.files(), &tls.presented(), "loaded");
        Ok(Some(Arc::new(tls)))
    }

    pub fn reload_check(&self) -> Duration {
        Duration::from_millis(self.tls_reload_check_ms)
    }
}

/// Where the PEM files are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both paths or neither: `what` names the knobs in the error.
    pub fn from_options(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        what: &str,
    ) -> Result<Option<TlsFiles>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            _ => Err(TlsError::Incomplete(what.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: set both the certificate and the key, or neither")]
    Incomplete(String),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", .0.display())]
    NoCertificate(PathBuf),
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", .0.display())]
    NoKey(PathBuf),
    #[error("{}: malformed PEM: {detail}", path.display())]
    Pem { path: PathBuf, detail: String },
    #[error("the certificate in {} cannot be parsed: {detail}", path.display())]
    Certificate { path: PathBuf, detail: String },
    #[error("the certificate in {} expired at {at} (now {now})", path.display())]
    Expired {
        path: PathBuf,
        at: String,
        now: String,
    },
    #[error("the certificate in {} is not valid before {at} (now {now})", path.display())]
    NotYetValid {
        path: PathBuf,
        at: String,
        now: String,
    },
    #[error("the private key in {} cannot be used with the certificate in {}: {detail}", key.display(), cert.display())]
    Key {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

/// The certificate a loaded TLS configuration presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub not_after: SystemTime,
}

/// What new handshakes present; swapped by a reload.
struct Current(RwLock<Arc<CertifiedKey>>);

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Current")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|c| c.clone())
    }
}

/// What identifies the files' contents without reading them: a change of any of these means a
/// renewal to load (a secret mount swaps a symlink, an editor rewrites, an ACME client renames).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<(u64, u64, Option<SystemTime>)>);

fn stamp(files: &TlsFiles) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.ino(), m.len(), m.modified().ok()))
    };
    Some(Stamp(vec![one(&files.cert)?, one(&files.key)?]))
}

pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    config: Arc<ServerConfig>,
    acceptor: TlsAcceptor,
    state: Mutex<(Option<Stamp>, Presented)>,
}

/// The protocols offered by ALPN, preferred first.
pub const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

impl Tls {
    /// Loads and checks the files; the error says what is wrong with which file.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let before = stamp(&files);
        let (key, presented) = certified_key(&files, &provider)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Key {
                cert: files.cert.clone(),
                key: files.key.clone(),
                detail: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        let config = Arc::new(config);
        Ok(Tls {
            acceptor: TlsAcceptor::from(config.clone()),
            config,
            files,
            provider,
            current,
            state: Mutex::new((before, presented)),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The configuration every handshake uses (the benchmarks measure exactly this one).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    pub fn presented(&self) -> Presented {
        self.state.lock().map(|s| s.1.clone()).unwrap_or(Presented {
            not_after: SystemTime::UNIX_EPOCH,
        })
    }

    /// Loads the files again; on success new handshakes present the new certificate. On failure
    /// the current one stays (and the error says why).
    pub fn reload(&self) -> Result<Presented, TlsError> {
        let before = stamp(&self.files);
        let (key, presented) = certified_key(&self.files, &self.provider)?;
        if let Ok(mut c) = self.current.0.write() {
            *c = Arc::new(key);
        }
        if let Ok(mut s) = self.state.lock() {
            *s = (before, presented.clone());
        }
        Ok(presented)
    }

    /// [`Tls::reload`], logged: what a SIGHUP does.
    pub fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(p) => log_loaded(&self.files, &p, why),
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded ({why}); still presenting the previous certificate")
            }
        }
    }

    /// Reloads when the files changed since the last load; `Ok(None)` when they did not. A
    /// failed attempt is not retried until the files change again.
    pub fn reload_if_changed(&self) -> Result<Option<Presented>, TlsError> {
        let now = stamp(&self.files);
        {
            let Ok(mut s) = self.state.lock() else {
                return Ok(None);
            };
            if now.is_none() || s.0 == now {
                return Ok(None);
            }
            s.0 = now;
        }
        self.reload().map(Some)
    }

    /// Checks the files every `every` and reloads what changed, until `stop` resolves.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            match self.reload_if_changed() {
                Ok(Some(p)) => log_loaded(&self.files, &p, "reloaded"),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate files changed but cannot be used; still presenting the previous certificate")
                }
            }
        }
    }
}

/// Logs a (re)load, warning when the certificate is close to expiry.
pub fn log_loaded(files: &TlsFiles, p: &Presented, what: &str) {
    let left = p
        .not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let days = left.as_secs() / 86_400;
    if left < Duration::from_secs(14 * 86_400) {
        tracing::warn!(cert = %files.cert.display(), days_left = days, "TLS certificate {what}; it expires soon");
    } else {
        tracing::info!(cert = %files.cert.display(), days_left = days, "TLS certificate {what}");
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, Presented), TlsError> {
    let pem_error = |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let cert_pem = read(&files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&files.cert, e))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate(files.cert.clone()));
    };
    let presented = check_validity(&files.cert, leaf, SystemTime::now())?;
    let key_pem = read(&files.key)?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey(files.key.clone()))
        }
        Err(e) => return Err(pem_error(&files.key, e)),
    };
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Key {
        cert: files.cert.clone(),
        key: files.key.clone(),
        detail: e.to_string(),
    })?;
    Ok((certified, presented))
}

fn check_validity(
    path: &Path,
    leaf: &CertificateDer<'_>,
    now: SystemTime,
) -> Result<Presented, TlsError> {
    let cert = x509_cert::Certificate::from_der(leaf).map_err(|e| TlsError::Certificate {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let validity = cert.tbs_certificate().validity();
    let (not_before, not_after) = (
        SystemTime::UNIX_EPOCH + validity.not_before.to_unix_duration(),
        SystemTime::UNIX_EPOCH + validity.not_after.to_unix_duration(),
    );
    let show = |t: SystemTime| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339();
    if now > not_after {
        return Err(TlsError::Expired {
            path: path.to_path_buf(),
            at: show(not_after),
            now: show(now),
        });
    }
    if now < not_before {
        return Err(TlsError::NotYetValid {
            path: path.to_path_buf(),
            at: show(not_before),
            now: show(now),
        });
    }
    Ok(Presented { not_after })
}

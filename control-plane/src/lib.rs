//! Keyward's control-plane: the admin REST API. Every write goes through the core's `WriteTx`, so
//! it is audited and announced to the validators in the same transaction.
//!
//! [`start`] migrates the database, binds and serves; [`create_admin`] creates an account.

mod auth;
mod compat;
pub mod config;
pub mod demo;
mod discord;
mod error;
mod export;
mod extract;
mod input;
mod metrics;
mod replica;
mod routes;
pub mod ui;
mod webhooks;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use keyward_shared::model::Account;
use keyward_shared::{db, secrets, store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Config;
pub use keyward_shared::tls::Tls;

use auth::JwtKeys;
use error::{ApiError, ApiResult};
use metrics::Metrics;

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    pool: Pool,
    jwt: JwtKeys,
    login_limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    metrics: Arc<Metrics>,
    /// Where read-only GETs read (`--replica-url`).
    reads: Arc<replica::Reads>,
    /// The Ed25519 keys that sign Keygen answers and webhook deliveries.
    signers: keyward_shared::signers::Signers,
    /// Which webhook URLs tenants may register.
    webhook_urls: store::webhook_endpoints::UrlPolicy,
    /// The Discord OAuth2 login, when configured.
    discord: Option<discord::Discord>,
    /// How long usage statistics are kept: the window of a license's distinct IPs and HWIDs.
    usage_retention: chrono::Duration,
}

impl AppState {
    pub(crate) async fn client(&self) -> ApiResult<deadpool_postgres::Client> {
        Ok(db::checkout(&self.0.pool).await?)
    }

    /// A connection for a handler that only reads: a replica that has replayed this process's
    /// writes and is within the lag bound, else the primary (see `replica`). Never for a
    /// handler that writes, nor for auth: `client` is the primary.
    pub(crate) async fn read_client(&self) -> ApiResult<deadpool_postgres::Client> {
        Ok(self.0.reads.client().await?)
    }

    fn reads(&self) -> &replica::Reads {
        &self.0.reads
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.0.pool
    }

    pub(crate) fn signers(&self) -> &keyward_shared::signers::Signers {
        &self.0.signers
    }

    pub(crate) fn webhook_urls(&self) -> store::webhook_endpoints::UrlPolicy {
        self.0.webhook_urls
    }

    pub(crate) fn jwt(&self) -> &JwtKeys {
        &self.0.jwt
    }

    pub(crate) fn discord(&self) -> Option<&discord::Discord> {
        self.0.discord.as_ref()
    }

    pub(crate) fn usage_retention(&self) -> chrono::Duration {
        self.0.usage_retention
    }

    fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub(crate) fn check_login_rate(&self, ip: IpAddr) -> ApiResult<()> {
        self.0
            .login_limiter
            .check_key(&ip.to_canonical())
            .map_err(|not_until| {
                ApiError::rate_limited(not_until.wait_time_from(self.0.clock.now()))
            })
    }
}

/// A started control-plane.
pub struct Running {
    addr: SocketAddr,
    tls: Option<Arc<Tls>>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    janitor: JoinHandle<()>,
    webhooks: Option<webhooks::Webhooks>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS termination, when a certificate is configured (SIGHUP reloads it).
    pub fn tls(&self) -> Option<&Arc<Tls>> {
        self.tls.as_ref()
    }

    /// Stops accepting, lets in-flight requests finish, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        self.janitor.abort();
        if let Some(w) = self.webhooks {
            w.stop().await;
        }
    }
}

/// Migrates, binds `cfg.listen` and serves in the background.
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    let pg = db::pg_config(&cfg.database_url, "keyward-control-plane").context("DATABASE_URL")?;
    let tls = cfg.tls.load().context("TLS")?;
    // Checked before touching the database, so a typo never generates or pins anything.
    let signing_seed = cfg
        .signing_key_seed
        .as_deref()
        .map(|s| parse_signing_seed(s, "KEYWARD_SIGNING_KEY"))
        .transpose()?;
    {
        let mut c = db::connect(&pg).await.context("connecting to PostgreSQL")?;
        db::migrate(&mut c).await.context("applying migrations")?;
        let primary = store::signing_keys::ensure_primary(&mut c, signing_seed)
            .await
            .context("setting up the response-signing key")?;
        tracing::info!(public_key = %primary.public_key, id = %primary.id,
            "primary Ed25519 signing key (KeyAuth 1.3 clients verify with this public key)");
    }
    let pool = db::pool(pg, cfg.pool_size);
    let metrics = Arc::new(Metrics::new());
    let mut replicas = Vec::new();
    for url in cfg.replicas.url.iter().filter(|u| !u.trim().is_empty()) {
        let rpg = db::pg_config(url.trim(), "keyward-control-plane").context("REPLICA_URL")?;
        let name = format!("{:?}:{:?}", rpg.get_hosts(), rpg.get_ports());
        replicas.push((name, db::pool(rpg, cfg.pool_size)));
    }
    let reads = Arc::new(replica::Reads::new(
        pool.clone(),
        replicas,
        Duration::from_millis(cfg.replicas.max_lag_ms),
        metrics.clone(),
    ));
    let secret = match &cfg.jwt_secret {
        Some(s) if s.len() >= 32 => s.as_bytes().to_vec(),
        Some(_) => anyhow::bail!("KEYWARD_JWT_SECRET must be at least 32 bytes"),
        None => {
            let c = db::checkout(&pool).await?;
            db::server_secret(&c, "jwt", 32).await?
        }
    };
    let discord = discord::Discord::new(&cfg.discord, &secret).context("Discord login")?;
    let webhook_worker = cfg
        .webhooks
        .worker
        .then(|| webhooks::Prepared::new(&cfg.database_url, &cfg.webhooks))
        .transpose()
        .context("setting up the webhook worker")?;
    let per_minute = NonZeroU32::new(cfg.login_rate_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    let state = AppState(Arc::new(Inner {
        pool,
        jwt: JwtKeys::new(&secret, Duration::from_secs(cfg.jwt_ttl_secs)),
        login_limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        clock: DefaultClock::default(),
        metrics,
        reads: reads.clone(),
        signers: keyward_shared::signers::Signers::default(),
        webhook_urls: store::webhook_endpoints::UrlPolicy {
            allow_http: cfg.webhooks.allow_http,
            allow_private: cfg.webhooks.allow_private,
        },
        discord,
        usage_retention: chrono::Duration::days(i64::from(cfg.usage_retention_days)),
    }));
    let app = routes::router(state.clone(), cfg.max_body_bytes);
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let server = tokio::spawn(serve(listener, tls.clone(), app, shutdown_rx.clone()));
    tokio::spawn(reads.poll(shutdown_rx.clone()));
    if let Some(tls) = &tls {
        let mut stop = shutdown_rx;
        tokio::spawn(tls.clone().watch(cfg.tls.reload_check(), async move {
            let _ = stop.changed().await;
        }));
    }
    // Beside the janitor: drains the webhook outbox, events committed before a restart included.
    let webhooks = webhook_worker.map(|w| w.start(state.clone()));
    let janitor = tokio::spawn(janitor(
        state,
        Duration::from_millis(cfg.janitor_ms.max(10)),
        chrono::Duration::days(i64::from(cfg.usage_retention_days)),
    ));
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, "control-plane listening");
    Ok(Running {
        addr,
        tls,
        shutdown,
        server,
        janitor,
        webhooks,
    })
}

/// Periodic housekeeping: login-limiter state of idle addresses dropped (so it stays bounded),
/// dead machines deactivated (their slots freed), signing keys re-read (a rotation made with
/// the operator CLI reaches this process's Keygen signatures), usage statistics and per-minute
/// validation counts past their retention pruned.
async fn janitor(state: AppState, every: Duration, usage_retention: chrono::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.0.login_limiter.retain_recent();
        state.0.login_limiter.shrink_to_fit();
        match state.client().await {
            Ok(mut client) => {
                match store::machines::cull_dead(&mut client, chrono::Utc::now(), 500).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(machines = n, "deactivated dead machines"),
                    Err(e) => tracing::warn!(error = %e, "could not deactivate dead machines"),
                }
                match store::license_stats::write::prune(&**client, usage_retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "pruned usage statistics"),
                    Err(e) => tracing::warn!(error = %e, "could not prune usage statistics"),
                }
                match store::validation_buckets::prune(&**client, usage_retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "pruned validation buckets"),
                    Err(e) => tracing::warn!(error = %e, "could not prune validation buckets"),
                }
            }
            Err(e) => tracing::warn!(error = %e.message, "janitor: no database connection"),
        }
        if let Err(e) = state.signers().reload(state.pool(), every).await {
            tracing::warn!(error = %e, "could not reload signing keys");
        }
    }
}

/// How long a stop waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The router on the shared accept loop; each request carries its peer as `ConnectInfo`, which
/// the login limiter and the audit log read.
async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<Tls>>,
    app: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    use tower::ServiceExt;
    let service_for = move |peer: SocketAddr| {
        let app = app.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            app.clone().oneshot(req)
        })
    };
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    keyward_shared::serve::serve(listener, tls, service_for, stop, SHUTDOWN_GRACE).await;
}

/// Parses a signing-key seed (64 hex characters). The error says what is expected and never
/// echoes the secret; `what` names where it came from.
pub fn parse_signing_seed(hex_seed: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    keyward_shared::signing::Ed25519Signer::from_seed_hex(hex_seed)
        .map(|s| s.seed())
        .map_err(|e| anyhow::anyhow!("{what} is invalid: {e}"))
}

/// Creates an admin account (a tenant).
pub async fn create_admin(
    database_url: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<Account> {
    store::accounts::validate_password(password)?;
    store::accounts::validate_username(username)?;
    let hash = hash_password(password).await?;
    let c = db::connect(&db::pg_config(database_url, "keyward-control-plane")?).await?;
    Ok(store::accounts::create(&c, username, None, &hash).await?)
}

async fn hash_password(password: &str) -> anyhow::Result<String> {
    let password = password.to_string();
    Ok(tokio::task::spawn_blocking(move || secrets::hash_password(&password)).await??)
}

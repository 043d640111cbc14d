//! Keyward's validator: answers `POST /v1/validate` from memory on bare hyper.
//!
//! [`start`] builds the caches, starts the invalidation listener, the maintenance task (usage
//! write-behind, rate-limiter purge) and the HTTP server, and returns a [`Running`] handle.

mod body;
mod cache;
mod client_ip;
mod compat;
pub mod config;
mod error;
mod executions;
mod health;
mod keyless;
mod license_stats;
mod listener;
mod metrics;
#[cfg(feature = "bench-support")]
pub mod offline;
mod pace;
mod rate_limit;
mod replica;
mod routes;
mod self_reset;
mod server;
mod timestamp;
mod usage;
mod validate;
mod validation_counts;
mod validation_events;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use keyward_shared::outbound;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Config;
pub use keyward_shared::tls::Tls;
pub use listener::APPLICATION_NAME as LISTENER_APPLICATION_NAME;

use cache::Caches;
use health::Health;
use metrics::Metrics;
use rate_limit::ClientLimiter;
use usage::Usage;

/// Everything a request handler needs, shared by all connections.
pub(crate) struct State {
    cfg: Config,
    pool: Pool,
    caches: Caches,
    health: Arc<Health>,
    limiter: ClientLimiter,
    /// CyberLicense's validate limit (per client IP and window, with its standard headers).
    cyberlicense_limit: compat::cyberlicense::RateLimit,
    usage: Usage,
    /// Panda's execution counts, written behind with the usage counters.
    executions: executions::Executions,
    /// Keygen's validation webhook events, written behind with the usage counters.
    validation_events: validation_events::ValidationEvents,
    /// CyberLicense's per-license usage statistics, written behind by a task of their own.
    license_stats: license_stats::LicenseStats,
    /// Validations per app, minute and outcome (the Overview's chart), written behind with the
    /// usage counters.
    validation_counts: validation_counts::ValidationCounts,
    metrics: Arc<Metrics>,
    client: compat::keyauth::ClientApi,
}

/// A started validator.
pub struct Running {
    addr: SocketAddr,
    state: Arc<State>,
    tls: Option<Arc<Tls>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    // Checked before anything starts: a bad certificate stops the start with what is wrong.
    let tls = cfg.tls.load().context("TLS")?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State::new(cfg)?);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(listener::run(state.clone(), shutdown_rx.clone())),
        tokio::spawn(maintain(state.clone(), shutdown_rx.clone())),
        tokio::spawn(write_usage(state.clone(), shutdown_rx.clone())),
        tokio::spawn(write_license_stats(state.clone(), shutdown_rx.clone())),
        tokio::spawn(state.caches.reads.clone().poll(shutdown_rx.clone())),
    ];
    if let Some(tls) = &tls {
        let mut stop = shutdown_rx.clone();
        let every = state.cfg.tls.reload_check();
        tasks.push(tokio::spawn(tls.clone().watch(every, async move {
            let _ = stop.changed().await;
        })));
    }
    tasks.push(tokio::spawn(server::serve(
        listener,
        tls.clone(),
        state.clone(),
        shutdown_rx,
    )));
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, "validator listening");
    Ok(Running {
        addr,
        state,
        tls,
        shutdown,
        tasks,
    })
}

/// The query pool's connection settings. Every statement a validator prepares is a lookup or a
/// write by id or key, for which a generic plan is right; PostgreSQL would otherwise re-plan the
/// batched license lookup on every execution (a custom plan for one key looks cheaper than the
/// generic one for ten), a fifth of its time on cold keys.
pub(crate) fn query_pool_config(
    database_url: &str,
) -> Result<tokio_postgres::Config, keyward_shared::db::ConfigError> {
    let mut pg = keyward_shared::db::pg_config(database_url, "keyward-validator")?;
    let options = format!(
        "{} -c plan_cache_mode=force_generic_plan",
        pg.get_options().unwrap_or_default()
    );
    pg.options(options.trim_start());
    Ok(pg)
}

impl State {
    /// The shared state; the pool connects lazily, the caches start empty and not live.
    fn new(cfg: Config) -> anyhow::Result<State> {
        let pg = query_pool_config(&cfg.database_url).context("DATABASE_URL")?;
        let pool = keyward_shared::db::pool(pg, cfg.pool_size);
        let health = Arc::new(Health::new(cfg.outage_grace()));
        let metrics = Arc::new(Metrics::new());
        let mut replicas = Vec::new();
        for url in cfg.replica_url.iter().filter(|u| !u.trim().is_empty()) {
            let rpg = query_pool_config(url.trim()).context("REPLICA_URL")?;
            let name = format!("{:?}:{:?}", rpg.get_hosts(), rpg.get_ports());
            replicas.push((name, keyward_shared::db::pool(rpg, cfg.pool_size)));
        }
        let reads = Arc::new(replica::Reads::new(
            pool.clone(),
            replicas,
            Duration::from_millis(cfg.replica_max_lag_ms.max(1)),
            health.clone(),
            metrics.clone(),
        ));
        let caches = Caches::new(&cfg, pool.clone(), reads, health.clone(), metrics.clone());
        let outbound = outbound::Outbound::new(outbound::OutboundConfig {
            timeout: Duration::from_millis(cfg.webhook_timeout_ms),
            max_response_bytes: cfg.webhook_max_bytes,
            allow_private: cfg.webhook_allow_private,
            // The body is relayed to the client: a cut one would be a wrong answer.
            truncate_response: false,
        })
        .map_err(|e| tracing::warn!(error = %e, "webhooks disabled: no HTTP client"))
        .ok();
        let client = compat::keyauth::ClientApi {
            app_limiter: rate_limit::Limiter::new(
                cfg.app_rate_limit_per_sec,
                cfg.app_rate_limit_burst,
                cfg.app_cache_capacity as usize,
            ),
            passwords: compat::keyauth::Passwords::new(cfg.password_hash_concurrency),
            signers: keyward_shared::signers::Signers::default(),
            outbound,
        };
        Ok(State {
            client,
            limiter: ClientLimiter::new(
                cfg.rate_limit_per_sec,
                cfg.rate_limit_burst,
                cfg.rate_limit_max_tracked,
            ),
            cyberlicense_limit: compat::cyberlicense::RateLimit::new(
                cfg.cyberlicense_rate_limit,
                Duration::from_secs(cfg.cyberlicense_rate_window_secs),
                cfg.rate_limit_max_tracked,
            ),
            cfg,
            pool,
            caches,
            health,
            usage: Usage::default(),
            executions: Default::default(),
            validation_events: Default::default(),
            license_stats: license_stats::LicenseStats::new(metrics.clone()),
            validation_counts: validation_counts::ValidationCounts::new(metrics.clone()),
            metrics,
        })
    }
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS termination, when a certificate is configured (SIGHUP reloads it).
    pub fn tls(&self) -> Option<&Arc<Tls>> {
        self.tls.as_ref()
    }

    /// Waits until the validator is ready (what `/readyz` reports): after start, once the
    /// listener is connected and the caches flushed.
    pub async fn wait_ready(&self, deadline: Duration) -> anyhow::Result<()> {
        let start = tokio::time::Instant::now();
        while !self.state.health.is_ready() {
            if start.elapsed() > deadline {
                anyhow::bail!("validator not ready after {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Graceful stop: not ready (while still serving for the shutdown delay), stop accepting,
    /// finish in-flight requests (bounded), write the pending usage counters.
    pub async fn shutdown(self) {
        self.state.health.begin_shutdown();
        let delay = Duration::from_secs(self.state.cfg.shutdown_delay_secs);
        if !delay.is_zero() {
            tracing::info!(
                ?delay,
                "not ready; serving until load balancers have noticed"
            );
            tokio::time::sleep(delay).await;
        }
        self.state.usage.hurry();
        self.state.license_stats.hurry();
        self.state.validation_counts.hurry();
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self
            .state
            .usage
            .flush(&self.state.pool, Duration::ZERO)
            .await
        {
            tracing::warn!(error = %e, "could not write usage counters at shutdown");
        }
        if let Err(e) = self.state.executions.flush(&self.state.pool).await {
            tracing::warn!(error = %e, "could not write execution counts at shutdown");
        }
        if let Err(e) = self.state.validation_events.flush(&self.state.pool).await {
            tracing::warn!(error = %e, "could not write validation events at shutdown");
        }
        if let Err(e) = self
            .state
            .license_stats
            .flush(&self.state.pool, Duration::ZERO)
            .await
        {
            tracing::warn!(error = %e, "could not write usage statistics at shutdown");
        }
        if let Err(e) = self
            .state
            .validation_counts
            .flush(&self.state.pool, Duration::ZERO)
            .await
        {
            tracing::warn!(error = %e, "could not write validation counts at shutdown");
        }
        tracing::info!("validator stopped");
    }
}

/// The usage write-behind, in a task of its own: a flush is paced over seconds, and the limiter
/// purges must not wait for it (a 1 M-address flood outgrew the limiter's bound while they did).
async fn write_usage(state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.cfg.usage_flush_ms.max(10));
    // Spread over half the interval, so the writes never pile up behind each other.
    let spread = period / 2;
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        // Outside the select: a flush is never dropped half-written (shutdown hurries it instead).
        if state.health.is_connected() {
            if let Err(e) = state.usage.flush(&state.pool, spread).await {
                state.metrics.usage_flush_failures.inc();
                tracing::warn!(error = %e, "could not write usage counters; will retry");
            }
            if let Err(e) = state.executions.flush(&state.pool).await {
                state.metrics.usage_flush_failures.inc();
                tracing::warn!(error = %e, "could not write execution counts; will retry");
            }
            if let Err(e) = state.validation_events.flush(&state.pool).await {
                tracing::warn!(error = %e, "could not write validation events");
            }
            // A few statements at most (one per thousand buckets): a quarter of the interval.
            if let Err(e) = state.validation_counts.flush(&state.pool, period / 4).await {
                tracing::warn!(error = %e, "could not write validation counts; will retry");
            }
        }
    }
}

/// CyberLicense's usage statistics, written behind like the usage counters (same interval,
/// paced over half of it) by a task of their own, so neither write waits for the other.
async fn write_license_stats(state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_millis(state.cfg.usage_flush_ms.max(10));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        // Outside the select: a flush is never dropped half-written (shutdown hurries it instead).
        if state.health.is_connected() {
            if let Err(e) = state.license_stats.flush(&state.pool, period / 2).await {
                tracing::warn!(error = %e, "could not write usage statistics; dropped");
            }
        }
    }
}

/// Rate-limiter purging, expired sessions and signing-key reloads.
async fn maintain(state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    let mut purge_tick = tokio::time::interval(Duration::from_secs(1));
    let mut seconds: u64 = 0;
    let mut session_tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = purge_tick.tick() => {
                seconds += 1;
                if seconds.is_multiple_of(10) || state.limiter.over_bound() {
                    state.limiter.purge_idle();
                }
                if seconds.is_multiple_of(10) || state.client.app_limiter.over_bound() {
                    state.client.app_limiter.purge_idle();
                }
                if seconds.is_multiple_of(10) || state.cyberlicense_limit.over_bound() {
                    state.cyberlicense_limit.purge_idle();
                }
            }
            _ = session_tick.tick() => {
                if state.health.is_connected() {
                    expire_sessions(&state).await;
                    // Picks up rotated keys even for apps this validator has not signed for yet.
                    if let Err(e) = state.client.signers.reload(&state.pool, Duration::from_secs(30)).await {
                        tracing::warn!(error = %e, "could not reload signing keys");
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Deletes expired client-API sessions in bounded batches (they are already refused when read).
async fn expire_sessions(state: &State) {
    let Ok(client) = keyward_shared::db::checkout(&state.pool).await else {
        return;
    };
    for _ in 0..10 {
        match keyward_shared::store::sessions::purge_expired(&**client, 5_000).await {
            Ok(5_000) => continue,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "could not purge expired sessions");
                break;
            }
        }
    }
}

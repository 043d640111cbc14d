//! Every knob of the validator: a flag with an environment variable and a default that suits a
//! local run.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// PostgreSQL URL (the same database as the control-plane's).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    /// Streaming replicas of that database for cache-miss reads (comma-separated URLs; none:
    /// every read on the primary). LISTEN and writes always use DATABASE_URL; a miss reads a
    /// replica only once it has replayed every invalidation this validator applied.
    #[arg(long, env = "KEYWARD_REPLICA_URL", value_delimiter = ',')]
    pub replica_url: Vec<String>,

    /// A replica that has not answered a replay-position poll for this long is skipped (misses
    /// read the primary).
    #[arg(long, env = "KEYWARD_REPLICA_MAX_LAG_MS", default_value_t = 1_000)]
    pub replica_max_lag_ms: u64,

    /// Address to serve on.
    #[arg(
        long,
        env = "KEYWARD_VALIDATOR_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub listen: SocketAddr,

    /// TLS termination (plain HTTP without a certificate).
    #[command(flatten)]
    pub tls: keyward_shared::tls::TlsOptions,

    /// Maximum connections of the query pool (cache misses, first-use writes, usage flushes).
    #[arg(long, env = "KEYWARD_VALIDATOR_POOL_SIZE", default_value_t = 16)]
    pub pool_size: usize,

    /// License lookups at PostgreSQL at once (of the query pool's connections); cache misses that
    /// arrive while all are busy go together in the next one.
    #[arg(long, env = "KEYWARD_MISS_QUERIES_IN_FLIGHT", default_value_t = 4)]
    pub miss_queries_in_flight: usize,

    /// Maximum number of cached licenses (known and unknown keys together).
    #[arg(
        long,
        env = "KEYWARD_LICENSE_CACHE_CAPACITY",
        default_value_t = 1_000_000
    )]
    pub license_cache_capacity: u64,

    /// Maximum number of cached apps.
    #[arg(long, env = "KEYWARD_APP_CACHE_CAPACITY", default_value_t = 100_000)]
    pub app_cache_capacity: u64,

    /// Age after which a cached entry is re-read even without an invalidation (safety net only:
    /// invalidations normally arrive within milliseconds).
    #[arg(long, env = "KEYWARD_CACHE_TTL_SECS", default_value_t = 300)]
    pub cache_ttl_secs: u64,

    /// Age after which an "unknown key" entry is re-read.
    #[arg(long, env = "KEYWARD_NEGATIVE_TTL_SECS", default_value_t = 30)]
    pub negative_ttl_secs: u64,

    /// How long cached answers keep being served while PostgreSQL is unreachable; afterwards
    /// every validation answers 503.
    #[arg(long, env = "KEYWARD_OUTAGE_GRACE_SECS", default_value_t = 300)]
    pub outage_grace_secs: u64,

    /// Sustained validations per second allowed per client IP (IPv6 per /64); 0 disables.
    #[arg(long, env = "KEYWARD_RATE_LIMIT_PER_SEC", default_value_t = 20)]
    pub rate_limit_per_sec: u32,

    /// Burst allowed per client IP above the sustained rate.
    #[arg(long, env = "KEYWARD_RATE_LIMIT_BURST", default_value_t = 60)]
    pub rate_limit_burst: u32,

    /// Number of tracked client IPs above which idle rate-limiter state is purged at once
    /// (otherwise it is purged every 10 s).
    #[arg(
        long,
        env = "KEYWARD_RATE_LIMIT_MAX_TRACKED",
        default_value_t = 200_000
    )]
    pub rate_limit_max_tracked: usize,

    /// Peers whose `X-Forwarded-For` is trusted (comma-separated IPs or CIDRs). Empty: the socket
    /// address is always the client IP.
    #[arg(long, env = "KEYWARD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,

    /// Interval between writes of the batched usage counters.
    #[arg(long, env = "KEYWARD_USAGE_FLUSH_MS", default_value_t = 5_000)]
    pub usage_flush_ms: u64,

    /// Interval of the cache-generation check that catches a lost notification.
    #[arg(long, env = "KEYWARD_EPOCH_CHECK_MS", default_value_t = 2_000)]
    pub epoch_check_ms: u64,

    /// First delay before the invalidation listener reconnects (doubles up to 5 s).
    #[arg(long, env = "KEYWARD_LISTENER_BACKOFF_MS", default_value_t = 100)]
    pub listener_backoff_ms: u64,

    /// Largest accepted request body.
    #[arg(long, env = "KEYWARD_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// After SIGTERM, how long to keep serving while `/readyz` reports not ready, so that load
    /// balancers and Kubernetes stop sending traffic before the listener closes.
    #[arg(long, env = "KEYWARD_SHUTDOWN_DELAY_SECS", default_value_t = 0)]
    pub shutdown_delay_secs: u64,

    /// How long shutdown waits for in-flight requests.
    #[arg(long, env = "KEYWARD_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Client-API sessions kept in memory.
    #[arg(
        long,
        env = "KEYWARD_SESSION_CACHE_CAPACITY",
        default_value_t = 1_000_000
    )]
    pub session_cache_capacity: u64,

    /// Client-API end users kept in memory.
    #[arg(long, env = "KEYWARD_USER_CACHE_CAPACITY", default_value_t = 500_000)]
    pub user_cache_capacity: u64,

    /// Licenses kept in memory for the Keygen facade, each with its policy, machines and
    /// entitlements (a few hundred bytes to a few kB each).
    #[arg(long, env = "KEYWARD_KEYGEN_CACHE_CAPACITY", default_value_t = 200_000)]
    pub keygen_cache_capacity: u64,

    /// The account that Keygen calls without a credential and without `/v1/accounts/{id}/` in
    /// their path belong to (its id or public id); unset: such calls answer 404.
    #[arg(long, env = "KEYWARD_KEYGEN_ACCOUNT")]
    pub keygen_account: Option<String>,

    /// Client-API requests per second allowed to one app (all its clients together); 0: no limit.
    #[arg(long, env = "KEYWARD_APP_RATE_LIMIT_PER_SEC", default_value_t = 2_000)]
    pub app_rate_limit_per_sec: u32,

    /// Burst allowed to one app above its rate.
    #[arg(long, env = "KEYWARD_APP_RATE_LIMIT_BURST", default_value_t = 4_000)]
    pub app_rate_limit_burst: u32,

    /// Largest accepted client-API request body (`webhook` bodies ride in it).
    #[arg(long, env = "KEYWARD_CLIENT_API_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub client_api_max_body_bytes: usize,

    /// Password hashes computed at once (argon2id takes ~19 MiB and one core each).
    #[arg(long, env = "KEYWARD_PASSWORD_HASH_CONCURRENCY", default_value_t = 4)]
    pub password_hash_concurrency: usize,

    /// Timeout of a vendor webhook called by the client API's `webhook`.
    #[arg(long, env = "KEYWARD_WEBHOOK_TIMEOUT_MS", default_value_t = 5_000)]
    pub webhook_timeout_ms: u64,

    /// Largest webhook response relayed to a client.
    #[arg(long, env = "KEYWARD_WEBHOOK_MAX_BYTES", default_value_t = 256 * 1024)]
    pub webhook_max_bytes: usize,

    /// Let webhooks reach loopback and private addresses (off: a client could otherwise make
    /// the validator probe the operator's own network).
    #[arg(long, env = "KEYWARD_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    pub webhook_allow_private: bool,

    /// Base of the `customerPanelLink` in `init` answers (`<base>/<owner>/<app>/`); empty: none.
    #[arg(long, env = "KEYWARD_CUSTOMER_PANEL_URL", default_value = "")]
    pub customer_panel_url: String,

    /// Request headers that carry an executor's fingerprint, in order of preference: where
    /// Junkie's `verifyOpen` takes the HWID from when its body has none (comma-separated).
    #[arg(
        long,
        env = "KEYWARD_JUNKIE_HWID_HEADERS",
        value_delimiter = ',',
        default_values_t = default_junkie_hwid_headers()
    )]
    pub junkie_hwid_headers: Vec<String>,

    /// CyberLicense validations (`POST /api/license/validate`) allowed per client IP (IPv6 per
    /// /64) in each `--cyberlicense-rate-window-secs`; 0 disables. CyberLicense's own default.
    #[arg(long, env = "KEYWARD_CYBERLICENSE_RATE_LIMIT", default_value_t = 200)]
    pub cyberlicense_rate_limit: u32,

    /// The window of `--cyberlicense-rate-limit`, in seconds (15 minutes by default).
    #[arg(
        long,
        env = "KEYWARD_CYBERLICENSE_RATE_WINDOW_SECS",
        default_value_t = 900
    )]
    pub cyberlicense_rate_window_secs: u64,
}

/// The fingerprint headers executors are seen to send (spec `roblox-key-systems.md` §2.2).
pub fn default_junkie_hwid_headers() -> Vec<String> {
    [
        "Syn-Fingerprint",
        "Exploit-Guid",
        "Proto-User-Identifier",
        "Sentinel-Fingerprint",
    ]
    .map(String::from)
    .to_vec()
}

impl Config {
    /// All defaults, listening on an ephemeral loopback port.
    pub fn new(database_url: impl Into<String>) -> Config {
        Config {
            database_url: database_url.into(),
            replica_url: Vec::new(),
            replica_max_lag_ms: 1_000,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: Default::default(),
            pool_size: 16,
            miss_queries_in_flight: 4,
            license_cache_capacity: 1_000_000,
            app_cache_capacity: 100_000,
            cache_ttl_secs: 300,
            negative_ttl_secs: 30,
            outage_grace_secs: 300,
            rate_limit_per_sec: 20,
            rate_limit_burst: 60,
            rate_limit_max_tracked: 200_000,
            trusted_proxies: Vec::new(),
            usage_flush_ms: 5_000,
            epoch_check_ms: 2_000,
            listener_backoff_ms: 100,
            max_body_bytes: 16 * 1024,
            shutdown_delay_secs: 0,
            shutdown_grace_secs: 10,
            session_cache_capacity: 1_000_000,
            user_cache_capacity: 500_000,
            keygen_cache_capacity: 200_000,
            keygen_account: None,
            app_rate_limit_per_sec: 2_000,
            app_rate_limit_burst: 4_000,
            client_api_max_body_bytes: 64 * 1024,
            password_hash_concurrency: 4,
            webhook_timeout_ms: 5_000,
            webhook_max_bytes: 256 * 1024,
            webhook_allow_private: false,
            customer_panel_url: String::new(),
            junkie_hwid_headers: default_junkie_hwid_headers(),
            cyberlicense_rate_limit: 200,
            cyberlicense_rate_window_secs: 900,
        }
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }

    pub fn negative_ttl(&self) -> Duration {
        Duration::from_secs(self.negative_ttl_secs)
    }

    pub fn outage_grace(&self) -> Duration {
        Duration::from_secs(self.outage_grace_secs)
    }
}
